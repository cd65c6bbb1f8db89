"""`fetcher tune`: measure a sample of the user's own list under several worker and chunksize
settings, and recommend the fastest. Servers, networks and file sizes differ too much for
one default to be best everywhere; a minute of measuring on the real thing beats any rule.

What makes the numbers honest: every setting runs several times, interleaved with the
others (so a noisy moment does not pick the winner), and the table gives the median and
the spread; a trial's rate is its steady state (from when a tenth of the items were done
to when nine tenths were, as the workers finish them: neither start-up nor stragglers),
and what that rate does not explain (start-up, stragglers, closing) is a fixed cost, so
that the forecast for the list is the time a run of its length takes, not the sample's
rate; trials write where the real run will (a throwaway folder on the output dir's disk),
and none of them deletes files while another is still to run (see `TrialFolders`).
When the best thread setting keeps the interpreter busy, it runs again on a longer sample,
on several processes and on one, interleaved: processes are judged against threads on the
same items and length, so that only the setting differs."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import shutil
import stat
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fetcher.job import Job
from fetcher.options import DEFAULT_WORKERS, FetchOptions
from fetcher.results import Status
from fetcher.sources import Source
from fetcher.stats import Stats
from fetcher.temps import STATE_DIR

WORKERS_GRID = (8, 16, 32, 64)
CHUNKSIZE_GRID: tuple[int | None, ...] = (1, None)
REPEATS = 3
CLOSE_ENOUGH = 0.9
"""A setting whose median came within 10 % of the fastest setting's slowest repeat is a
near-tie (the trials cannot tell them apart): among those, the defaults win, then fewer
processes and threads (gentler, same speed). Medians on one side and the slowest repeat on
the other, so that one lucky repeat moves the advice neither way; and 10 %, because the
repeats of one setting spread that much on a busy machine (five tunes on 2 shared cores:
often 10-15 %), so that settings within the noise do not swap places from one `tune` to
the next."""
PROCESSES_SAMPLE = 3
"""The processes trial fetches this many times the sample (when the list has them): its
results come back a task at a time, so a short sample measures a few bursts, not a rate."""
CPU_BOUND = 0.8
"""A trial whose process used the CPU for this share of its running time was limited by
the interpreter, not by the network: more threads cannot help it, more processes may."""
MIN_RUNNING_S = 0.1
"""Shorter trials are too short to tell what limited them."""
MAX_PROCESSES = 4
STEADY = (0.1, 0.9)
"""The share of items between which a trial's rate is measured."""
SAMPLE_EVERY_S = 0.01
MIN_STEADY_ITEMS = 20
"""Fewer results than this: the rate counts from the first result instead."""
COUNT_LIMIT = 200_000
"""The list is counted (for the forecast) up to this many items: beyond, a run's fixed
costs are a few per cent of it at most, and counting would cost seconds per million."""


@dataclass(frozen=True)
class Trial:
    """One timed fetch of the sample with one setting."""

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
    steady_rate: float | None = None
    """Items per second from when a tenth of them were done to when nine tenths were."""

    @property
    def running_s(self) -> float:
        return self.seconds - self.start_s

    @property
    def items_per_s(self) -> float:
        """The rate once running: start-up is a fixed cost (about 0.3 s for processes) that
        a sample would weigh far more than a long list does."""
        if self.steady_rate is not None:
            return self.steady_rate
        if self.items < 2 or self.running_s <= 0:
            return self.items / max(self.seconds, 1e-9)
        return (self.items - 1) / self.running_s

    @property
    def spread(self) -> tuple[float, float]:
        return self.items_per_s, self.items_per_s

    @property
    def fixed_s(self) -> float:
        """The time the rate once running does not explain: start-up (pools, processes),
        the last stragglers, closing down. A run pays it once, whatever its length."""
        return max(self.seconds - self.items / max(self.items_per_s, 1e-9), 0.0)

    @property
    def cpu_share(self) -> float:
        return self.cpu_s / max(self.running_s, 1e-9)

    @property
    def cpu_bound(self) -> bool:
        return (
            self.processes == 1 and self.running_s >= MIN_RUNNING_S and self.cpu_share >= CPU_BOUND
        )


