"""Input lists: lazy, bounded-memory reading of lines into numbered, classified sources.

A line that cannot be fetched still becomes a `Source` (with `error` set) so that it keeps its
place in the input order and is reported like any other failed item.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from fetcher.errors import UsageError
from fetcher.results import ErrorInfo

MAX_LINE_BYTES = 64 * 1024
"""Longer lines are rejected: no real URL or path is that long, and it bounds memory."""
STDIN = "-"

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BOM = b"\xef\xbb\xbf"
_SKIP_CHUNK = 64 * 1024


class SourceKind(str, Enum):
    HTTP = "http"
    FILE = "file"
    INVALID = "invalid"


@dataclass(frozen=True)
class Source:
    """One input item: its position, its text as written, and what to fetch."""

    index: int
    text: str
    kind: SourceKind
    target: str
    """The URL for HTTP, an absolute path for local files, '' when invalid."""
    base_dir: Path
    """Folder of the list the item came from (local paths and `mirror` naming use it)."""
    error: ErrorInfo | None = None


def parse_source(text: str, index: int, base_dir: Path) -> Source:
    """Classify one (already stripped) line; never raises."""

    def invalid(kind: str, message: str) -> Source:
        return Source(index, text, SourceKind.INVALID, "", base_dir, ErrorInfo(kind, message))

    if not text:
        return invalid("invalid_source", "empty source")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_LINE_BYTES:
        return invalid("invalid_source", f"line is longer than {MAX_LINE_BYTES} bytes")
    if _CONTROL.search(text):
        return invalid("invalid_source", "line contains NUL or control characters")
    scheme_match = _SCHEME.match(text)
    if scheme_match is None:
        return Source(index, text, SourceKind.FILE, os.path.abspath(base_dir / text), base_dir)
    scheme = scheme_match.group(1).lower()
    if scheme in ("http", "https"):
        if any(c.isspace() for c in text):
            return invalid("invalid_source", "URL contains white space")
        try:
            parts = urlsplit(text)
            _ = parts.port  # raises ValueError on a bad port
        except ValueError as exc:
            return invalid("invalid_source", f"malformed URL: {exc}")
        if not parts.hostname:
            return invalid("invalid_source", "URL has no host")
        return Source(index, text, SourceKind.HTTP, text, base_dir)
    if scheme == "file":
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            return invalid("invalid_source", f"file URL names a remote host: {parts.netloc!r}")
        try:
            path = unquote(parts.path, errors="strict")
        except UnicodeDecodeError:
            return invalid("invalid_source", "file URL path is not valid UTF-8 once decoded")
        if not path.startswith("/"):
            return invalid("invalid_source", "file URL path is not absolute")
        return Source(index, text, SourceKind.FILE, os.path.abspath(path), base_dir)
    return invalid("unsupported_scheme", f"unsupported scheme {scheme!r} (use http, https, file)")


def bounded_lines(stream: BinaryIO) -> Iterator[bytes | None]:
    """Lines without their ending; None stands for a line too long to keep (it is skipped
    in pieces, so a file with no newline at all never fills memory)."""
    first = True
    while True:
        line = stream.readline(MAX_LINE_BYTES + len(_BOM) + 3)  # room for a BOM and CR LF
        if not line:
            return
        if first:
            line = line.removeprefix(_BOM)
            first = False
        ended = line.endswith(b"\n")
        line = line.rstrip(b"\r\n")
        if len(line) > MAX_LINE_BYTES:
            while not ended:
                rest = stream.readline(_SKIP_CHUNK)
                ended = not rest or rest.endswith(b"\n")
            yield None
            continue
        yield line


def sources_from_lines(
    lines: Iterable[bytes | None], base_dir: Path, start: int = 0
) -> Iterator[Source]:
    """Number and classify lines; blank and `#` lines are not items."""
    index = start
    for raw in lines:
        if raw is None:
            text = "<line too long>"
            yield Source(
                index,
                text,
                SourceKind.INVALID,
                "",
                base_dir,
                ErrorInfo("invalid_source", f"line is longer than {MAX_LINE_BYTES} bytes"),
            )
            index += 1
            continue
        stripped = raw.strip()
        if not stripped or stripped.startswith(b"#"):
            continue
        try:
            text = stripped.decode("utf-8")
        except UnicodeDecodeError:
            yield Source(
                index,
                stripped.decode("utf-8", "backslashreplace"),
                SourceKind.INVALID,
                "",
                base_dir,
                ErrorInfo("invalid_source", "line is not valid UTF-8"),
            )
        else:
            yield parse_source(text, index, base_dir)
        index += 1


def check_lists(lists: Sequence[str]) -> None:
    """Fail before any work starts when a list cannot be read: a usage error, not an item."""
    if not lists:
        raise UsageError("no list given (name a file, or - for standard input)")
    if sum(1 for name in lists if name == STDIN) > 1:
        raise UsageError("standard input (-) can be named only once")
    for name in lists:
        if name == STDIN:
            continue
        try:
            mode = os.stat(name).st_mode
        except FileNotFoundError:
            raise UsageError(f"list not found: {name}") from None
        except OSError as exc:
            raise UsageError(f"cannot read list {name}: {exc.strerror}") from None
        if stat.S_ISDIR(mode):
            raise UsageError(f"list is a directory, not a file: {name}")
        if not os.access(name, os.R_OK):
            raise UsageError(f"cannot read list {name}: permission denied")


def read_lists(lists: Sequence[str], stdin: BinaryIO) -> Iterator[Source]:
    """All items of all lists, in order, numbered across lists; one line in memory at a time."""
    index = 0
    for name in lists:
        if name == STDIN:
            items = sources_from_lines(bounded_lines(stdin), Path.cwd(), index)
            for source in items:
                yield source
                index = source.index + 1
            continue
        base = Path(os.path.abspath(name)).parent
        with open(name, "rb") as stream:
            for source in sources_from_lines(bounded_lines(stream), base, index):
                yield source
                index = source.index + 1


def count_items(lists: Sequence[str]) -> int | None:
    """How many items the lists hold, for the progress total; None when a list is not a
    regular file (stdin, a pipe) and so cannot be read twice."""
    total = 0
    for name in lists:
        if name == STDIN or not stat.S_ISREG(os.stat(name).st_mode):
            return None
        with open(name, "rb") as stream:
            # Only the blank/comment test of `sources_from_lines`: no URL parsing, since this
            # runs beside the workers and competes with them for the interpreter.
            for line in bounded_lines(stream):
                if line is None:
                    total += 1
                    continue
                stripped = line.strip()
                total += bool(stripped) and not stripped.startswith(b"#")
    return total
