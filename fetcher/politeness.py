"""Politeness: at most `per_host` requests to one host at a time, at most `rate` request
starts per second overall, and a host that answers 429 or 503 is slowed down for a while
(its request starts spaced out, doubling on each complaint, halving on each success)
without slowing the other hosts."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from fetcher.errors import Interrupted

log = logging.getLogger(__name__)

MIN_DELAY_S = 0.25
MAX_DELAY_S = 30.0
_POLL_S = 0.1


class _Host:
    """One host's state; its condition shares the gate's lock, so a release wakes exactly
    one waiter of that host instead of every waiting thread."""

    def __init__(self, lock: threading.Lock) -> None:
        self.active = 0
        self.waiting = 0
        self.delay_s = 0.0
        self.next_start = 0.0
        self.turn = threading.Condition(lock)


class HostGate:
    """Shared by all workers; host entries exist only while busy or slowed, so a list of
    millions of distinct hosts does not grow it."""

    def __init__(
        self, per_host: int, rate: float | None, stop: threading.Event, max_pause_s: float
    ) -> None:
        self._per_host = per_host
        self._max_pause_s = min(max_pause_s, MAX_DELAY_S)
        self._interval = 1.0 / rate if rate else 0.0
        self._stop = stop
        self._hosts: dict[str, _Host] = {}
        self._lock = threading.Lock()
        self._next_global = 0.0

    def _entry(self, host: str) -> _Host:
        entry = self._hosts.get(host)
        if entry is None:
            entry = self._hosts[host] = _Host(self._lock)
        return entry

    @contextmanager
    def slot(self, host: str) -> Iterator[None]:
        """Hold one of the host's connections for the length of the block."""
        with self._lock:
            entry = self._entry(host)
            entry.waiting += 1
            try:
                while entry.active >= self._per_host:
                    if self._stop.is_set():
                        raise Interrupted
                    entry.turn.wait(_POLL_S)
            finally:
                entry.waiting -= 1
            entry.active += 1
            now = time.monotonic()
            rate_turn = max(now, self._next_global)
            self._next_global = rate_turn + self._interval
            start = max(rate_turn, entry.next_start)
            entry.next_start = start + entry.delay_s
        try:
            if start > now and self._stop.wait(start - time.monotonic()):
                raise Interrupted
            yield
        finally:
            with self._lock:
                entry.active -= 1
                if entry.waiting:
                    entry.turn.notify()
                elif entry.active == 0 and entry.delay_s == 0.0:
                    self._hosts.pop(host, None)

    def slow_down(self, host: str, retry_after: float | None) -> None:
        """The host said it is overloaded (429/503): space out its next request starts."""
        with self._lock:
            entry = self._entry(host)
            entry.delay_s = min(max(entry.delay_s * 2, MIN_DELAY_S), self._max_pause_s)
            pause = entry.delay_s if retry_after is None else retry_after
            pause = min(pause, self._max_pause_s)
            entry.next_start = max(entry.next_start, time.monotonic() + pause)
        log.info(
            "%s is overloaded: its next request in %.1f s, then one every %.2f s",
            host, pause, entry.delay_s,
        )  # fmt: skip

    def succeeded(self, host: str) -> None:
        """A success lets a slowed host recover gradually."""
        with self._lock:
            entry = self._hosts.get(host)
            if entry is not None and entry.delay_s:
                entry.delay_s = entry.delay_s / 2 if entry.delay_s > MIN_DELAY_S else 0.0
