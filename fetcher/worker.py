"""Fetch one item: the single place where exceptions become per-item errors.

Runs on a pool thread and never raises. Its `Outcome` carries a complete temp file (or an
error) back to the ordered committer, which alone decides final names.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import requests

from fetcher.download import Downloader, Transfer
from fetcher.errors import Interrupted, ItemError
from fetcher.localfiles import copy_local, local_validator
from fetcher.naming import disposition_name, plan
from fetcher.options import FetchOptions
from fetcher.progress import Stats
from fetcher.results import ErrorInfo
from fetcher.sources import Source, SourceKind
from fetcher.state import Completed, StateStore, Validators
from fetcher.writing import CompleteTemp, LiveTemps, TempOutput, os_item_error, temp_name


class Kind(Enum):
    FETCHED = "fetched"
    SKIPPED = "skipped"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass
class Outcome:
    """What a worker hands back; `temp` is set only for FETCHED, `completed` for SKIPPED
    and UNCHANGED."""

    source: Source
    kind: Kind
    attempts: int = 0
    elapsed_s: float = 0.0
    dirs: tuple[str, ...] = ()
    name: str = ""
    temp: CompleteTemp | None = None
    http_status: int | None = None
    error: ErrorInfo | None = None
    completed: Completed | None = None
    validators: Validators = field(default_factory=Validators)


class Worker:
    """Callable handed to the pool; shared by all threads, holds no per-item state."""

    def __init__(
        self,
        *,
        options: FetchOptions,
        downloader: Downloader,
        root: Path,
        store: StateStore | None,
        live: LiveTemps,
        stats: Stats,
        stop: threading.Event,
    ) -> None:
        self._options = options
        self._downloader = downloader
        self._root = root
        self._store = store
        self._live = live
        self._stats = stats
        self._stop = stop

    def __call__(self, source: Source) -> Outcome:
        started = time.monotonic()
        outcome = self._fetch(source)
        outcome.elapsed_s = time.monotonic() - started
        self._stats.item_done(failed=outcome.kind is Kind.FAILED)
        return outcome

    def _fetch(self, source: Source) -> Outcome:
        if self._stop.is_set():
            return Outcome(source, Kind.INTERRUPTED)
        if source.error is not None:
            return Outcome(source, Kind.FAILED, error=source.error)
        completed = None
        if self._store is not None and not self._options.overwrite:
            completed = self._store.completed(source.target)
            if completed is not None and not self._options.update:
                return Outcome(source, Kind.SKIPPED, completed=completed)
        path = self._temp_path(source)
        transfer = self._transfer(source, path)
        if self._options.deadline_s is not None:
            transfer.deadline = time.monotonic() + self._options.deadline_s
        policy = self._options.retry
        attempts = 0
        while True:
            attempts += 1
            try:
                transfer.check_deadline()
                outcome = self._attempt(source, path, transfer, completed)
            except Interrupted:
                self._abandon(transfer)
                return Outcome(source, Kind.INTERRUPTED, attempts)
            except Exception as exc:
                error = classify(exc)
            else:
                outcome.attempts = attempts
                return outcome
            if not error.retryable or attempts > policy.retries:
                self._give_up(transfer)
                message = str(error)
                if attempts > 1:
                    message = f"{message} (after {attempts} attempts)"
                return Outcome(
                    source,
                    Kind.FAILED,
                    attempts,
                    http_status=error.http_status,
                    error=ErrorInfo(error.kind, message),
                )
            wait = policy.wait_s(attempts, error.retry_after)
            left = transfer.time_left()
            if left is not None and wait >= left:
                self._give_up(transfer)
                return Outcome(
                    source, Kind.FAILED, attempts, http_status=error.http_status,
                    error=ErrorInfo("deadline", f"exceeded --deadline; last error: {error}"),
                )  # fmt: skip
            if self._stop.wait(wait):
                self._abandon(transfer)
                return Outcome(source, Kind.INTERRUPTED, attempts)

    def _transfer(self, source: Source, path: Path) -> Transfer:
        """A fresh transfer, or the partial file an interrupted run left for this item."""
        transfer = Transfer(source.target)
        if self._store is None or source.kind is not SourceKind.HTTP:
            return transfer
        validator = self._store.partial(path.name, source.target)
        if validator is not None:
            transfer.temp = self._new_output(source, path, None, resume=True)
            transfer.temp.resumable = True
            transfer.validator = validator
        return transfer

    def _temp_path(self, source: Source) -> Path:
        # Temps live at the top of the output dir: same file system, so the committer's
        # rename into a sub-folder stays atomic, and workers never create folders (the
        # committer does, in input order, so the same list always gives the same names).
        token = hashlib.sha256(source.target.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        return self._root / temp_name(source.index, token)

    def _new_output(
        self, source: Source, path: Path, declared: int | None, *, resume: bool = False
    ) -> TempOutput:
        limit = self._options.max_size
        if limit is not None and declared is not None and declared > limit:
            raise ItemError("too_large", f"size {declared} exceeds --max-size ({limit} bytes)")
        return TempOutput(
            path,
            self._live,
            max_size=limit,
            on_bytes=self._stats.add_bytes,
            md5=any(algorithm == "md5" for algorithm, _ in source.checksums),
            resume=resume,
        )

    def _attempt(
        self, source: Source, path: Path, transfer: Transfer, completed: Completed | None
    ) -> Outcome:
        dirs, name = plan(source, self._options.layout)
        if source.kind is SourceKind.FILE:
            return self._copy(source, dirs, name, path, completed)
        conditional = completed.validators if completed is not None else None
        fetched = self._downloader.attempt(
            source.target,
            transfer,
            lambda declared: self._new_output(source, path, declared),
            conditional,
        )
        if fetched.unchanged and completed is not None:
            return Outcome(
                source, Kind.UNCHANGED, http_status=304, completed=completed,
                validators=fetched.validators,
            )  # fmt: skip
        temp = transfer.temp
        assert temp is not None
        temp.verify(source.checksums)
        temp.close()
        if source.name is None:
            name = disposition_name(name, fetched.disposition, source.index, self._options.layout)
        return Outcome(
            source, Kind.FETCHED, dirs=dirs, name=name, temp=temp,
            http_status=fetched.http_status, validators=fetched.validators,
        )  # fmt: skip

    def _copy(
        self,
        source: Source,
        dirs: tuple[str, ...],
        name: str,
        path: Path,
        completed: Completed | None,
    ) -> Outcome:
        """Local sources: with --update, compared by size and mtime, copied only if changed."""
        validators = Validators(etag=local_validator(source.target))
        if completed is not None and completed.validators == validators:
            return Outcome(source, Kind.UNCHANGED, completed=completed, validators=validators)
        out = copy_local(
            source.target,
            lambda declared: self._new_output(source, path, declared),
            self._stop.is_set,
        )
        try:
            out.verify(source.checksums)
        except ItemError:
            out.discard()
            raise
        return Outcome(source, Kind.FETCHED, dirs=dirs, name=name, temp=out, validators=validators)

    def _abandon(self, transfer: Transfer) -> None:
        """The run is stopping: keep a resumable partial for the next run, drop the rest."""
        temp = transfer.temp
        if temp is None:
            return
        if temp.resumable:
            temp.close()
        else:
            temp.discard()

    def _give_up(self, transfer: Transfer) -> None:
        temp = transfer.temp
        if temp is None:
            return
        temp.discard()
        if temp.resumable and self._store is not None:
            self._store.drop_partial(temp.path.name)


def classify(exc: Exception) -> ItemError:
    """Map any exception raised while fetching to a stable error type and retryability."""
    if isinstance(exc, ItemError):
        return exc
    if isinstance(exc, requests.exceptions.Timeout):
        return ItemError("timeout", f"timed out: {_reason(exc)}", retryable=True)
    if isinstance(exc, requests.exceptions.SSLError):
        return ItemError("tls", f"TLS error: {_reason(exc)}")
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return ItemError("truncated", f"body cut short: {_reason(exc)}", retryable=True)
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return ItemError("decode", f"cannot decode body: {_reason(exc)}")
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        return ItemError("too_many_redirects", str(exc))
    if isinstance(exc, requests.exceptions.InvalidSchema | requests.exceptions.InvalidURL):
        return ItemError("invalid_url", str(exc))
    if isinstance(exc, requests.exceptions.ConnectionError):
        return ItemError("connection", f"connection failed: {_reason(exc)}", retryable=True)
    if isinstance(exc, requests.exceptions.RequestException):
        return ItemError("http", str(exc))
    if isinstance(exc, OSError):
        return os_item_error(exc, "I/O error")
    return ItemError("internal", f"{type(exc).__name__}: {exc}")


def _reason(exc: BaseException) -> str:
    """The innermost useful message: urllib3 wraps its errors several layers deep."""
    inner: BaseException = exc
    while inner.args and isinstance(inner.args[0], BaseException):
        inner = inner.args[0]
    reason = getattr(inner, "reason", None)
    text = str(reason if isinstance(reason, BaseException) else inner)
    # urllib3 prefixes the connection's repr: "HTTPConnection(host=..., port=...): ..."
    return re.sub(r"^\w+\(host=[^)]*\): ", "", text)
