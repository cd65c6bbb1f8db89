"""Exceptions. `FetcherError` is for misuse (bad options, unreadable lists); `ItemError` marks
one item's failure inside a worker and never escapes it: it becomes a `Result.error`."""

from __future__ import annotations

from fetcher.results import ErrorInfo, ErrorType


class FetcherError(Exception):
    """Root of the errors raised to callers: the job as a whole cannot go on."""


class UsageError(FetcherError):
    """The caller asked for something impossible (bad option, missing list, busy output dir)."""


class OutputClosed(FetcherError):
    """The stream the bodies go to (--stdout) was closed by its reader: the run stops."""


class ItemError(Exception):
    """One item failed; `kind` is the manifest's `error.type`, `retryable` steers the retry loop."""

    def __init__(
        self,
        kind: ErrorType,
        message: str,
        *,
        retryable: bool = False,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable
        self.http_status = http_status
        self.retry_after = retry_after

    @property
    def info(self) -> ErrorInfo:
        return ErrorInfo(self.kind, str(self))


class Interrupted(Exception):
    """The run is stopping (Ctrl-C, SIGTERM, caller closed the iterator): abandon this item."""
