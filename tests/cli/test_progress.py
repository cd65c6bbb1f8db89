"""The progress bar as a user sees it on a terminal, and its absence elsewhere."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

from tests.clirun import fetcher_command, run_fetcher, write_list
from tests.server import TestServer


def read_terminal(args: list[str], cwd: Path, seconds: float) -> str:
    """Run with stderr on a pseudo-terminal; return what the terminal showed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(args, cwd=cwd, stderr=follower, stdout=subprocess.DEVNULL)
    os.close(follower)
    shown = b""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.05)
            if ready:
                try:
                    shown += os.read(leader, 65536)
                except OSError:
                    break
            elif proc.poll() is not None:
                break
    finally:
        proc.kill()
        proc.wait()
        os.close(leader)
    return shown.decode("utf-8", "replace")


def test_bar_counts_items_as_they_finish_not_in_order(
    http_server: TestServer, tmp_path: Path
) -> None:
    # The first item is slow: in-order output waits for it, the bar must not.
    lines = [http_server.url("/slow?delay=4")]
    lines += [http_server.url(f"/bytes/p{i}?size=100") for i in range(9)]
    lines += [http_server.url("/status/404")]
    write_list(tmp_path / "l.txt", lines)
    shown = read_terminal(
        fetcher_command("fetch", "l.txt", "-o", "out", "--retries", "0"), tmp_path, 2.5
    )
    counts = [int(m) for m in re.findall(r"(\d+)/11 ", shown)]
    assert counts, f"no bar with a total of 11 items on the terminal: {shown!r}"
    assert max(counts) >= 10, "items finished out of order must move the bar"
    assert "failed=1" in shown
    assert re.search(r"\d+(\.\d)? (B|KiB)", shown), "bytes shown"


def test_no_bar_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a")
    write_list(tmp_path / "l.txt", ["a"])
    run = run_fetcher("fetch", "l.txt", "-o", "out", cwd=tmp_path)
    assert run.returncode == 0
    assert "item/s" not in run.stderr and "it/s" not in run.stderr
    assert run.stderr.startswith("Done: 1 item (1 ok)")


def test_no_progress_flag_silences_the_bar_on_a_terminal(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a")
    write_list(tmp_path / "l.txt", ["a"])
    shown = read_terminal(
        fetcher_command("fetch", "l.txt", "-o", "out", "--no-progress"), tmp_path, 5
    )
    assert "Done: 1 item " in shown
    assert "item/s" not in shown and "failed=" not in shown
