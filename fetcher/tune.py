"""`fetcher tune`: measure a sample of the user's own list under several worker and chunksize
settings, into a throwaway folder, and recommend the fastest. Servers, networks and file
sizes differ too much for one default to be best everywhere; a minute of measuring on the
real thing beats any rule. When the best thread setting keeps the interpreter busy (the CPU,
not the network, is the limit), one more trial spreads it over processes."""

from __future__ import annotations

import dataclasses
import itertools
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from fetcher.job import Job
from fetcher.options import FetchOptions
from fetcher.results import Status
from fetcher.sources import Source

WORKERS_GRID = (4, 8, 16, 32)
CHUNKSIZE_GRID: tuple[int | None, ...] = (1, 4, None)
CLOSE_ENOUGH = 0.95
"""Within 5 % of the fastest, fewer processes and threads win: gentler, same speed."""
CPU_BOUND = 0.8
"""A trial whose process used the CPU for this share of its running time was limited by
the interpreter, not by the network: more threads cannot help it, more processes may."""
MIN_RUNNING_S = 0.1
"""Shorter trials are too short to tell what limited them."""
MAX_PROCESSES = 4


@dataclass(frozen=True)
class Trial:
    workers: int
    chunksize: int | None
    used_chunksize: int
    items: int
    failed: int
    bytes: int
    seconds: float
    processes: int = 1
    cpu_s: float = 0.0
    """CPU time of this process (all its threads) once running, after the first result."""
    start_s: float = 0.0
    """Time to the first result: start-up (pools, processes) and the first fetch."""

    @property
    def running_s(self) -> float:
        return self.seconds - self.start_s

    @property
    def items_per_s(self) -> float:
        """The rate once running, after the first result: start-up is a fixed cost (about
        0.3 s for processes) that a sample would weigh far more than a long list does."""
        if self.items < 2 or self.running_s <= 0:
            return self.items / max(self.seconds, 1e-9)
        return (self.items - 1) / self.running_s

    @property
    def cpu_share(self) -> float:
        return self.cpu_s / max(self.running_s, 1e-9)

    @property
    def cpu_bound(self) -> bool:
        return (
            self.processes == 1 and self.running_s >= MIN_RUNNING_S and self.cpu_share >= CPU_BOUND
        )


def processes_to_try(best: Trial, cpus: int | None) -> int | None:
    """How many processes one more trial should use, if the best thread trial was CPU-bound
    on a machine with cores to spare."""
    if not best.cpu_bound or cpus is None or cpus < 2:
        return None
    return min(cpus, MAX_PROCESSES, best.workers)


def run_trials(
    sample: Sequence[Source],
    base: FetchOptions,
    check_interrupt: Callable[[], None] | None = None,
    *,
    workers_grid: Sequence[int] = WORKERS_GRID,
    chunksize_grid: Sequence[int | None] = CHUNKSIZE_GRID,
    processes: int = 1,
) -> Iterator[Trial]:
    """One timed fetch of the whole sample per setting, each into a fresh temp folder."""
    for workers, chunksize in itertools.product(workers_grid, chunksize_grid):
        folder = Path(tempfile.mkdtemp(prefix="fetcher-tune-"))
        options = dataclasses.replace(
            base,
            output_dir=folder,
            workers=workers,
            chunksize=chunksize,
            processes=processes,
            overwrite=True,
        )
        try:
            started = time.perf_counter()
            first, cpu_at_first = None, 0.0
            results = []
            with Job(options, check_interrupt=check_interrupt) as job:
                batches = job.run(iter(sample))
                for batch in batches:
                    if first is None:
                        first, cpu_at_first = time.perf_counter() - started, time.process_time()
                    results.extend(batch)
            seconds = time.perf_counter() - started
            cpu_s = time.process_time() - cpu_at_first if first is not None else 0.0
            used = batches.chunksize
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        yield Trial(
            workers,
            chunksize,
            used,
            len(results),
            sum(r.status is Status.FAILED for r in results),
            sum(r.bytes for r in results),
            seconds,
            processes,
            cpu_s,
            seconds if first is None else first,
        )


def recommend(trials: Sequence[Trial]) -> Trial:
    """The fastest trial without more failures than the best, preferring one process, fewer
    threads and `auto` among near-ties."""
    fewest_failures = min(t.failed for t in trials)
    clean = [t for t in trials if t.failed == fewest_failures]
    best = max(t.items_per_s for t in clean)
    near = [t for t in clean if t.items_per_s >= CLOSE_ENOUGH * best]
    return min(
        near, key=lambda t: (t.processes, t.workers, t.chunksize is not None, -t.items_per_s)
    )


def table(trials: Sequence[Trial], choice: Trial) -> str:
    """The trials as a markdown table, then the recommendation. CPU is this process's share
    of the running time (not measured when the work ran in child processes)."""
    lines = [
        "| -j | --chunksize | --processes | start s | items/s | MB/s | CPU | failed | |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for t in trials:
        size = f"auto ({t.used_chunksize})" if t.chunksize is None else str(t.chunksize)
        cpu = f"{100 * t.cpu_share:.0f} %" if t.processes == 1 else "-"
        lines.append(
            f"| {t.workers} | {size} | {t.processes} | {t.start_s:.2f} | {t.items_per_s:.0f} |"
            f" {t.bytes / max(t.seconds, 1e-9) / 1e6:.1f} | {cpu} | {t.failed} |"
            f" {'← recommended' if t is choice else ''} |"
        )
    size = "auto" if choice.chunksize is None else str(choice.chunksize)
    processes = f" --processes {choice.processes}" if choice.processes > 1 else ""
    lines += [
        "",
        f"Recommended: -j {choice.workers} --chunksize {size}{processes}"
        f" ({choice.items_per_s:.0f} items/s once running, on this sample).",
    ]
    threads_only = [t for t in trials if t.processes == 1]
    if choice.processes > 1 and threads_only:
        lines.append(_break_even(choice, recommend(threads_only)))
    return "\n".join(lines)


def _break_even(choice: Trial, alone: Trial) -> str:
    """Processes start later: from how many items on they finish first. (`choice` was
    recommended over `alone`, so its rate is the higher one.)"""
    saved_per_item = 1 / alone.items_per_s - 1 / choice.items_per_s
    later = max(choice.start_s - alone.start_s, 0.0)
    items = later / saved_per_item
    return (
        f"The processes start {later:.2f} s later than -j {alone.workers} alone, so they pay"
        f" off on lists longer than about {items:,.0f} items."
    )
