"""Per-item results: what a run reports for every input item, failures included, as data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Status(str, Enum):
    """Outcome of one item; the string values are the manifest's `status` field."""

    OK = "ok"
    SKIPPED = "skipped"
    UNCHANGED = "unchanged"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ErrorInfo:
    """Why an item failed: a stable machine-readable `type` and a message for people."""

    type: str
    message: str


@dataclass(frozen=True)
class Result:
    """One input item's outcome; the fields are exactly the manifest's columns, plus the
    columns a CSV/TSV/JSONL list carried for this item."""

    index: int
    source: str
    path: str | None
    status: Status
    bytes: int = 0
    sha256: str | None = None
    http_status: int | None = None
    attempts: int = 0
    elapsed_s: float = 0.0
    error: ErrorInfo | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True unless the item failed (skipped and unchanged count as success)."""
        return self.status is not Status.FAILED

    def to_dict(self) -> dict[str, Any]:
        """The manifest row: JSON-ready, contract fields first, then carried columns (renamed
        `input_<name>` where they clash with a contract field)."""
        row: dict[str, Any] = {
            "index": self.index,
            "source": self.source,
            "path": self.path,
            "status": self.status.value,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "http_status": self.http_status,
            "attempts": self.attempts,
            "elapsed_s": round(self.elapsed_s, 6),
            "error": None
            if self.error is None
            else {"type": self.error.type, "message": self.error.message},
        }
        for key, value in self.extra.items():
            row[f"input_{key}" if key in row else key] = value
        return row
