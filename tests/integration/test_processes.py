"""`--processes`: the same results, names and guarantees as threads alone."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from fetcher import Status, fetch_all
from tests.clirun import fetcher_command, run_fetcher, write_list
from tests.server import TestServer, body_for


def test_results_in_input_order_and_files_right(http_server: TestServer, tmp_path: Path) -> None:
    rng = random.Random(3)
    urls = [
        http_server.url(f"/bytes/p{i}?size={50 + i}&delay={rng.choice([0, 0, 0.05])}")
        for i in range(60)
    ]
    results = fetch_all(urls, output_dir=tmp_path, workers=6, processes=2)
    assert [r.index for r in results] == list(range(60))
    for i, result in enumerate(results):
        assert result.status is Status.OK
        assert (tmp_path / str(result.path)).read_bytes() == body_for(f"p{i}", 50 + i)
    assert not list(tmp_path.glob(".fetcher-*.part"))


def test_names_match_threads_alone_and_reruns_skip(http_server: TestServer, tmp_path: Path) -> None:
    urls = [http_server.url(f"/bytes/same.bin?size={10 + i}&v={i}") for i in range(8)]
    urls.append(http_server.url("/status/404"))
    threads = fetch_all(urls, output_dir=tmp_path / "t", workers=4)
    processes = fetch_all(urls, output_dir=tmp_path / "p", workers=4, processes=2)
    assert [r.path for r in processes] == [r.path for r in threads]
    assert [r.status for r in processes] == [r.status for r in threads]
    again = fetch_all(urls, output_dir=tmp_path / "p", workers=4, processes=2)
    assert [r.status for r in again[:8]] == [Status.SKIPPED] * 8


def test_stdout_order_with_processes(http_server: TestServer, tmp_path: Path) -> None:
    urls = [http_server.url(f"/bytes/o{i}?size={30 + i}&delay={0.05 * (i % 3)}") for i in range(15)]
    write_list(tmp_path / "l.txt", urls)
    run = run_fetcher("fetch", "l.txt", "--stdout", "--processes", "2", "-j", "4", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout == b"".join(body_for(f"o{i}", 30 + i) for i in range(15))


def test_interrupt_with_processes_exits_130_and_leaves_no_temps(
    http_server: TestServer, tmp_path: Path
) -> None:
    lines = [http_server.url(f"/bytes/q{i}?size=500") for i in range(4)]
    lines += [http_server.url(f"/slow?delay=30&i={i}") for i in range(8)]
    write_list(tmp_path / "l.txt", lines)
    proc = subprocess.Popen(
        fetcher_command("fetch", "l.txt", "-o", "out", "-j", "4", "--processes", "2"),
        cwd=tmp_path,
        stderr=subprocess.PIPE,
    )
    manifest = tmp_path / "out" / ".fetcher" / "manifest.jsonl"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (
        manifest.exists() and manifest.read_text().count("\n") >= 4
    ):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    assert b"leaked" not in err, "the children's semaphores outlived them"
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(len(rows))) and len(rows) >= 4
    assert not list((tmp_path / "out").glob(".fetcher-*.part"))


def test_a_script_without_a_main_guard_runs_once(http_server: TestServer, tmp_path: Path) -> None:
    """The children never import the caller's script: no `if __name__ == "__main__":`."""
    urls = [http_server.url(f"/count/g{i}") for i in range(6)]
    script = tmp_path / "script.py"
    script.write_text(
        "from fetcher import fetch_all\n"
        f"results = fetch_all({urls!r}, output_dir='out', workers=2, processes=2)\n"
        "print('fetched', sum(r.ok for r in results))\n"
    )
    run = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == "fetched 6\n"
    assert [http_server.hits(f"g{i}") for i in range(6)] == [1] * 6
