"""Shared fixtures: local fault-injecting HTTP servers (see tests/server.py)."""

from __future__ import annotations

import ipaddress
import signal
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.server import TestServer

_getaddrinfo = socket.getaddrinfo


def _loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
    """Tests talk to 127.0.0.0/8 (and ::1) only: any other name or address fails loudly
    here instead of reaching a resolver or the network."""
    name = host.decode() if isinstance(host, bytes) else str(host)
    try:
        allowed = ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        allowed = name == "localhost"
    if not allowed:
        raise OSError(f"tests may not resolve or contact {name!r} (loopback only)")
    return _getaddrinfo(host, *args, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    """A suite started as a background job of a non-interactive shell inherits SIGINT
    ignored, and would pass that on to every fetcher it starts: the Ctrl-C tests need it
    live, as it is on a terminal."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _loopback_only)


@pytest.fixture
def http_server() -> Iterator[TestServer]:
    """A fresh server per test, so request counters and flaky state start at zero."""
    with TestServer() as server:
        yield server


@pytest.fixture(scope="session")
def shared_server() -> Iterator[TestServer]:
    """One server for the whole run; cheaper, but its counters are shared, so don't read them."""
    with TestServer() as server:
        yield server
