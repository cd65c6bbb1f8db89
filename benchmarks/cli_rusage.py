"""Run the fetcher CLI in this process and write what its parent process cost.

Why: in process mode the parent (order, names, state store, manifest) must stay a small
share of the CPU per item, or one parent cannot feed many processes. /usr/bin/time sees only
the whole tree; this wrapper calls `fetcher.cli.main()` itself, so the parent is this
process, and on the way out, also through SystemExit, writes a JSON report:

- `parent_cpu_s`: user + sys of this process (`getrusage(RUSAGE_SELF)`, all its threads);
- `children_cpu_s`: user + sys of the children it reaped (`RUSAGE_CHILDREN`);
- `processes`: the most child processes it had at once (multiprocessing's resource
  tracker not counted), sampled from /proc every 0.1 s by a daemon thread;
- `exit_code`.

The report is written by an exit handler registered before fetcher (and multiprocessing)
is imported: exit handlers run last-registered first, so multiprocessing's own handler has
already joined the pool's children and RUSAGE_CHILDREN includes them.

    python benchmarks/cli_rusage.py REPORT.json fetch LIST -o OUT [fetcher options]
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import sys
import threading
from pathlib import Path

SAMPLE_S = 0.1


def cpu_s(who: int) -> float:
    """user + sys seconds of RUSAGE_SELF or RUSAGE_CHILDREN."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def child_pids() -> set[int]:
    """Live children of this process (any of its threads may have started them)."""
    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids.update(int(p) for p in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return pids


def is_worker(pid: int) -> bool:
    """A child that does the work: not multiprocessing's resource tracker."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"resource_tracker" not in cmdline


class Report:
    """What the exit handler writes; `peak` is updated by the sampler thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.peak = 0
        self.exit_code: int | None = None
        self._done = threading.Event()

    def sample(self) -> None:
        """Track the largest number of worker children seen at once."""
        while not self._done.wait(SAMPLE_S):
            self.peak = max(self.peak, sum(1 for pid in child_pids() if is_worker(pid)))

    def write(self) -> None:
        """The exit handler: stop sampling, write the JSON report."""
        self._done.set()
        data = {
            "parent_cpu_s": cpu_s(resource.RUSAGE_SELF),
            "children_cpu_s": cpu_s(resource.RUSAGE_CHILDREN),
            "processes": self.peak,
            "exit_code": self.exit_code,
        }
        self.path.write_text(json.dumps(data) + "\n")


def main() -> None:
    """Set up the report, then hand the rest of the command line to fetcher."""
    if len(sys.argv) < 2:
        raise SystemExit("usage: cli_rusage.py REPORT.json FETCHER-ARGS...")
    report = Report(Path(sys.argv[1]))
    atexit.register(report.write)  # before fetcher and multiprocessing register theirs
    threading.Thread(target=report.sample, name="rusage-sampler", daemon=True).start()
    sys.argv = ["fetcher", *sys.argv[2:]]
    from fetcher.cli import main as fetcher_main

    try:
        fetcher_main()
        report.exit_code = 0
    except SystemExit as exc:
        code = exc.code
        report.exit_code = code if isinstance(code, int) else (0 if code is None else 1)
        raise


if __name__ == "__main__":
    main()
