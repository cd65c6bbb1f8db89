"""Live counters of one run, shared by the workers and read by whoever shows progress."""

from __future__ import annotations

import threading


class Stats:
    """Items finished (in any order) and bytes received; cheap enough to touch for every
    block written. `expected_bytes` adds up the declared sizes of bodies being fetched, so
    a progress display can show a byte total and an ETA when there is one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.done = 0
        self.failed = 0
        self.bytes = 0
        self.expected_bytes = 0
        """Declared sizes (Content-Length) of the bodies started."""
        self.declared = 0
        """Items whose size was declared when their body started."""

    def add_bytes(self, count: int) -> None:
        with self._lock:
            self.bytes += count

    def expect_bytes(self, count: int) -> None:
        with self._lock:
            self.expected_bytes += count
            self.declared += 1

    def item_done(self, *, failed: bool) -> None:
        with self._lock:
            self.done += 1
            self.failed += failed
