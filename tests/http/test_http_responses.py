"""HTTP behaviour through the public API (`fetcher.fetch_all`), with `responses` standing in
for every server: statuses, retries, transport errors, redirects, names, headers, limits.

`responses` patches `HTTPAdapter.send` process-wide, so the pool's worker threads see the
mocks too; a request nothing matches fails as a connection error, never reaches a network.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from responses.registries import OrderedRegistry

from fetcher import Layout, Result, RetryPolicy, Status, fetch_all, fetch_iter
from fetcher.temps import STATE_DIR, TEMP_PREFIX, TEMP_SUFFIX

NO_WAIT = RetryPolicy(retries=2, backoff_s=0)


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def ordered_mock() -> Iterator[responses.RequestsMock]:
    """Responses served strictly in registration order (one item's attempts, in sequence)."""
    with responses.RequestsMock(
        assert_all_requests_are_fired=True, registry=OrderedRegistry
    ) as rsps:
        yield rsps


def fetch(urls: list[str], out: Path, **options: Any) -> list[Result]:
    options.setdefault("workers", 4)
    options.setdefault("retry", NO_WAIT)
    return fetch_all(urls, output_dir=out, **options)


def outputs(root: Path) -> list[str]:
    """Every file below the output dir except the state folder, as sorted relative paths."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and STATE_DIR not in p.relative_to(root).parts
    )


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}")]


def calls_to(rsps: responses.RequestsMock, url: str) -> list[requests.PreparedRequest]:
    return [c.request for c in rsps.calls if c.request.url == url]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- success


def test_ok_body_is_written_with_right_sha256(mock: responses.RequestsMock, tmp_path: Path) -> None:
    body = bytes(range(256)) * 40
    mock.get("http://a.test/data/file.bin", body=body)
    (result,) = fetch(["http://a.test/data/file.bin"], tmp_path)
    assert result.status is Status.OK
    assert result.error is None
    assert result.path == "file.bin"
    assert (tmp_path / "file.bin").read_bytes() == body
    assert result.bytes == len(body)
    assert result.sha256 == sha256(body)
    assert result.http_status == 200
    assert result.attempts == 1
    assert outputs(tmp_path) == ["file.bin"]


def test_empty_body_gives_empty_file(mock: responses.RequestsMock, tmp_path: Path) -> None:
    mock.get("http://a.test/empty.txt", body=b"")
    (result,) = fetch(["http://a.test/empty.txt"], tmp_path)
    assert result.status is Status.OK
    assert (result.bytes, result.sha256) == (0, sha256(b""))
    assert (tmp_path / "empty.txt").read_bytes() == b""


def test_body_saved_as_served_even_with_content_encoding(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    # A .gz served with `Content-Encoding: gzip` (a common server misconfiguration) must be
    # stored as the gzip bytes that were sent, not silently unpacked.
    packed = gzip.compress(b"plain text " * 100)
    mock.get(
        "http://a.test/data.gz",
        body=packed,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/gzip"},
    )
    (result,) = fetch(["http://a.test/data.gz"], tmp_path)
    assert result.status is Status.OK
    assert (tmp_path / "data.gz").read_bytes() == packed
    assert result.sha256 == sha256(packed)
    assert mock.calls[0].request.headers["Accept-Encoding"] == "identity"


# --------------------------------------------------------------------------- statuses and retries


def test_404_fails_at_once_without_retry(mock: responses.RequestsMock, tmp_path: Path) -> None:
    mock.get("http://a.test/missing", status=404)
    (result,) = fetch(["http://a.test/missing"], tmp_path)
    assert result.status is Status.FAILED
    assert result.error is not None
    assert result.error.type == "http_status"
    assert "404" in result.error.message
    assert result.http_status == 404
    assert result.attempts == 1
    assert len(mock.calls) == 1
    assert result.path is None
    assert outputs(tmp_path) == []


@pytest.mark.parametrize("status", [400, 401, 403, 410, 451])
def test_client_errors_are_not_retried(
    mock: responses.RequestsMock, tmp_path: Path, status: int
) -> None:
    mock.get("http://a.test/x", status=status)
    (result,) = fetch(["http://a.test/x"], tmp_path)
    assert (result.status, result.http_status, result.attempts) == (Status.FAILED, status, 1)
    assert len(mock.calls) == 1


def test_503_twice_then_200_succeeds_on_third_attempt(
    ordered_mock: responses.RequestsMock, tmp_path: Path
) -> None:
    ordered_mock.get("http://a.test/flaky.txt", status=503)
    ordered_mock.get("http://a.test/flaky.txt", status=503)
    ordered_mock.get("http://a.test/flaky.txt", body=b"finally")
    (result,) = fetch(["http://a.test/flaky.txt"], tmp_path, retry=RetryPolicy(2, backoff_s=0))
    assert result.status is Status.OK
    assert result.attempts == 3
    assert result.http_status == 200
    assert (tmp_path / "flaky.txt").read_bytes() == b"finally"
    assert temp_files(tmp_path) == []


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(
    ordered_mock: responses.RequestsMock, tmp_path: Path, status: int
) -> None:
    ordered_mock.get("http://a.test/x", status=status)
    ordered_mock.get("http://a.test/x", body=b"ok")
    (result,) = fetch(["http://a.test/x"], tmp_path, retry=RetryPolicy(1, backoff_s=0))
    assert (result.status, result.attempts) == (Status.OK, 2)


def test_500_every_time_fails_after_all_attempts(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    mock.get("http://a.test/broken", status=500)
    (result,) = fetch(["http://a.test/broken"], tmp_path, retry=RetryPolicy(2, backoff_s=0))
    assert result.status is Status.FAILED
    assert result.attempts == 3
    assert len(mock.calls) == 3
    assert result.http_status == 500
    assert result.error is not None
    assert result.error.type == "http_status"
    assert "after 3 attempts" in result.error.message
    assert outputs(tmp_path) == []
    assert temp_files(tmp_path) == []


def test_zero_retries_means_one_attempt(mock: responses.RequestsMock, tmp_path: Path) -> None:
    mock.get("http://a.test/broken", status=503)
    (result,) = fetch(["http://a.test/broken"], tmp_path, retry=RetryPolicy(0, backoff_s=0))
    assert result.attempts == 1
    assert len(mock.calls) == 1
    assert result.error is not None
    assert "attempts" not in result.error.message


def test_retry_after_is_honoured_up_to_max_wait(
    ordered_mock: responses.RequestsMock, tmp_path: Path
) -> None:
    ordered_mock.get("http://a.test/busy", status=429, headers={"Retry-After": "3600"})
    ordered_mock.get("http://a.test/busy", body=b"done")
    policy = RetryPolicy(retries=1, backoff_s=0, max_wait_s=0.2)
    started = time.monotonic()
    (result,) = fetch(["http://a.test/busy"], tmp_path, retry=policy)
    took = time.monotonic() - started
    assert result.status is Status.OK
    assert result.attempts == 2
    assert 0.18 <= took < 5  # waited for Retry-After, capped at max_wait_s instead of an hour


# --------------------------------------------------------------------------- transport errors


def test_connection_error_is_reported_and_retried(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    mock.get("http://a.test/x", body=requests.exceptions.ConnectionError("connection refused"))
    (result,) = fetch(["http://a.test/x"], tmp_path, retry=RetryPolicy(2, backoff_s=0))
    assert result.status is Status.FAILED
    assert result.error is not None
    assert result.error.type == "connection"
    assert "connection refused" in result.error.message
    assert result.attempts == 3
    assert result.http_status is None
    assert temp_files(tmp_path) == []


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ReadTimeout("read timed out"),
        requests.exceptions.ConnectTimeout("connect timed out"),
    ],
    ids=["read", "connect"],
)
def test_timeout_is_reported_and_retried(
    mock: responses.RequestsMock, tmp_path: Path, exc: Exception
) -> None:
    mock.get("http://a.test/slow", body=exc)
    (result,) = fetch(["http://a.test/slow"], tmp_path, retry=RetryPolicy(2, backoff_s=0))
    assert result.status is Status.FAILED
    assert result.error is not None
    assert result.error.type == "timeout"
    assert result.attempts == 3
    assert len(mock.calls) == 3


def test_timeout_then_success(ordered_mock: responses.RequestsMock, tmp_path: Path) -> None:
    ordered_mock.get("http://a.test/slow", body=requests.exceptions.ReadTimeout("slow"))
    ordered_mock.get("http://a.test/slow", body=b"late")
    (result,) = fetch(["http://a.test/slow"], tmp_path, retry=RetryPolicy(1, backoff_s=0))
    assert (result.status, result.attempts) == (Status.OK, 2)
    assert (tmp_path / "slow").read_bytes() == b"late"


def test_tls_error_is_not_retried(mock: responses.RequestsMock, tmp_path: Path) -> None:
    mock.get("https://a.test/x", body=requests.exceptions.SSLError("certificate verify failed"))
    (result,) = fetch(["https://a.test/x"], tmp_path, retry=RetryPolicy(2, backoff_s=0))
    assert result.error is not None
    assert result.error.type == "tls"
    assert result.attempts == 1


def test_unmocked_host_fails_as_item_not_exception(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    (result,) = fetch(["http://nowhere.test/x"], tmp_path, retry=RetryPolicy(0))
    assert result.status is Status.FAILED
    assert result.error is not None and result.error.type == "connection"


# --------------------------------------------------------------------------- redirects


def test_redirect_is_followed_and_flat_name_comes_from_original_url(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    mock.get("http://a.test/orig.txt", status=301, headers={"Location": "/final/other.bin"})
    mock.get("http://a.test/final/other.bin", body=b"moved body")
    (result,) = fetch(["http://a.test/orig.txt"], tmp_path)
    assert result.status is Status.OK
    assert result.path == "orig.txt"
    assert (tmp_path / "orig.txt").read_bytes() == b"moved body"
    assert result.http_status == 200
    assert result.sha256 == sha256(b"moved body")
    assert [c.request.url for c in mock.calls] == [
        "http://a.test/orig.txt",
        "http://a.test/final/other.bin",
    ]


def test_redirect_in_mirror_layout_uses_original_host_and_path(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    mock.get("http://a.test/d/orig.txt", status=302, headers={"Location": "http://b.test/z"})
    mock.get("http://b.test/z", body=b"z")
    (result,) = fetch(["http://a.test/d/orig.txt"], tmp_path, layout=Layout.MIRROR)
    assert result.path == "a.test/d/orig.txt"
    assert outputs(tmp_path) == ["a.test/d/orig.txt"]


def test_redirect_to_file_url_fails_and_never_reads_local_files(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"top secret")
    out = tmp_path / "out"
    mock.get("http://a.test/trap", status=302, headers={"Location": secret.as_uri()})
    mock.get("http://a.test/trap2", status=301, headers={"Location": "file:///etc/passwd"})
    results = fetch(["http://a.test/trap", "http://a.test/trap2"], out)
    for result in results:
        assert result.status is Status.FAILED
        assert result.path is None
        assert result.error is not None
        assert result.error.type == "invalid_url"
    assert outputs(out) == []
    assert temp_files(out) == []


def test_redirect_loop_fails_as_too_many_redirects(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    mock.get("http://a.test/loop", status=302, headers={"Location": "http://a.test/loop"})
    (result,) = fetch(["http://a.test/loop"], tmp_path, max_redirects=3)
    assert result.status is Status.FAILED
    assert result.error is not None
    assert result.error.type == "too_many_redirects"
    assert result.attempts == 1
    assert len(mock.calls) == 4  # the first request and three redirects


# --------------------------------------------------------------------------- headers

PRIVATE = (("Authorization", "Bearer s3cret"), ("X-Token", "tok-123"))


def test_extra_headers_are_sent(mock: responses.RequestsMock, tmp_path: Path) -> None:
    mock.get("http://a.test/x", body=b"x")
    fetch(["http://a.test/x"], tmp_path, headers=(*PRIVATE, ("Accept", "text/csv")))
    sent = mock.calls[0].request.headers
    assert sent["Authorization"] == "Bearer s3cret"
    assert sent["X-Token"] == "tok-123"
    assert sent["Accept"] == "text/csv"


def test_default_request_headers(mock: responses.RequestsMock, tmp_path: Path) -> None:
    mock.get("http://a.test/x", body=b"x")
    fetch(["http://a.test/x"], tmp_path)
    sent = mock.calls[0].request.headers
    assert sent["Accept-Encoding"] == "identity"
    assert sent["User-Agent"].startswith("fetcher/")
    assert "Cookie" not in sent
    assert "Authorization" not in sent


def test_extra_header_overrides_a_default_whatever_its_case(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    mock.get("http://a.test/x", body=b"x")
    fetch(["http://a.test/x"], tmp_path, headers=(("user-agent", "mine/1.0"),))
    sent = mock.calls[0].request.headers
    assert [v for k, v in sent.items() if k.lower() == "user-agent"] == ["mine/1.0"]


def test_cookie_set_by_a_server_is_sent_back_on_later_requests(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    mock.get("http://a.test/login", body=b"x", headers={"Set-Cookie": "session=abc; Path=/"})
    mock.get("http://a.test/data", body=b"y")
    # One worker: a server's cookies live in the session of the thread that received them.
    fetch(["http://a.test/login", "http://a.test/data"], tmp_path, workers=1)
    assert "Cookie" not in calls_to(mock, "http://a.test/login")[0].headers
    assert calls_to(mock, "http://a.test/data")[0].headers["Cookie"] == "session=abc"


def test_credentials_in_the_url_are_sent_as_basic_auth(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    mock.get("http://user:pa%20ss@a.test/x", body=b"x")  # `responses` matches the URL as sent
    (result,) = fetch(["http://user:pa%20ss@a.test/x"], tmp_path)
    assert result.status is Status.OK
    expected = "Basic " + base64.b64encode(b"user:pa ss").decode()
    assert mock.calls[0].request.headers["Authorization"] == expected


def test_extra_headers_not_sent_after_redirect_to_another_host(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    mock.get("http://a.test/x", status=302, headers={"Location": "http://evil.test/steal"})
    mock.get("http://evil.test/steal", body=b"x")
    (result,) = fetch(["http://a.test/x"], tmp_path, headers=PRIVATE)
    assert result.status is Status.OK
    (first,) = calls_to(mock, "http://a.test/x")
    (second,) = calls_to(mock, "http://evil.test/steal")
    assert first.headers["Authorization"] == "Bearer s3cret"
    assert first.headers["X-Token"] == "tok-123"
    assert "Authorization" not in second.headers
    assert "X-Token" not in second.headers


def test_extra_headers_matched_case_insensitively_when_stripped(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    mock.get("http://a.test/x", status=307, headers={"Location": "http://other.test/y"})
    mock.get("http://other.test/y", body=b"y")
    fetch(["http://a.test/x"], tmp_path, headers=(("x-api-KEY", "k"),))
    (second,) = calls_to(mock, "http://other.test/y")
    assert "X-Api-Key" not in second.headers


def test_extra_headers_not_sent_after_redirect_to_another_port(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    mock.get("http://a.test/x", status=302, headers={"Location": "http://a.test:8081/y"})
    mock.get("http://a.test:8081/y", body=b"y")
    fetch(["http://a.test/x"], tmp_path, headers=PRIVATE)
    (second,) = calls_to(mock, "http://a.test:8081/y")
    assert "Authorization" not in second.headers
    assert "X-Token" not in second.headers


def test_extra_headers_kept_on_same_host_redirect(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    mock.get("http://a.test/x", status=301, headers={"Location": "/elsewhere/y"})
    mock.get("http://a.test/elsewhere/y", body=b"y")
    (result,) = fetch(["http://a.test/x"], tmp_path, headers=PRIVATE)
    assert result.status is Status.OK
    (second,) = calls_to(mock, "http://a.test/elsewhere/y")
    assert second.headers["Authorization"] == "Bearer s3cret"
    assert second.headers["X-Token"] == "tok-123"


def test_extra_headers_not_restored_when_redirect_returns_to_first_host(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    mock.get("http://a.test/x", status=302, headers={"Location": "http://b.test/hop"})
    mock.get("http://b.test/hop", status=302, headers={"Location": "http://a.test/back"})
    mock.get("http://a.test/back", body=b"back")
    fetch(["http://a.test/x"], tmp_path, headers=PRIVATE)
    (hop,) = calls_to(mock, "http://b.test/hop")
    assert "X-Token" not in hop.headers
    assert "Authorization" not in hop.headers


# --------------------------------------------------------------------------- Content-Disposition


def test_content_disposition_name_used_in_flat_layout(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    mock.get(
        "http://a.test/download?id=7",
        body=b"report",
        headers={"Content-Disposition": 'attachment; filename="report-7.pdf"'},
    )
    (result,) = fetch(["http://a.test/download?id=7"], tmp_path)
    assert result.path == "report-7.pdf"
    assert (tmp_path / "report-7.pdf").read_bytes() == b"report"


@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        ('attachment; filename="../../escape.txt"', "escape.txt"),
        ('attachment; filename="/etc/passwd"', "passwd"),
        ('attachment; filename="..\\\\..\\\\win.ini"', "win.ini"),
        ('attachment; filename=".bashrc"', "_bashrc"),
        ('attachment; filename=".fetcher"', "_fetcher"),
        ('attachment; filename="CON"', "_CON"),
        ('attachment; filename="a:b*c?.txt"', "a_b_c_.txt"),
    ],
)
def test_content_disposition_name_never_escapes_output_dir(
    mock: responses.RequestsMock, tmp_path: Path, disposition: str, expected: str
) -> None:
    out = tmp_path / "out"
    mock.get("http://a.test/dl", body=b"payload", headers={"Content-Disposition": disposition})
    (result,) = fetch(["http://a.test/dl"], out)
    assert result.status is Status.OK
    assert result.path == expected
    assert (out / expected).read_bytes() == b"payload"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing beside the out dir
    assert outputs(out) == [expected]


def test_content_disposition_without_name_keeps_url_name(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    mock.get("http://a.test/file.txt", body=b"f", headers={"Content-Disposition": "attachment"})
    (result,) = fetch(["http://a.test/file.txt"], tmp_path)
    assert result.path == "file.txt"


def test_content_disposition_in_indexed_layout_keeps_index_prefix(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    mock.get("http://a.test/a", body=b"a")
    mock.get(
        "http://a.test/b",
        body=b"b",
        headers={"Content-Disposition": 'attachment; filename="named.csv"'},
    )
    results = fetch(["http://a.test/a", "http://a.test/b"], tmp_path, layout=Layout.INDEXED)
    assert [r.path for r in results] == ["000000-a", "000001-named.csv"]


def test_content_disposition_ignored_in_mirror_layout(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    mock.get(
        "http://a.test/d/real.txt",
        body=b"r",
        headers={"Content-Disposition": 'attachment; filename="other.txt"'},
    )
    (result,) = fetch(["http://a.test/d/real.txt"], tmp_path, layout=Layout.MIRROR)
    assert result.path == "a.test/d/real.txt"


def test_same_disposition_name_gets_counter_by_input_order(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    def slow_first(delay: float, body: bytes) -> Callable[[Any], tuple[int, dict[str, str], bytes]]:
        def callback(_request: Any) -> tuple[int, dict[str, str], bytes]:
            time.sleep(delay)
            return 200, {"Content-Disposition": 'attachment; filename="same.txt"'}, body

        return callback

    mock.add_callback("GET", "http://a.test/1", callback=slow_first(0.2, b"first"))
    mock.add_callback("GET", "http://a.test/2", callback=slow_first(0.0, b"second"))
    results = fetch(["http://a.test/1", "http://a.test/2"], tmp_path, workers=2)
    assert [r.path for r in results] == ["same.txt", "same.1.txt"]
    assert (tmp_path / "same.txt").read_bytes() == b"first"
    assert (tmp_path / "same.1.txt").read_bytes() == b"second"


# --------------------------------------------------------------------------- order


def test_results_in_input_order_one_per_input_with_mixed_failures(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    rng = random.Random(7)
    expected: list[tuple[Status, str | None]] = []
    urls: list[str] = []
    for i in range(60):
        url = f"http://a.test/item{i}.txt"
        delay = rng.choice((0.0, 0.0, 0.005, 0.02))
        kind = i % 5
        if kind == 0:
            status, body = 404, b""
            expected.append((Status.FAILED, "http_status"))
        elif kind == 1:
            status, body = 500, b""
            expected.append((Status.FAILED, "http_status"))
        else:
            status, body = 200, f"body {i}".encode()
            expected.append((Status.OK, None))

        def callback(
            _request: Any, delay: float = delay, status: int = status, body: bytes = body
        ) -> tuple[int, dict[str, str], bytes]:
            time.sleep(delay)
            return status, {}, body

        mock.add_callback("GET", url, callback=callback)
        urls.append(url)
    urls.insert(30, "ftp://a.test/unsupported")
    expected.insert(30, (Status.FAILED, "unsupported_scheme"))
    urls.insert(10, "http://bad host/x")
    expected.insert(10, (Status.FAILED, "invalid_source"))

    results = fetch(urls, tmp_path, workers=8, chunksize=1, retry=RetryPolicy(1, backoff_s=0))
    assert len(results) == len(urls)
    assert [r.index for r in results] == list(range(len(urls)))
    assert [r.source for r in results] == urls
    assert [(r.status, r.error.type if r.error else None) for r in results] == expected
    for result in results:
        if result.status is Status.OK:
            assert result.path is not None
            number = result.source.rsplit("item", 1)[1].removesuffix(".txt")
            assert (tmp_path / result.path).read_bytes() == f"body {number}".encode()
    assert temp_files(tmp_path) == []


@pytest.mark.parametrize(("workers", "chunksize"), [(1, 1), (3, 2), (8, None)])
def test_same_url_name_collisions_resolved_by_input_order(
    mock: responses.RequestsMock, tmp_path: Path, workers: int, chunksize: int | None
) -> None:
    urls = [f"http://h{i}.test/data.txt" for i in range(6)]
    for i, url in enumerate(urls):

        def callback(_request: Any, i: int = i) -> tuple[int, dict[str, str], bytes]:
            time.sleep(0.03 * (6 - i))  # earlier items finish later
            return 200, {}, f"host {i}".encode()

        mock.add_callback("GET", url, callback=callback)
    results = fetch(urls, tmp_path, workers=workers, chunksize=chunksize)
    assert [r.path for r in results] == ["data.txt"] + [f"data.{n}.txt" for n in range(1, 6)]
    for i, result in enumerate(results):
        assert result.path is not None
        assert (tmp_path / result.path).read_bytes() == f"host {i}".encode()


def _mirror_run(out: Path, *, slow_first: bool, hold_second: bool) -> list[tuple[str, Any]]:
    """Fetch `…/a` then `…/a/b` in mirror layout (a file and a directory of the same name),
    with the timing steered: item 0 slow, or item 1 held back until item 0 is committed."""
    first_committed = threading.Event()

    def first(_request: Any) -> tuple[int, dict[str, str], bytes]:
        if slow_first:
            time.sleep(0.3)
        return 200, {}, b"A"

    def sources() -> Iterator[str]:
        yield "http://h.test/a"
        if hold_second:
            first_committed.wait(5)
        yield "http://h.test/a/b"

    rows = []
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_callback("GET", "http://h.test/a", callback=first)
        rsps.get("http://h.test/a/b", body=b"B")
        for result in fetch_iter(
            sources(),
            output_dir=out,
            workers=2,
            chunksize=1,
            layout=Layout.MIRROR,
            retry=RetryPolicy(0),
        ):
            rows.append((result.status.value, result.path))
            first_committed.set()
    return rows


def test_mirror_file_and_directory_of_same_name_named_by_input_order_not_timing(
    tmp_path: Path,
) -> None:
    # Contract: names are decided by input order, never by which item finished first, so
    # the same list always yields the same names (and the same statuses).
    slow_first = _mirror_run(tmp_path / "one", slow_first=True, hold_second=False)
    in_order = _mirror_run(tmp_path / "two", slow_first=False, hold_second=True)
    assert slow_first == in_order


# --------------------------------------------------------------------------- size limit


def test_content_length_over_max_size_fails_and_leaves_no_file(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    mock.get("http://a.test/big.bin", body=b"x" * 5000, auto_calculate_content_length=True)
    (result,) = fetch(["http://a.test/big.bin"], tmp_path, max_size=4096)
    assert result.status is Status.FAILED
    assert result.error is not None
    assert result.error.type == "too_large"
    assert result.path is None
    assert result.attempts == 1
    assert [p.name for p in tmp_path.iterdir()] == [STATE_DIR]


def test_body_over_max_size_without_content_length_fails_and_leaves_no_file(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    mock.get("http://a.test/stream.bin", body=b"y" * 5000)  # no Content-Length header
    (result,) = fetch(["http://a.test/stream.bin"], tmp_path, max_size=4096)
    assert "Content-Length" not in (mock.calls[0].response.headers or {})
    assert result.status is Status.FAILED
    assert result.error is not None
    assert result.error.type == "too_large"
    assert result.attempts == 1
    assert [p.name for p in tmp_path.iterdir()] == [STATE_DIR]


@pytest.mark.parametrize("declare_length", [True, False])
def test_body_exactly_max_size_is_accepted(
    mock: responses.RequestsMock, tmp_path: Path, declare_length: bool
) -> None:
    mock.get(
        "http://a.test/fits.bin", body=b"z" * 4096, auto_calculate_content_length=declare_length
    )
    (result,) = fetch(["http://a.test/fits.bin"], tmp_path, max_size=4096)
    assert result.status is Status.OK
    assert result.bytes == 4096


def test_max_size_failure_does_not_stop_other_items(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    mock.get("http://a.test/small.txt", body=b"ok")
    mock.get("http://a.test/big.bin", body=b"x" * 100, auto_calculate_content_length=True)
    mock.get("http://a.test/small2.txt", body=b"ok2")
    results = fetch(
        ["http://a.test/small.txt", "http://a.test/big.bin", "http://a.test/small2.txt"],
        tmp_path,
        max_size=10,
    )
    assert [r.status for r in results] == [Status.OK, Status.FAILED, Status.OK]
    assert outputs(tmp_path) == ["small.txt", "small2.txt"]


# --------------------------------------------------------------------------- no temp files


@pytest.mark.parametrize(
    "register",
    [
        lambda m: m.get("http://a.test/f", status=404),
        lambda m: m.get("http://a.test/f", status=503),
        lambda m: m.get("http://a.test/f", body=requests.exceptions.ConnectionError("x")),
        lambda m: m.get("http://a.test/f", body=requests.exceptions.ReadTimeout("x")),
        lambda m: m.get("http://a.test/f", body=requests.exceptions.ChunkedEncodingError("x")),
        lambda m: m.get("http://a.test/f", body=b"x" * 50, auto_calculate_content_length=True),
        lambda m: m.get("http://a.test/f", body=b"x" * 50),
        lambda m: m.get("http://a.test/f", status=302, headers={"Location": "file:///etc/hosts"}),
    ],
    ids=[
        "404",
        "503",
        "connection",
        "timeout",
        "truncated",
        "declared-too-large",
        "streamed-too-large",
        "redirect-to-file",
    ],
)
def test_no_temp_files_left_after_failure(
    mock: responses.RequestsMock, tmp_path: Path, register: Callable[[Any], Any]
) -> None:
    register(mock)
    (result,) = fetch(["http://a.test/f"], tmp_path, max_size=10, retry=RetryPolicy(1, 0))
    assert result.status is Status.FAILED
    assert temp_files(tmp_path) == []
    assert outputs(tmp_path) == []
