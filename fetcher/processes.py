"""The process executor (`--processes N`): N processes, each with its own thread pool, fetch
chunks of the input, for when the interpreter lock is the wall (small files on a fast
network). The parent keeps what must stay single: reading the lists, the input order, the
committer and the state store's writes. Children only write temp files, at the top of the
output dir; the parent takes them over (`FinishedTemp`) and names them in input order."""

from __future__ import annotations

import collections
import contextlib
import logging
import logging.handlers
import math
import multiprocessing
import multiprocessing.queues
import signal
import sys
import threading
import types
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import replace
from multiprocessing.pool import ThreadPool
from queue import Empty
from typing import cast

from fetcher import headers
from fetcher.context import RunContext, RunSpec
from fetcher.executors import OnThisMachine
from fetcher.options import FetchOptions
from fetcher.pool import (
    TERMINATE_GRACE_S,
    WAIT_POLL_S,
    WINDOW_PER_WORKER,
    pooled_batches,
    terminate,
)
from fetcher.sources import Source
from fetcher.temps import FinishedTemp, TempOutput
from fetcher.work import Failed, Fetched, Outcome, Stopped, WorkItem
from fetcher.worker import Worker, build_worker

CHUNKS_PER_TASK = 4
"""A task gives each of a child's threads up to this many chunks. A child runs one task at a
time: while a task's last items finish, its other threads wait, so the tail costs about
1/(2 * 4) of a task's time, and each task costs the parent a hand-over whatever its size
(64 connections at 100 ms: one chunk per thread per task ran at 0.82 of the network's
bound, four at 0.91; on loopback the parent spent a fifth less per item). But a task's
results come back together: on a short list (chunks of one item) one slow item would hold
back the rows of the fast ones beside it, so a task has no more chunks per thread than a
chunk has items."""
TASKS_PER_CHILD = 3
"""Tasks handed out per child at most: one running, one waiting in its queue so it never
waits for the parent, one done and waiting for its turn in the order."""


def portable(outcomes: list[Outcome]) -> list[Outcome]:
    """Outcomes as they travel back from another process: open temp files become plain
    records, and the sources stay behind (the sending process has them; they are the
    largest part of an outcome, and `Handover` puts them back)."""
    for outcome in outcomes:
        if isinstance(outcome, Fetched) and isinstance(outcome.temp, TempOutput):
            outcome.temp = outcome.temp.finished()
        outcome.source = _LEFT_BEHIND
    return outcomes


_LEFT_BEHIND = cast(Source, None)


class Handover:
    """Items going to other processes (or machines) and their outcomes coming back in the
    same order: each outcome gets its item's source back, its temp file becomes this
    process's, and the run's counters count it here."""

    def __init__(self, context: RunContext) -> None:
        self._context = context
        self._sources: collections.deque[Source] = collections.deque()

    def send(self, items: Iterable[WorkItem]) -> Iterator[WorkItem]:
        for item in items:
            self._sources.append(item.source)
            yield item

    def receive(self, outcomes: list[Outcome]) -> list[Outcome]:
        stats = self._context.stats
        for outcome in outcomes:
            outcome.source = self._sources.popleft()
            if isinstance(outcome, Fetched) and isinstance(outcome.temp, FinishedTemp):
                stats.add_bytes(outcome.temp.size)
                outcome.temp.adopt(self._context.live)
            if not isinstance(outcome, Stopped):
                stats.item_done(failed=isinstance(outcome, Failed))
        return outcomes


class _Child:
    """This worker process's worker and thread pool (set once by `_start_child`)."""

    worker: Worker
    pool: ThreadPool


class _LogRelay:
    """The children's log records, handed to this process's loggers, so that -v shows
    their decisions too (only set up when someone listens at INFO or below)."""

    def __init__(self, queue: multiprocessing.queues.Queue[logging.LogRecord]) -> None:
        self.queue = queue
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fetcher-log-relay", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            try:
                record = self.queue.get(timeout=WAIT_POLL_S)
            except Empty:
                continue
            except (EOFError, OSError):  # a child died while writing to the queue
                return
            logging.getLogger(record.name).handle(record)

    def close(self) -> None:
        self._done.set()
        self._thread.join(TERMINATE_GRACE_S)
        self.queue.close()
        self.queue.cancel_join_thread()


