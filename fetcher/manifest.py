"""The manifest: one row per input item, in input order, flushed as each row's turn comes
so an interrupted run keeps every row it finished. JSON Lines, or CSV for a `.csv` path."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import IO

from fetcher.errors import UsageError
from fetcher.results import Result

CSV_FIELDS = (
    "index", "source", "path", "status", "bytes", "sha256", "http_status", "attempts",
    "elapsed_s", "error_type", "error_message", "extra",
)  # fmt: skip
_ROW_FIELDS = frozenset(CSV_FIELDS[:9])
"""Fields of `Result.to_dict()` that are columns of their own; the rest go into `extra`."""


class ManifestWriter:
    """Appends rows to a fresh manifest file (an existing one is replaced); see `flush`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._csv = path.suffix.lower() == ".csv"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Never through a symlink: the manifest may sit in a folder others can write to.
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
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
        row = result.to_dict()
        if self._csv:
            error = row.pop("error")
            carried = {k: row.pop(k) for k in list(row) if k not in _ROW_FIELDS}
            row["error_type"] = error["type"] if error else ""
            row["error_message"] = error["message"] if error else ""
            row["extra"] = json.dumps(carried) if carried else ""
            self._writer.writerow(["" if row[k] is None else row[k] for k in CSV_FIELDS])
        else:
            # ensure_ascii keeps any undecodable input representable as valid JSON text.
            self._file.write(json.dumps(row) + "\n")

    def flush(self) -> None:
        """Called once the rows ready so far are written, before waiting for more: rows
        reach the file as their turn comes, without a system call per row."""
        self._file.flush()

    def close(self) -> None:
        self._file.close()
