"""What wget, curl and aria2c users reach for on day one, as they would use it: URLs as
arguments, a bandwidth limit, cookies, shell completion, --compressed; and the rough edges
found by trying it (each test names the one it covers)."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from fetcher import fetch_all
from tests.cli.test_progress import read_terminal
from tests.clirun import fetcher_command, read_manifest, run_fetcher, write_list
from tests.hostile_server import HostileServer
from tests.server import TestServer, body_for

MANIFEST = Path("out/.fetcher/manifest.jsonl")


# --- URLs on the command line -------------------------------------------------------------


def test_urls_given_as_arguments_are_fetched(http_server: TestServer, tmp_path: Path) -> None:
    urls = [http_server.url("/bytes/a.iso?size=30"), http_server.url("/bytes/b.iso?size=40")]
    run = run_fetcher("fetch", *urls, "-o", "d", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "d" / "a.iso").read_bytes() == body_for("a.iso", 30)
    assert (tmp_path / "d" / "b.iso").read_bytes() == body_for("b.iso", 40)
    rows = read_manifest(tmp_path / "d" / ".fetcher" / "manifest.jsonl")
    assert [r["source"] for r in rows] == urls


def test_urls_and_lists_mix_in_the_order_given(http_server: TestServer, tmp_path: Path) -> None:
    (tmp_path / "local.txt").write_text("x")
    write_list(tmp_path / "l.txt", ["local.txt"])
    first, last = http_server.url("/bytes/u1?size=3"), (tmp_path / "local.txt").as_uri()
    run = run_fetcher("fetch", first, "l.txt", last, "-o", "out", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    rows = read_manifest(tmp_path / MANIFEST)
    assert [r["source"] for r in rows] == [first, "local.txt", last]


def test_a_missing_list_is_still_a_usage_error(tmp_path: Path) -> None:
    run = run_fetcher("fetch", "http-list.txt", cwd=tmp_path)
    assert run.returncode == 2 and "list not found: http-list.txt" in run.stderr


# --- --limit-rate -------------------------------------------------------------------------


@pytest.mark.slow
def test_limit_rate_holds_over_the_whole_run(http_server: TestServer, tmp_path: Path) -> None:
    """Two items at once share the limit: 2.4 MB at 200 KiB/s take about 11.7 s, timed by
    the items themselves (the interpreter's start is not the transfer)."""
    limit, size = 200 * 1024, 1_200_000
    write_list(tmp_path / "l.txt", [http_server.url(f"/bytes/r{i}?size={size}") for i in (1, 2)])
    run = run_fetcher("fetch", "l.txt", "-o", "out", "--limit-rate", "200K", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    transfer_s = max(row["elapsed_s"] for row in read_manifest(tmp_path / MANIFEST))
    rate = 2 * size / transfer_s
    assert transfer_s >= 10, "the transfer must last long enough to measure"
    assert 0.9 * limit <= rate <= 1.1 * limit, f"{rate:.0f} B/s for a limit of {limit}"


def test_limit_rate_takes_wget_style_sizes(tmp_path: Path) -> None:
    run = run_fetcher("fetch", "-", "--limit-rate", "fast", cwd=tmp_path, stdin=b"")
    assert run.returncode == 2 and "not a size" in run.stderr


# --- cookies ------------------------------------------------------------------------------


def test_all_threads_share_one_cookie_jar(http_server: TestServer, tmp_path: Path) -> None:
    shows = [http_server.url(f"/cookies/show?i={i}") for i in range(6)]
    lines = [http_server.url("/cookies/set?session=abc"), http_server.url("/slow?delay=0.5")]
    write_list(tmp_path / "l.txt", lines + shows)
    run = run_fetcher("fetch", "l.txt", "-o", "out", "-j", "2", "--layout", "indexed", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    rows = read_manifest(tmp_path / MANIFEST)
    seen = [json.loads((tmp_path / "out" / r["path"]).read_text())["cookie"] for r in rows[2:]]
    assert seen == ["session=abc"] * 6


def test_cookie_file_is_loaded_and_saved(http_server: TestServer, tmp_path: Path) -> None:
    jar = tmp_path / "jar.txt"
    write_list(tmp_path / "set.txt", [http_server.url("/cookies/set?token=t1")])
    first = run_fetcher("fetch", "set.txt", "-o", "a", "--cookies", str(jar), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    saved = jar.read_text()
    assert "Netscape HTTP Cookie File" in saved and "\ttoken\tt1" in saved
    assert jar.stat().st_mode & 0o077 == 0, "a cookie file holds secrets: owner only"
    write_list(tmp_path / "show.txt", [http_server.url("/cookies/show")])
    second = run_fetcher("fetch", "show.txt", "-o", "b", "--cookies", str(jar), cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert json.loads((tmp_path / "b" / "show").read_text())["cookie"] == "token=t1"


def test_cookies_never_go_to_another_host(http_server: TestServer, tmp_path: Path) -> None:
    with HostileServer("127.0.0.2") as other:
        write_list(
            tmp_path / "l.txt",
            [http_server.url("/cookies/set?session=abc"), other.url("/_/headers")],
        )
        run = run_fetcher("fetch", "l.txt", "-o", "out", "-j", "1", cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        [(_, headers)] = other.requests_seen
    assert "Cookie" not in headers


@pytest.mark.parametrize("content", ["not a cookie file\n", "\x00\x01\x02"])
def test_a_bad_cookie_file_is_a_usage_error_and_kept(tmp_path: Path, content: str) -> None:
    jar = tmp_path / "jar.txt"
    jar.write_text(content)
    run = run_fetcher("fetch", "-", "-o", "out", "--cookies", "jar.txt", cwd=tmp_path, stdin=b"")
    assert run.returncode == 2 and "cookie file" in run.stderr
    assert jar.read_text() == content
    assert not (tmp_path / "out").exists()


def test_cookies_with_processes_is_a_usage_error(tmp_path: Path) -> None:
    run = run_fetcher(
        "fetch", "-", "--cookies", "j.txt", "--processes", "2", cwd=tmp_path, stdin=b""
    )
    assert run.returncode == 2 and "one cookie jar" in run.stderr


# --- shell completion ---------------------------------------------------------------------


def test_shell_completion_script_is_offered(tmp_path: Path) -> None:
    """As a user types it in bash: the script is for the shell it runs in."""
    command = shlex.join(fetcher_command("--show-completion")) + "; exit $?"  # bash stays
    run = subprocess.run(
        ["bash", "-c", command], check=False, cwd=tmp_path, capture_output=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert b"_FETCHER_COMPLETE=complete_bash" in run.stdout


# --- --compressed -------------------------------------------------------------------------


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_compressed_saves_the_decoded_body(
    http_server: TestServer, tmp_path: Path, coding: str
) -> None:
    url = http_server.url(f"/encoded/c.txt?size=50000&coding={coding}")
    run = run_fetcher("fetch", url, "-o", "out", "--compressed", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out" / "c.txt").read_bytes() == body_for("c.txt", 50000)
    _, _, headers = http_server.requests_seen[-1]
    assert "gzip" in headers["Accept-Encoding"] and "deflate" in headers["Accept-Encoding"]


def test_without_compressed_bodies_are_asked_for_and_saved_as_served(
    http_server: TestServer, tmp_path: Path
) -> None:
    url = http_server.url("/encoded/plain.txt?size=500&coding=gzip")
    run = run_fetcher("fetch", url, "-o", "out", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out" / "plain.txt").read_bytes() == body_for("plain.txt", 500)
    _, _, headers = http_server.requests_seen[-1]
    assert headers["Accept-Encoding"] == "identity"


def test_a_decompression_bomb_fails_fast_with_flat_memory(tmp_path: Path) -> None:
    with HostileServer() as server:
        url = server.url(f"/_/gzip-bomb?size={512 << 20}")  # 512 MiB of zeros, ~0.5 MB sent
        run = run_fetcher(
            "fetch", url, "-o", "out", "--compressed", "--max-size", "1M", cwd=tmp_path
        )
    assert run.returncode == 1
    [row] = read_manifest(tmp_path / MANIFEST)
    assert row["error"]["type"] == "too_large"
    assert run.peak_rss_mib < 120, f"peak RSS {run.peak_rss_mib:.0f} MiB"
    assert not list((tmp_path / "out").glob(".fetcher-*"))


# --- rough edges --------------------------------------------------------------------------


def test_a_redirect_to_another_host_keeps_fetchers_own_headers(tmp_path: Path) -> None:
    """-H secrets are dropped on the other host; the User-Agent and Accept the user
    replaced come back as fetcher's defaults instead of urllib3's."""
    with HostileServer("127.0.0.1") as here, HostileServer("127.0.0.2") as there:
        url = here.url("/_/redirect?to=" + quote(there.url("/_/headers"), safe=""))
        run = run_fetcher(
            "fetch", url, "-o", "out", "-H", "User-Agent: mine/1", "-H", "X-Token: secret",
            cwd=tmp_path,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        [(_, headers)] = there.requests_seen
    sent = {name.lower(): value for name, value in headers.items()}
    assert sent["user-agent"].startswith("fetcher/")
    assert sent["accept"] == "*/*"
    assert "x-token" not in sent


def test_url_passwords_are_masked_where_shown_and_retry_still_works(
    http_server: TestServer, tmp_path: Path
) -> None:
    # (The test server's /auth takes the expected password in its query, where it is not
    # a credential of the URL: only the user:password@ part is the secret here.)
    url = http_server.url("/auth?user=me&password=s3cret").replace("http://", "http://me:s3cret@")
    shown = url.replace("me:s3cret@", "me:***@")
    write_list(tmp_path / "l.txt", [url])
    first = run_fetcher("fetch", "l.txt", "-o", "out", "--max-size", "1", "-v", cwd=tmp_path)
    assert first.returncode == 1
    assert "me:s3cret@" not in first.stderr and shown in first.stderr
    assert "me:s3cret@" not in (tmp_path / MANIFEST).read_text()
    again = run_fetcher("retry", str(MANIFEST), "--max-size", "1K", "-v", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "me:s3cret@" not in again.stderr
    [row] = read_manifest(tmp_path / MANIFEST)
    assert (row["source"], row["status"]) == (shown, "ok")
    assert (tmp_path / "out" / row["path"]).read_bytes() == b"authorized"


def test_a_closed_stdout_stops_the_run_like_cat(http_server: TestServer, tmp_path: Path) -> None:
    write_list(tmp_path / "l.txt", [http_server.url(f"/bytes/p{i}?size=200000") for i in range(30)])
    proc = subprocess.Popen(
        fetcher_command("fetch", "l.txt", "--stdout", "--manifest", "m.jsonl", "-j", "2"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdout.read(10) == body_for("p0", 10)
    proc.stdout.close()  # as `| head -c 10` does
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 141, err
    assert b"standard output was closed" in err and b"Traceback" not in err
    rows = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(len(rows))) and len(rows) < 30


def test_checksum_with_many_items_is_refused_before_anything_is_written(
    http_server: TestServer, tmp_path: Path
) -> None:
    write_list(tmp_path / "l.txt", [http_server.url("/bytes/a"), http_server.url("/bytes/b")])
    run = run_fetcher("fetch", "l.txt", "-o", "out", "--checksum", "md5:" + "0" * 32, cwd=tmp_path)
    assert run.returncode == 2 and "exactly one item" in run.stderr
    assert not (tmp_path / "out").exists()
    assert http_server.requests_seen == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"url": 42}', "the 'url' value is not text: 42"),
        ('{"link": "http://h/x"}', "no 'url' value"),
        ('{"url": ""}', "the 'url' value is empty"),
        ("[1, 2]", "a JSON line must be an object"),
        ("{broken", "not valid JSON: Expecting property name enclosed in double quotes"),
    ],
)
def test_a_bad_jsonl_row_is_recorded_as_written(tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "l.jsonl").write_text(line + "\n")
    run = run_fetcher("fetch", "l.jsonl", "-o", "out", cwd=tmp_path)
    assert run.returncode == 1
    [row] = read_manifest(tmp_path / MANIFEST)
    assert row["source"] == line
    assert row["error"]["type"] == "invalid_source"
    assert row["error"]["message"].startswith(message)


def test_a_bad_csv_row_is_recorded_as_written(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_text("url,sha256\n,abc\nhttp://127.0.0.1:9/x,nothex\n")
    run = run_fetcher("fetch", "l.csv", "-o", "out", cwd=tmp_path)
    assert run.returncode == 1
    rows = read_manifest(tmp_path / MANIFEST)
    assert [r["source"] for r in rows] == [",abc", "http://127.0.0.1:9/x,nothex"]
    assert rows[0]["error"]["message"] == "the 'url' value is empty"
    assert "sha256 is not 64 hex digits" in rows[1]["error"]["message"]


def test_http_status_is_recorded_whenever_one_was_received(
    http_server: TestServer, tmp_path: Path
) -> None:
    (tmp_path / "l.csv").write_text(
        f"url,sha256\n{http_server.url('/bytes/c?size=10')},{'0' * 64}\n"
        f"{http_server.url('/status/304')},\n"
        f"{http_server.url('/trickle?size=20&interval=0.2')},\n"
    )
    run = run_fetcher("fetch", "l.csv", "-o", "out", "--deadline", "1", cwd=tmp_path)
    assert run.returncode == 1
    rows = read_manifest(tmp_path / MANIFEST)
    assert [(r["error"]["type"], r["http_status"]) for r in rows] == [
        ("checksum_mismatch", 200),
        ("http_status", 304),
        ("deadline", 200),
    ]


def test_a_url_with_a_space_is_fetched_percent_encoded(
    http_server: TestServer, tmp_path: Path
) -> None:
    url = http_server.url("/bytes/my file.txt?size=12")
    write_list(tmp_path / "l.txt", [url])
    run = run_fetcher("fetch", "l.txt", "-o", "out", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    [(_, path, _)] = http_server.requests_seen
    assert path == "/bytes/my%20file.txt?size=12"
    [row] = read_manifest(tmp_path / MANIFEST)
    assert row["source"] == url
    assert (tmp_path / "out" / "my file.txt").read_bytes() == body_for("my file.txt", 12)


def test_one_large_file_shows_a_percentage_and_an_eta(
    http_server: TestServer, tmp_path: Path
) -> None:
    url = http_server.url(f"/file/big.bin?size={4 << 20}&bps={2 << 20}")
    shown = read_terminal(fetcher_command("fetch", url, "-o", "out"), tmp_path, 6)
    assert re.search(r"\d+%\|", shown), f"no percentage: {shown!r}"
    assert re.search(r"<\d\d:\d\d", shown), f"no ETA: {shown!r}"
    assert "Done: 1 item (1 ok)" in shown


def test_the_count_at_ctrl_c_is_the_manifests(http_server: TestServer, tmp_path: Path) -> None:
    """The summary counts what was recorded, in order, not what merely finished."""
    lines = [http_server.url(f"/slow?delay=30&i={i}") for i in range(2)]
    lines += [http_server.url(f"/bytes/c{i}?size=100") for i in range(6)]
    write_list(tmp_path / "l.txt", lines)
    proc = subprocess.Popen(
        fetcher_command("fetch", "l.txt", "-o", "out", "-j", "4"),
        cwd=tmp_path,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(http_server.requests_seen) < len(lines):
        time.sleep(0.05)
    time.sleep(0.3)  # the fast items are done, out of order, behind the slow ones
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 130
    shown = re.search(r"Interrupted after (\d+) items?", err.decode())
    assert shown is not None, err
    assert int(shown.group(1)) == len(read_manifest(tmp_path / MANIFEST)) == 0


def test_the_rate_after_a_resume_counts_only_what_this_run_received(
    http_server: TestServer, tmp_path: Path
) -> None:
    size = 3_000_000
    url = http_server.url(f"/file/r.bin?size={size}&bps=2000000")
    first = subprocess.Popen(fetcher_command("fetch", url, "-o", "out"), cwd=tmp_path)
    time.sleep(1.0)
    first.kill()
    first.wait()
    [partial] = (tmp_path / "out").glob(".fetcher-*.part")
    kept = partial.stat().st_size
    assert 0 < kept < size
    run = run_fetcher("fetch", url, "-o", "out", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert http_server.file_log("r.bin")[-1]["range"] == f"bytes={kept}-"
    shown = re.search(r"([\d.]+) (B|KiB|MiB) received", run.stderr)
    assert shown is not None, run.stderr
    received = float(shown.group(1)) * {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20}[shown.group(2)]
    assert abs(received - (size - kept)) < 0.06 * (1 << 20), run.stderr


@pytest.mark.parametrize("command", ["fetch", "retry", "tune"])
def test_help_pages_read_cleanly(tmp_path: Path, command: str) -> None:
    run = run_fetcher(command, "--help", cwd=tmp_path)
    assert run.returncode == 0
    page = run.stdout.decode()
    for noise in ("{", "<list", "<path>", "[default: 0]", "Value error"):
        assert noise not in page, f"{noise!r} in `fetcher {command} --help`"
    if command == "retry":  # -o: where the manifest's run wrote, not the current folder
        assert "[default: .]" not in page and "the folder whose .fetcher/ holds" in page, page


def test_a_bad_layout_says_what_is_allowed(tmp_path: Path) -> None:
    run = run_fetcher("fetch", "-", "--layout", "weird", cwd=tmp_path, stdin=b"")
    assert run.returncode == 2
    assert run.stderr.strip().endswith("--layout takes one of flat, mirror, indexed, not 'weird'")


@pytest.mark.parametrize("given", ["http://h/x", b"http://h/x", Path("x.txt")])
def test_a_bare_string_is_not_a_list_of_sources(tmp_path: Path, given: object) -> None:
    with pytest.raises(TypeError, match="iterable of sources"):
        fetch_all(given, output_dir=tmp_path)  # type: ignore[arg-type]
