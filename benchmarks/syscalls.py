"""System calls per item: fetcher against wget, writing small files to a real disk.

Why: on a real disk every system call on the write path (mkdir, stat, open, rename, fsync,
...) costs more than on tmpfs, and calls a downloader does not need are pure overhead.
`strace -f -c` counts every call of the whole process tree (threads and child processes
included), by name, with the calls that failed. Both tools fetch the same N small files
from a private nginx on 127.0.0.1 into a fresh folder on a real disk (ext4/xfs, found with
findmnt) in the mirror layout:

- fetcher: `fetcher fetch LIST -o OUT --layout mirror --no-progress` (everything else
  default);
- wget: `wget -x -nH -i LIST -P OUT -q` (one connection, one file after the other).

Each also runs on an empty list, to count what start-up alone costs (an interpreter's
imports make thousands of calls); the table gives calls per item with that subtracted, and
the gross figure too. strace slows every call down, which changes how threads meet on
locks: read the futex counts as "how often threads hand over", not as a timing.

    python benchmarks/syscalls.py [--files 1000] [--disk-dir DIR] [--quick]

Writes benchmarks/results/syscalls.md (results/quick/ with --quick) and prints it. Exit 0
when both runs left every file intact, 1 otherwise, 2 when the harness could not run.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import corpus
import peers
from nginx import Nginx
from peers import MIB, STATE_DIR, Batch, Tool
from scale_check import HarnessError, Problems, Run, pick_temp_root, run_measured

RUN_TIMEOUT_S = 900.0
TOP = 25  # rows shown, by fetcher's calls per item
FETCHER = "fetcher"
WGET = "wget"


@dataclass
class Count:
    """One syscall's count in an `strace -c` summary."""

    calls: int
    errors: int


def parse_strace_c(path: Path) -> dict[str, Count]:
    """syscall -> calls and errors, from `strace -c -o PATH` (the `total` row left out)."""
    counts: dict[str, Count] = {}
    rows = False
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("------"):
            rows = True
            continue
        parts = line.split()
        if not rows or len(parts) < 5 or parts[-1] == "total":
            continue
        # % time, seconds, usecs/call, calls, [errors,] syscall
        numbers = parts[3:-1]
        counts[parts[-1]] = Count(int(numbers[0]), int(numbers[1]) if len(numbers) > 1 else 0)
    return counts


def mirror_verifier(host_dir: bool) -> peers.Verifier:
    """Every item at OUT/relpath (wget -x -nH) or OUT/<one host folder>/relpath (fetcher's
    mirror layout, whatever it names the host folder)."""

    def verify(batch: Batch, out: Path, run: Run, problems: Problems) -> tuple[int, int]:
        if not host_dir:
            return peers.files_verifier(peers.same_path)(batch, out, run, problems)
        tops = [p.name for p in out.iterdir() if p.name != STATE_DIR]
        if len(tops) != 1:
            problems.add(f"expected one host folder, found {tops[:5]}")
            return 0, 0
        top = tops[0]
        return peers.files_verifier(lambda rel: f"{top}/{rel}", STATE_DIR)(
            batch, out, run, problems
        )

    return verify


def fetcher_mirror() -> Tool:
    """fetcher, defaults but for the mirror layout."""
    base = peers.fetcher(FETCHER, "--layout", "mirror", "--no-progress")
    return Tool(FETCHER, base.argv, mirror_verifier(host_dir=True))


def wget_mirror() -> Tool:
    """wget -x -nH -i: server folders kept, host folder dropped."""

    def argv(batch: Batch, out: Path, scratch: Path) -> list[str]:
        return ["wget", "-x", "-nH", "-i", str(batch.list_path), "-P", str(out), "-q"]

    return Tool(WGET, argv, mirror_verifier(host_dir=False))


@dataclass
class Traced:
    """One tool's strace counts on the list and on an empty list."""

    tool: str
    counts: dict[str, Count]
    empty: dict[str, Count]
    files: int
    wall_s: float
    problems: list[str]
    command: str


def traced(tool: Tool, batch: Batch, empty: Batch, work: Path, disk: Path) -> Traced:
    """Run the tool under `strace -f -c` on the batch (outputs on disk, checked) and on the
    empty list; return both counts."""
    results: list[dict[str, Count]] = []
    files, wall, problems, command = 0, 0.0, Problems(), ""
    for b in (batch, empty):
        out = disk / f"out-{tool.slug}-{b.name}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        summary = work / f"{tool.slug}-{b.name}.strace"
        argv = ["strace", "-f", "-c", "-o", str(summary), "--", *tool.argv(b, out, work)]
        run = run_measured(argv, f"strace-{tool.slug}-{b.name}", work, RUN_TIMEOUT_S)
        if b is batch:
            command = shlex.join(argv).replace(str(work), "$WORK").replace(str(disk), "$DISK")
            wall = run.wall_s
            if run.exit_code != 0:
                problems.add(f"exit {run.exit_code}: {run.stderr_tail[-300:]!r}")
            files, _ = tool.verify(b, out, run, problems)
        results.append(parse_strace_c(summary) if summary.exists() else {})
        shutil.rmtree(out, ignore_errors=True)
    return Traced(tool.name, results[0], results[1], files, wall, problems.samples, command)


