"""Per-item results: what a run reports for every input item, failures included, as data.
`Status`, `ErrorType` and `Result` are the manifest's contract, in one place."""

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


class ErrorType(str, Enum):
    """Why an item failed: the closed list of the manifest's `error.type` values (stable;
    the README lists them as the contract)."""

    INVALID_SOURCE = "invalid_source"
    """The list line or row names nothing fetchable (malformed, too long, not UTF-8)."""
    UNSUPPORTED_SCHEME = "unsupported_scheme"
    """A URL scheme other than http, https or file."""
    INVALID_URL = "invalid_url"
    """requests refused the URL (e.g. a redirect to something that is not a URL)."""
    HTTP_STATUS = "http_status"
    """The server answered with a status that is not a success."""
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    TLS = "tls"
    TRUNCATED = "truncated"
    """The body ended before its declared length, or the connection broke mid-body."""
    TOO_MANY_REDIRECTS = "too_many_redirects"
    RANGE = "range"
    """A resumed transfer got a range answer that does not continue it."""
    DECODE = "decode"
    """A compressed body (`--compressed`) could not be decoded."""
    HTTP = "http"
    """Any other protocol error requests reported."""
    NOT_FOUND = "not_found"
    """A local source does not exist."""
    IS_DIRECTORY = "is_directory"
    NOT_REGULAR = "not_regular"
    """A local source is a FIFO, socket or device."""
    TOO_LARGE = "too_large"
    CHECKSUM_MISMATCH = "checksum_mismatch"
    DEADLINE = "deadline"
    DISK_FULL = "disk_full"
    PERMISSION = "permission"
    IO = "io"
    PATH_CONFLICT = "path_conflict"
    """The output cannot be placed (e.g. a symlink where a folder should go)."""
    STATE_STORE = "state_store"
    """The state store could not record the item, so nothing was placed."""
    RETRY_RULES_MISSING = "retry_rules_missing"
    """`fetcher retry` found no record of how the item was first fetched."""
    INTERNAL = "internal"
    """A bug in fetcher; please report it."""

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ErrorInfo:
    """Why an item failed: a stable machine-readable `type` and a message for people."""

    type: ErrorType
    message: str


MANIFEST_FIELDS = (
    "index", "source", "path", "status", "bytes", "sha256", "http_status", "attempts",
    "elapsed_s", "error",
)  # fmt: skip
"""The manifest's own columns, in order; a list's carried columns follow them."""


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
        `input_<name>` where they clash with a field already in the row)."""
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
            else {"type": self.error.type.value, "message": self.error.message},
        }
        for key, value in self.extra.items():
            name = key
            while name in row:  # a clash: `input_status`, or `input_input_status`...
                name = f"input_{name}"
            row[name] = value
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Result:
        """A manifest row back into a Result; ValueError says what is wrong with it.
        Carried columns keep the names they have in the row (`to_dict` of the result
        gives the same row back)."""
        missing = [name for name in MANIFEST_FIELDS if name not in row]
        if missing:
            raise ValueError(f"no {', '.join(repr(m) for m in missing)}")
        try:
            status = Status(row["status"])
        except ValueError:
            raise ValueError(f"unknown status {row['status']!r}") from None
        error = row["error"]
        if error is not None:
            error = _error_info(error)
        if (status is Status.FAILED) != (error is not None):
            raise ValueError("an error belongs to failed rows, and only to them")
        return cls(
            index=_integer(row, "index"),
            source=_text(row, "source"),
            path=_optional(row, "path", str),
            status=status,
            bytes=_integer(row, "bytes"),
            sha256=_optional(row, "sha256", str),
            http_status=_optional(row, "http_status", int),
            attempts=_integer(row, "attempts"),
            elapsed_s=_number(row, "elapsed_s"),
            error=error,
            extra={k: v for k, v in row.items() if k not in MANIFEST_FIELDS},
        )


def _error_info(value: Any) -> ErrorInfo:
    if not isinstance(value, Mapping) or not isinstance(value.get("message"), str):
        raise ValueError("error must be null or {type, message}")
    try:
        return ErrorInfo(ErrorType(value.get("type")), value["message"])
    except ValueError:
        raise ValueError(f"unknown error type {value.get('type')!r}") from None


def _integer(row: Mapping[str, Any], name: str) -> int:
    value = row[name]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a whole number, not {value!r}")
    return value


def _number(row: Mapping[str, Any], name: str) -> float:
    value = row[name]
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{name} must be a number, not {value!r}")
    return float(value)


def _text(row: Mapping[str, Any], name: str) -> str:
    value = row[name]
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text, not {value!r}")
    return value


def _optional(row: Mapping[str, Any], name: str, kind: type[Any]) -> Any:
    value = row[name]
    if value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{name} must be {kind.__name__} or null, not {value!r}")
    return value
