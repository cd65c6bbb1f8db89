"""HTTP validator and range logic for the fixture server's /file and /mutable routes.

Pure decisions (no sockets) plus thread-safe per-key bookkeeping, kept apart from
tests/server.py so the I/O side stays readable. Follows RFC 9110: If-None-Match beats
If-Modified-Since, conditionals beat Range, a failed If-Range turns a range request into 200,
and only GET honours Range.
"""

from __future__ import annotations

import base64
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime, parsedate_to_datetime
from typing import Literal

LogEntry = dict[str, str | int | None]
HeaderPairs = list[tuple[str, str]]

_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", re.IGNORECASE)


def quote_etag(value: str) -> str:
    """`abc` -> `"abc"`, `W/abc` -> `W/"abc"`; already quoted values pass through unchanged."""
    if value.startswith(('"', 'W/"')):
        return value
    if value.startswith("W/"):
        return f'W/"{value[2:]}"'
    return f'"{value}"'


def parse_http_date(value: str | None) -> datetime | None:
    """Aware UTC datetime, or None for a missing/invalid date (which RFC 9110 says to ignore)."""
    if value is None:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def shift_http_date(value: str, days: int) -> str:
    """The HTTP-date `days` later; ValueError if `value` is not a date (a 400 for the route)."""
    parsed = parse_http_date(value)
    if parsed is None:
        raise ValueError(f"not an HTTP date: {value!r}")
    return format_datetime((parsed + timedelta(days=days)).astimezone(timezone.utc), usegmt=True)


def parse_range(header: str, size: int) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    """Half-open (start, stop) for one byte range; None means ignore the header (send 200).

    Multi-range, other units and malformed values are ignored, as RFC 9110 permits.
    """
    match = _RANGE.fullmatch(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first:  # suffix range: the last N bytes
        if not last or size == 0:
            return None
        length = int(last)
        return (max(0, size - length), size) if length else "unsatisfiable"
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        return "unsatisfiable"
    return start, (min(int(last) + 1, size) if last else size)


def basic_credentials(header: str | None) -> bytes | None:
    """Decoded `user:password` bytes of a Basic Authorization header, None if absent/garbled."""
    scheme, _, token = (header or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(token.strip(), validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        return None


@dataclass(frozen=True)
class Representation:
    """One version of a resource: its bytes and validators (None = header not sent)."""

    body: bytes
    etag: str | None
    last_modified: str | None


@dataclass(frozen=True)
class Conditions:
    """The request headers these routes act on, verbatim; also what file_log records."""

    range: str | None
    if_range: str | None
    if_none_match: str | None
    if_modified_since: str | None


@dataclass(frozen=True)
class Reply:
    """What to send: `length` is the declared Content-Length, `body` the GET payload, which
    starts at absolute offset `start` of the representation (so a cut can be placed)."""

    status: int
    headers: HeaderPairs
    length: int | None
    start: int = 0
    body: bytes = b""


def _none_match(etag: str | None, header: str) -> bool:
    """Weak comparison against an If-None-Match list; `*` matches any existing resource."""
    tags = [tag.strip() for tag in header.split(",")]
    if "*" in tags:
        return True
    return etag is not None and etag.removeprefix("W/") in {t.removeprefix("W/") for t in tags}


def _not_modified(rep: Representation, cond: Conditions) -> bool:
    if cond.if_none_match is not None:  # when present, If-Modified-Since is ignored
        return _none_match(rep.etag, cond.if_none_match)
    since, modified = parse_http_date(cond.if_modified_since), parse_http_date(rep.last_modified)
    return since is not None and modified is not None and since >= modified


def _if_range_holds(rep: Representation, if_range: str | None) -> bool:
    """Strong ETag or exact Last-Modified match; a weak ETag never satisfies If-Range."""
    if if_range is None:
        return True
    value = if_range.strip()
    strong = rep.etag is not None and not rep.etag.startswith("W/") and value == rep.etag
    return strong or (rep.last_modified is not None and value == rep.last_modified)


def evaluate(rep: Representation, cond: Conditions, *, method: str, ranges: bool) -> Reply:
    """Choose 304 / 416 / 206 / 200 for a GET or HEAD of `rep`."""
    headers: HeaderPairs = []
    if rep.etag is not None:
        headers.append(("ETag", rep.etag))
    if rep.last_modified is not None:
        headers.append(("Last-Modified", rep.last_modified))
    if _not_modified(rep, cond):
        return Reply(304, headers, None)
    size = len(rep.body)
    if ranges:
        headers.append(("Accept-Ranges", "bytes"))
    wanted = cond.range if ranges and method == "GET" else None  # only GET honours Range
    span = None
    if wanted is not None and _if_range_holds(rep, cond.if_range):
        span = parse_range(wanted, size)
    if span == "unsatisfiable":
        return Reply(416, [*headers, ("Content-Range", f"bytes */{size}")], 0)
    if span is None:
        return Reply(200, headers, size, 0, rep.body)
    start, stop = span
    content_range = ("Content-Range", f"bytes {start}-{stop - 1}/{size}")
    return Reply(206, [*headers, content_range], stop - start, start, rep.body[start:stop])


class ResourceBook:
    """Per-key state of /file, /mutable and /count; every method is thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._turns: dict[str, int] = {}
        self._cuts: dict[str, int] = {}
        self._logs: dict[str, list[LogEntry]] = {}
        self._hits: dict[str, int] = {}
        self._mutable: dict[str, Representation] = {}

    def next_turn(self, name: str) -> int:
        """How many responses /file/<name> gave before this one (0 for the first)."""
        with self._lock:
            turn = self._turns.get(name, 0)
            self._turns[name] = turn + 1
            return turn

    def claim_cut(self, name: str, limit: int) -> bool:
        """True for the first `limit` calls per name: that response gets broken."""
        with self._lock:
            done = self._cuts.get(name, 0)
            if done >= limit:
                return False
            self._cuts[name] = done + 1
            return True

    def record(self, name: str, cond: Conditions, status: int, bytes_sent: int) -> None:
        entry: LogEntry = {
            "range": cond.range,
            "if_range": cond.if_range,
            "if_none_match": cond.if_none_match,
            "if_modified_since": cond.if_modified_since,
            "status": status,
            "bytes_sent": bytes_sent,
        }
        with self._lock:
            self._logs.setdefault(name, []).append(entry)

    def log(self, name: str) -> list[LogEntry]:
        with self._lock:
            return [dict(entry) for entry in self._logs.get(name, [])]

    def hit(self, key: str) -> None:
        with self._lock:
            self._hits[key] = self._hits.get(key, 0) + 1

    def hits(self, key: str) -> int:
        with self._lock:
            return self._hits.get(key, 0)

    def set_mutable(self, name: str, rep: Representation) -> None:
        with self._lock:
            self._mutable[name] = rep

    def mutable(self, name: str) -> Representation | None:
        with self._lock:
            return self._mutable.get(name)

    def reset(self) -> None:
        """Re-arm cuts and etag_after, forget logs and hits; keep test-set /mutable content."""
        with self._lock:
            self._turns.clear()
            self._cuts.clear()
            self._logs.clear()
            self._hits.clear()
