"""`fetcher retry` as a user runs it: the manifest is rewritten complete or left untouched,
whatever happens, and retried items are fetched under the rules of their first run."""

from __future__ import annotations

import csv
import hashlib
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.clirun import fetcher_command, read_manifest, run_fetcher, write_list
from tests.server import TestServer, body_for

MANIFEST = Path("out/.fetcher/manifest.jsonl")


def _slow_list(server: TestServer, tmp_path: Path) -> list[str]:
    """30 items; every third one slow (they fail the first run's --deadline)."""
    lines = []
    for i in range(30):
        if i % 3 == 1:
            lines.append(server.url(f"/slow?delay={0.4 + 0.3 * (i // 3)}&i={i}"))
        else:
            lines.append(server.url(f"/bytes/r{i}?size={100 + i}"))
    write_list(tmp_path / "l.txt", lines)
    return lines


def _first_run_with_ten_failures(server: TestServer, tmp_path: Path) -> list[str]:
    lines = _slow_list(server, tmp_path)
    run = run_fetcher(
        "fetch", "l.txt", "-o", "out", "--deadline", "0.2", "--retries", "0", cwd=tmp_path
    )
    assert run.returncode == 1, run.stderr
    rows = read_manifest(tmp_path / MANIFEST)
    assert [r["status"] for r in rows].count("failed") == 10
    return lines


def _assert_complete(before: list[str], after: list[str]) -> None:
    """Every earlier row is there, in order: as it was, or retried (and then ok)."""
    assert len(after) == len(before), "rows were lost or added"
    for old_line, new_line in zip(before, after, strict=True):
        old, new = json.loads(old_line), json.loads(new_line)
        assert new["index"] == old["index"] and new["source"] == old["source"]
        if new_line != old_line:
            assert old["status"] == "failed", "a row that was fine changed"
            assert new["status"] == "ok", new