def _start_child(
    spec: RunSpec,
    threads: int,
    log_queue: multiprocessing.queues.Queue[logging.LogRecord] | None,
    log_level: int,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    if log_queue is not None:
        logger = logging.getLogger("fetcher")
        logger.handlers[:] = [logging.handlers.QueueHandler(log_queue)]
        logger.setLevel(log_level)
        logger.propagate = False
    # A spawned child's default start method is 'spawn', under which even a ThreadPool
    # takes named semaphores (for its change notifier) that a child stopped by terminate()
    # never releases: the resource tracker then warns of leaks. Under 'fork' they are
    # unnamed; this process starts no processes of its own either way.
    multiprocessing.set_start_method("fork", force=True)
    headers.install()  # a process of fetcher's own
    _Child.worker = build_worker(spec.open())
    _Child.pool = ThreadPool(threads)


def _run_chunk(chunk: list[WorkItem]) -> list[Outcome]:
    return portable(_Child.pool.map(_Child.worker, chunk))


def share_of(options: FetchOptions, processes: int) -> FetchOptions:
    """One process's share: its part of the per-host cap, the request rate and the
    bandwidth; no stream (the children only write temp files)."""
    return replace(
        options,
        stream_to=None,
        manifest=None,
        cluster=None,
        per_host=max(1, options.per_host // processes),
        rate=None if options.rate is None else options.rate / processes,
        limit_rate=None if options.limit_rate is None else options.limit_rate / processes,
    )


@contextlib.contextmanager
def children_skip_main() -> Iterator[None]:
    """Children run fetcher's code only, so they need not import the caller's main module:
    `spawn` would, and a script without an `if __name__ == "__main__":` guard would then
    start fetching all over again in each child. While processes are started (a pool's, a
    local Dask cluster's), the main module looks like an interactive one, which `spawn`
    leaves alone."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _ready(_: int) -> None:
    """A task that returns once a child has finished starting."""


class Spawned:
    """A pool of worker processes, started ahead of the items it will be given (their
    start-up takes a few tenths of a second, on other cores)."""

    def __init__(self, processes: int, context: RunContext) -> None:
        options = context.options
        self._context = context
        self._processes = processes
        self._threads = math.ceil(options.workers / processes)
        spawn = multiprocessing.get_context("spawn")  # no fork of a threaded parent
        logger = logging.getLogger("fetcher")
        self._relay = _LogRelay(spawn.Queue()) if logger.isEnabledFor(logging.INFO) else None
        spec = context.spec(share_of(options, processes))
        log_queue = None if self._relay is None else self._relay.queue
        with children_skip_main():
            self._pool = spawn.Pool(
                processes,
                initializer=_start_child,
                initargs=(spec, self._threads, log_queue, logger.getEffectiveLevel()),
            )
        self._started = self._pool.map_async(_ready, range(processes), chunksize=1)
        self._closed = False

    def ready(self) -> bool:
        """Whether the children have started (and so the pool can take items at once)."""
        return self._started.ready()

    def batches(
        self,
        items: Iterable[WorkItem],
        chunksize: int,
        while_waiting: Callable[[], None] | None = None,
    ) -> Generator[list[Outcome], None, None]:
        """Like `pool.ordered_batches`, a task being a few chunks per thread (see
        `CHUNKS_PER_TASK`), so each child's threads stay busy. The children start on the
        items at once."""
        context = self._context
        task = chunksize * self._threads * min(chunksize, CHUNKS_PER_TASK)
        handover = Handover(context)
        delivered = pooled_batches(
            self._pool,
            _run_chunk,
            handover.send(items),
            chunksize=task,
            window=max(
                WINDOW_PER_WORKER * context.options.workers,
                TASKS_PER_CHILD * self._processes * task,
            ),
            stop=context.stop,
            while_waiting=while_waiting,
        )
        return self._received(delivered, handover)

    def _received(
        self, delivered: Generator[list[Outcome], None, None], handover: Handover
    ) -> Generator[list[Outcome], None, None]:
        try:
            for batch in delivered:
                yield handover.receive(batch)
        finally:
            delivered.close()
            self.close()

    def close(self) -> None:
        """Stop the children (at once, if they still have work) and what serves them."""
        if self._closed:
            return
        self._closed = True
        terminate(self._pool)
        if self._relay is not None:
            self._relay.close()
        if self._context.stop.is_set():
            self._context.remove_stray_temps()


class ProcessExecutor(OnThisMachine):
    """`processes` spawned processes of ceil(workers / processes) threads each."""

    def __init__(self, processes: int) -> None:
        self.processes = processes

    def batches(
        self,
        items: Iterable[WorkItem],
        context: RunContext,
        chunksize: int,
        while_waiting: Callable[[], None] | None = None,
    ) -> Generator[list[Outcome], None, None]:
        yield from Spawned(self.processes, context).batches(items, chunksize, while_waiting)