def per_item(t: Traced, name: str, items: int, *, net: bool = True) -> tuple[float, float]:
    """(calls, errors) per item of one syscall, start-up subtracted when `net`."""
    c = t.counts.get(name, Count(0, 0))
    e = t.empty.get(name, Count(0, 0)) if net else Count(0, 0)
    return (c.calls - e.calls) / items, (c.errors - e.errors) / items


def total(counts: dict[str, Count]) -> Count:
    """Sum over every syscall."""
    return Count(sum(c.calls for c in counts.values()), sum(c.errors for c in counts.values()))


def render(header: Sequence[str], items: int, runs: Sequence[Traced]) -> str:
    """The markdown table: calls per item by syscall, fetcher against wget."""
    f, w = runs
    names = sorted(
        set(f.counts) | set(w.counts),
        key=lambda n: -max(per_item(f, n, items)[0], per_item(w, n, items)[0]),
    )
    out = ["# System calls per item: fetcher vs wget, real disk, mirror layout", ""]
    out += [f"- {h}" for h in header] + [""]
    out += [
        "| syscall | fetcher calls/item | fetcher failed/item | wget calls/item "
        "| wget failed/item |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in names[:TOP]:
        fc, fe = per_item(f, name, items)
        wc, we = per_item(w, name, items)
        out.append(f"| {name} | {fc:.2f} | {fe:.2f} | {wc:.2f} | {we:.2f} |")
    rest = names[TOP:]
    if rest:
        fr = sum(per_item(f, n, items)[0] for n in rest)
        wr = sum(per_item(w, n, items)[0] for n in rest)
        out.append(f"| {len(rest)} others | {fr:.2f} | | {wr:.2f} | |")
    rows = []
    for t in runs:
        gross, start = total(t.counts), total(t.empty)
        rows.append(
            f"| {t.tool} | {(gross.calls - start.calls) / items:.1f} | "
            f"{(gross.errors - start.errors) / items:.2f} | {gross.calls / items:.1f} | "
            f"{start.calls:,} | {t.files:,} | {t.wall_s:.1f} |"
        )
    out += [
        "",
        "Per item: the run's count minus the same command's count on an empty list "
        "(start-up), divided by the items. Totals:",
        "",
        "| tool | calls/item (net of start-up) | failed/item | calls/item (gross) "
        "| start-up calls | files verified | wall s under strace |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "Commands:",
        "",
        *[f"- {t.tool}: `{t.command}`" for t in runs],
        "",
        "($WORK: the scratch folder on tmpfs with the list and the strace summary; $DISK: the "
        "scratch folder on the real disk.)",
    ]
    problems = [f"{t.tool}: {p}" for t in runs for p in t.problems]
    if problems:
        out += ["", "## Problems", "", *[f"- {p}" for p in problems]]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Set up, trace both tools, write and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, help="small files (default 1000; 200 with --quick)")
    parser.add_argument("--disk-dir", type=Path, help="folder on a real disk (default: found)")
    parser.add_argument("--quick", action="store_true", help="a smoke test")
    args = parser.parse_args(argv)
    files = args.files or (200 if args.quick else 1000)
    if files < 1:
        parser.error("--files must be positive")
    peers.interrupt_on_sigterm()
    try:
        peers.install_peers()
        need = files * 70 * 1024 + 64 * MIB
        disk_root, disk_note = peers.pick_disk_root(2 * need, args.disk_dir)
        with (
            tempfile.TemporaryDirectory(prefix="fetcher-sys-", dir=pick_temp_root(need)) as tmp,
            tempfile.TemporaryDirectory(prefix="fetcher-sys-", dir=disk_root) as disk,
        ):
            work = Path(tmp)
            header = peers.context_lines(work.parent)
            header.append(f"outputs on {disk_note}; {files:,} files of 1-64 KiB from nginx")
            index = corpus.build_corpus(work / "www", files, index_path=work / "index.json")
            with Nginx(work / "www") as srv:
                batch = peers.make_batch("list", peers.corpus_items(srv.base, work / "www", index),
                                         work)  # fmt: skip
                empty = peers.make_batch("empty", [], work)
                runs = [
                    traced(tool, batch, empty, work, Path(disk))
                    for tool in (fetcher_mirror(), wget_mirror())
                ]
            header += peers.end_lines()
            report = render(header, files, runs)
    except (HarnessError, subprocess.SubprocessError, OSError) as exc:
        print(f"syscalls: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("syscalls: interrupted; nginx stopped, scratch data removed", file=sys.stderr)
        return 130
    peers.write_report("syscalls.md", report, args.quick)
    return 0 if all(not t.problems for t in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
