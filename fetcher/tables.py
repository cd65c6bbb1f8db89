"""Lists with columns: CSV, TSV and JSON Lines, with a `url` column (or key) and optional
`path` (output name), `sha256` and `md5`; every other column is carried into the manifest."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any, BinaryIO

from fetcher.errors import UsageError
from fetcher.results import ErrorInfo, ErrorType
from fetcher.sources import MAX_LINE_BYTES, Source, SourceKind, bounded_lines, parse_source

URL_COLUMN = "url"
PATH_COLUMN = "path"
CHECKSUM_COLUMNS = {"sha256": 64, "md5": 32}
"""Digest columns and the hex length each must have."""
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_TOO_LONG = "\x00too-long\x00"


class ListFormat(str, Enum):
    LINES = "lines"
    CSV = "csv"
    TSV = "tsv"
    JSONL = "jsonl"


_SUFFIXES = {".csv": ListFormat.CSV, ".tsv": ListFormat.TSV, ".tab": ListFormat.TSV,
             ".jsonl": ListFormat.JSONL, ".ndjson": ListFormat.JSONL}  # fmt: skip


def list_format(name: str) -> ListFormat:
    """Chosen by the file's suffix; anything else is one source per line."""
    return _SUFFIXES.get(Path(name).suffix.lower(), ListFormat.LINES)


def check_header(path: str, fmt: ListFormat) -> None:
    """A CSV/TSV list without a `url` column is a usage error, found before any work."""
    if fmt not in (ListFormat.CSV, ListFormat.TSV):
        return
    with open(path, "rb") as stream:
        first = next(bounded_lines(stream), b"") or b""
    reader = csv.reader([first.decode("utf-8", "replace")], _dialect(fmt))
    header = [h.strip().lower() for h in next(reader, [])]
    if URL_COLUMN not in header:
        raise UsageError(f"{path}: no '{URL_COLUMN}' column in the header line {header!r}")


def table_sources(
    stream: BinaryIO, fmt: ListFormat, base_dir: Path, start: int
) -> Iterator[Source]:
    """Numbered sources from a CSV/TSV/JSONL stream, one row in memory at a time."""
    rows = _json_rows(stream) if fmt is ListFormat.JSONL else _csv_rows(stream, fmt)
    index = start
    for row in rows:
        if row is None:
            continue
        yield _row_source(row, index, base_dir)
        index += 1


def _dialect(fmt: ListFormat) -> type[csv.Dialect]:
    return csv.excel_tab if fmt is ListFormat.TSV else csv.excel


def _csv_rows(stream: BinaryIO, fmt: ListFormat) -> Iterator[dict[str, Any] | None]:
    def text_lines() -> Iterator[str]:
        for line in bounded_lines(stream):
            yield (_TOO_LONG if line is None else line.decode("utf-8", "surrogateescape")) + "\n"

    reader = csv.reader(text_lines(), _dialect(fmt))
    header = [h.strip().lower() for h in next(reader, [])]
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield {"\x00error": f"malformed row: {exc}"}
            continue
        if not any(c.strip() for c in cells):
            yield None
            continue
        if _TOO_LONG in cells:
            yield {"\x00error": f"line is longer than {MAX_LINE_BYTES} bytes"}
            continue
        yield {name: cells[i] if i < len(cells) else "" for i, name in enumerate(header)}


def _json_rows(stream: BinaryIO) -> Iterator[dict[str, Any] | None]:
    for line in bounded_lines(stream):
        if line is None:
            yield {"\x00error": f"line is longer than {MAX_LINE_BYTES} bytes"}
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith(b"#"):
            yield None
            continue
        try:
            value = json.loads(stripped)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            yield {"\x00error": f"not valid JSON: {type(exc).__name__}"}
            continue
        yield value if isinstance(value, dict) else {"\x00error": "a JSON line must be an object"}


def _row_source(row: dict[str, Any], index: int, base_dir: Path) -> Source:
    def invalid(message: str, text: str = "") -> Source:
        return Source(
            index,
            text,
            SourceKind.INVALID,
            "",
            base_dir,
            ErrorInfo(ErrorType.INVALID_SOURCE, message),
        )

    if "\x00error" in row:
        return invalid(row["\x00error"])
    url = row.get(URL_COLUMN)
    if not isinstance(url, str) or not url.strip():
        return invalid(f"no '{URL_COLUMN}' value in this row")
    text = url.strip()
    if _has_surrogates(text):
        return invalid("row is not valid UTF-8 text", _printable(text))
    source = parse_source(text, index, base_dir)
    checksums = []
    for algorithm, length in CHECKSUM_COLUMNS.items():
        value = row.get(algorithm)
        if value in (None, ""):
            continue
        if (
            not isinstance(value, str)
            or len(value.strip()) != length
            or not _HEX.match(value.strip())
        ):
            return invalid(f"{algorithm} is not {length} hex digits: {value!r}", text)
        checksums.append((algorithm, value.strip().lower()))
    name = row.get(PATH_COLUMN)
    if name is not None and not isinstance(name, str):
        return invalid(f"'{PATH_COLUMN}' must be text", text)
    extra = tuple(
        (key, _clean(value))
        for key, value in row.items()
        if key not in (URL_COLUMN, PATH_COLUMN, *CHECKSUM_COLUMNS)
    )
    return Source(
        source.index, source.text, source.kind, source.target, base_dir, source.error,
        name=name.strip() or None if name else None, checksums=tuple(checksums), extra=extra,
    )  # fmt: skip


def _has_surrogates(text: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in text)


def _printable(text: str) -> str:
    """Undecodable bytes (kept as surrogate escapes) shown as \\xNN, other lone surrogates
    as \\udNNN: always valid UTF-8, still telling what was there."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _clean(value: Any) -> Any:
    """Carried values must be writable as UTF-8: undecodable bytes and lone surrogates (JSON
    allows `\\ud800`) become visible escapes; nested values are cleaned too."""
    if isinstance(value, str) and _has_surrogates(value):
        return _printable(value)
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value
