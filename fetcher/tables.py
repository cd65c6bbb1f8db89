"""Lists with columns: CSV, TSV and JSON Lines, with a `url` column (or key) and optional
`path` (output name), `sha256` and `md5`; every other column is carried into the manifest."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, BinaryIO

from fetcher.errors import UsageError
from fetcher.options import parse_choice
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


def parse_input_format(text: str) -> ListFormat:
    """'lines', 'csv', 'tsv' or 'jsonl', as given to --input-format."""
    return parse_choice(ListFormat, "--input-format", text)


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


@dataclass(frozen=True)
class _Row:
    """One item of a table: its fields, or what is wrong with it; and how it was written,
    which a failed item's manifest row shows as its `source`."""

    text: str
    fields: dict[str, Any] | None = None
    error: str | None = None


def table_sources(
    stream: BinaryIO, fmt: ListFormat, base_dir: str | os.PathLike[str], start: int
) -> Iterator[Source]:
    """Numbered sources from a CSV/TSV/JSONL stream, one row in memory at a time."""
    base_dir = os.fspath(base_dir)
    rows = _json_rows(stream) if fmt is ListFormat.JSONL else _csv_rows(stream, fmt)
    for index, row in enumerate(rows, start):
        yield _row_source(row, index, base_dir)


def _dialect(fmt: ListFormat) -> type[csv.Dialect]:
    return csv.excel_tab if fmt is ListFormat.TSV else csv.excel


def _csv_rows(stream: BinaryIO, fmt: ListFormat) -> Iterator[_Row]:
    def text_lines() -> Iterator[str]:
        for line in bounded_lines(stream):
            yield (_TOO_LONG if line is None else line.decode("utf-8", "surrogateescape")) + "\n"

    dialect = _dialect(fmt)
    reader = csv.reader(text_lines(), dialect)
    try:
        header = [h.strip().lower() for h in next(reader, [])]
    except csv.Error:  # a header that is not CSV has no `url`: every row says so
        header = []
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield _Row(f"<line {reader.line_num}>", error=f"malformed row: {exc}")
            continue
        if not any(c.strip() for c in cells):
            continue
        if _TOO_LONG in cells:
            too_long = f"line is longer than {MAX_LINE_BYTES} bytes"
            yield _Row(f"<line {reader.line_num}>", error=too_long)
            continue
        written = io.StringIO()
        csv.writer(written, dialect, lineterminator="").writerow(cells)
        fields = {name: cells[i] if i < len(cells) else "" for i, name in enumerate(header)}
        yield _Row(_printable(written.getvalue()), fields)


def _json_rows(stream: BinaryIO) -> Iterator[_Row]:
    for line in bounded_lines(stream):
        if line is None:
            yield _Row("<line too long>", error=f"line is longer than {MAX_LINE_BYTES} bytes")
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith(b"#"):
            continue
        text = stripped.decode("utf-8", "backslashreplace")
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError as exc:
            yield _Row(text, error=f"not valid JSON: {exc.msg} (column {exc.colno})")
            continue
        except (ValueError, RecursionError) as exc:
            yield _Row(text, error=f"not valid JSON: {type(exc).__name__}")
            continue
        if not isinstance(value, dict):
            yield _Row(text, error="a JSON line must be an object")
            continue
        yield _Row(text, value)


class _BadRow(Exception):
    """What is wrong with a row: its item fails with this message."""


def _row_source(row: _Row, index: int, base_dir: str) -> Source:
    try:
        if row.fields is None:
            raise _BadRow(row.error or "not a row")
        text = _url_of(row.fields)
        checksums = _checksums_of(row.fields)
        name = row.fields.get(PATH_COLUMN)
        if name is not None and not isinstance(name, str):
            raise _BadRow(f"'{PATH_COLUMN}' must be text")
    except _BadRow as exc:
        error = ErrorInfo(ErrorType.INVALID_SOURCE, str(exc))
        return Source(index, row.text, SourceKind.INVALID, "", base_dir, error)
    source = parse_source(text, index, base_dir)
    extra = tuple(
        (key, _clean(value))
        for key, value in row.fields.items()
        if key not in (URL_COLUMN, PATH_COLUMN, *CHECKSUM_COLUMNS)
    )
    return Source(
        source.index, source.text, source.kind, source.target, base_dir, source.error,
        name=name.strip() or None if name else None, checksums=checksums, extra=extra,
    )  # fmt: skip


def _url_of(fields: dict[str, Any]) -> str:
    url = fields.get(URL_COLUMN)
    if url is None:
        raise _BadRow(f"no '{URL_COLUMN}' value")
    if not isinstance(url, str):
        raise _BadRow(f"the '{URL_COLUMN}' value is not text: {json.dumps(url)}")
    if not url.strip():
        raise _BadRow(f"the '{URL_COLUMN}' value is empty")
    if _has_surrogates(url):
        raise _BadRow("row is not valid UTF-8 text")
    return url.strip()


def _checksums_of(fields: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    checksums = []
    for algorithm, length in CHECKSUM_COLUMNS.items():
        value = fields.get(algorithm)
        if value in (None, ""):
            continue
        if (
            not isinstance(value, str)
            or not _HEX.fullmatch(value.strip() or "-")
            or len(value.strip()) != length
        ):
            raise _BadRow(f"{algorithm} is not {length} hex digits: {value!r}")
        checksums.append((algorithm, value.strip().lower()))
    return tuple(checksums)


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
