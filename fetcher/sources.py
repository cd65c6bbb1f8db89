"""Sources: one line of a list becomes a numbered, classified `Source`, read lazily with
bounded memory.

A line that cannot be fetched still becomes a `Source` (with `error` set) so that it keeps its
place in the input order and is reported like any other failed item.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from fetcher.results import ErrorInfo, ErrorType

MAX_LINE_BYTES = 64 * 1024
"""Longer lines are rejected: no real URL or path is that long, and it bounds memory."""

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_WHITE_SPACE = re.compile(r"\s")
_PLAIN_HTTP = re.compile(r"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9._~-]+(?::(\d{1,5}))?(?:[/?#]\S*)?$")
"""An http(s) URL with a plain host name or IPv4 address: nothing to check further."""
_MAX_PORT = 65535
_ORIGIN = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)")
"""`scheme://` and the authority (`user:password@host:port`) of a URL."""
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
    base_dir: str
    """Folder of the list the item came from (local paths and `mirror` naming use it); a
    string, which crosses to worker processes cheaper than a Path."""
    error: ErrorInfo | None = None
    name: str | None = None
    """Output path asked for by the list (a `path` column), relative to the output dir."""
    checksums: tuple[tuple[str, str], ...] = ()
    """Expected digests as (algorithm, lower-case hex), e.g. ('sha256', '9f86…')."""
    extra: tuple[tuple[str, Any], ...] = ()
    """Other columns of a CSV/TSV/JSONL list, carried into the manifest row."""

    @property
    def shown(self) -> str:
        """The source as it may be shown or recorded: as written, a URL password masked."""
        return mask_credentials(self.text)


def mask_credentials(text: str) -> str:
    """`scheme://user:secret@host/...` as `scheme://user:***@host/...`, as wget shows it;
    anything else unchanged."""
    if "@" not in text:
        return text
    match = _ORIGIN.match(text)
    if match is None:
        return text
    userinfo, at, host = match.group(2).rpartition("@")
    if not at or ":" not in userinfo:
        return text
    user = userinfo.split(":", 1)[0]
    return f"{match.group(1)}{user}:***@{host}{text[match.end() :]}"


class _Invalid(Exception):
    def __init__(self, kind: ErrorType, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def parse_source(text: str, index: int, base_dir: str | os.PathLike[str]) -> Source:
    """Classify one (already stripped) line; never raises."""
    base_dir = os.fspath(base_dir)
    try:
        kind, target = _classify(text, base_dir)
    except _Invalid as exc:
        error = ErrorInfo(exc.kind, str(exc))
        return Source(index, text, SourceKind.INVALID, "", base_dir, error)
    return Source(index, text, kind, target, base_dir)


def _classify(text: str, base_dir: str) -> tuple[SourceKind, str]:
    if not text:
        raise _Invalid(ErrorType.INVALID_SOURCE, "empty source")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_LINE_BYTES:
        raise _Invalid(ErrorType.INVALID_SOURCE, f"line is longer than {MAX_LINE_BYTES} bytes")
    if _CONTROL.search(text):
        raise _Invalid(ErrorType.INVALID_SOURCE, "line contains NUL or control characters")
    if _SURROGATE.search(text):
        raise _Invalid(ErrorType.INVALID_SOURCE, "source is not valid Unicode (lone surrogate)")
    scheme_match = _SCHEME.match(text)
    if scheme_match is None:
        return SourceKind.FILE, os.path.abspath(os.path.join(base_dir, text))
    scheme = scheme_match.group(1).lower()
    if scheme in ("http", "https"):
        return SourceKind.HTTP, _http_target(text)
    if scheme == "file":
        return SourceKind.FILE, _file_path(text)
    raise _Invalid(
        ErrorType.UNSUPPORTED_SCHEME, f"unsupported scheme {scheme!r} (use http, https, file)"
    )


def _http_target(text: str) -> str:
    """The URL to request: spaces in its path or query percent-encoded, as browsers and
    wget do (the manifest keeps the source as written); other white space, or any in the
    host, is an error."""
    url = text
    if " " in text:
        origin = _ORIGIN.match(text)
        end = origin.end() if origin else len(text)
        url = text[:end] + text[end:].replace(" ", "%20")
    plain = _PLAIN_HTTP.match(url)
    if plain is not None and int(plain.group(1) or 0) <= _MAX_PORT:
        return url  # the common case, without taking the URL apart
    if _WHITE_SPACE.search(url):
        raise _Invalid(ErrorType.INVALID_SOURCE, "URL contains white space")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise _Invalid(ErrorType.INVALID_SOURCE, f"malformed URL: {exc}") from None
    if not parts.hostname:
        raise _Invalid(ErrorType.INVALID_SOURCE, "URL has no host")
    return url


def _file_path(text: str) -> str:
    parts = urlsplit(text)
    if parts.netloc not in ("", "localhost"):
        raise _Invalid(ErrorType.INVALID_SOURCE, f"file URL names a remote host: {parts.netloc!r}")
    try:
        path = unquote(parts.path, errors="strict")
    except UnicodeDecodeError:
        raise _Invalid(
            ErrorType.INVALID_SOURCE, "file URL path is not valid UTF-8 once decoded"
        ) from None
    if not path.startswith("/"):
        raise _Invalid(ErrorType.INVALID_SOURCE, "file URL path is not absolute")
    return os.path.abspath(path)


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
    lines: Iterable[bytes | None], base_dir: str | os.PathLike[str], start: int = 0
) -> Iterator[Source]:
    """Number and classify lines; blank and `#` lines are not items."""
    base_dir = os.fspath(base_dir)
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
                ErrorInfo(ErrorType.INVALID_SOURCE, f"line is longer than {MAX_LINE_BYTES} bytes"),
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
                ErrorInfo(ErrorType.INVALID_SOURCE, "line is not valid UTF-8"),
            )
        else:
            yield parse_source(text, index, base_dir)
        index += 1


def source_to_json(source: Source) -> str:
    """A source as the state store keeps it for `fetcher retry`."""
    error = None if source.error is None else [source.error.type.value, source.error.message]
    return json.dumps(
        {
            "index": source.index,
            "text": source.text,
            "kind": source.kind.value,
            "target": source.target,
            "base_dir": source.base_dir,
            "error": error,
            "name": source.name,
            "checksums": source.checksums,
            "extra": source.extra,
        }
    )


def source_from_json(text: str) -> Source:
    data = json.loads(text)
    error = (
        None if data["error"] is None else ErrorInfo(ErrorType(data["error"][0]), data["error"][1])
    )
    return Source(
        data["index"], data["text"], SourceKind(data["kind"]), data["target"],
        data["base_dir"], error, name=data["name"],
        checksums=tuple((a, d) for a, d in data["checksums"]),
        extra=tuple((k, v) for k, v in data["extra"]),
    )  # fmt: skip
