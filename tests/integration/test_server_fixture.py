"""Checks that the fault-injecting server really produces the faults other tests rely on."""

from __future__ import annotations

import hashlib
import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
import requests

from tests.server import TestServer, body_for, stream_sha256


def test_bytes_body_is_deterministic_and_sized(shared_server: TestServer) -> None:
    with requests.get(shared_server.url("/bytes/alpha?size=10000"), timeout=5) as resp:
        assert resp.status_code == 200
        assert resp.headers["Content-Length"] == "10000"
        assert resp.content == body_for("alpha", 10000)
    assert body_for("alpha", 10000) != body_for("beta", 10000)
    with requests.head(shared_server.url("/bytes/alpha?size=10000"), timeout=5) as resp:
        assert resp.headers["Content-Length"] == "10000"
        assert resp.content == b""


def test_stream_matches_stream_sha256(shared_server: TestServer) -> None:
    size = 3 * (1 << 20) + 123
    digest = hashlib.sha256()
    with requests.get(shared_server.url(f"/stream?size={size}"), stream=True, timeout=5) as resp:
        for chunk in resp.iter_content(64 * 1024):
            digest.update(chunk)
    assert digest.hexdigest() == stream_sha256(size)


@pytest.mark.parametrize("path", ["/truncate?size=5000&send=100", "/chunked-truncate?send=100"])
def test_truncated_bodies_raise(shared_server: TestServer, path: str) -> None:
    with requests.get(shared_server.url(path), stream=True, timeout=5) as resp:
        assert resp.status_code == 200
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            for _ in resp.iter_content(1024):
                pass


def test_flaky_fails_then_succeeds_and_reset_rearms(http_server: TestServer) -> None:
    url = http_server.url("/flaky/k1?fail=2&code=503&retry_after=1")
    with requests.Session() as session:
        codes = [session.get(url, timeout=5) for _ in range(3)]
        assert [r.status_code for r in codes] == [503, 503, 200]
        assert codes[0].headers["Retry-After"] == "1"
        assert codes[2].content == body_for("k1", 1000)
        assert http_server.count("/flaky/k1") == 3
        http_server.reset()
        assert http_server.count("/flaky/") == 0
        assert session.get(url, timeout=5).status_code == 503


def test_redirects(http_server: TestServer) -> None:
    with requests.get(http_server.url("/redirect-chain/3"), timeout=5) as resp:
        assert resp.content == b"end"
        assert [r.status_code for r in resp.history] == [302, 302, 302]
    assert http_server.count("/redirect-chain/") == 4
    target = quote(http_server.url("/status/201"), safe="")
    with requests.get(http_server.url(f"/redirect?to={target}&code=307"), timeout=5) as resp:
        assert resp.status_code == 201
        assert resp.history[0].status_code == 307
    with pytest.raises(requests.exceptions.TooManyRedirects):
        requests.get(http_server.url("/redirect-loop"), timeout=5)


def test_headers_cd_status_and_trickle(shared_server: TestServer) -> None:
    hostile = 'attachment; filename="../../etc/passwd"'
    with requests.get(shared_server.url("/cd"), params={"name": hostile}, timeout=5) as resp:
        assert resp.headers["Content-Disposition"] == hostile
        assert resp.content == b"cd-body"
    sent = {"X-Probe": "yes"}
    with requests.get(shared_server.url("/headers"), headers=sent, timeout=5) as resp:
        assert json.loads(resp.content)["X-Probe"] == "yes"
    with requests.get(shared_server.url("/status/418"), timeout=5) as resp:
        assert resp.status_code == 418
    with requests.get(shared_server.url("/nope"), timeout=5) as resp:
        assert resp.status_code == 404
    with requests.get(shared_server.url("/trickle?size=5&interval=0.01"), timeout=5) as resp:
        assert resp.content == body_for("trickle", 5)


def test_keep_alive_reuses_the_connection(shared_server: TestServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", int(shared_server.base.rsplit(":", 1)[1]))
    try:
        for path in ("/bytes/a?size=10", "/nope", "/status/500", "/bytes/b?size=10"):
            conn.request("GET", path)
            sock = conn.sock
            resp = conn.getresponse()
            resp.read()
            assert not resp.will_close
            assert conn.sock is sock
    finally:
        conn.close()


def test_max_concurrent_counts_parallel_requests(http_server: TestServer) -> None:
    url = http_server.url("/slow?delay=0.5")
    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda _: requests.get(url, timeout=5).status_code, range(4)))
    assert codes == [200] * 4
    assert http_server.max_concurrent == 4


def test_stop_is_prompt_with_request_in_flight(http_server: TestServer) -> None:
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(requests.get, http_server.url("/slow?delay=30"), timeout=60)
        deadline = time.monotonic() + 5
        while http_server.count("/slow") == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        http_server.stop()
        assert time.monotonic() - started < 2
        with pytest.raises(requests.exceptions.ConnectionError):
            future.result(timeout=5)
