"""Checks that the fault-injecting server really produces the faults other tests rely on."""

from __future__ import annotations

import hashlib
import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate
from urllib.parse import quote

import pytest
import requests

from tests.server import (
    FILE_LAST_MODIFIED,
    TestServer,
    body_for,
    file_body,
    file_etag,
    stream_sha256,
)


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


def test_file_serves_validators_ranges_and_416(http_server: TestServer) -> None:
    """Resume logic needs exact 206/Content-Range/416 answers, like a real static server."""
    url = http_server.url("/file/f?size=1000")
    body, etag = file_body("f", 1000), file_etag("f", 1000)
    with requests.Session() as session:
        full = session.get(url, timeout=5)
        assert (full.status_code, full.content) == (200, body)
        assert full.headers["ETag"] == etag
        assert full.headers["Last-Modified"] == FILE_LAST_MODIFIED
        assert full.headers["Accept-Ranges"] == "bytes"
        part = session.get(url, headers={"Range": "bytes=100-199"}, timeout=5)
        assert (part.status_code, part.content) == (206, body[100:200])
        assert part.headers["Content-Range"] == "bytes 100-199/1000"
        assert part.headers["Content-Length"] == "100"
        tail = session.get(url, headers={"Range": "bytes=900-"}, timeout=5)
        assert (tail.status_code, tail.content) == (206, body[900:])
        assert tail.headers["Content-Range"] == "bytes 900-999/1000"
        beyond = session.get(url, headers={"Range": "bytes=1000-"}, timeout=5)
        assert beyond.status_code == 416
        assert beyond.headers["Content-Range"] == "bytes */1000"
        head = session.head(url, timeout=5)
        assert (head.headers["Content-Length"], head.headers["ETag"], head.content) == (
            "1000",
            etag,
            b"",
        )
        plain = session.get(url + "&ranges=0", headers={"Range": "bytes=100-"}, timeout=5)
        assert (plain.status_code, plain.content) == (200, body)
        assert "Accept-Ranges" not in plain.headers
    log = http_server.file_log("f")
    assert [e["status"] for e in log] == [200, 206, 206, 416, 200, 200]
    assert [e["bytes_sent"] for e in log] == [1000, 100, 100, 0, 0, 1000]
    assert log[1]["range"] == "bytes=100-199"
    assert log[0] == {
        "range": None,
        "if_range": None,
        "if_none_match": None,
        "if_modified_since": None,
        "status": 200,
        "bytes_sent": 1000,
    }


def test_file_if_range_mismatch_sends_the_whole_body(shared_server: TestServer) -> None:
    """RFC 9110: a stale If-Range must yield 200 + full body, never a mismatched 206."""
    url, body = shared_server.url("/file/ir?size=500"), file_body("ir", 500)
    for if_range, status in [
        ('"stale"', 200),
        (file_etag("ir", 500), 206),
        (FILE_LAST_MODIFIED, 206),
        ("Thu, 22 Oct 2015 07:28:00 GMT", 200),
    ]:
        headers = {"Range": "bytes=200-", "If-Range": if_range}
        with requests.get(url, headers=headers, timeout=5) as resp:
            assert resp.status_code == status, if_range
            assert resp.content == (body if status == 200 else body[200:])
    weak = {"Range": "bytes=200-", "If-Range": 'W/"w"'}
    with requests.get(url + "&etag=W/w", headers=weak, timeout=5) as resp:
        assert resp.status_code == 200  # weak validators never satisfy If-Range


def test_file_conditional_get_gives_304(shared_server: TestServer) -> None:
    """Revalidation must be observable: 304 via If-None-Match or a recent If-Modified-Since."""
    url, etag = shared_server.url("/file/c?size=300"), file_etag("c", 300)
    later, earlier = "Thu, 22 Oct 2015 00:00:00 GMT", "Tue, 20 Oct 2015 00:00:00 GMT"
    cases: list[tuple[dict[str, str], int]] = [
        ({"If-None-Match": etag}, 304),
        ({"If-None-Match": f'"x", W/{etag}'}, 304),
        ({"If-None-Match": '"other"'}, 200),
        ({"If-Modified-Since": FILE_LAST_MODIFIED}, 304),
        ({"If-Modified-Since": later}, 304),
        ({"If-Modified-Since": earlier}, 200),
        ({"If-None-Match": '"other"', "If-Modified-Since": later}, 200),  # INM wins
    ]
    for headers, status in cases:
        with requests.get(url, headers=headers, timeout=5) as resp:
            assert resp.status_code == status, headers
            assert resp.headers["ETag"] == etag
            assert resp.content == (b"" if status == 304 else file_body("c", 300))
    mtime = shared_server.url("/file/c?size=300&mtime=86400&etag=none")
    with requests.get(mtime, headers={"If-None-Match": etag}, timeout=5) as resp:
        assert resp.status_code == 200
        assert "ETag" not in resp.headers
        assert resp.headers["Last-Modified"] == formatdate(86400, usegmt=True)
    no_lm = shared_server.url("/file/c?size=300&lm=none")
    with requests.get(no_lm, headers={"If-Modified-Since": later}, timeout=5) as resp:
        assert resp.status_code == 200
        assert "Last-Modified" not in resp.headers
    with requests.get(url + "&lm=x&mtime=1", timeout=5) as resp:
        assert resp.status_code == 400


def _broken_read(session: requests.Session, url: str, headers: dict[str, str]) -> bytes:
    """Read until the server's hang-up; the error proves the body was cut, not short."""
    got = bytearray()
    with session.get(url, headers=headers, stream=True, timeout=5) as resp:
        assert resp.status_code in (200, 206)
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            for chunk in resp.iter_content(100):
                got += chunk
    return bytes(got)


