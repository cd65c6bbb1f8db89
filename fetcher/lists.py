"""The command line's sources: list files, stdin (`-`), and URLs given as they are.

An argument that starts with `http://`, `https://` or `file://` is a source itself;
anything else is a list file, or `-` for standard input (a list file whose path really
starts like a URL is named `./http:/...`). Lists are checked before any work starts, read lazily in
order, and counted for progress; each list's format follows its suffix (`fetcher.tables`);
stdin is plain lines unless told otherwise."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator, Sequence
from typing import BinaryIO

from fetcher.errors import UsageError
from fetcher.sources import Source, bounded_lines, parse_source, sources_from_lines
from fetcher.tables import ListFormat, check_header, list_format, table_sources

STDIN = "-"
_URL_ARGUMENT = re.compile(r"^(https?|file)://", re.IGNORECASE)


def is_url(argument: str) -> bool:
    """Whether a command-line argument is a source itself rather than a list."""
    return _URL_ARGUMENT.match(argument) is not None


def check_lists(lists: Sequence[str]) -> None:
    """Fail before any work starts when a list cannot be read: a usage error, not an item."""
    if not lists:
        raise UsageError("nothing to fetch: name a list file, - for standard input, or URLs")
    if sum(1 for name in lists if name == STDIN) > 1:
        raise UsageError("standard input (-) can be named only once")
    for name in lists:
        if name == STDIN or is_url(name):
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
        check_header(name, list_format(name))


def list_sources(stream: BinaryIO, fmt: ListFormat, base_dir: str, start: int) -> Iterator[Source]:
    if fmt is ListFormat.LINES:
        return sources_from_lines(bounded_lines(stream), base_dir, start)
    return table_sources(stream, fmt, base_dir, start)


def read_lists(
    lists: Sequence[str], stdin: BinaryIO, stdin_format: ListFormat = ListFormat.LINES
) -> Iterator[Source]:
    """All items of all lists, in order, numbered across lists; one line in memory at a time."""
    index = 0
    for name in lists:
        if is_url(name):
            yield parse_source(name, index, os.getcwd())
            index += 1
            continue
        if name == STDIN:
            for source in list_sources(stdin, stdin_format, os.getcwd(), index):
                yield source
                index = source.index + 1
            continue
        base = os.path.dirname(os.path.abspath(name))
        with open(name, "rb") as stream:
            for source in list_sources(stream, list_format(name), base, index):
                yield source
                index = source.index + 1


def count_items(lists: Sequence[str]) -> int | None:
    """How many items the lists hold, for the progress total; None when a list is not a
    regular file (stdin, a pipe) and so cannot be read twice. CSV/TSV rows are counted as
    lines, so a quoted field spanning lines makes the total an estimate."""
    total = 0
    for name in lists:
        if is_url(name):
            total += 1
            continue
        if name == STDIN or not stat.S_ISREG(os.stat(name).st_mode):
            return None
        header = list_format(name) in (ListFormat.CSV, ListFormat.TSV)
        with open(name, "rb") as stream:
            # Only the blank/comment test: no URL parsing, since this runs beside the
            # workers and competes with them for the interpreter.
            for line in bounded_lines(stream):
                if line is None:
                    total += 1
                    continue
                stripped = line.strip()
                total += bool(stripped) and not stripped.startswith(b"#")
        total -= header
    return total
