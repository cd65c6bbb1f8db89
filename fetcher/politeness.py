"""Politeness: at most `per_host` requests to one host at a time, at most `rate` request
starts per second overall, and a host that answers 429 or 503 is slowed down for a while
(its request starts spaced out, doubling on each complaint, halving on each success)
without slowing the other hosts."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fetcher.errors import Interrupted

MIN_DELAY_S = 0.25
MAX_DELAY_S = 30.0
_POLL_S = 0.1


@dataclass
class _Host:
    active: int = 0
    delay_s: float = 0.0
    next_start: float = 0.0


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
        self._cond = threading.Condition()
        self._next_global = 0.0

    @contextmanager
    def slot(self, host: str) -> Iterator[None]:
        """Hold one of the host's connections for the length of the block."""
        with self._cond:
            while True:
                entry = self._hosts.setdefault(host, _Host())
                if entry.active < self._per_host:
                    entry.active += 1
                    break
                if self._stop.is_set():
                    raise Interrupted
                self._cond.wait(_POLL_S)
            now = time.monotonic()
            rate_turn = max(now, self._next_global)
            self._next_global = rate_turn + self._interval
            start = max(rate_turn, entry.next_start)
            entry.next_start = start + entry.delay_s
        try:
            if self._stop.wait(max(0.0, start - time.monotonic())):
                raise Interrupted
            yield
        finally:
            with self._cond:
                entry.active -= 1
                if entry.active == 0 and entry.delay_s == 0.0:
                    self._hosts.pop(host, None)
                self._cond.notify_all()

    def slow_down(self, host: str, retry_after: float | None) -> None:
        """The host said it is overloaded (429/503): space out its next request starts."""
        with self._cond:
            entry = self._hosts.setdefault(host, _Host())
            entry.delay_s = min(max(entry.delay_s * 2, MIN_DELAY_S), self._max_pause_s)
            pause = entry.delay_s if retry_after is None else retry_after
            pause = min(pause, self._max_pause_s)
            entry.next_start = max(entry.next_start, time.monotonic() + pause)

    def succeeded(self, host: str) -> None:
        """A success lets a slowed host recover gradually."""
        with self._cond:
            entry = self._hosts.get(host)
            if entry is not None and entry.delay_s:
                entry.delay_s = entry.delay_s / 2 if entry.delay_s > MIN_DELAY_S else 0.0
