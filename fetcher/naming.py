"""Output names: layouts, sanitising, collision suffixes.

Every name produced here is a single safe path component: no separators, no `.` or `..`,
no leading dot (so it can never be `.fetcher` or a temp file), no control characters,
nothing Windows rejects, and at most `MAX_NAME_BYTES` bytes of UTF-8.
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
from email.message import Message
from pathlib import Path
from urllib.parse import unquote, urlsplit

from fetcher.options import Layout
from fetcher.sources import Source, SourceKind

MAX_NAME_BYTES = 200
"""Under the 255-byte limit of common file systems, with room for a collision suffix."""
INDEX_WIDTH = 6
"""Zero padding of `indexed` names; lists past 999,999 items widen the number."""
FALLBACK_NAME = "index.html"

_UNSAFE = re.compile(r'[\x00-\x1f\x7f-\x9f<>:"/\\|?*]')
_DEVICE = re.compile(r"^(CON|PRN|AUX|NUL|CONIN\$|CONOUT\$|COM[0-9¹²³]|LPT[0-9¹²³])$", re.I)
_EXTENDED_PARAM = re.compile(r"(?:^|;)\s*filename\*\s*=\s*([^;\s]+)", re.I)
_EXTENSION = re.compile(r"^(.+?)(\.[A-Za-z0-9]{1,8})$")


def sanitize_name(raw: str, fallback: str = FALLBACK_NAME) -> str:
    """Turn any text into one safe file name component."""
    name = unicodedata.normalize("NFC", raw)
    name = name.encode("utf-8", "replace").decode("utf-8")  # lone surrogates become '?'
    name = _UNSAFE.sub("_", name).strip(" ").rstrip(". ")
    if name.startswith("."):
        name = "_" + name[1:]
    # Shortened before the device check: cutting can expose a device name ('AUX' + 300
    # spaces + 'x' becomes 'AUX'). Cutting again after the prefix keeps the prefix.
    name = _limit_bytes(name, MAX_NAME_BYTES).rstrip(". ") or fallback
    if _DEVICE.match(name.split(".", 1)[0].rstrip(" ")):  # Windows ignores those spaces
        name = _limit_bytes("_" + name, MAX_NAME_BYTES)
    return name


def _limit_bytes(name: str, limit: int) -> str:
    if len(name.encode("utf-8")) <= limit:
        return name
    match = _EXTENSION.match(name)
    stem, ext = (match.group(1), match.group(2)) if match else (name, "")
    budget = limit - len(ext.encode("utf-8"))
    stem = stem.encode("utf-8")[:budget].decode("utf-8", "ignore").rstrip(". ")
    return (stem or "_") + ext


def with_counter(name: str, n: int) -> str:
    """The n-th alternative for a taken name: 'a.txt' → 'a.1.txt' (n=0 is the name itself)."""
    if n == 0:
        return name
    match = _EXTENSION.match(name)
    stem, ext = (match.group(1), match.group(2)) if match else (name, "")
    return _limit_bytes(f"{stem}.{n}", MAX_NAME_BYTES + 55 - len(ext.encode())) + ext


def _url_segments(url: str) -> list[str]:
    """Decoded path segments after RFC 3986 dot-segment removal, as a server would see them."""
    stack: list[str] = []
    for segment in urlsplit(url).path.split("/")[1:]:
        if segment == "..":
            if stack:
                stack.pop()
        elif segment != ".":
            stack.append(segment)
    return [unquote(s, errors="replace") for s in stack]


def name_from_url(url: str) -> str:
    """Last path segment of the URL; '…/' and bare hosts give index.html, as wget does."""
    segments = _url_segments(url)
    return sanitize_name(segments[-1] if segments else "")


def name_from_disposition(value: str) -> str | None:
    """The file name a Content-Disposition header asks for, reduced to a safe base name."""
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        value = value.encode("latin-1").decode("utf-8")  # servers often send raw UTF-8
    message = Message()
    try:
        message["content-disposition"] = value
        # RFC 6266: the extended `filename*` wins over `filename`; email's get_filename()
        # returns whichever comes first, so the extended form is read separately.
        filename = _extended_filename(value) or message.get_filename()
    except (ValueError, LookupError, TypeError, IndexError):
        return None
    if not filename:
        return None
    base = re.split(r"[/\\]", filename)[-1]
    return sanitize_name(base) if base.strip(" .") else None


def _extended_filename(value: str) -> str | None:
    """The RFC 5987 `filename*=charset'lang'percent-encoded` parameter, decoded."""
    match = _EXTENDED_PARAM.search(value)
    if match is None:
        return None
    charset, _, rest = match.group(1).strip('"').partition("'")
    encoded = rest.partition("'")[2]
    try:
        return unquote(encoded, encoding=charset or "utf-8", errors="strict")
    except (LookupError, UnicodeDecodeError):
        return None


def _host_dir(url: str) -> str:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return sanitize_name(f"{host}_{parts.port}" if parts.port else host, fallback="_host")


def plan(source: Source, layout: Layout) -> tuple[tuple[str, ...], str]:
    """Directory components (relative to the output dir) and preferred file name, before any
    response is seen; the committer may later swap the name for a Content-Disposition one.
    A name given by the list (`path` column) wins over the layout."""
    if source.name is not None:
        parts = [
            sanitize_name(p, "_") for p in re.split(r"[/\\]", source.name) if p not in ("", ".")
        ]
        if parts:
            return tuple(parts[:-1]), parts[-1]
    if source.kind is SourceKind.HTTP:
        segments = _url_segments(source.target)
        name = sanitize_name(segments[-1] if segments else "")
    else:
        name = sanitize_name(Path(source.target).name, "_")
    if layout is Layout.MIRROR:
        return _mirror_dirs(source), name
    if layout is Layout.INDEXED:
        return (), indexed_name(source.index, name)
    return (), name


def _mirror_dirs(source: Source) -> tuple[str, ...]:
    """`host[_port]/path/to` of a URL; a local path's folders below its list's folder."""
    if source.kind is SourceKind.HTTP:
        segments = _url_segments(source.target)[:-1]
        return (_host_dir(source.target), *(sanitize_name(s, "_") for s in segments))
    path = Path(source.target)
    try:
        rel = path.parent.relative_to(Path(source.base_dir))
    except ValueError:
        rel = path.parent.relative_to(path.anchor)
    return tuple(sanitize_name(s, "_") for s in rel.parts)


def indexed_name(index: int, name: str) -> str:
    return _limit_bytes(f"{index:0{INDEX_WIDTH}d}-{name}", MAX_NAME_BYTES)


def disposition_name(planned: str, disposition: str | None, index: int, layout: Layout) -> str:
    """The final preferred name once the response headers are known."""
    if layout is Layout.MIRROR or not disposition:
        return planned
    name = name_from_disposition(disposition)
    if name is None:
        return planned
    return indexed_name(index, name) if layout is Layout.INDEXED else name
