"""Robustness against a misbehaving world: transient errors, broken and changing bodies,
re-runs, mirror updates, `fetcher retry`, checksums, size limits, politeness, rich lists,
headers, credentials and proxies. Everything runs against servers on 127.0.0.x."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from fetcher import FetchOptions, Layout, RetryPolicy, Status, fetch_all
from tests.clirun import fetcher_command, read_manifest, run_fetcher, write_list
from tests.server import TestServer, body_for, file_body, file_etag

QUICK_RETRY = RetryPolicy(retries=2, backoff_s=0.01)
MANIFEST = Path("out") / ".fetcher" / "manifest.jsonl"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def visible_files(root: Path) -> list[str]:
    """Outputs a user sees: everything but the hidden state folder."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and ".fetcher" not in p.relative_to(root).parts
    )


def temp_files(root: Path) -> list[Path]:
    return sorted(root.rglob(".fetcher-*.part"))


def fetch_cli(tmp_path: Path, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    """`fetcher fetch ARGS -o out` in tmp_path; exit status, manifest rows, stderr."""
    run = run_fetcher("fetch", *args, "-o", "out", "--no-progress", cwd=tmp_path, timeout=60)
    manifest = tmp_path / MANIFEST
    rows = read_manifest(manifest) if manifest.exists() else []
    return run.returncode, rows, run.stderr


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The current environment without proxy or netrc settings, HOME pointing at `home`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if "proxy" not in key.lower() and key not in ("NETRC", "REQUEST_METHOD", "CURL_CA_BUNDLE")
    }
    env["HOME"] = str(home)
    env.update(extra)
    return env


