"""Fetch one item: the single place where exceptions become per-item outcomes.

Runs on a pool thread and never raises. Its outcome carries a complete temp file (or an
error) back to the ordered committer, which alone decides final names.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from fetcher.bandwidth import Bandwidth
from fetcher.context import RunContext
from fetcher.download import Downloader, Transfer
from fetcher.errors import Interrupted, ItemError
from fetcher.localfiles import copy_local, local_validator
from fetcher.naming import disposition_name, plan
from fetcher.politeness import HostGate
from fetcher.results import ErrorInfo, ErrorType
from fetcher.sources import Source, SourceKind
from fetcher.state import Completed, Validators
from fetcher.temps import TempOutput, temp_name
from fetcher.transport import Transport, classify
from fetcher.work import AlreadyDone, Failed, Fetched, Outcome, Stopped, WorkItem

log = logging.getLogger(__name__)


class Worker:
    """Callable handed to the pool; shared by all threads, holds no per-item state."""

    def __init__(
        self, context: RunContext, downloader: Downloader, bandwidth: Bandwidth | None = None
    ) -> None:
        self._context = context
        self._options = context.options
        self._downloader = downloader
        self._bandwidth = bandwidth

    def __call__(self, item: WorkItem) -> Outcome:
        started = time.monotonic()
        outcome = self._fetch(item)
        outcome.elapsed_s = time.monotonic() - started
        if not isinstance(outcome, Stopped):
            self._context.stats.item_done(failed=isinstance(outcome, Failed))
        return outcome

    def close(self) -> None:
        self._downloader.close()

    def _fetch(self, item: WorkItem) -> Outcome:
        source = item.source
        if self._context.stop.is_set():
            return Stopped(source)
        if source.error is not None:
            return Failed(source, source.error)
        completed = item.completed
        if completed is not None and not self._options.update:
            return AlreadyDone(
                source, completed, unchanged=False, http_status=completed.http_status
            )
        path = self._context.root / temp_name(source.index, source.target)
        transfer = self._transfer(item, path)
        if self._options.deadline_s is not None:
            transfer.deadline = time.monotonic() + self._options.deadline_s
        attempts = 0
        while True:
            attempts += 1
            try:
                transfer.check_deadline()
                outcome = self._attempt(source, path, transfer, completed)
            except Interrupted:
                self._abandon(transfer)
                return Stopped(source, attempts)
            except Exception as exc:
                ended = self._after_failure(source, transfer, classify(exc), attempts)
                if ended is not None:
                    return ended
            else:
                outcome.attempts = attempts
                return outcome

    def _after_failure(
        self, source: Source, transfer: Transfer, error: ItemError, attempts: int
    ) -> Outcome | None:
        """Wait for the next attempt (None), or end the item: failed, or stopped while
        waiting."""
        policy = self._options.retry
        status = error.http_status or transfer.http_status
        if not error.retryable or attempts > policy.retries:
            self._give_up(transfer)
            message = str(error)
            if attempts > 1:
                message = f"{message} (after {attempts} attempts)"
            log.debug("#%d %s: failed: %s", source.index, source.shown, message)
            return Failed(source, ErrorInfo(error.kind, message), status, attempts)
        wait = policy.wait_s(attempts, error.retry_after)
        left = transfer.time_left()
        if left is not None and wait >= left:
            self._give_up(transfer)
            message = f"exceeded --deadline; last error: {error}"
            return Failed(source, ErrorInfo(ErrorType.DEADLINE, message), status, attempts)
        log.info(
            "#%d %s: %s; attempt %d of %d in %.1f s",
            source.index, source.shown, error, attempts + 1, policy.retries + 1, wait,
        )  # fmt: skip
        if self._context.stop.wait(wait):
            self._abandon(transfer)
            return Stopped(source, attempts)
        return None

    def _transfer(self, item: WorkItem, path: Path) -> Transfer:
        """A fresh transfer, or the partial file an interrupted run left for this item."""
        source = item.source
        transfer = Transfer(source.target, f"#{source.index} {source.shown}")
        if item.resume_from is not None and source.kind is SourceKind.HTTP:
            transfer.temp = self._new_output(source, path, None, resume=True)
            transfer.temp.resumable = True
            transfer.validator = item.resume_from
            log.info(
                "#%d %s: continuing the %d bytes an earlier run left",
                source.index, source.shown, transfer.temp.size,
            )  # fmt: skip
        return transfer

    def _new_output(
        self, source: Source, path: Path, declared: int | None, *, resume: bool = False
    ) -> TempOutput:
        limit = self._options.max_size
        if limit is not None and declared is not None and declared > limit:
            raise ItemError(
                ErrorType.TOO_LARGE, f"size {declared} exceeds --max-size ({limit} bytes)"
            )
        stats = self._context.stats
        if declared is not None:
            stats.expect_bytes(declared)
        return TempOutput(
            path,
            self._context.live,
            max_size=limit,
            on_bytes=stats.add_bytes,
            md5=any(algorithm == "md5" for algorithm, _ in source.checksums),
            resume=resume,
        )

    def _attempt(
        self,
        source: Source,
        path: Path,
        transfer: Transfer,
        completed: Completed | None,
    ) -> Outcome:
        """One attempt; its outcome's `attempts` is set by the caller."""
        dirs, name = plan(source, self._options.layout)
        if source.kind is SourceKind.FILE:
            return self._copy(source, dirs, name, path, completed)
        conditional = completed.validators if completed is not None else None
        received = self._downloader.attempt(
            source.target,
            transfer,
            lambda declared: self._new_output(source, path, declared),
            conditional,
        )
        if received.unchanged and completed is not None:
            log.info("#%d %s: unchanged on the server (304)", source.index, source.shown)
            return AlreadyDone(source, completed, unchanged=True, http_status=304)
        temp = transfer.temp
        assert temp is not None
        temp.verify(source.checksums)
        temp.close()
        if source.name is None:
            name = disposition_name(name, received.disposition, source.index, self._options.layout)
        return Fetched(source, temp, dirs, name, received.http_status, received.validators, 0)

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
            return AlreadyDone(source, completed, unchanged=True, http_status=None)
        out = copy_local(
            source.target,
            lambda declared: self._new_output(source, path, declared),
            self._context.stop.is_set,
            None if self._bandwidth is None else self._bandwidth.spend,
        )
        try:
            out.verify(source.checksums)
        except ItemError:
            out.discard()
            raise
        return Fetched(source, out, dirs, name, None, validators, 0)

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
        if temp.resumable:
            self._downloader.forget_partial(temp.path.name)


def build_worker(context: RunContext) -> Worker:
    """The one way a run's worker is put together, wherever it runs."""
    options = context.options
    gate = HostGate(options.per_host, options.rate, context.stop, options.retry.max_wait_s)
    transport = Transport(options, context.cookies)
    bandwidth = None
    if options.limit_rate is not None:
        bandwidth = Bandwidth(options.limit_rate, context.stop)
    downloader = Downloader(
        transport,
        gate,
        context.store,
        context.stop,
        bandwidth=bandwidth,
        decode=options.compressed,
    )
    return Worker(context, downloader, bandwidth)
