"""One run: the pool, the workers, the committer and the state store wired together.

`Job.run` is a generator of results in input order; whoever iterates it is the committer's
thread. Leaving it early (Ctrl-C, an exception, closing the generator) stops the feed and
removes every temp file still being written.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType

from fetcher.commit import Committer, FailureLog
from fetcher.download import Downloader
from fetcher.errors import UsageError
from fetcher.options import FetchOptions
from fetcher.politeness import HostGate
from fetcher.pool import LOOKAHEAD_PER_WORKER, auto_chunksize, ordered_batches
from fetcher.progress import Stats
from fetcher.results import Result
from fetcher.sources import Source, source_from_json
from fetcher.state import StateStore
from fetcher.transport import Transport
from fetcher.worker import Kind, Worker
from fetcher.writing import STATE_DIR, LiveTemps, remove_stale_temps


class Job:
    """Context manager owning the resources of one run."""

    def __init__(
        self,
        options: FetchOptions,
        stats: Stats | None = None,
        *,
        manifest: Path | None = None,
        retrying: bool = False,
        check_interrupt: Callable[[], None] | None = None,
    ) -> None:
        self.options = options
        self._check_interrupt = check_interrupt
        self._manifest = manifest
        self._retrying = retrying
        self.stats = stats or Stats()
        self.stop = threading.Event()
        self.chunksize = options.chunksize or 1
        self._live = LiveTemps()
        self._store: StateStore | None = None
        self._spool: Path | None = None
        self._transport = Transport(options)

    def __enter__(self) -> Job:
        if self.options.stream_to is not None:
            self._spool = Path(tempfile.mkdtemp(prefix="fetcher-spool-"))
            self.root = self._spool
        else:
            self.root = Path(self.options.output_dir).absolute()
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(f"cannot create output dir {self.root}: {exc.strerror}") from None
            if not self.root.is_dir():
                raise UsageError(f"output dir is not a directory: {self.root}")
            self._store = StateStore(self.root, self.root / STATE_DIR)
            remove_stale_temps(self.root, keep=self._store.left_partials)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop.set()
        self._live.remove_all()
        if self.options.processes > 1 and self._store is not None:
            # Children stopped mid-item leave temps the parent never saw.
            remove_stale_temps(self.root, keep=self._store.partial_temps())
        self._transport.close()
        if self._store is not None:
            self._store.close()
        if self._spool is not None:
            shutil.rmtree(self._spool, ignore_errors=True)

    def failed_source(self, index: int) -> Source | None:
        """The full source of an item that failed in the run that wrote `manifest`."""
        if self._store is None or self._manifest is None:
            return None
        text = self._store.failure(str(self._manifest.absolute()), index)
        return None if text is None else source_from_json(text)

    def run(
        self, sources: Iterable[Source], after_batch: Callable[[], None] | None = None
    ) -> Iterator[Result]:
        """Results in input order; stops early (a consistent prefix) once `stop` is set.
        `after_batch` runs once the results ready so far have been consumed, before waiting
        for more: the moment to flush what was written about them."""
        feed = iter(sources)
        if self.options.chunksize is None:
            # Bounded look-ahead: enough to tell a short list from a long one.
            head = list(itertools.islice(feed, self.options.workers * LOOKAHEAD_PER_WORKER))
            self.chunksize = auto_chunksize(self.options.workers, len(head))
            feed = itertools.chain(head, feed)
        failures = None
        if self._store is not None and self._manifest is not None:
            failures = FailureLog(self._store, str(self._manifest.absolute()), self._retrying)
            if not self._retrying:
                self._store.clear_failures(failures.manifest)
        committer = Committer(self.root, self._store, self.options.stream_to, failures)
        if self.options.processes > 1:
            from fetcher.processes import process_batches

            batches = process_batches(
                feed,
                options=self.options,
                root=self.root,
                run=None if self._store is None else self._store.run,
                chunksize=self.chunksize,
                stop=self.stop,
                live=self._live,
                stats=self.stats,
                while_waiting=self._check_interrupt,
            )
        else:
            gate = HostGate(
                self.options.per_host, self.options.rate, self.stop, self.options.retry.max_wait_s
            )
            worker = Worker(
                options=self.options,
                downloader=Downloader(self._transport, gate, self._store, self.stop),
                root=self.root,
                store=self._store,
                live=self._live,
                stats=self.stats,
                stop=self.stop,
            )
            batches = ordered_batches(
                worker,
                feed,
                workers=self.options.workers,
                chunksize=self.chunksize,
                stop=self.stop,
                while_waiting=self._check_interrupt,
            )
        try:
            for batch in batches:
                if self._check_interrupt is not None:
                    self._check_interrupt()
                cut = next((i for i, o in enumerate(batch) if o.kind is Kind.INTERRUPTED), None)
                yield from committer.commit(batch[:cut])
                if cut is not None:
                    break
                if after_batch is not None:
                    after_batch()
        finally:
            batches.close()
