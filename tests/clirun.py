"""Running the command line as a user does, and reading what it leaves behind."""

from __future__ import annotations

import json
import os
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
    """Run the command line in a real subprocess; reaped with wait4 to read its peak RSS."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            fetcher_command(*args),
            cwd=cwd,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
        if stdin is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin)
            proc.stdin.close()
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise TimeoutError(f"fetcher {' '.join(args)} ran over {timeout}s")
            time.sleep(0.01)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return CliRun(
            proc.returncode,
            out.read(),
            err.read().decode("utf-8", "replace"),
            usage.ru_maxrss / 1024,
        )


def read_manifest(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write_list(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path
