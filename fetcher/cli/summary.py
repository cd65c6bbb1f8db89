"""The end-of-run summary on stderr: counts per status, bytes, time, rates, the first few
failures."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable

from fetcher.results import Result, Status
from fetcher.stats import Stats

SHOWN_FAILURES = 5


class Tally:
    """What the summary needs, gathered from results in order."""

    def __init__(self) -> None:
        self.statuses: Counter[Status] = Counter()
        self.failures: list[Result] = []
        self._started = time.monotonic()

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    @property
    def failed(self) -> int:
        return self.statuses[Status.FAILED]

    def add(self, results: Iterable[Result]) -> None:
        for result in results:
            self.statuses[result.status] += 1
            if result.status is Status.FAILED and len(self.failures) < SHOWN_FAILURES:
                self.failures.append(result)

    def summary(self, stats: Stats, manifest: str | None, interrupted: bool = False) -> str:
        """Rates count what this run received: bytes an earlier run left are not in them."""
        elapsed = max(time.monotonic() - self._started, 1e-9)
        total = self.total
        counts = ", ".join(f"{self.statuses[s]} {s.value}" for s in Status if self.statuses[s])
        lines = [
            f"{'Interrupted after' if interrupted else 'Done:'} {plural(total, 'item')}"
            f" ({counts or 'none'}); {human_bytes(stats.bytes)} received in {elapsed:.1f}s"
            f" ({human_bytes(stats.bytes / elapsed)}/s, {total / elapsed:.1f} items/s)."
        ]
        for result in self.failures:
            error = result.error
            detail = f"{error.type}: {error.message}" if error else "failed"
            lines.append(f"  failed #{result.index} {result.source}: {detail}")
        if self.failed > len(self.failures):
            lines.append(f"  ... and {plural(self.failed - len(self.failures), 'more failure')}.")
        if manifest:
            lines.append(f"Manifest: {manifest}")
        return "\n".join(lines)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"
