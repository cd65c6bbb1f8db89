"""Live progress and the end-of-run summary.

Workers update `Stats` as items finish, in any order, so one slow item never freezes the
bar; a small thread redraws the bar a few times a second instead of once per item.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from typing import TextIO

from fetcher.results import Result, Status

REFRESH_S = 0.2
SHOWN_FAILURES = 5
FALLBACK_SIZE = os.terminal_size((100, 24))


class Stats:
    """Counters shared by the workers; cheap enough to touch for every block written."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.done = 0
        self.failed = 0
        self.bytes = 0

    def add_bytes(self, count: int) -> None:
        with self._lock:
            self.bytes += count

    def item_done(self, *, failed: bool) -> None:
        with self._lock:
            self.done += 1
            self.failed += failed


class ProgressBar:
    """A tqdm bar on `stream` fed from `Stats`; `total` may arrive late (counted meanwhile)."""

    def __init__(self, stats: Stats, stream: TextIO) -> None:
        from tqdm import tqdm  # imported only when a bar is shown

        self._stats = stats
        # Some terminals (fresh ptys, serial consoles) report 0 columns: tqdm then draws
        # nothing, so fall back to a fixed width there.
        try:
            sized = os.get_terminal_size(stream.fileno()).columns > 0
        except (OSError, ValueError):
            sized = False
        self._bar = tqdm(
            total=None,
            unit="item",
            file=stream,
            dynamic_ncols=sized,
            ncols=None if sized else FALLBACK_SIZE.columns,
            nrows=None if sized else FALLBACK_SIZE.lines,
            smoothing=0.1,
        )
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fetcher-progress", daemon=True)
        self._thread.start()

    def set_total(self, total: int | None) -> None:
        if total is not None:
            self._bar.total = total
            self._bar.refresh()

    def _loop(self) -> None:
        while not self._stop.wait(REFRESH_S):
            self._draw()

    def _draw(self) -> None:
        stats = self._stats
        elapsed = max(time.monotonic() - self._started, 1e-9)
        self._bar.n = stats.done
        self._bar.set_postfix_str(
            f"{human_bytes(stats.bytes)} {human_bytes(stats.bytes / elapsed)}/s"
            f" failed={stats.failed}",
            refresh=False,
        )
        self._bar.refresh()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._draw()
        self._bar.close()


class Tally:
    """What the summary needs, gathered from results in order."""

    def __init__(self) -> None:
        self.statuses: Counter[Status] = Counter()
        self.bytes = 0
        self.failures: list[Result] = []
        self._started = time.monotonic()

    def add(self, result: Result) -> None:
        self.statuses[result.status] += 1
        self.bytes += result.bytes if result.status is Status.OK else 0
        if result.status is Status.FAILED and len(self.failures) < SHOWN_FAILURES:
            self.failures.append(result)

    def summary(self, manifest: str | None, interrupted: bool = False) -> str:
        elapsed = time.monotonic() - self._started
        total = sum(self.statuses.values())
        counts = ", ".join(f"{self.statuses[s]} {s.value}" for s in Status if self.statuses[s])
        lines = [
            f"{'Interrupted after' if interrupted else 'Done:'} {total} items"
            f" ({counts or 'none'}); {human_bytes(self.bytes)} in {elapsed:.1f}s"
            f" ({human_bytes(self.bytes / max(elapsed, 1e-9))}/s,"
            f" {total / max(elapsed, 1e-9):.1f} items/s)."
        ]
        failed = self.statuses[Status.FAILED]
        for result in self.failures:
            error = result.error
            detail = f"{error.type}: {error.message}" if error else "failed"
            lines.append(f"  failed #{result.index} {result.source}: {detail}")
        if failed > len(self.failures):
            lines.append(f"  ... and {failed - len(self.failures)} more failures.")
        if manifest:
            lines.append(f"Manifest: {manifest}")
        return "\n".join(lines)


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"
