"""The process layer (`--processes N`): N processes, each with its own thread pool, fetch
chunks of the input, for when the interpreter lock is the wall (small files on a fast
network). The parent keeps what must stay single: reading the lists, the input order, the
committer and the state store's writes. Children only write temp files, at the top of the
output dir; the parent takes them over (`FinishedTemp`) and names them in input order."""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import signal
import threading
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from multiprocessing.pool import ThreadPool
from pathlib import Path

from fetcher.download import Downloader
from fetcher.options import FetchOptions
from fetcher.politeness import HostGate
from fetcher.pool import WINDOW_PER_WORKER, pooled_batches
from fetcher.progress import Stats
from fetcher.sources import Source
from fetcher.state import StateStore
from fetcher.transport import Transport
from fetcher.worker import Kind, Outcome, Worker
from fetcher.writing import STATE_DIR, FinishedTemp, LiveTemps, TempOutput


@dataclass(frozen=True)
class _TempRecord:
    """A child's complete temp file, as it crosses the process boundary."""

    path: Path
    size: int
    sha256: str
    resumable: bool


_child: dict[str, object] = {}
"""The worker and thread pool of this child process (set once by `_start_child`)."""


def _start_child(options: FetchOptions, root: Path, run: int | None, threads: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    stop = threading.Event()
    store = None if run is None else StateStore(root, root / STATE_DIR, attach_to_run=run)
    gate = HostGate(options.per_host, options.rate, stop, options.retry.max_wait_s)
    _child["worker"] = Worker(
        options=options,
        downloader=Downloader(Transport(options), gate, store, stop),
        root=root,
        store=store,
        live=LiveTemps(),
        stats=Stats(),
        stop=stop,
    )
    _child["pool"] = ThreadPool(threads)


def _run_chunk(chunk: list[Source]) -> list[tuple[Outcome, _TempRecord | None]]:
    pool = _child["pool"]
    worker = _child["worker"]
    assert isinstance(pool, ThreadPool) and isinstance(worker, Worker)
    portable = []
    for outcome in pool.map(worker, chunk):
        temp = outcome.temp
        record = None
        if isinstance(temp, TempOutput):
            record = _TempRecord(temp.path, temp.size, temp.sha256, temp.resumable)
        portable.append((dataclasses.replace(outcome, temp=None), record))
    return portable


def process_batches(
    items: Iterable[Source],
    *,
    options: FetchOptions,
    root: Path,
    run: int | None,
    chunksize: int,
    stop: threading.Event,
    live: LiveTemps,
    stats: Stats,
    while_waiting: Callable[[], None] | None = None,
) -> Generator[list[Outcome], None, None]:
    """Like `pool.ordered_batches`, on `options.processes` processes of
    ceil(workers / processes) threads; a task is `chunksize` items per thread, so each
    child's threads stay busy. The per-host cap and the rate are shared out among them."""
    processes = options.processes
    threads = math.ceil(options.workers / processes)
    child_options = dataclasses.replace(
        options,
        stream_to=None,  # children only write temp files
        per_host=max(1, options.per_host // processes),
        rate=None if options.rate is None else options.rate / processes,
    )
    task = chunksize * threads
    context = multiprocessing.get_context("spawn")  # no fork of a threaded parent
    pool = context.Pool(
        processes, initializer=_start_child, initargs=(child_options, root, run, threads)
    )
    batches = pooled_batches(
        pool,
        _run_chunk,
        items,
        chunksize=task,
        window=WINDOW_PER_WORKER * max(options.workers, task),
        stop=stop,
        while_waiting=while_waiting,
    )
    try:
        for batch in batches:
            outcomes = []
            for outcome, record in batch:
                if record is not None:
                    outcome.temp = FinishedTemp(
                        record.path, record.size, record.sha256, record.resumable, live
                    )
                    stats.add_bytes(record.size)
                stats.item_done(failed=outcome.kind is Kind.FAILED)
                outcomes.append(outcome)
            yield outcomes
    finally:
        batches.close()
