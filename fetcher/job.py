"""One run: the output dir, the state store, the executor, the committer and the manifest
wired together.

`Job.run` gives the results in input order, a batch at a time; whoever iterates it is the
committer's thread. Leaving it early (Ctrl-C, an exception, closing the iterator) stops the
feed and removes every temp file still being written; the manifest then ends with the last
batch given out, a prefix of the input.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType

from fetcher.commit import Committer, FailureLog, stopped_at
from fetcher.context import RunContext
from fetcher.cookies import SharedJar, load_cookies, save_cookies
from fetcher.errors import UsageError
from fetcher.executors import choose_executor
from fetcher.manifest import ManifestWriter
from fetcher.options import FetchOptions
from fetcher.pool import LOOKAHEAD_PER_WORKER, auto_chunksize
from fetcher.results import Result
from fetcher.sources import Source, SourceKind
from fetcher.state import StateStore
from fetcher.stats import Stats
from fetcher.temps import STATE_DIR, remove_stale_temps, temp_name
from fetcher.work import WorkItem

log = logging.getLogger(__name__)


def manifest_key(manifest: Path) -> str:
    """How the state store knows a manifest: its absolute path."""
    return str(manifest.absolute())


class Batches(Iterator[list[Result]]):
    """The results of one run, in input order, a batch of every one ready at a time."""

    def __init__(self, batches: Iterator[list[Result]], chunksize: int) -> None:
        self._batches = batches
        self.chunksize = chunksize
        """The chunksize the pool was given (the one `auto` chose, if it was asked to)."""

    def __next__(self) -> list[Result]:
        return next(self._batches)

    def close(self) -> None:
        close = getattr(self._batches, "close", None)
        if close is not None:
            close()


class Job:
    """Context manager owning the resources of one run."""

    def __init__(
        self,
        options: FetchOptions,
        *,
        stats: Stats | None = None,
        check_interrupt: Callable[[], None] | None = None,
        retry_of: Path | None = None,
    ) -> None:
        """`retry_of`: the manifest whose failed items this run fetches again (it neither
        writes a manifest of its own nor records new rules)."""
        self.options = options
        self.stats = stats or Stats()
        self._check_interrupt = check_interrupt
        self._retry_of = retry_of
        self._spool = None
        if options.stream_to is not None:
            token = secrets.token_hex(8)
            self._spool = Path(tempfile.gettempdir()).absolute() / f"fetcher-spool-{token}"
        self.root = self._spool or Path(options.output_dir).absolute()
        """Where the outputs (or, for a --stdout run, the spooled bodies) go."""
        self.store: StateStore | None = None
        self._writer: ManifestWriter | None = None
        self._context: RunContext | None = None
        self._executor = choose_executor(options)

    def __enter__(self) -> Job:
        try:
            self._open()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _open(self) -> None:
        self._executor.prepare()
        if self._spool is not None:
            self._spool.mkdir(mode=0o700)
        else:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(f"cannot create output dir {self.root}: {exc.strerror}") from None
            if not self.root.is_dir():
                raise UsageError(f"output dir is not a directory: {self.root}")
            self.store = StateStore(self.root, self.root / STATE_DIR)
            remove_stale_temps(self.root, keep=self.store.left_partials)
        manifest = self.options.manifest
        if manifest is not None:
            self._writer = ManifestWriter(manifest)
            if self.store is not None and self._retry_of is None:
                self.store.start_manifest(manifest_key(manifest), self.options.rules())
        if self.options.verify is False:
            log.warning("warning: TLS certificates are not verified (--insecure)")
        cookies = (
            SharedJar() if self.options.cookies is None else load_cookies(self.options.cookies)
        )
        self._context = RunContext(
            self.options, self.root, self.store, stats=self.stats, cookies=cookies
        )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._context is not None:
            self._context.stop.set()
            self._context.live.remove_all()
            if self.options.cookies is not None:
                save_cookies(self._context.cookies, self.options.cookies)
        if self._writer is not None:
            self._writer.close()
        if self.store is not None:
            self.store.close()
        if self._spool is not None:
            shutil.rmtree(self._spool, ignore_errors=True)
        self._executor.close()

    def run(self, sources: Iterable[Source]) -> Batches:
        """Results in input order; stops early (a consistent prefix) once the run is
        stopped. The chunksize is settled before the first result: `auto` looks at a
        bounded number of items ahead to tell a short list from a long one."""
        options = self.options
        feed = iter(sources)
        chunksize = options.chunksize
        if chunksize is None:
            head = list(itertools.islice(feed, options.workers * LOOKAHEAD_PER_WORKER))
            chunksize = auto_chunksize(options.workers, len(head))
            feed = itertools.chain(head, feed)
        return Batches(self._results(feed, chunksize), chunksize)

    def _results(self, feed: Iterator[Source], chunksize: int) -> Iterator[list[Result]]:
        context = self._context
        if context is None:
            raise RuntimeError("Job.run outside its `with` block")
        failures = None
        manifest = self._retry_of or self.options.manifest
        if self.store is not None and manifest is not None:
            failures = FailureLog(self.store, manifest_key(manifest))
        committer = Committer(self.root, self.store, self.options.stream_to, failures)
        outcomes = self._executor.batches(
            self._work(feed), context, chunksize, self._check_interrupt
        )
        try:
            for batch in outcomes:
                if self._check_interrupt is not None:
                    self._check_interrupt()
                cut = stopped_at(batch)
                results = committer.commit(batch[:cut])
                if self._writer is not None:
                    self._writer.write_all(results)
                    self._writer.flush()
                if results:
                    yield results
                if cut is not None:
                    break
        finally:
            outcomes.close()

    def _work(self, feed: Iterator[Source]) -> Iterator[WorkItem]:
        """Each source with what the store knows of it (read here, in the process that
        holds the store, on the pool's feeder thread)."""
        store = self.store
        if store is None:
            yield from (WorkItem(source) for source in feed)
            return
        lookup = not self.options.overwrite
        for source in feed:
            if source.error is not None:
                yield WorkItem(source)
                continue
            completed = store.completed(source.target) if lookup else None
            resume_from = None
            if store.left_partials and source.kind is SourceKind.HTTP:
                resume_from = store.partial(temp_name(source.index, source.target), source.target)
            yield WorkItem(source, completed, resume_from)

    def failed_source(self, manifest: Path, index: int) -> str | None:
        """The full source (JSON) of an item that failed in the run that wrote `manifest`."""
        if self.store is None:
            return None
        return self.store.failure(manifest_key(manifest), index)