class Measured(Protocol):
    """A trial, or the median of the repeats of one setting."""

    @property
    def workers(self) -> int: ...
    @property
    def chunksize(self) -> int | None: ...
    @property
    def used_chunksize(self) -> int: ...
    @property
    def processes(self) -> int: ...
    @property
    def items(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def items_per_s(self) -> float: ...
    @property
    def spread(self) -> tuple[float, float]: ...
    @property
    def start_s(self) -> float: ...
    @property
    def fixed_s(self) -> float: ...
    @property
    def cpu_share(self) -> float: ...
    @property
    def cpu_bound(self) -> bool: ...
    @property
    def bytes(self) -> int: ...
    @property
    def seconds(self) -> float: ...


@dataclass(frozen=True)
class Setting:
    """The repeats of one setting: the median trial speaks for them, the spread says how
    much to trust it."""

    trials: tuple[Trial, ...]

    @property
    def median(self) -> Trial:
        ranked = sorted(self.trials, key=lambda t: t.items_per_s)
        return ranked[(len(ranked) - 1) // 2]

    @property
    def spread(self) -> tuple[float, float]:
        rates = [t.items_per_s for t in self.trials]
        return min(rates), max(rates)

    @property
    def workers(self) -> int:
        return self.median.workers

    @property
    def chunksize(self) -> int | None:
        return self.median.chunksize

    @property
    def used_chunksize(self) -> int:
        return self.median.used_chunksize

    @property
    def processes(self) -> int:
        return self.median.processes

    @property
    def items(self) -> int:
        return self.median.items

    @property
    def failed(self) -> int:
        return max(t.failed for t in self.trials)

    @property
    def items_per_s(self) -> float:
        return statistics.median(t.items_per_s for t in self.trials)

    @property
    def start_s(self) -> float:
        return statistics.median(t.start_s for t in self.trials)

    @property
    def fixed_s(self) -> float:
        return statistics.median(t.fixed_s for t in self.trials)

    @property
    def cpu_share(self) -> float:
        return self.median.cpu_share

    @property
    def cpu_bound(self) -> bool:
        return self.median.cpu_bound

    @property
    def bytes(self) -> int:
        return self.median.bytes

    @property
    def seconds(self) -> float:
        return self.median.seconds


def processes_to_try(best: Measured, cpus: int | None) -> int | None:
    """How many processes one more trial should use, if the best thread trial was CPU-bound
    on a machine with cores to spare."""
    if not best.cpu_bound or cpus is None or cpus < 2:
        return None
    return min(cpus, MAX_PROCESSES, best.workers)


class TrialFolders:
    """The trials' throwaway folders, one per trial, inside the output dir (on its disk).

    A finished trial's files are emptied, which gives their space back, and deleted only
    when every trial is done: on an ext4 file system without a journal, creating a file
    skips (one by one) every inode deleted in the last one to six minutes, so each trial
    that deleted its files would slow all the trials after it, more and more as the tune
    goes on (2x measured on 3,000 files)."""

    def __init__(self, parent: Path) -> None:
        self.parent = parent.absolute()
        self._made: list[Path] = []

    def __enter__(self) -> TrialFolders:
        return self

    def __exit__(self, *exc: object) -> None:
        for folder in self._made:
            shutil.rmtree(folder, ignore_errors=True)

    def new(self) -> Path:
        self.parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=".fetcher-tune-", dir=self.parent))
        self._made.append(folder)
        return folder

    @staticmethod
    def empty(folder: Path) -> None:
        """Every regular file in `folder` cut to nothing; never through a symlink, never a
        file with another name elsewhere (a hard link)."""
        for root, _, files in os.walk(folder):
            for name in files:
                with contextlib.suppress(OSError):
                    fd = os.open(os.path.join(root, name), os.O_WRONLY | os.O_NOFOLLOW)
                    try:
                        info = os.fstat(fd)
                        if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                            os.ftruncate(fd, 0)
                    finally:
                        os.close(fd)


