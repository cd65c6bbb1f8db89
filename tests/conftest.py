"""Shared fixtures: local fault-injecting HTTP servers (see tests/server.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server import TestServer


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