def test_file_cut_breaks_the_first_bodies_then_serves_whole(http_server: TestServer) -> None:
    """Resume tests need a body broken at a known offset, then a server that answers ranges."""
    url, body = http_server.url("/file/cut?size=1000&cut=600&cut_times=2"), file_body("cut", 1000)
    with requests.Session() as session:
        assert _broken_read(session, url, {}) == body[:600]
        assert _broken_read(session, url, {"Range": "bytes=100-"}) == body[100:600]
        with session.get(url, headers={"Range": "bytes=600-"}, timeout=5) as resp:
            assert (resp.status_code, resp.content) == (206, body[600:])
        with session.get(url, timeout=5) as resp:
            assert (resp.status_code, resp.content) == (200, body)
    log = http_server.file_log("cut")
    assert [(e["status"], e["bytes_sent"]) for e in log] == [
        (200, 600),
        (206, 500),
        (206, 400),
        (200, 1000),
    ]
    http_server.reset()
    assert http_server.file_log("cut") == []
    with requests.Session() as session:
        assert _broken_read(session, url, {}) == body[:600]  # reset re-arms the cut


def test_file_etag_after_changes_the_file_between_attempts(http_server: TestServer) -> None:
    """A resumed download must notice the file changed: new ETag, new bytes, later date."""
    url = http_server.url("/file/chg?size=800&etag=one&etag_after=two")
    with requests.get(url, timeout=5) as first:
        assert first.headers["ETag"] == '"one"'
        assert first.content == file_body("chg", 800)
    resume = {"Range": "bytes=400-", "If-Range": '"one"'}
    with requests.get(url, headers=resume, timeout=5) as second:
        assert second.status_code == 200
        assert second.headers["ETag"] == '"two"'
        assert second.headers["Last-Modified"] == "Thu, 22 Oct 2015 07:28:00 GMT"
        assert second.content == file_body("chg", 800, version=2) != file_body("chg", 800)
    entry = http_server.file_log("chg")[1]
    assert (entry["if_range"], entry["status"], entry["bytes_sent"]) == ('"one"', 200, 800)


def test_mutable_resource_follows_set_mutable(http_server: TestServer) -> None:
    """Tests change content and validators at runtime to drive revalidation paths."""
    url = http_server.url("/mutable/m")
    with requests.Session() as session:
        assert session.get(url, timeout=5).status_code == 404
        stamp = "Mon, 01 Jan 2024 00:00:00 GMT"
        http_server.set_mutable("m", b"v1", etag="a", last_modified=stamp)
        first = session.get(url, timeout=5)
        assert (first.status_code, first.content, first.headers["ETag"]) == (200, b"v1", '"a"')
        assert first.headers["Last-Modified"] == stamp
        assert "Accept-Ranges" not in first.headers
        assert session.get(url, headers={"If-None-Match": '"a"'}, timeout=5).status_code == 304
        assert session.get(url, headers={"If-Modified-Since": stamp}, timeout=5).status_code == 304
        http_server.set_mutable("m", b"v2", etag='"b"')
        changed = session.get(url, headers={"If-None-Match": '"a"'}, timeout=5)
        assert (changed.status_code, changed.content) == (200, b"v2")
        assert "Last-Modified" not in changed.headers
        http_server.reset()
        assert session.get(url, timeout=5).content == b"v2"  # content survives reset
    assert [e["status"] for e in http_server.file_log("m")] == [200]


def test_count_hits_and_slow_routes_count_as_concurrent(http_server: TestServer) -> None:
    """hits() proves an item was not fetched twice; sleeping handlers are still in flight."""
    url = http_server.url("/count/k?size=50")
    assert http_server.hits("k") == 0
    with requests.get(url, timeout=5) as resp:
        assert resp.content == body_for("k", 50)
    requests.head(url, timeout=5)
    requests.get(url, timeout=5)
    assert (http_server.hits("k"), http_server.hits("other")) == (2, 0)
    http_server.reset()
    assert http_server.hits("k") == 0
    paths = ["/count/p?delay=0.4", "/bytes/p?delay=0.4", "/slow?delay=0.4"]
    with ThreadPoolExecutor(len(paths)) as pool:
        codes = pool.map(lambda p: requests.get(http_server.url(p), timeout=5).status_code, paths)
        assert list(codes) == [200] * len(paths)
    assert http_server.max_concurrent == len(paths)
    assert http_server.hits("p") == 1


def test_absolute_uri_is_answered_as_a_proxy(http_server: TestServer) -> None:
    """Proves a client routed through the proxy; the target (a closed local port) is unused."""
    target = "http://127.0.0.1:9/far/away?q=1"
    with requests.get(target, proxies={"http": http_server.base}, timeout=5) as resp:
        assert (resp.status_code, resp.content) == (200, b"via-proxy " + target.encode())
    assert http_server.requests_seen[-1][:2] == ("GET", target)
    assert http_server.count("http://127.0.0.1:9/") == 1


def test_basic_auth_route(shared_server: TestServer) -> None:
    """401 + challenge without the right credentials, 200 with them."""
    url = shared_server.url("/auth?user=u&password=p%E9")  # latin-1, as requests encodes str
    with requests.get(url, timeout=5) as resp:
        assert resp.status_code == 401
        assert resp.headers["WWW-Authenticate"] == 'Basic realm="t"'
    with requests.get(url, auth=("u", "wrong"), timeout=5) as resp:
        assert resp.status_code == 401
    with requests.get(url, auth=("u", "pé"), timeout=5) as resp:
        assert (resp.status_code, resp.content) == (200, b"authorized")
    with requests.get(url, headers={"Authorization": "Basic !!!"}, timeout=5) as resp:
        assert resp.status_code == 401