def run_trials(
    sample: Sequence[Source],
    base: FetchOptions,
    folders: TrialFolders,
    check_interrupt: Callable[[], None] | None = None,
    *,
    workers_grid: Sequence[int] = WORKERS_GRID,
    chunksize_grid: Sequence[int | None] = CHUNKSIZE_GRID,
    processes_grid: Sequence[int] = (1,),
    repeats: int = 1,
) -> Iterator[Trial]:
    """Timed fetches of the whole sample, each into a fresh one of `folders`, every setting
    `repeats` times, round-robin."""
    grid = list(itertools.product(workers_grid, chunksize_grid, processes_grid))
    for _, (workers, chunksize, processes) in itertools.product(range(repeats), grid):
        options = dataclasses.replace(
            base, workers=workers, chunksize=chunksize, processes=processes, overwrite=True
        )
        yield _trial(sample, options, folders, check_interrupt)


def _trial(
    sample: Sequence[Source],
    options: FetchOptions,
    folders: TrialFolders,
    check_interrupt: Callable[[], None] | None,
) -> Trial:
    # A real run starts on a disk at rest, not on one still writing out the last trial's
    # files (so does each full run tune_check compares with).
    os.sync()
    folder = folders.new()
    # As the real run does: a manifest, the state store, the files, all on that disk.
    manifest = folder / STATE_DIR / "manifest.jsonl"
    options = dataclasses.replace(options, output_dir=folder, manifest=manifest)
    stats = Stats()
    clock = _Progress(stats)
    try:
        started = time.perf_counter()
        first, cpu_at_first = None, 0.0
        results = []
        with Job(options, stats=stats, check_interrupt=check_interrupt) as job:
            batches = job.run(iter(sample))
            for batch in batches:
                if first is None:
                    first, cpu_at_first = time.perf_counter() - started, time.process_time()
                results.extend(batch)
        seconds = time.perf_counter() - started
        cpu_s = time.process_time() - cpu_at_first if first is not None else 0.0
    finally:
        clock.stop()
        folders.empty(folder)
    return Trial(
        options.workers,
        options.chunksize,
        batches.chunksize,
        len(results),
        sum(r.status is Status.FAILED for r in results),
        sum(r.bytes for r in results),
        seconds,
        options.processes or 1,
        cpu_s,
        seconds if first is None else first,
        clock.steady_rate(len(sample)),
    )


