"""Fetch one item: the single place where exceptions become per-item errors.

Runs on a pool thread and never raises. Its `Outcome` carries a complete temp file (or an
error) back to the ordered committer, which alone decides final names.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import requests

from fetcher.errors import Interrupted, ItemError
from fetcher.localfiles import copy_local
from fetcher.naming import disposition_name, plan
from fetcher.options import FetchOptions
from fetcher.progress import Stats
from fetcher.results import ErrorInfo
from fetcher.sources import Source, SourceKind
from fetcher.state import Completed, StateStore
from fetcher.transport import Transport, body_blocks
from fetcher.writing import LiveTemps, TempOutput, os_item_error, temp_name


class Kind(Enum):
    FETCHED = "fetched"
    SKIPPED = "skipped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass
class Outcome:
    """What a worker hands back; `temp` is set only for FETCHED."""

    source: Source
    kind: Kind
    attempts: int = 0
    elapsed_s: float = 0.0
    dirs: tuple[str, ...] = ()
    name: str = ""
    temp: TempOutput | None = None
    http_status: int | None = None
    error: ErrorInfo | None = None
    completed: Completed | None = None


class Worker:
    """Callable handed to the pool; shared by all threads, holds no per-item state."""

    def __init__(
        self,
        *,
        options: FetchOptions,
        transport: Transport,
        root: Path,
        store: StateStore | None,
        live: LiveTemps,
        stats: Stats,
        stop: threading.Event,
    ) -> None:
        self._options = options
        self._transport = transport
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
        if self._store is not None and not self._options.overwrite:
            completed = self._store.completed(source.target)
            if completed is not None:
                return Outcome(source, Kind.SKIPPED, completed=completed)
        policy = self._options.retry
        attempts = 0
        while True:
            attempts += 1
            try:
                outcome = self._attempt(source)
            except Interrupted:
                return Outcome(source, Kind.INTERRUPTED, attempts)
            except Exception as exc:
                error = classify(exc)
            else:
                outcome.attempts = attempts
                return outcome
            if not error.retryable or attempts > policy.retries:
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
            if self._stop.wait(policy.wait_s(attempts, error.retry_after)):
                return Outcome(source, Kind.INTERRUPTED, attempts)

    def _attempt(self, source: Source) -> Outcome:
        dirs, name = plan(source, self._options.layout)
        token = hashlib.sha256(source.target.encode("utf-8", "surrogatepass")).hexdigest()[:12]

        def make_output(declared: int | None) -> TempOutput:
            # Temps live at the top of the output dir: same file system, so the committer's
            # rename into a sub-folder stays atomic, and workers never create folders (the
            # committer does, in input order, so the same list always gives the same names).
            limit = self._options.max_size
            if limit is not None and declared is not None and declared > limit:
                raise ItemError("too_large", f"size {declared} exceeds --max-size ({limit} bytes)")
            path = self._root / temp_name(source.index, token)
            return TempOutput(path, self._live, limit, self._stats.add_bytes)

        if source.kind is SourceKind.FILE:
            out = copy_local(source.target, make_output, self._stop.is_set)
            return Outcome(source, Kind.FETCHED, dirs=dirs, name=name, temp=out)
        with self._transport.open(source.target) as response:
            length = response.headers.get("Content-Length")
            out = make_output(int(length) if length and length.isdigit() else None)
            try:
                for chunk in body_blocks(response):
                    if self._stop.is_set():
                        raise Interrupted
                    out.write(chunk)
                out.close()
            except BaseException:
                out.discard()
                raise
            final_name = disposition_name(
                name,
                response.headers.get("Content-Disposition"),
                source.index,
                self._options.layout,
            )
            return Outcome(
                source,
                Kind.FETCHED,
                dirs=dirs,
                name=final_name,
                temp=out,
                http_status=response.status_code,
            )


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