def run_with_env(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`run_fetcher` has no env parameter: run the CLI directly in a subprocess."""
    return subprocess.run(
        fetcher_command(*args),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --- a second host: 127.0.0.2 on the Linux loopback ---------------------------------------

OTHER_HOST = "127.0.0.2"


class _OtherHandler(BaseHTTPRequestHandler):
    """/quick/<name>: a small body at once; /chunked?size=N: a complete chunked body
    without Content-Length (the fault server has no such route)."""

    protocol_version = "HTTP/1.1"
    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:
        """Silent."""

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        if split.path.startswith("/quick/"):
            body = b"quick " + split.path.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif split.path == "/chunked":
            size = int(parse_qs(split.query).get("size", ["1000"])[0])
            body = body_for("chunked", size)
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, size, 1000):
                piece = body[start : start + 1000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()


class _OtherServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def server_bind(self) -> None:
        """No reverse DNS lookup (HTTPServer's getfqdn)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name = OTHER_HOST
        self.server_port = int(self.socket.getsockname()[1])


@pytest.fixture
def other_host() -> Iterator[str]:
    """Base URL of a plain server on 127.0.0.2: another host for the host gate."""
    server = _OtherServer((OTHER_HOST, 0), _OtherHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://{OTHER_HOST}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --- 1. retries ---------------------------------------------------------------------------


def test_503_then_200_is_retried_to_success(http_server: TestServer, tmp_path: Path) -> None:
    [result] = fetch_all(
        [http_server.url("/flaky/f1?fail=2&code=503")],
        output_dir=tmp_path,
        retry=RetryPolicy(retries=3, backoff_s=0.01),
    )
    assert result.status is Status.OK, result.error
    assert result.attempts == 3
    assert http_server.count("/flaky/f1") == 3
    assert (tmp_path / "f1").read_bytes() == body_for("f1", 1000)


def test_429_retry_after_is_honoured(http_server: TestServer, tmp_path: Path) -> None:
    [result] = fetch_all(
        [http_server.url("/flaky/r1?fail=1&code=429&retry_after=1")],
        output_dir=tmp_path,
        retry=QUICK_RETRY,
    )
    assert result.status is Status.OK, result.error
    assert result.attempts == 2
    assert http_server.count("/flaky/r1") == 2
    # The backoff base is 0.01 s: only Retry-After explains a wait of about a second.
    assert 0.8 <= result.elapsed_s <= 3.0


def test_retry_after_is_capped_by_max_wait(http_server: TestServer, tmp_path: Path) -> None:
    [result] = fetch_all(
        [http_server.url("/flaky/r2?fail=1&code=429&retry_after=1")],
        output_dir=tmp_path,
        retry=RetryPolicy(retries=2, backoff_s=0.01, max_wait_s=0.3),
    )
    assert result.status is Status.OK, result.error
    assert result.attempts == 2
    assert 0.25 <= result.elapsed_s < 0.9


def test_client_errors_are_never_retried(http_server: TestServer, tmp_path: Path) -> None:
    codes = (404, 401, 403)
    results = fetch_all(
        [http_server.url(f"/status/{code}") for code in codes],
        output_dir=tmp_path,
        retry=RetryPolicy(retries=3, backoff_s=0),
    )
    for code, result in zip(codes, results, strict=True):
        assert result.status is Status.FAILED
        assert result.http_status == code
        assert result.attempts == 1
        assert result.error is not None and result.error.type == "http_status"
        assert http_server.count(f"/status/{code}") == 1


def test_retry_on_option_makes_404_retryable(http_server: TestServer, tmp_path: Path) -> None:
    listing = write_list(tmp_path / "list.txt", [http_server.url("/status/404")])
    code, rows, stderr = fetch_cli(
        tmp_path, str(listing), "--retries", "2", "--retry-wait", "0", "--retry-on", "404"
    )
    assert code == 1, stderr
    assert rows[0]["status"] == "failed" and rows[0]["http_status"] == 404
    assert rows[0]["attempts"] == 3
    assert http_server.count("/status/404") == 3


# --- 2-4. broken transfers: resume, ignored ranges, changed resources -----------------------

SIZE = 3_000_000
CUT = 1_500_000


def test_cut_body_is_resumed_with_range_and_if_range(
    http_server: TestServer, tmp_path: Path
) -> None:
    [result] = fetch_all(
        [http_server.url(f"/file/res.bin?size={SIZE}&cut={CUT}")],
        output_dir=tmp_path,
        retry=QUICK_RETRY,
    )
    assert result.status is Status.OK, result.error
    assert result.attempts == 2
    log = http_server.file_log("res.bin")
    assert [entry["status"] for entry in log] == [200, 206]
    assert log[0]["range"] is None and log[0]["bytes_sent"] == CUT
    assert log[1]["range"] == f"bytes={CUT}-"
    assert log[1]["if_range"] == file_etag("res.bin", SIZE)
    assert log[1]["bytes_sent"] == SIZE - CUT
    expected = file_body("res.bin", SIZE)
    assert result.bytes == SIZE
    assert result.sha256 == sha256(expected)
    assert (tmp_path / "res.bin").read_bytes() == expected
    assert temp_files(tmp_path) == []


@pytest.mark.parametrize("ranges", ["1", "0"])
def test_large_cut_body_hashes_right_whether_resumed_or_restarted(
    http_server: TestServer, tmp_path: Path, ranges: str
) -> None:
    """Bodies past `digests.OFFLOAD_BYTES` are hashed on a helper thread: a continued range
    (ranges=1) and a full restart after an ignored Range (ranges=0) must both hash exactly
    the final bytes."""
    size, cut = 10_000_000, 6_000_000
    [result] = fetch_all(
        [http_server.url(f"/file/big{ranges}.bin?size={size}&cut={cut}&ranges={ranges}")],
        output_dir=tmp_path,
        retry=QUICK_RETRY,
    )
    assert result.status is Status.OK, result.error
    expected = file_body(f"big{ranges}.bin", size)
    assert (result.bytes, result.sha256) == (size, sha256(expected))
    assert (tmp_path / f"big{ranges}.bin").read_bytes() == expected
    statuses = [entry["status"] for entry in http_server.file_log(f"big{ranges}.bin")]
    assert statuses == ([200, 206] if ranges == "1" else [200, 200])


def test_server_ignoring_range_gets_a_full_restart(http_server: TestServer, tmp_path: Path) -> None:
    [result] = fetch_all(
        [http_server.url(f"/file/norange.bin?size={SIZE}&cut={CUT}&ranges=0")],
        output_dir=tmp_path,
        retry=QUICK_RETRY,
    )
    assert result.status is Status.OK, result.error
    log = http_server.file_log("norange.bin")
    assert [entry["status"] for entry in log] == [200, 200]
    assert log[1]["bytes_sent"] == SIZE
    expected = file_body("norange.bin", SIZE)
    assert result.bytes == SIZE and result.sha256 == sha256(expected)
    written = tmp_path / "norange.bin"
    assert written.stat().st_size == SIZE, "the kept bytes must be thrown away, not padded"
    assert written.read_bytes() == expected


def test_resource_changed_between_attempts_is_fetched_whole(
    http_server: TestServer, tmp_path: Path
) -> None:
    [result] = fetch_all(
        [http_server.url(f"/file/chg.bin?size={SIZE}&cut={CUT}&etag_after=v2")],
        output_dir=tmp_path,
        retry=QUICK_RETRY,
    )
    assert result.status is Status.OK, result.error
    log = http_server.file_log("chg.bin")
    assert [entry["status"] for entry in log] == [200, 200]
    assert log[1]["if_range"] == file_etag("chg.bin", SIZE)  # the v1 ETag no longer holds
    v2 = file_body("chg.bin", SIZE, version=2)
    assert result.bytes == SIZE and result.sha256 == sha256(v2)
    written = tmp_path / "chg.bin"
    assert written.stat().st_size == SIZE, "never v1's bytes followed by (or padding) v2's"
    assert written.read_bytes() == v2


# --- 5. re-runs ---------------------------------------------------------------------------


def test_rerun_skips_everything_and_overwrite_refetches(
    http_server: TestServer, tmp_path: Path
) -> None:
    keys = ["again0", "again1", "again2"]
    listing = write_list(tmp_path / "list.txt", [http_server.url(f"/count/{k}") for k in keys])
    code, first, stderr = fetch_cli(tmp_path, str(listing))
    assert code == 0, stderr
    assert [r["status"] for r in first] == ["ok"] * 3

    code, second, stderr = fetch_cli(tmp_path, str(listing))
    assert code == 0, stderr
    assert [r["status"] for r in second] == ["skipped"] * 3
    assert [r["path"] for r in second] == [r["path"] for r in first]
    assert [r["sha256"] for r in second] == [r["sha256"] for r in first]
    assert [http_server.hits(k) for k in keys] == [1, 1, 1]

    code, third, stderr = fetch_cli(tmp_path, str(listing), "--overwrite")
    assert code == 0, stderr
    assert [r["status"] for r in third] == ["ok"] * 3
    assert [r["path"] for r in third] == [r["path"] for r in first]
    assert [http_server.hits(k) for k in keys] == [2, 2, 2]


def test_outputs_changed_on_disk_are_fetched_again(http_server: TestServer, tmp_path: Path) -> None:
    keys = ["keep", "cut", "edit", "gone"]
    urls = [http_server.url(f"/count/{k}?size=2000") for k in keys]
    first = fetch_all(urls, output_dir=tmp_path)
    assert [r.status for r in first] == [Status.OK] * 4
    with (tmp_path / "cut").open("r+b") as handle:
        handle.truncate(100)
    edited = tmp_path / "edit"
    edited.write_bytes(b"x" * 2000)  # same size, same inode: only the mtime tells
    later = edited.stat().st_mtime + 10  # an edit made later, whatever the clock granularity
    os.utime(edited, (later, later))
    (tmp_path / "gone").unlink()

    second = fetch_all(urls, output_dir=tmp_path)
    assert [r.status for r in second] == [Status.SKIPPED, Status.OK, Status.OK, Status.OK]
    assert [r.path for r in second] == keys
    assert [http_server.hits(k) for k in keys] == [1, 2, 2, 2]
    for key in keys:
        assert (tmp_path / key).read_bytes() == body_for(key, 2000)


# --- 6. --update --------------------------------------------------------------------------

LM1 = "Tue, 03 Mar 2020 10:00:00 GMT"
LM2 = "Wed, 04 Mar 2020 11:30:00 GMT"


def http_time(value: str) -> float:
    return parsedate_to_datetime(value).timestamp()


def test_update_unchanged_resource_gets_304_and_file_is_untouched(
    http_server: TestServer, tmp_path: Path
) -> None:
    http_server.set_mutable("page.html", b"version one", etag="e1", last_modified=LM1)
    url = http_server.url("/mutable/page.html")
    [first] = fetch_all([url], output_dir=tmp_path)
    assert first.status is Status.OK
    out = tmp_path / "page.html"
    before = out.stat()
    assert before.st_mtime == http_time(LM1), "the output's mtime is the Last-Modified date"

    [second] = fetch_all([url], output_dir=tmp_path, update=True)
    assert second.status is Status.UNCHANGED
    assert second.http_status == 304
    assert second.path == "page.html" and second.sha256 == first.sha256
    last = http_server.file_log("page.html")[-1]
    assert last["if_none_match"] == '"e1"'
    assert last["if_modified_since"] == LM1
    assert last["status"] == 304
    after = out.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert out.read_bytes() == b"version one"


def test_update_changed_resource_is_replaced_atomically(
    http_server: TestServer, tmp_path: Path
) -> None:
    http_server.set_mutable("data.json", b'{"v": 1}', etag="e1", last_modified=LM1)
    url = http_server.url("/mutable/data.json")
    [first] = fetch_all([url], output_dir=tmp_path)
    assert first.status is Status.OK
    out = tmp_path / "data.json"
    old_inode = out.stat().st_ino

    http_server.set_mutable("data.json", b'{"v": 2, "more": true}', etag="e2", last_modified=LM2)
    [second] = fetch_all([url], output_dir=tmp_path, update=True)
    assert second.status is Status.OK, second.error
    assert second.path == "data.json"
    assert second.sha256 == sha256(b'{"v": 2, "more": true}')
    last = http_server.file_log("data.json")[-1]
    assert last["if_none_match"] == '"e1"' and last["status"] == 200
    assert out.read_bytes() == b'{"v": 2, "more": true}'
    info = out.stat()
    assert info.st_ino != old_inode, "replaced by a rename, not rewritten in place"
    assert info.st_mtime == http_time(LM2)
    assert visible_files(tmp_path) == ["data.json"]
    assert temp_files(tmp_path) == []

    [third] = fetch_all([url], output_dir=tmp_path, update=True)
    assert third.status is Status.UNCHANGED
    assert http_server.file_log("data.json")[-1]["if_none_match"] == '"e2"'


def test_update_local_sources_by_size_and_mtime(tmp_path: Path) -> None:
    source = tmp_path / "src" / "notes.txt"
    source.parent.mkdir()
    source.write_bytes(b"first draft")
    out = tmp_path / "out"
    [first] = fetch_all([str(source)], output_dir=out)
    assert first.status is Status.OK

    [second] = fetch_all([str(source)], output_dir=out, update=True)
    assert second.status is Status.UNCHANGED
    assert second.path == "notes.txt" and second.http_status is None

    source.write_bytes(b"second, longer draft")
    [third] = fetch_all([str(source)], output_dir=out, update=True)
    assert third.status is Status.OK, third.error
    assert third.path == "notes.txt"
    assert (out / "notes.txt").read_bytes() == b"second, longer draft"
    assert third.sha256 == sha256(b"second, longer draft")


# --- 7. fetcher retry ---------------------------------------------------------------------


def test_retry_command_reruns_only_failed_rows(http_server: TestServer, tmp_path: Path) -> None:
    urls = [
        http_server.url("/count/before"),
        http_server.url("/flaky/later?fail=2&code=503"),
        http_server.url("/status/404"),
        http_server.url("/count/after"),
    ]
    listing = write_list(tmp_path / "list.txt", urls)
    code, rows, stderr = fetch_cli(tmp_path, str(listing), "--retries", "0")
    assert code == 1, stderr
    assert [r["status"] for r in rows] == ["ok", "failed", "failed", "ok"]
    lines_before = (tmp_path / MANIFEST).read_text(encoding="utf-8").splitlines()

    run = run_fetcher(
        "retry", str(MANIFEST), "--retries", "5", "--retry-wait", "0", "--no-progress",
        cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr  # the 404 is still there
    lines_after = (tmp_path / MANIFEST).read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines_after]
    assert [r["index"] for r in rows] == [0, 1, 2, 3]
    assert [r["source"] for r in rows] == urls
    assert [r["status"] for r in rows] == ["ok", "ok", "failed", "ok"]
    assert rows[1]["attempts"] == 2 and rows[1]["error"] is None
    assert (tmp_path / "out" / str(rows[1]["path"])).read_bytes() == body_for("later", 1000)
    assert rows[2]["error"]["type"] == "http_status" and rows[2]["http_status"] == 404
    assert (lines_after[0], lines_after[3]) == (lines_before[0], lines_before[3])
    assert (http_server.hits("before"), http_server.hits("after")) == (1, 1)
    assert http_server.count("/status/404") == 2  # once per run, never retried within one


def test_retry_command_keeps_carried_columns(http_server: TestServer, tmp_path: Path) -> None:
    listing = tmp_path / "list.csv"
    listing.write_text(
        "url,label,status\n"
        f"{http_server.url('/count/c0')},first,new\n"
        f"{http_server.url('/flaky/c1?fail=1&code=503')},second,old\n",
        encoding="utf-8",
    )
    code, rows, stderr = fetch_cli(tmp_path, str(listing), "--retries", "0")
    assert code == 1, stderr
    assert [r["status"] for r in rows] == ["ok", "failed"]
    assert [(r["label"], r["input_status"]) for r in rows] == [("first", "new"), ("second", "old")]

    run = run_fetcher(
        "retry", str(MANIFEST), "--retry-wait", "0", "--no-progress", cwd=tmp_path, timeout=60
    )
    assert run.returncode == 0, run.stderr
    rows = read_manifest(tmp_path / MANIFEST)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert [(r["label"], r["input_status"]) for r in rows] == [("first", "new"), ("second", "old")]
    assert all("label" in r and "status" in r for r in rows)


# --- 8. checksums -------------------------------------------------------------------------


def test_checksum_columns_are_verified(http_server: TestServer, tmp_path: Path) -> None:
    def url(name: str) -> str:
        return http_server.url(f"/bytes/{name}?size=300")

    good, bad = body_for("good.bin", 300), body_for("bad.bin", 300)
    m5, m5bad = body_for("m5.bin", 300), body_for("m5bad.bin", 300)
    listing = tmp_path / "list.csv"
    listing.write_text(
        "url,sha256,md5\n"
        f"{url('good.bin')},{sha256(good)},\n"
        f"{url('bad.bin')},{sha256(bad + b'!')},\n"
        f"{url('m5.bin')},,{md5(m5)}\n"
        f"{url('m5bad.bin')},,{md5(m5bad[:-1])}\n",
        encoding="utf-8",
    )
    code, rows, stderr = fetch_cli(tmp_path, str(listing))
    assert code == 1, stderr
    assert [r["status"] for r in rows] == ["ok", "failed", "ok", "failed"]
    for row in (rows[1], rows[3]):
        assert row["error"]["type"] == "checksum_mismatch"
        assert row["path"] is None
    out = tmp_path / "out"
    assert visible_files(out) == ["good.bin", "m5.bin"]
    assert (out / "m5.bin").read_bytes() == m5
    assert temp_files(out) == []


def test_checksum_option_for_a_single_item(http_server: TestServer, tmp_path: Path) -> None:
    url = http_server.url("/bytes/one.bin?size=500")
    digest = sha256(body_for("one.bin", 500))
    listing = write_list(tmp_path / "one.txt", [url])
    code, rows, stderr = fetch_cli(tmp_path, str(listing), "--checksum", f"sha256:{digest}")
    assert code == 0, stderr
    assert rows[0]["status"] == "ok" and rows[0]["sha256"] == digest

    wrong = "0" * 64
    code, rows, stderr = fetch_cli(
        tmp_path, str(listing), "--checksum", f"sha256:{wrong}", "--overwrite"
    )
    assert code == 1, stderr
    assert rows[0]["status"] == "failed"
    assert rows[0]["error"]["type"] == "checksum_mismatch"
    assert temp_files(tmp_path / "out") == []


def test_checksum_option_with_two_items_is_a_usage_error(
    http_server: TestServer, tmp_path: Path
) -> None:
    listing = write_list(
        tmp_path / "two.txt",
        [http_server.url("/bytes/a?size=5"), http_server.url("/bytes/b?size=5")],
    )
    code, _, stderr = fetch_cli(tmp_path, str(listing), "--checksum", f"sha256:{'0' * 64}")
    assert code == 2, stderr
    assert "--checksum" in stderr
    assert http_server.count("/bytes/") == 0


# --- 9-10. sizes --------------------------------------------------------------------------


def test_max_size_by_declared_length(http_server: TestServer, tmp_path: Path) -> None:
    listing = write_list(
        tmp_path / "list.txt",
        [http_server.url("/bytes/fits.bin?size=1024"), http_server.url("/bytes/big.bin?size=1025")],
    )
    code, rows, stderr = fetch_cli(tmp_path, str(listing), "--max-size", "1K")
    assert code == 1, stderr
    assert [r["status"] for r in rows] == ["ok", "failed"]
    assert rows[1]["error"]["type"] == "too_large"
    assert rows[1]["attempts"] == 1
    assert visible_files(tmp_path / "out") == ["fits.bin"]
    assert temp_files(tmp_path / "out") == []


def test_max_size_while_streaming_without_content_length(other_host: str, tmp_path: Path) -> None:
    results = fetch_all(
        [f"{other_host}/chunked?size=800", f"{other_host}/chunked?size=5000"],
        output_dir=tmp_path,
        max_size=1000,
        retry=QUICK_RETRY,
    )
    assert results[0].status is Status.OK, results[0].error
    assert (tmp_path / "chunked").read_bytes() == body_for("chunked", 800)
    assert results[1].status is Status.FAILED
    assert results[1].error is not None and results[1].error.type == "too_large"
    assert results[1].attempts == 1
    assert visible_files(tmp_path) == ["chunked"]
    assert temp_files(tmp_path) == []


def test_max_size_applies_to_local_copies(tmp_path: Path) -> None:
    small, large = tmp_path / "small.dat", tmp_path / "large.dat"
    small.write_bytes(b"s" * 1000)
    large.write_bytes(b"L" * 1001)
    out = tmp_path / "out"
    results = fetch_all([str(small), str(large)], output_dir=out, max_size=1000)
    assert [r.status for r in results] == [Status.OK, Status.FAILED]
    assert results[1].error is not None and results[1].error.type == "too_large"
    assert visible_files(out) == ["small.dat"]
    assert temp_files(out) == []


def test_body_shorter_than_content_length_is_never_ok(
    http_server: TestServer, tmp_path: Path
) -> None:
    [result] = fetch_all(
        [http_server.url("/truncate?size=100000&send=99999")],
        output_dir=tmp_path,
        retry=RetryPolicy(retries=1, backoff_s=0),
    )
    assert result.status is Status.FAILED
    assert result.error is not None and result.error.type == "truncated"
    assert result.attempts == 2 and result.path is None
    assert visible_files(tmp_path) == []
    assert temp_files(tmp_path) == []


# --- 11. politeness -----------------------------------------------------------------------


def test_per_host_limits_concurrent_requests(http_server: TestServer, tmp_path: Path) -> None:
    urls = [http_server.url(f"/count/p{i}?delay=0.25") for i in range(10)]
    results = fetch_all(urls, output_dir=tmp_path, workers=8, per_host=2)
    assert all(r.status is Status.OK for r in results)
    assert http_server.max_concurrent == 2


def test_default_per_host_caps_a_large_pool_at_sixteen(
    http_server: TestServer, tmp_path: Path
) -> None:
    urls = [http_server.url(f"/count/d{i}?delay=0.3") for i in range(40)]
    results = fetch_all(urls, output_dir=tmp_path, workers=32)
    assert all(r.status is Status.OK for r in results)
    assert 12 <= http_server.max_concurrent <= 16


def test_rate_limits_request_starts(http_server: TestServer, tmp_path: Path) -> None:
    urls = [http_server.url(f"/count/q{i}") for i in range(6)]
    started = time.monotonic()
    results = fetch_all(urls, output_dir=tmp_path, workers=6, rate=5)
    took = time.monotonic() - started
    assert all(r.status is Status.OK for r in results)
    assert 0.9 <= took < 3.0  # six starts at 5/s: the last one 1 s after the first


def test_429_slows_that_host_only(http_server: TestServer, other_host: str, tmp_path: Path) -> None:
    def feed() -> Iterator[str]:
        yield http_server.url("/flaky/busy?fail=1&code=429&retry_after=1")
        give_up = time.monotonic() + 3
        while http_server.count("/flaky/busy") == 0 and time.monotonic() < give_up:
            time.sleep(0.01)
        time.sleep(0.15)  # the 429 has been answered and read: 127.0.0.1 is slowed
        for i in range(3):
            yield http_server.url(f"/count/a{i}")
        for i in range(3):
            yield f"{other_host}/quick/b{i}"

    results = fetch_all(feed(), output_dir=tmp_path, workers=8, chunksize=1, retry=QUICK_RETRY)
    assert all(r.status is Status.OK for r in results), [r.error for r in results]
    assert results[0].attempts == 2
    slowed = [r.elapsed_s for r in results[1:4]]
    other = [r.elapsed_s for r in results[4:]]
    assert min(slowed) >= 0.6, slowed  # held until Retry-After has passed
    assert max(other) < 0.4, other


# --- 12. richer lists ---------------------------------------------------------------------


def test_csv_list_names_outputs_and_carries_columns(
    http_server: TestServer, tmp_path: Path
) -> None:
    listing = tmp_path / "list.csv"
    listing.write_text(
        "url,path,label,status\n"
        f"{http_server.url('/bytes/a?size=10')},sub/dir/a.bin,alpha,s1\n"
        f"{http_server.url('/bytes/b?size=11')},../escape.bin,beta,s2\n"
        f"{http_server.url('/bytes/c?size=12')},/abs/c.bin,gamma,s3\n"
        f"{http_server.url('/bytes/d?size=13')},,delta,s4\n",
        encoding="utf-8",
    )
    code, rows, stderr = fetch_cli(tmp_path, str(listing))
    assert code == 0, stderr
    assert [r["status"] for r in rows] == ["ok"] * 4
    assert [r["label"] for r in rows] == ["alpha", "beta", "gamma", "delta"]
    assert [r["input_status"] for r in rows] == ["s1", "s2", "s3", "s4"]
    assert rows[0]["path"] == "sub/dir/a.bin"
    assert rows[3]["path"] == "d"
    out = (tmp_path / "out").resolve()
    for row, (name, size) in zip(rows, [("a", 10), ("b", 11), ("c", 12), ("d", 13)], strict=True):
        written = (out / row["path"]).resolve()
        assert written.is_relative_to(out), row["path"]
        assert written.read_bytes() == body_for(name, size)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["list.csv", "out"]
    assert not (tmp_path / "escape.bin").exists()


def test_tsv_list_is_read_by_its_suffix(http_server: TestServer, tmp_path: Path) -> None:
    listing = tmp_path / "list.tsv"
    listing.write_text(
        "url\tpath\tnote\n"
        f"{http_server.url('/bytes/t1?size=7')}\tnamed/t1.dat\thello, world\n"
        f"{http_server.url('/bytes/t2?size=8')}\t\tsecond\n",
        encoding="utf-8",
    )
    code, rows, stderr = fetch_cli(tmp_path, str(listing))
    assert code == 0, stderr
    assert [r["path"] for r in rows] == ["named/t1.dat", "t2"]
    assert [r["note"] for r in rows] == ["hello, world", "second"]
    assert (tmp_path / "out" / "named" / "t1.dat").read_bytes() == body_for("t1", 7)


def test_jsonl_list_with_a_malformed_line(http_server: TestServer, tmp_path: Path) -> None:
    listing = tmp_path / "list.jsonl"
    lines = [
        json.dumps({"url": http_server.url("/bytes/j0?size=5"), "path": "j/zero.bin", "n": 1}),
        '{"url": "broken',
        json.dumps({"url": http_server.url("/bytes/j2?size=6"), "tags": ["x", "y"]}),
    ]
    listing.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, rows, stderr = fetch_cli(tmp_path, str(listing))
    assert code == 1, stderr
    assert [r["index"] for r in rows] == [0, 1, 2]
    assert [r["status"] for r in rows] == ["ok", "failed", "ok"]
    assert rows[1]["error"]["type"] == "invalid_source"
    assert rows[0]["path"] == "j/zero.bin" and rows[0]["n"] == 1
    assert rows[2]["path"] == "j2" and rows[2]["tags"] == ["x", "y"]
    assert (tmp_path / "out" / "j" / "zero.bin").read_bytes() == body_for("j0", 5)


def test_csv_list_without_url_column_is_a_usage_error(
    http_server: TestServer, tmp_path: Path
) -> None:
    listing = tmp_path / "list.csv"
    listing.write_text(f"link,name\n{http_server.url('/bytes/x?size=3')},x\n", encoding="utf-8")
    code, _, stderr = fetch_cli(tmp_path, str(listing))
    assert code == 2
    assert "'url' column" in stderr
    assert not (tmp_path / "out").exists()
    assert http_server.requests_seen == []


def test_csv_manifest_has_extra_column_as_json(http_server: TestServer, tmp_path: Path) -> None:
    listing = tmp_path / "list.csv"
    listing.write_text(
        "url,label,status\n"
        f"{http_server.url('/bytes/e0?size=4')},zero,s0\n"
        f"{http_server.url('/status/404')},one,s1\n",
        encoding="utf-8",
    )
    run = run_fetcher(
        "fetch", str(listing), "-o", "out", "--manifest", "m.csv", "--retries", "0",
        "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    with (tmp_path / "m.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["index"] for r in rows] == ["0", "1"]
    assert [r["status"] for r in rows] == ["ok", "failed"]
    assert rows[1]["error_type"] == "http_status"
    assert [json.loads(r["extra"]) for r in rows] == [
        {"label": "zero", "input_status": "s0"},
        {"label": "one", "input_status": "s1"},
    ]


def test_csv_manifest_keeps_columns_named_like_its_own(
    http_server: TestServer, tmp_path: Path
) -> None:
    # `extra` and `error_type` are not manifest fields (the JSONL manifest keeps them as
    # they are), only CSV manifest columns: their values must still reach the CSV manifest.
    listing = tmp_path / "list.csv"
    listing.write_text(
        f"url,extra,error_type\n{http_server.url('/bytes/e1?size=4')},E1,T1\n", encoding="utf-8"
    )
    run = run_fetcher(
        "fetch", str(listing), "-o", "out", "--manifest", "m.csv", "--no-progress", cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    with (tmp_path / "m.csv").open(encoding="utf-8", newline="") as handle:
        [row] = list(csv.DictReader(handle))
    assert row["status"] == "ok"
    assert row["error_type"] == "", "an ok item has no error type, whatever the list says"
    assert row["extra"], "the carried columns were dropped"
    assert sorted(json.loads(row["extra"]).values()) == ["E1", "T1"]


def test_retry_keeps_a_csv_manifest_in_csv(http_server: TestServer, tmp_path: Path) -> None:
    urls = [http_server.url("/count/k0"), http_server.url("/flaky/k1?fail=1&code=503")]
    listing = write_list(tmp_path / "list.txt", urls)
    manifest = tmp_path / "out" / "m.csv"
    run = run_fetcher(
        "fetch", str(listing), "-o", "out", "--manifest", str(manifest), "--retries", "0",
        "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    header = manifest.read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith("index,source,path,status,")

    run = run_fetcher(
        "retry", str(manifest), "-o", "out", "--retry-wait", "0", "--no-progress", cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    assert manifest.read_text(encoding="utf-8").splitlines()[0] == header, "no longer CSV"
    with manifest.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["index"], r["source"], r["status"]) for r in rows] == [
        ("0", urls[0], "ok"),
        ("1", urls[1], "ok"),
    ]


# --- 13. headers, credentials, proxies ----------------------------------------------------


def test_extra_header_reaches_the_server(http_server: TestServer, tmp_path: Path) -> None:
    listing = write_list(tmp_path / "list.txt", [http_server.url("/headers")])
    code, rows, stderr = fetch_cli(tmp_path, str(listing), "-H", "X-Token: abc")
    assert code == 0, stderr
    seen = json.loads((tmp_path / "out" / str(rows[0]["path"])).read_text(encoding="utf-8"))
    assert seen["X-Token"] == "abc"
    assert seen["Accept-Encoding"] == "identity"


def test_netrc_credentials_are_used(http_server: TestServer, tmp_path: Path) -> None:
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login u password p\n", encoding="utf-8")
    netrc.chmod(0o600)
    listing = write_list(tmp_path / "list.txt", [http_server.url("/auth?user=u&password=p")])
    run = run_with_env(
        tmp_path, clean_env(tmp_path), "fetch", str(listing), "-o", "out", "--no-progress"
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out" / "auth").read_bytes() == b"authorized"
    [(_, _, headers)] = http_server.requests_seen
    assert headers["Authorization"].startswith("Basic ")


def test_http_proxy_from_environment_is_used(http_server: TestServer, tmp_path: Path) -> None:
    # requests bypasses a proxy only for hosts listed in no_proxy/NO_PROXY (clean_env drops
    # both): 127.0.0.1 is not exempt by default, so the request goes through the proxy.
    # Port 9 (discard) is never contacted: only the proxy (the test server) is.
    target = "http://127.0.0.1:9/x"
    listing = write_list(tmp_path / "list.txt", [target])
    env = clean_env(tmp_path, http_proxy=http_server.base, HTTP_PROXY=http_server.base)
    run = run_with_env(
        tmp_path, env, "fetch", str(listing), "-o", "out", "--no-progress", "--retries", "0"
    )
    assert run.returncode == 0, run.stderr
    assert [path for _, path, _ in http_server.requests_seen] == [target]
    assert (tmp_path / "out" / "x").read_bytes().startswith(b"via-proxy")


def test_options_object_and_mirror_layout_combine_with_update(
    http_server: TestServer, tmp_path: Path
) -> None:
    http_server.set_mutable("m.txt", b"mirror me", etag="m1", last_modified=LM1)
    options = FetchOptions(output_dir=tmp_path, layout=Layout.MIRROR, update=True)
    url = http_server.url("/mutable/m.txt")
    [first] = fetch_all([url], options)
    [second] = fetch_all([url], options)
    assert first.status is Status.OK and second.status is Status.UNCHANGED
    assert first.path == second.path and str(first.path).endswith("/mutable/m.txt")
