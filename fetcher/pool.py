"""The thread pool: `ThreadPool.imap` over a gated feed, so results come back in input order
and memory stays bounded however long the input is; and the executor that fetches every
item on this process's threads.

`imap` hands the whole input to a feeder thread that would otherwise read ahead without
limit; a semaphore lets it run at most `window` items ahead of the consumer.
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from multiprocessing.pool import IMapIterator, Pool, ThreadPool
from typing import TypeVar

from fetcher.context import RunContext
from fetcher.executors import OnThisMachine
from fetcher.work import Outcome, WorkItem
from fetcher.worker import build_worker

T = TypeVar("T")
R = TypeVar("R")

MAX_AUTO_CHUNKSIZE = 4
LOOKAHEAD_PER_WORKER = 64
WINDOW_PER_WORKER = 8
TERMINATE_GRACE_S = 2.0
MAX_BATCH = 256
WAIT_POLL_S = 0.1


def auto_chunksize(workers: int, known_items: int) -> int:
    """The `--chunksize auto` rule.

    A chunk is fetched sequentially by one thread, so large chunks starve the other threads
    when item latencies vary, while chunksize 1 pays the pool's per-task cost (two queue
    hand-offs and a lock, tens of microseconds) on every item. Network items take
    milliseconds, so that cost matters only on long lists of fast items: the rule looks at
    up to `LOOKAHEAD_PER_WORKER` items per worker and gives each worker at least 16 chunks
    of that look-ahead, capped at `MAX_AUTO_CHUNKSIZE`. Short lists get chunksize 1.
    """
    return max(1, min(MAX_AUTO_CHUNKSIZE, known_items // (workers * 16)))


def window_size(workers: int, chunksize: int) -> int:
    """How far the feed may run ahead of the consumer: enough to keep every thread busy
    while one slow item holds up the in-order output, and never less than a chunk."""
    return max(chunksize, workers) * WINDOW_PER_WORKER


def ordered_batches(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int,
    chunksize: int,
    stop: threading.Event,
    max_batch: int = MAX_BATCH,
    while_waiting: Callable[[], None] | None = None,
) -> Generator[list[R], None, None]:
    """Apply `fn` to every item on `workers` threads; yield results in input order, in
    batches of every result that is ready (at least one, at most `max_batch`), so that the
    consumer can do its per-result work in groups: fewer transactions, flushes and GIL
    hand-overs on the one thread that keeps the order. `while_waiting` is called every
    `WAIT_POLL_S` while no result is ready (it may raise, e.g. for a recorded Ctrl-C).

    Setting `stop` ends the feed: results of items already handed out still arrive, then the
    iteration ends. Leaving early (an exception, or the caller closing the generator) sets
    `stop` and tears the pool down without waiting for a blocked input read.
    """

    def run_chunk(chunk: list[T]) -> list[R]:
        return [fn(item) for item in chunk]

    return pooled_batches(
        ThreadPool(workers),
        run_chunk,
        items,
        chunksize=chunksize,
        window=window_size(workers, chunksize),
        stop=stop,
        max_batch=max_batch,
        while_waiting=while_waiting,
    )


def pooled_batches(
    pool: Pool,
    run_chunk: Callable[[list[T]], list[R]],
    items: Iterable[T],
    *,
    chunksize: int,
    window: int,
    stop: threading.Event,
    max_batch: int = MAX_BATCH,
    while_waiting: Callable[[], None] | None = None,
) -> Generator[list[R], None, None]:
    """`ordered_batches` on any pool (threads, or processes with a picklable `run_chunk`):
    the feed gated to `window` items ahead of the consumer, chunks of `chunksize`. The pool
    starts on the items at once, not at the first `next`: another run's results can be
    consumed meanwhile (the automatic choice hands a list from threads to processes so)."""
    slots = threading.Semaphore(window)

    def chunks() -> Iterator[list[T]]:
        feed = _gated(items, slots, stop)
        while chunk := list(itertools.islice(feed, chunksize)):
            yield chunk

    # Chunks are formed here rather than by imap(chunksize=...), which would hide the
    # IMapIterator (and its non-blocking next) behind a flattening generator.
    results = pool.imap(run_chunk, chunks())
    return _delivered(
        pool, results, slots, stop=stop, max_batch=max_batch, while_waiting=while_waiting
    )


def _delivered(
    pool: Pool,
    results: IMapIterator[list[R]],
    slots: threading.Semaphore,
    *,
    stop: threading.Event,
    max_batch: int,
    while_waiting: Callable[[], None] | None,
) -> Generator[list[R], None, None]:
    finished = False
    try:
        while (first := _next_ready(results, while_waiting)) is not None:
            batch, failure = _more_ready(results, first, max_batch)
            for _ in batch:
                slots.release()
            yield batch
            if failure is not None:
                raise failure
        pool.close()
        pool.join()
        finished = True
    finally:
        if not finished:
            stop.set()
            terminate(pool)


def terminate(pool: Pool) -> None:
    """Stop a pool now. `terminate()` joins the feeder thread, which may be blocked reading
    stdin: it gets a bounded grace period instead of hanging the interrupt."""
    closer = threading.Thread(target=pool.terminate, name="fetcher-pool-close", daemon=True)
    closer.start()
    closer.join(TERMINATE_GRACE_S)


def _gated(items: Iterable[T], slots: threading.Semaphore, stop: threading.Event) -> Iterator[T]:
    """`items`, each only once a slot is free (the consumer frees one per result)."""
    for item in items:
        while not slots.acquire(timeout=WAIT_POLL_S):
            if stop.is_set():
                return
        if stop.is_set():
            return
        yield item


def _next_ready(
    results: IMapIterator[list[R]], while_waiting: Callable[[], None] | None
) -> list[R] | None:
    """The next chunk's results (None at the end), calling `while_waiting` meanwhile."""
    while True:
        try:
            return results.next(timeout=WAIT_POLL_S)
        except multiprocessing.TimeoutError:
            if while_waiting is not None:
                while_waiting()
        except StopIteration:
            return None


def _more_ready(
    results: IMapIterator[list[R]], batch: list[R], max_batch: int
) -> tuple[list[R], Exception | None]:
    """`batch` and every chunk already done after it, up to `max_batch` results; a failed
    task is returned beside them, so what came before it is delivered first."""
    while len(batch) < max_batch:
        try:
            batch.extend(results.next(timeout=0))
        except (multiprocessing.TimeoutError, StopIteration):
            break
        except Exception as exc:
            return batch, exc
    return batch, None


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int,
    chunksize: int,
    stop: threading.Event,
) -> Iterator[R]:
    """`ordered_batches`, one result at a time (so read-ahead is bounded per result)."""
    batches = ordered_batches(
        fn, items, workers=workers, chunksize=chunksize, stop=stop, max_batch=1
    )
    try:
        for batch in batches:
            yield from batch
    finally:
        batches.close()


class ThreadExecutor(OnThisMachine):
    """Every item fetched on this process's threads: `options.workers` of them."""

    def batches(
        self,
        items: Iterable[WorkItem],
        context: RunContext,
        chunksize: int,
        while_waiting: Callable[[], None] | None = None,
    ) -> Generator[list[Outcome], None, None]:
        worker = build_worker(context)
        try:
            yield from ordered_batches(
                worker,
                items,
                workers=context.options.workers,
                chunksize=chunksize,
                stop=context.stop,
                while_waiting=while_waiting,
            )
        finally:
            worker.close()
