"""The manifest, both ways: one row per input item, in input order. JSON Lines, or CSV for a
`.csv` path; the schema is `Result.to_dict` / `Result.from_row`, and the CSV columns are
derived from it.

Writing: rows are appended and flushed as each batch's turn comes, so an interrupted run
keeps every row it finished. Reading: every row is checked, so a file that is not a
manifest is refused before anything is done with it. Rewriting (`ManifestRewrite`): the
new rows go to a temp file beside the manifest, renamed over it only once complete.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fetcher.errors import UsageError
from fetcher.results import MANIFEST_FIELDS, Result, Status

CSV_FIELDS = (*MANIFEST_FIELDS[:-1], "error_type", "error_message", "extra")
"""The manifest's fields as CSV columns: `error` split in two, carried columns as one JSON
`extra` column."""
_CSV_NUMBERS = {"index": int, "bytes": int, "http_status": int, "attempts": int,
                "elapsed_s": float}  # fmt: skip


def is_csv(path: Path) -> bool:
    return path.suffix.lower() == ".csv"


def csv_cells(result: Result) -> list[Any]:
    row = result.to_dict()
    error = row.pop("error")
    carried = {k: row.pop(k) for k in list(row) if k not in MANIFEST_FIELDS}
    row["error_type"] = error["type"] if error else ""
    row["error_message"] = error["message"] if error else ""
    row["extra"] = json.dumps(carried) if carried else ""
    return ["" if row[k] is None else row[k] for k in CSV_FIELDS]


def csv_row(cells: dict[str, str]) -> dict[str, Any]:
    """A CSV manifest row back into the manifest's JSON shape (ValueError if it is not one)."""
    row: dict[str, Any] = {}
    for name in CSV_FIELDS:
        if cells.get(name) is None:
            raise ValueError(f"no {name!r} column")
    for name in MANIFEST_FIELDS[:-1]:
        text = cells[name]
        convert = _CSV_NUMBERS.get(name)
        row[name] = (None if text == "" else convert(text)) if convert else text
    row["path"] = row["path"] or None
    row["sha256"] = row["sha256"] or None
    for name in ("bytes", "attempts", "elapsed_s"):
        row[name] = row[name] or 0
    row["error"] = (
        {"type": cells["error_type"], "message": cells["error_message"]}
        if cells["error_type"]
        else None
    )
    if cells["extra"]:
        carried = json.loads(cells["extra"])
        if not isinstance(carried, dict):
            raise ValueError("extra must be a JSON object")
        row.update(carried)
    return row


class ManifestWriter:
    """Appends rows to a manifest file; the format follows `final`'s suffix (the path the
    rows are meant for, which a rewrite writes beside)."""

    def __init__(self, path: Path, *, final: Path | None = None, exclusive: bool = False) -> None:
        self.path = path
        self._csv = is_csv(final or path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Never through a symlink: the manifest may sit in a folder others can write to.
            flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            flags |= os.O_EXCL if exclusive else os.O_TRUNC
            fd = os.open(path, flags, 0o644)
        except OSError as exc:
            raise UsageError(f"cannot write the manifest {path}: {exc.strerror}") from None
        newline = "" if self._csv else None
        self._file: IO[str] = open(fd, "w", encoding="utf-8", newline=newline)  # noqa: SIM115 - closed by close()
        if self._csv:
            self._writer = csv.writer(self._file)
            self._writer.writerow(CSV_FIELDS)
            self._file.flush()

    def write(self, result: Result) -> None:
        if self._csv:
            self._writer.writerow(csv_cells(result))
        else:
            # ensure_ascii keeps any undecodable input representable as valid JSON text.
            self._file.write(json.dumps(result.to_dict()) + "\n")

    def write_all(self, results: Iterable[Result]) -> None:
        for result in results:
            self.write(result)

    def flush(self) -> None:
        """Called once the rows ready so far are written, before waiting for more: rows
        reach the file as their turn comes, without a system call per row."""
        self._file.flush()

    def sync(self) -> None:
        """Flush to the disk itself: the file is about to replace another."""
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True)
class ManifestSummary:
    rows: int
    failed: int


def read_manifest(path: Path) -> Iterator[Result]:
    """Rows of a JSONL or CSV manifest, one at a time, each checked; a file that is not a
    manifest (or stops being one) raises UsageError naming the line."""
    try:
        handle = path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise UsageError(f"cannot read the manifest {path}: {exc.strerror}") from None
    with handle:
        previous = -1
        for line, row in _rows(path, handle):
            try:
                result = Result.from_row(row)
            except ValueError as exc:
                raise _not_a_manifest(path, line, str(exc)) from None
            if result.index <= previous:
                raise _not_a_manifest(path, line, "rows are not in input order")
            previous = result.index
            yield result


def check_manifest(path: Path) -> ManifestSummary:
    """Read the whole manifest once, before anything is done with it."""
    rows = failed = 0
    for result in read_manifest(path):
        rows += 1
        failed += result.status is Status.FAILED
    return ManifestSummary(rows, failed)


def _rows(path: Path, handle: IO[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        if is_csv(path):
            reader = csv.DictReader(handle)
            if tuple(reader.fieldnames or ()) != CSV_FIELDS:
                raise _not_a_manifest(path, 1, "the header is not a fetcher manifest's")
            for cells in reader:
                try:
                    yield reader.line_num, csv_row(cells)
                except ValueError as exc:
                    raise _not_a_manifest(path, reader.line_num, str(exc)) from None
            return
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except ValueError:
                raise _not_a_manifest(path, number, "not JSON") from None
            if not isinstance(row, dict):
                raise _not_a_manifest(path, number, "not a JSON object")
            yield number, row
    except (UnicodeDecodeError, csv.Error) as exc:
        raise _not_a_manifest(path, None, str(exc)) from None


def _not_a_manifest(path: Path, line: int | None, why: str) -> UsageError:
    where = f", line {line}" if line is not None else ""
    return UsageError(f"{path} is not a fetcher manifest{where}: {why}")


class ManifestRewrite:
    """A manifest written anew beside the old one (or where it is to be) and renamed over
    it only when complete: whatever happens before `commit`, the old file stays exactly as
    it was."""

    def __init__(self, manifest: Path) -> None:
        self.manifest = manifest
        temp = manifest.with_name(f".{manifest.name}.fetcher-rewrite-{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()  # left by a process of the same pid that was killed
        self._writer = ManifestWriter(temp, final=manifest, exclusive=True)

    def write_all(self, results: Iterable[Result]) -> None:
        self._writer.write_all(results)

    def flush(self) -> None:
        self._writer.flush()

    def commit(self) -> None:
        """Put the new manifest in place of the old one (if any), atomically, keeping its
        mode."""
        try:
            self._writer.sync()
            self._writer.close()
            with contextlib.suppress(FileNotFoundError):
                os.chmod(self._writer.path, self.manifest.stat().st_mode & 0o7777)
            os.replace(self._writer.path, self.manifest)
        except OSError:
            self.abandon()
            raise

    def abandon(self) -> None:
        """Leave the old manifest as it was."""
        with contextlib.suppress(OSError):
            self._writer.close()
        with contextlib.suppress(FileNotFoundError):
            self._writer.path.unlink()
