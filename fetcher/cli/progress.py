"""The live progress bar on stderr (tqdm), fed from the run's `Stats`.

Workers update `Stats` as items finish, in any order, so one slow item never freezes the
bar; a small thread redraws it a few times a second instead of once per item. When the
list is short enough for every item to be under way at once (a few large files) and each
has declared its size (or failed), the bar counts bytes instead, with a percentage and an
ETA.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, TextIO

from fetcher.cli.summary import human_bytes
from fetcher.stats import Stats

REFRESH_S = 0.2
FALLBACK_SIZE = os.terminal_size((100, 24))


class ProgressBar:
    """A tqdm bar on `stream`; the item total may arrive late (counted meanwhile)."""

    def __init__(self, stats: Stats, stream: TextIO, workers: int) -> None:
        from tqdm import tqdm  # imported only when a bar is shown

        self._stats = stats
        self._workers = workers
        self._items: int | None = None
        self._by_bytes = False
        # Some terminals (fresh ptys, serial consoles) report 0 columns: tqdm then draws
        # nothing, so fall back to a fixed width there.
        try:
            sized = os.get_terminal_size(stream.fileno()).columns > 0
        except (OSError, ValueError):
            sized = False
        self._bar: Any = tqdm(
            total=None,
            unit="item",
            file=stream,
            dynamic_ncols=sized,
            ncols=None if sized else FALLBACK_SIZE.columns,
            nrows=None if sized else FALLBACK_SIZE.lines,
            smoothing=0.1,
        )
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fetcher-progress", daemon=True)
        self._thread.start()

    def set_total(self, total: int | None) -> None:
        """The number of items, once counted (None: not countable, e.g. stdin)."""
        if total is None:
            return
        with self._lock:
            self._items = total
            self._bar.total = total
        self._draw()

    def write(self, line: str) -> None:
        """A log line above the bar, without breaking it."""
        with self._lock:
            self._bar.write(line, file=self._bar.fp)

    def _loop(self) -> None:
        while not self._stop.wait(REFRESH_S):
            self._draw()

    def _draw(self, done: int | None = None) -> None:
        stats = self._stats
        elapsed = max(time.monotonic() - self._started, 1e-9)
        with self._lock:
            bar = self._bar
            count = stats.done if done is None else done
            if not self._by_bytes and self._all_sized():
                self._by_bytes = True
                bar.unit, bar.unit_scale, bar.unit_divisor = "B", True, 1024
                bar.reset(total=stats.expected_bytes)
            if self._by_bytes:
                bar.total = stats.expected_bytes or None
                bar.n = stats.bytes
                bar.set_postfix_str(f"{count}/{self._items} items failed={stats.failed}", False)
            else:
                bar.n = count
                bar.set_postfix_str(
                    f"{human_bytes(stats.bytes)} {human_bytes(stats.bytes / elapsed)}/s"
                    f" failed={stats.failed}",
                    refresh=False,
                )
            bar.refresh()

    def _all_sized(self) -> bool:
        """Every item is under way at once, and the declared sizes add up to the total."""
        items, stats = self._items, self._stats
        if items is None or items > self._workers or not stats.expected_bytes:
            return False
        return stats.declared + stats.failed >= items

    def close(self, committed: int) -> None:
        """The last drawing counts the items committed, as the manifest and summary do."""
        self._stop.set()
        self._thread.join()
        self._draw(committed)
        with self._lock:
            self._bar.close()