class _Progress:
    """Items done (in any order, as the workers finish them) sampled every few
    milliseconds: a smooth curve, where results delivered in input order come in bursts."""

    def __init__(self, stats: Stats) -> None:
        self._stats = stats
        self._samples: list[tuple[float, int]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fetcher-tune-clock", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(SAMPLE_EVERY_S):
            self._samples.append((time.perf_counter(), self._stats.done))

    def stop(self) -> None:
        self._done.set()
        self._thread.join()
        self._samples.append((time.perf_counter(), self._stats.done))

    def steady_rate(self, items: int) -> float | None:
        """Items per second from when a tenth of them were done to when nine tenths were."""
        return steady_rate(self._samples, items)


def steady_rate(samples: Sequence[tuple[float, int]], items: int) -> float | None:
    """From (time, items done) samples: the rate between the first sample with a tenth
    of the items done and the first with nine tenths."""
    if items < MIN_STEADY_ITEMS:
        return None
    low, high = (share * items for share in STEADY)
    start = next(((t, done) for t, done in samples if done >= low), None)
    end = next(((t, done) for t, done in samples if done >= high), None)
    if start is None or end is None or end[0] <= start[0]:
        return None
    return (end[1] - start[1]) / (end[0] - start[0])


def settings(trials: Sequence[Trial]) -> list[Setting]:
    """The trials grouped by setting and sample size, in the order they first appear."""
    groups: dict[tuple[int, int | None, int, int], list[Trial]] = {}
    for t in trials:
        groups.setdefault((t.workers, t.chunksize, t.processes, t.items), []).append(t)
    return [Setting(tuple(group)) for group in groups.values()]


@dataclass(frozen=True)
class Forecast:
    """What a real run of the list adds to a trial: its length, and fetcher's own start-up
    (the interpreter and its imports, which no trial pays). A setting's forecast is the
    time such a run takes: start-up, its fixed costs, then every item at its rate."""

    items: int
    """The list's items, counted up to `COUNT_LIMIT`."""
    longer: bool = False
    """The list goes on past `COUNT_LIMIT` items."""
    launch_s: float = 0.0

    def seconds(self, m: Measured, items_per_s: float | None = None) -> float:
        """The whole run's time, at `m`'s rate once running (or another)."""
        per_s = m.items_per_s if items_per_s is None else items_per_s
        return self.launch_s + m.fixed_s + self.items / max(per_s, 1e-9)

    def rate(self, m: Measured, items_per_s: float | None = None) -> float:
        """Items per second over the whole run."""
        return self.items / self.seconds(m, items_per_s)

    def line(self, m: Measured) -> str:
        fixed, seconds = self.launch_s + m.fixed_s, self.seconds(m)
        if self.longer:
            return (
                f"For this list (over {self.items:,} to fetch): about {self.rate(m):,.0f}"
                f" items/s or a little more ({fixed:.2f} s to start and stop)."
            )
        return (
            f"For this list ({self.items:,} to fetch): about {self.rate(m):,.0f} items/s"
            f" ({seconds:,.1f} s, of which {fixed:.2f} s to start and stop)."
        )


def recommend(measured: Sequence[Measured], forecast: Forecast | None = None) -> Measured:
    """The fastest setting without more failures than the best, over the whole list when
    its length is known (so that a short list is not sent to processes that start too late
    to pay off); among near-ties, one process, then the defaults (`-j 16 --chunksize
    auto`), then fewer threads and `auto`."""

    def rate(m: Measured, items_per_s: float) -> float:
        return items_per_s if forecast is None else forecast.rate(m, items_per_s)

    fewest_failures = min(m.failed for m in measured)
    clean = [m for m in measured if m.failed == fewest_failures]
    fastest = max(clean, key=lambda m: rate(m, m.items_per_s))
    floor = CLOSE_ENOUGH * rate(fastest, fastest.spread[0])
    near = [m for m in clean if rate(m, m.items_per_s) >= floor]

    def preference(m: Measured) -> tuple[int, bool, int, bool, float]:
        default = m.workers == DEFAULT_WORKERS and m.chunksize is None
        return m.processes, not default, m.workers, m.chunksize is not None, -m.items_per_s

    return min(near, key=preference)


def table(measured: Sequence[Measured], choice: Measured, forecast: Forecast | None = None) -> str:
    """The settings as a markdown table (median rate, and its spread over the repeats),
    then the recommendation and, when the list's length is known, what a run of it should
    reach. CPU is this process's share of the running time (not measured when the work ran
    in child processes)."""
    lines = [
        "| -j | --chunksize | --processes | items | start s | items/s | (min-max) | fixed s"
        " | MB/s | CPU | failed | |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for m in measured:
        size = f"auto ({m.used_chunksize})" if m.chunksize is None else str(m.chunksize)
        cpu = f"{100 * m.cpu_share:.0f} %" if m.processes == 1 else "-"
        low, high = m.spread
        lines.append(
            f"| {m.workers} | {size} | {m.processes} | {m.items} | {m.start_s:.2f} |"
            f" {m.items_per_s:.0f} |"
            f" {low:.0f}-{high:.0f} | {m.fixed_s:.2f} |"
            f" {m.bytes / max(m.seconds, 1e-9) / 1e6:.1f} | {cpu} |"
            f" {m.failed} | {'← recommended' if m is choice else ''} |"
        )
    size = "auto" if choice.chunksize is None else str(choice.chunksize)
    lines += [
        "",
        f"Recommended: -j {choice.workers} --chunksize {size} --processes {choice.processes}"
        f" ({choice.items_per_s:.0f} items/s once running, on this sample).",
    ]
    if forecast is not None:
        lines.append(forecast.line(choice))
    threads_only = [m for m in measured if m.processes == 1 and m.items == choice.items]
    if choice.processes > 1 and threads_only:
        lines.append(_break_even(choice, recommend(threads_only, forecast)))
    return "\n".join(lines)


def _break_even(choice: Measured, alone: Measured) -> str:
    """Processes start and stop slower: from how many items on they finish first."""
    saved_per_item = 1 / alone.items_per_s - 1 / choice.items_per_s
    later = max(choice.fixed_s - alone.fixed_s, 0.0)
    if saved_per_item <= 0:
        return f"-j {alone.workers} alone is as fast once running."
    return (
        f"The processes take {later:.2f} s longer to start and stop than -j {alone.workers}"
        f" alone, so they pay off on lists longer than about {later / saved_per_item:,.0f}"
        " items."
    )
