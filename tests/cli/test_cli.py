"""The command line as a user runs it: real subprocesses, exit codes, files and messages."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.clirun import fetcher_command, read_manifest, run_fetcher, stop_with, write_list
from tests.server import TestServer, body_for


def test_all_ok_exits_0_and_writes_default_manifest(
    http_server: TestServer, tmp_path: Path
) -> None:
    listing = write_list(
        tmp_path / "l.txt", [http_server.url(f"/bytes/f{i}?size=9") for i in range(3)]
    )
    run = run_fetcher("fetch", str(listing), "-o", "out", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    rows = read_manifest(tmp_path / "out" / ".fetcher" / "manifest.jsonl")
    assert [r["index"] for r in rows] == [0, 1, 2]
    assert set(rows[0]) == {
        "index", "source", "path", "status", "bytes", "sha256", "http_status", "attempts",
        "elapsed_s", "error",
    }  # fmt: skip
    assert "Done: 3 items (3 ok)" in run.stderr
    assert "out/.fetcher/manifest.jsonl" in run.stderr


def test_any_failure_exits_1_with_every_item_recorded(
    http_server: TestServer, tmp_path: Path
) -> None:
    lines = [
        http_server.url("/bytes/a?size=3"),
        "ftp://example.invalid/x",
        "http://[not-a-host/",
        http_server.url("/status/404"),
        http_server.url("/bytes/b?size=3"),
    ]
    listing = write_list(tmp_path / "l.txt", lines)
    manifest = tmp_path / "m.jsonl"
    run = run_fetcher("fetch", str(listing), "-o", "out", "--manifest", str(manifest), cwd=tmp_path)
    assert run.returncode == 1
    rows = read_manifest(manifest)
    assert [r["source"] for r in rows] == lines
    assert [r["status"] for r in rows] == ["ok", "failed", "failed", "failed", "ok"]
    assert [r["error"]["type"] for r in rows[1:4]] == [
        "unsupported_scheme",
        "invalid_source",
        "http_status",
    ]
    assert "Traceback" not in run.stderr
    assert "failed #1 ftp://example.invalid/x" in run.stderr


def test_csv_manifest_when_path_ends_in_csv(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"a")
    listing = write_list(tmp_path / "l.txt", ["a.txt", "nope.txt"])
    run = run_fetcher("fetch", str(listing), "-o", "out", "--manifest", "m.csv", cwd=tmp_path)
    assert run.returncode == 1
    with (tmp_path / "m.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["status"] for r in rows] == ["ok", "failed"]
    assert rows[1]["error_type"] == "not_found"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fetch", "missing.txt"], "list not found: missing.txt"),
        (["fetch", "."], "list is a directory"),
        (["fetch", "-", "-"], "standard input (-) can be named only once"),
        (["fetch", "l.txt", "--chunksize", "big"], "--chunksize must be 'auto' or a number"),
        (["fetch", "l.txt", "-j", "0"], "--workers must be at least 1"),
        (["fetch", "l.txt", "--max-size", "lots"], "not a size"),
        (["fetch", "l.txt", "-H", "no colon"], "not a header"),
        (["fetch", "l.txt", "--stdout", "-o", "x"], "--stdout keeps no files"),
        (["fetch", "l.txt", "--layout", "tree"], "--layout takes one of flat, mirror, indexed"),
        (["fetch", "l.txt", "--no-such-option"], "No such option"),
    ],
)
def test_usage_errors_exit_2_with_one_clear_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    write_list(tmp_path / "l.txt", ["x"])
    run = run_fetcher(*args, cwd=tmp_path)
    assert run.returncode == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "x").exists()


def test_hostile_list_bytes_become_failed_items_not_crashes(tmp_path: Path) -> None:
    (tmp_path / "ok.txt").write_bytes(b"fine")
    raw = (
        b"\xef\xbb\xbfok.txt\r\n"
        b"\xff\xfe\xfa not utf-8\n"
        b"nul\x00byte\n" + b"http://h/" + b"a" * 1_000_000 + b"\n"
        b"ok.txt\n"
    )
    (tmp_path / "l.txt").write_bytes(raw)
    run = run_fetcher("fetch", "l.txt", "-o", "out", cwd=tmp_path)
    assert run.returncode == 1
    rows = read_manifest(tmp_path / "out" / ".fetcher" / "manifest.jsonl")
    assert [r["status"] for r in rows] == ["ok", "failed", "failed", "failed", "ok"]
    assert {r["error"]["type"] for r in rows[1:4]} == {"invalid_source"}
    assert "Traceback" not in run.stderr


def test_empty_list_exits_0_with_empty_manifest(tmp_path: Path) -> None:
    (tmp_path / "l.txt").write_bytes(b"# nothing here\n\n")
    run = run_fetcher("fetch", "l.txt", "-o", "out", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out" / ".fetcher" / "manifest.jsonl").read_text() == ""


def test_several_lists_concatenate_in_order(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name).write_bytes(name.encode())
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d").write_bytes(b"d")
    write_list(tmp_path / "one.txt", ["a", "b"])
    write_list(tmp_path / "sub" / "two.txt", ["d"])  # relative to its own folder
    run = run_fetcher(
        "fetch", "one.txt", "-", "sub/two.txt", "-o", "out", stdin=b"c\n", cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    rows = read_manifest(tmp_path / "out" / ".fetcher" / "manifest.jsonl")
    assert [(r["index"], r["path"]) for r in rows] == [(0, "a"), (1, "b"), (2, "c"), (3, "d")]


def test_python_module_and_help_and_version(tmp_path: Path) -> None:
    assert "LIST|URL..." in run_fetcher("fetch", "--help", cwd=tmp_path).stdout.decode()
    version = run_fetcher("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith(b"fetcher ")


def test_second_run_on_same_output_dir_is_refused_while_first_runs(
    http_server: TestServer, tmp_path: Path
) -> None:
    write_list(tmp_path / "slow.txt", [http_server.url("/slow?delay=3")])
    first = subprocess.Popen(fetcher_command("fetch", "slow.txt", "-o", "out"), cwd=tmp_path,
                             stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not (tmp_path / "out" / ".fetcher" / "lock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        second = run_fetcher("fetch", "slow.txt", "-o", "out", cwd=tmp_path)
        assert second.returncode == 2
        assert "another fetcher run is using" in second.stderr
    finally:
        first.kill()
        first.wait()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_exits_promptly_with_a_consistent_manifest_prefix(
    http_server: TestServer, tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    lines = [http_server.url(f"/bytes/q{i}?size=2000") for i in range(5)]
    lines += [http_server.url(f"/slow?delay=60&i={i}") for i in range(20)]
    lines += [http_server.url("/stream?size=200000000")]
    write_list(tmp_path / "l.txt", lines)
    proc = subprocess.Popen(
        fetcher_command("fetch", "l.txt", "-o", "out", "-j", "8"),
        cwd=tmp_path,
        stderr=subprocess.PIPE,
    )
    manifest = tmp_path / "out" / ".fetcher" / "manifest.jsonl"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if manifest.exists() and manifest.read_text().count("\n") >= 5:
            break
        time.sleep(0.05)
    time.sleep(0.3)
    stop_with(proc, sig)
    assert proc.returncode == code
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(len(rows)))
    assert len(rows) == 5 and all(r["status"] == "ok" for r in rows)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir() if p.name != ".fetcher") == [
        f"q{i}" for i in range(5)
    ]
    for i in range(5):
        assert (out / f"q{i}").read_bytes() == body_for(f"q{i}", 2000)
