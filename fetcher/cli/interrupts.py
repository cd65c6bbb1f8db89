"""Ctrl-C and SIGTERM, taken at safe points.

Python raises KeyboardInterrupt wherever the main thread happens to be, even between a lock's
acquire and the `with` block that would release it, leaving the lock held and the run
deadlocked at cleanup. The command line's handler therefore only records the signal; the
committer thread checks for it between batches and while waiting for results. A second
signal raises at once, for a process stuck where nothing checks.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Terminated(KeyboardInterrupt):
    """SIGTERM: unwinds exactly like Ctrl-C, exits 143 instead of 130."""


class Interrupts:
    """Records SIGINT/SIGTERM while installed; `check()` raises the recorded one."""

    def __init__(self) -> None:
        self.received: int | None = None

    def check(self) -> None:
        if self.received is not None:
            raise Terminated if self.received == signal.SIGTERM else KeyboardInterrupt

    def _record(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            self.check()  # the second signal: raise here and now
        self.received = signum

    @contextmanager
    def installed(self) -> Iterator[Interrupts]:
        """Handle both signals for the duration of the block (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig, handler in previous.items():
            # A parent that ignores SIGINT (nohup, background jobs) is obeyed.
            if handler is not signal.SIG_IGN:
                signal.signal(sig, self._record)
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
