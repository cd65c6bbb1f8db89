"""Exit statuses of the command line: the contract scripts rely on."""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    """Every item succeeded, or was already complete."""
    FAILURES = 1
    """At least one item failed; all the others were still done and recorded."""
    USAGE = 2
    """A bad option, a missing or unreadable list, a file that is not a manifest."""
    INTERRUPTED = 130
    """SIGINT (Ctrl-C): 128 + 2, as shells report it."""
    BROKEN_PIPE = 141
    """Standard output was closed by its reader (`| head`): 128 + SIGPIPE, as `cat` exits."""
    TERMINATED = 143
    """SIGTERM: 128 + 15."""
