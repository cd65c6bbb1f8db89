"""-v and -q as a user sees them: decisions per item on stderr, or only errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clirun import run_fetcher, write_list
from tests.server import TestServer


@pytest.mark.parametrize("processes", ["1", "2"])
def test_verbose_shows_each_retry_with_its_item(
    http_server: TestServer, tmp_path: Path, processes: str
) -> None:
    url = http_server.url("/flaky/v?fail=2&code=503")
    write_list(tmp_path / "l.txt", [http_server.url("/bytes/a?size=3"), url])
    run = run_fetcher(
        "fetch", "l.txt", "-o", "out", "-v", "--retry-wait", "0", "--processes", processes,
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if "attempt" in line]
    assert lines == [
        f"fetcher: #1 {url}: HTTP 503 Service Unavailable; attempt 2 of 3 in 0.0 s",
        f"fetcher: #1 {url}: HTTP 503 Service Unavailable; attempt 3 of 3 in 0.0 s",
    ]
    assert "slowed down" in run.stderr or "overloaded" in run.stderr


def test_log_lines_never_show_a_url_password(http_server: TestServer, tmp_path: Path) -> None:
    url = http_server.url("/flaky/p?fail=1").replace("http://", "http://me:s3cret@")
    write_list(tmp_path / "l.txt", [url])
    run = run_fetcher("fetch", "l.txt", "-o", "out", "-vv", "--retry-wait", "0", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "attempt 2" in run.stderr
    assert "s3cret" not in run.stderr
    assert "me:***@" in run.stderr


def test_quiet_prints_nothing_when_all_is_well(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    write_list(tmp_path / "l.txt", ["a"])
    run = run_fetcher("fetch", "l.txt", "-o", "out", "-q", cwd=tmp_path)
    assert run.returncode == 0
    assert run.stderr == ""


def test_quiet_still_reports_a_usage_error(tmp_path: Path) -> None:
    run = run_fetcher("fetch", "missing.txt", "-q", cwd=tmp_path)
    assert run.returncode == 2
    assert "list not found" in run.stderr
