"""Running the command line as a user does, and reading what it leaves behind."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class CliRun:
    """A finished `fetcher` process, as a user would see it."""

    returncode: int
    stdout: bytes
    stderr: str
    peak_rss_mib: float


def fetcher_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "fetcher", *args]


def run_fetcher(*args: str, cwd: Path, stdin: bytes | None = None, timeout: float = 120) -> CliRun:
    """Run the command line in a real subprocess, as a user does, and measure its peak RSS.

    The peak comes from the child's own VmHWM in /proc, polled while it runs: `ru_maxrss`
    from wait4 would carry the high-water mark of the address space before exec, i.e. of
    the pytest process that forked it."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            fetcher_command(*args),
            cwd=cwd,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )  # returns once the child has exec'd
        if stdin is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin)
            proc.stdin.close()
        status, peak_kib = Path(f"/proc/{proc.pid}/status"), 0
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            with contextlib.suppress(OSError):
                found = re.search(r"^VmHWM:\s+(\d+) kB", status.read_text(), re.MULTILINE)
                peak_kib = max(peak_kib, int(found.group(1))) if found else peak_kib
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise TimeoutError(f"fetcher {' '.join(args)} ran over {timeout}s")
            time.sleep(0.005)
        out.seek(0)
        err.seek(0)
        return CliRun(
            proc.returncode,
            out.read(),
            err.read().decode("utf-8", "replace"),
            peak_kib / 1024,
        )


def stop_with(proc: subprocess.Popen[bytes], sig: int, *, within: float = 3) -> tuple[bytes, bytes]:
    """Send `sig` as a user's Ctrl-C or `kill` does, and wait: the process must be gone
    within `within` seconds, without a traceback. Its stdout and stderr."""
    sent = time.monotonic()
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=15)
    assert time.monotonic() - sent < within
    assert b"Traceback" not in stderr
    return stdout, stderr


def read_manifest(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write_list(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path
