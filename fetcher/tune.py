"""`fetcher tune`: measure a sample of the user's own list under several worker and chunksize
settings, into a throwaway folder, and recommend the fastest. Servers, networks and file
sizes differ too much for one default to be best everywhere; a minute of measuring on the
real thing beats any rule."""

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
from fetcher.progress import human_bytes
from fetcher.results import Status
from fetcher.sources import Source

WORKERS_GRID = (4, 8, 16, 32)
CHUNKSIZE_GRID: tuple[int | None, ...] = (1, 4, None)
CLOSE_ENOUGH = 0.95
"""Within 5 % of the fastest, fewer threads win: gentler on servers, same speed."""


@dataclass(frozen=True)
class Trial:
    workers: int
    chunksize: int | None
    used_chunksize: int
    items: int
    failed: int
    bytes: int
    seconds: float

    @property
    def items_per_s(self) -> float:
        return self.items / max(self.seconds, 1e-9)


def run_trials(
    sample: Sequence[Source],
    base: FetchOptions,
    check_interrupt: Callable[[], None] | None = None,
    workers_grid: Sequence[int] = WORKERS_GRID,
    chunksize_grid: Sequence[int | None] = CHUNKSIZE_GRID,
) -> Iterator[Trial]:
    """One timed fetch of the whole sample per setting, each into a fresh temp folder."""
    for workers, chunksize in itertools.product(workers_grid, chunksize_grid):
        folder = Path(tempfile.mkdtemp(prefix="fetcher-tune-"))
        options = dataclasses.replace(
            base, output_dir=folder, workers=workers, chunksize=chunksize, overwrite=True
        )
        try:
            started = time.perf_counter()
            with Job(options, check_interrupt=check_interrupt) as job:
                results = list(job.run(iter(sample)))
            seconds = time.perf_counter() - started
            used = job.chunksize
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
        )


def recommend(trials: Sequence[Trial]) -> Trial:
    """The fastest trial without more failures than the best, preferring fewer threads and
    `auto` among near-ties."""
    fewest_failures = min(t.failed for t in trials)
    clean = [t for t in trials if t.failed == fewest_failures]
    best = max(t.items_per_s for t in clean)
    near = [t for t in clean if t.items_per_s >= CLOSE_ENOUGH * best]
    return min(near, key=lambda t: (t.workers, t.chunksize is not None, -t.items_per_s))


def table(trials: Sequence[Trial], choice: Trial) -> str:
    lines = [
        "| -j | --chunksize | items/s | MB/s | failed | |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for t in trials:
        size = "auto" if t.chunksize is None else str(t.chunksize)
        if t.chunksize is None:
            size = f"auto ({t.used_chunksize})"
        lines.append(
            f"| {t.workers} | {size} | {t.items_per_s:.0f} |"
            f" {t.bytes / max(t.seconds, 1e-9) / 1e6:.1f} | {t.failed} |"
            f" {'← recommended' if t is choice else ''} |"
        )
    size = "auto" if choice.chunksize is None else str(choice.chunksize)
    lines.append("")
    lines.append(
        f"Recommended: -j {choice.workers} --chunksize {size}"
        f" ({choice.items_per_s:.0f} items/s, {human_bytes(choice.bytes / choice.seconds)}/s"
        " on this sample)."
    )
    return "\n".join(lines)
