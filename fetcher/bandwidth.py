"""`--limit-rate`: at most so many bytes per second over the whole run, as wget, curl and
aria2c limit it. Every block received takes its share of one timeline that all threads of
the process share; a thread whose block would run ahead of the timeline waits for it.
Reading stops while it waits, so TCP slows the sender down instead of fetcher buffering."""

from __future__ import annotations

import threading
import time

from fetcher.errors import Interrupted

BURST_S = 0.25
"""Idle time that may be caught up at full speed: a run never exceeds the limit by more
than this many seconds' worth of bytes."""


class Bandwidth:
    def __init__(self, bytes_per_s: float, stop: threading.Event) -> None:
        self._interval = 1.0 / bytes_per_s
        self._stop = stop
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def spend(self, count: int) -> None:
        """Account for `count` bytes just received, waiting until the timeline allows them."""
        with self._lock:
            now = time.monotonic()
            self._next = max(self._next, now - BURST_S) + count * self._interval
            wait = self._next - now
        if wait > 0 and self._stop.wait(wait):
            raise Interrupted