def _wait_for_rewrite(manifest: Path, proc: subprocess.Popen[bytes]) -> None:
    """Until the retry has started writing its new manifest (its signal handling is in
    place by then)."""
    deadline = time.monotonic() + 20
    while not list(manifest.parent.glob(f".{manifest.name}.fetcher-rewrite-*")):
        assert proc.poll() is None and time.monotonic() < deadline, "the retry never started"
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("wait_s", "signum", "code"),
    [
        (0.0, signal.SIGINT, 130),  # before any retried item finished
        (0.9, signal.SIGINT, 130),  # some retried, others waiting on their server
        (2.2, signal.SIGINT, 130),  # most retried, the last ones still waiting
        (0.9, signal.SIGTERM, 143),
    ],
)
def test_interrupted_retry_keeps_every_row(
    http_server: TestServer, tmp_path: Path, wait_s: float, signum: int, code: int
) -> None:
    _first_run_with_ten_failures(http_server, tmp_path)
    before = (tmp_path / MANIFEST).read_text().splitlines()
    proc = subprocess.Popen(
        fetcher_command("retry", str(MANIFEST), "--deadline", "30", "-j", "4"),
        cwd=tmp_path,
        stderr=subprocess.PIPE,
    )
    _wait_for_rewrite(tmp_path / MANIFEST, proc)
    time.sleep(wait_s)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert b"Traceback" not in err
    after = (tmp_path / MANIFEST).read_text().splitlines()
    _assert_complete(before, after)
    assert not list((tmp_path / MANIFEST).parent.glob(".*rewrite*")), "temp manifest left"

    again = run_fetcher("retry", str(MANIFEST), "--deadline", "30", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    final = read_manifest(tmp_path / MANIFEST)
    assert [r["status"] for r in final] == ["ok"] * 30, "the interrupted rows were lost"


def test_a_list_given_as_manifest_is_a_usage_error_and_left_as_it_was(tmp_path: Path) -> None:
    listing = write_list(tmp_path / "urls.txt", ["http://127.0.0.1:9/a", "b.txt"])
    content = listing.read_bytes()
    run = run_fetcher("retry", "urls.txt", "-o", "out", cwd=tmp_path)
    assert run.returncode == 2
    assert "urls.txt is not a fetcher manifest" in run.stderr
    assert "Traceback" not in run.stderr
    assert listing.read_bytes() == content
    assert not (tmp_path / "out").exists(), "nothing is written for a usage error"


@pytest.mark.parametrize("bad", ["{not json", '{"index": 1}', "[1, 2]", '"text"'])
def test_a_manifest_with_one_bad_line_is_left_byte_for_byte(
    http_server: TestServer, tmp_path: Path, bad: str
) -> None:
    write_list(tmp_path / "l.txt", [http_server.url("/bytes/a?size=5"), "missing.txt"])
    assert run_fetcher("fetch", "l.txt", "-o", "out", cwd=tmp_path).returncode == 1
    manifest = tmp_path / MANIFEST
    lines = manifest.read_text().splitlines()
    damaged = "\n".join([lines[0], bad, lines[1]]) + "\n"
    manifest.write_text(damaged)
    run = run_fetcher("retry", str(MANIFEST), cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert "line 2" in run.stderr and "not a fetcher manifest" in run.stderr
    assert manifest.read_text() == damaged


def test_rows_out_of_order_are_not_a_manifest(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a")
    write_list(tmp_path / "l.txt", ["a", "missing"])
    assert run_fetcher("fetch", "l.txt", "-o", "out", cwd=tmp_path).returncode == 1
    manifest = tmp_path / MANIFEST
    swapped = "\n".join(reversed(manifest.read_text().splitlines())) + "\n"
    manifest.write_text(swapped)
    run = run_fetcher("retry", str(MANIFEST), cwd=tmp_path)
    assert run.returncode == 2 and "not in input order" in run.stderr
    assert manifest.read_text() == swapped


def test_retry_keeps_the_mirror_layout(http_server: TestServer, tmp_path: Path) -> None:
    urls = [http_server.url("/bytes/d/a.bin?size=10"), http_server.url("/flaky/d/b?fail=1")]
    write_list(tmp_path / "l.txt", urls)
    first = run_fetcher(
        "fetch", "l.txt", "-o", "out", "--layout", "mirror", "--retries", "0", cwd=tmp_path
    )
    assert first.returncode == 1, first.stderr
    run = run_fetcher("retry", str(MANIFEST), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    rows = read_manifest(tmp_path / MANIFEST)
    host = f"127.0.0.1_{http_server.base.rsplit(':', 1)[1]}"
    assert [r["path"] for r in rows] == [f"{host}/bytes/d/a.bin", f"{host}/flaky/d/b"]
    assert (tmp_path / "out" / host / "flaky" / "d" / "b").read_bytes() == body_for("d/b", 1000)
    assert not (tmp_path / "out" / "b").exists(), "retried item placed flat"


def _checksum_run(server: TestServer, tmp_path: Path) -> Path:
    good = hashlib.sha256(body_for("good", 10)).hexdigest()
    (tmp_path / "l.csv").write_text(
        "url,sha256\n"
        f"{server.url('/bytes/good?size=10')},{good}\n"
        f"{server.url('/bytes/bad?size=10')},{'0' * 64}\n"
    )
    run = run_fetcher("fetch", "l.csv", "-o", "out", "--manifest", "man.csv", cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    return tmp_path / "man.csv"


def test_retry_without_o_asks_for_it_when_the_manifest_is_elsewhere(
    http_server: TestServer, tmp_path: Path
) -> None:
    manifest = _checksum_run(http_server, tmp_path)
    content = manifest.read_bytes()
    run = run_fetcher("retry", "man.csv", cwd=tmp_path)
    assert run.returncode == 2
    assert "-o" in run.stderr and "output dir" in run.stderr
    assert manifest.read_bytes() == content
    assert not (tmp_path / "bad").exists()


def test_a_checksum_failure_stays_a_failure(http_server: TestServer, tmp_path: Path) -> None:
    manifest = _checksum_run(http_server, tmp_path)
    run = run_fetcher("retry", "man.csv", "-o", "out", cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    with manifest.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["status"], r["error_type"]) for r in rows] == [
        ("ok", ""),
        ("failed", "checksum_mismatch"),
    ]
    assert http_server.count("/bytes/bad") == 2, "the item was fetched again, and checked"
    assert not (tmp_path / "out" / "bad").exists()


def test_a_moved_manifest_fails_its_rows_with_a_clear_error(
    http_server: TestServer, tmp_path: Path
) -> None:
    write_list(tmp_path / "l.txt", [http_server.url("/bytes/a?size=5"), "missing.txt"])
    assert run_fetcher("fetch", "l.txt", "-o", "out", cwd=tmp_path).returncode == 1
    moved = tmp_path / "moved.jsonl"
    moved.write_bytes((tmp_path / MANIFEST).read_bytes())
    (tmp_path / "missing.txt").write_text("here now")
    run = run_fetcher("retry", "moved.jsonl", "-o", "out", cwd=tmp_path)
    assert run.returncode == 1
    rows = read_manifest(moved)
    assert rows[0]["status"] == "ok"
    assert rows[1]["error"]["type"] == "retry_rules_missing"
    assert "not retried" in rows[1]["error"]["message"]
    assert not (tmp_path / "out" / "missing.txt").exists(), "fetched without its rules"


def test_headers_and_politeness_come_from_the_first_run_unless_given(
    http_server: TestServer, tmp_path: Path
) -> None:
    urls = [http_server.url("/headers"), http_server.url("/flaky/h?fail=1")]
    write_list(tmp_path / "l.txt", urls)
    first = run_fetcher(
        "fetch", "l.txt", "-o", "out", "-H", "X-Token: first", "-H", "X-Keep: yes",
        "--retries", "0", cwd=tmp_path,
    )  # fmt: skip
    assert first.returncode == 1, first.stderr
    seen = len(http_server.requests_seen)
    run = run_fetcher("retry", str(MANIFEST), "-H", "X-Token: second", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    [(_, path, headers)] = http_server.requests_seen[seen:]
    assert path == "/flaky/h?fail=1"
    assert (headers["X-Token"], headers["X-Keep"]) == ("second", "yes")
