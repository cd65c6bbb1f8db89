"""Deadlines that hold while a response's headers trickle in: a socket timeout bounds each
read, not a whole response sent a byte at a time, so a timer cuts the connection instead.
The urllib3 connection classes here let the timer find the connection a request is using."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

import urllib3

_waiting = threading.local()
"""The `Watch` of the request the current thread is making, if it has a deadline."""


class Watch:
    """Cuts the connection of one request when its item's deadline passes: a socket timeout
    bounds each read, not a response whose headers trickle in a byte at a time."""

    def __init__(self, seconds: float) -> None:
        self._conn: Any = None
        self._cut = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Watch:
        _waiting.watch = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        _waiting.watch = None

    @property
    def expired(self) -> bool:
        """The connection was cut: whatever the request returned is not to be trusted."""
        return self._cut

    def attach(self, conn: Any) -> None:
        with self._lock:
            self._conn = conn
            if self._cut:
                _shutdown(conn)

    def _expire(self) -> None:
        with self._lock:
            self._cut = True
            if self._conn is not None:
                _shutdown(self._conn)


def _shutdown(conn: Any) -> None:
    sock = getattr(conn, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class _Watched:
    """Mixin for urllib3 connections: while a response is awaited, the thread's `Watch`
    (if any) holds the connection so it can cut it."""

    def getresponse(self) -> Any:
        watch = getattr(_waiting, "watch", None)
        if watch is not None:
            watch.attach(self)
        return super().getresponse()  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, urllib3.connection.HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, urllib3.connection.HTTPSConnection):
    pass


class WatchedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection
