"""The automatic choice (`--processes auto`, the default): a run starts on this process's
threads and measures itself. When the interpreter turns out to be the limit (the process
keeps a core busy: small files on a fast network) and enough of the list is left for their
start to pay off, worker processes are started on the other cores while the threads go on;
once they are up, the rest of the list goes to them. A latency-bound run, or a short one,
never starts them: it pays nothing for the choice but a clock reading per batch.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import TypeVar

from fetcher.context import RunContext
from fetcher.executors import OnThisMachine
from fetcher.pool import ThreadExecutor
from fetcher.processes import Spawned
from fetcher.work import Outcome, WorkItem

log = logging.getLogger(__name__)

T = TypeVar("T")

CPU_BOUND = 0.75
"""Share of one core the process used over a window, above which the interpreter lock is
the limit (a GIL-bound process cannot use much more than one core)."""
WARM_UP_S = 0.25
"""Not measured: start-up, the first connections."""
WINDOW_S = 0.5
MIN_WINDOW_ITEMS = 50
PAYS_OFF_S = 2.0
"""The processes are started only if at least this much work (at the threads' rate) is
left: their start costs a few tenths of a second of CPU, on other cores."""
MAX_LOOKAHEAD = 20_000
"""Items read ahead, at most, to tell whether that much is left."""
MAX_PROCESSES = 8
"""One process keeps the order, the names and the store for all: it keeps up with about
eight others (its share of the CPU per item is under an eighth)."""


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class _Feed(Iterator[T]):
    """An iterator that another thread may look ahead in (bounded), without losing items."""

    def __init__(self, items: Iterator[T]) -> None:
        self._items = items
        self._ahead: deque[T] = deque()
        self._lock = threading.Lock()
        self._ended = False

    def __next__(self) -> T:
        with self._lock:
            if self._ahead:
                return self._ahead.popleft()
            return next(self._items)

    def has_at_least(self, count: int) -> bool:
        """Whether `count` more items are to come (reading up to that many ahead)."""
        count = min(count, MAX_LOOKAHEAD)
        with self._lock:
            while len(self._ahead) < count and not self._ended:
                try:
                    self._ahead.append(next(self._items))
                except StopIteration:
                    self._ended = True
            return len(self._ahead) >= count


class _Meter:
    """The process's CPU share and the rate of results over windows of about a second."""

    def __init__(self) -> None:
        self._started = time.monotonic()
        self._window: tuple[float, float, int] | None = None
        self.rate = 0.0

    def cpu_bound(self, results: int) -> bool:
        now = time.monotonic()
        if now - self._started < WARM_UP_S:
            return False
        if self._window is None:
            self._window = (now, time.process_time(), 0)
            return False
        since, cpu, count = self._window
        count += results
        if now - since < WINDOW_S or count < MIN_WINDOW_ITEMS:
            self._window = (since, cpu, count)
            return False
        share = (time.process_time() - cpu) / (now - since)
        self.rate = count / (now - since)
        self._window = (now, time.process_time(), 0)
        log.debug("%.0f items/s using %.0f %% of a core", self.rate, 100 * share)
        return share >= CPU_BOUND


class AdaptiveExecutor(OnThisMachine):
    """Threads first; processes (up to `processes` of them) once the run is CPU-bound."""

    def __init__(self, processes: int) -> None:
        self.processes = processes

    @staticmethod
    def _worth_processes(
        meter: _Meter, results: int, feed: _Feed[WorkItem], context: RunContext
    ) -> bool:
        """CPU-bound, enough left, and no cookies: servers that set them get a run whose
        threads share one jar (processes would each keep their own)."""
        return (
            meter.cpu_bound(results)
            and not context.cookies
            and feed.has_at_least(int(meter.rate * PAYS_OFF_S))
        )

    def batches(
        self,
        items: Iterable[WorkItem],
        context: RunContext,
        chunksize: int,
        while_waiting: Callable[[], None] | None = None,
    ) -> Generator[list[Outcome], None, None]:
        feed = _Feed(iter(items))
        phase = _Phase()
        meter = _Meter()
        spawned: Spawned | None = None
        processes: Generator[list[Outcome], None, None] | None = None
        try:
            threads = ThreadExecutor().batches(
                phase.threads_part(feed), context, chunksize, while_waiting
            )
            try:
                for batch in threads:
                    yield batch
                    if spawned is None:
                        if self._worth_processes(meter, len(batch), feed, context):
                            log.info(
                                "CPU-bound at %.0f items/s: starting %d worker processes",
                                meter.rate, self.processes,
                            )  # fmt: skip
                            spawned = Spawned(self.processes, context)
                    elif processes is None and spawned.ready():
                        # The rest goes to the processes, which start on it at once,
                        # while the threads finish what they hold.
                        phase.hand_over()
                        processes = spawned.batches(feed, chunksize, while_waiting)
            finally:
                threads.close()
            if processes is not None and not context.stop.is_set():
                yield from processes
        finally:
            if processes is not None:
                processes.close()
            if spawned is not None:
                spawned.close()


class _Phase:
    """Which executor takes the next item: the threads until the hand-over, the
    processes after it; no item taken by the threads comes after one the processes took."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handed_over = False

    def threads_part(self, feed: Iterator[WorkItem]) -> Iterator[WorkItem]:
        while True:
            with self._lock:
                item = None if self._handed_over else next(feed, None)
            if item is None:
                return
            yield item

    def hand_over(self) -> None:
        with self._lock:
            self._handed_over = True
