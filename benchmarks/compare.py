"""fetcher against the tools people use instead, in one run, on one machine.

Why: "fast" only means something next to parfive, wget, curl --parallel, aria2c, wget2 and
the requests scripts people write, on the same server, list and machine, writing to the
file systems users write to. One command sets everything up (setup.sh), builds the corpus
on tmpfs, runs a private nginx (one worker) on 127.0.0.1, and measures, every run into a
fresh output dir and every output file checked against its sha256:

- small files: N files of 1-64 KiB in 50 folders, written to tmpfs AND to a real disk
  (ext4/xfs, found with findmnt); files/s, MB/s, client CPU per file (user + sys of the
  whole process tree) and what a million files cost in core-hours, and ratios;
- processes: fetcher --processes 1, 2, 4 (same 16 threads) and its defaults, through
  cli_rusage.py: files/s and the parent process's share of the CPU per item;
- overhead: fetcher on a terminal with its progress bar, without it, and without the
  manifest write (`--manifest /dev/null`);
- large files: 1 GiB + 8 x 64 MiB; MB/s against the peers and the single-stream
  `curl -o /dev/null` ceiling, and fetcher's peak RSS;
- huge list: 1,000,000 URLs; time from process start to the first request nginx logs,
  and peak RSS (SIGINT after 10 s);
- `fetcher --help` wall time.

Runs of different tools (and file systems) are interleaved round-robin so machine noise
spreads evenly, and medians are taken over the runs that passed their check.

    python benchmarks/compare.py [--runs 3] [--files 5000] [--disk-dir DIR] [--journaled]
        [--quick]

`--journaled` puts the disk runs on a fresh ext4 with a journal, an image on that disk
loop-mounted for the run (root only; report `compare_journaled.md`): this machine's own
ext4 has none, and there every run pays for the files the runs before it deleted (see
`deleted_inodes.py`).

Writes benchmarks/results/compare.md (results/quick/ with --quick) and prints it. Exit
status: 0 when every run passed its check, 1 when some tool failed one, 2 when the harness
could not run.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import corpus
import peers
from nginx import Nginx
from peers import MIB, Case, Summary, Tool, fmt, ratio
from scale_check import HarnessError, fetcher_cmd, pick_temp_root, run_measured

SMALL_TIMEOUT_S = 300.0
LARGE_TIMEOUT_S = 600.0
HELP_RUNS = 10
HUGE_SECONDS = 10.0
TARGET_RSS_MIB = 64
PARENT_SHARE_TARGET = 1 / 8


@dataclass(frozen=True)
class Plan:
    """Sizes of one compare run (full, or --quick for a smoke test)."""

    runs: int
    files: int
    big_mib: int
    medium_mib: int
    medium_count: int
    huge_lines: int
    huge_seconds: float


def plan_from(args: argparse.Namespace) -> Plan:
    """The sizes the issue asks for, or a small smoke-test set with --quick."""
    if args.quick:
        return Plan(args.runs or 1, args.files or 500, 64, 8, 8, 100_000, 3.0)
    return Plan(args.runs or 3, args.files or 5000, 1024, 64, 8, 1_000_000, HUGE_SECONDS)


def fit_large(plan: Plan, free: int, small_bytes: int) -> tuple[Plan, str]:
    """Halve the large-file set until the files plus one fetched copy fit in `free`."""
    note = ""
    while plan.big_mib > 16:
        need = 2 * (plan.big_mib + plan.medium_count * plan.medium_mib) * MIB
        if need + 3 * small_bytes + 512 * MIB <= free:
            break
        plan = dataclasses.replace(plan, big_mib=plan.big_mib // 2, medium_mib=plan.medium_mib // 2)
        note = " (not enough tmpfs for the full large-file set: scaled down)"
    return plan, note


def verdict(value: float | None, ok: Callable[[float], bool]) -> str:
    """PASS / FAIL for a target, n/a when nothing was measured."""
    if value is None:
        return "n/a"
    return "PASS" if ok(value) else "FAIL"


@dataclass
class HugeRun:
    """One huge-list run: when the first request arrived, memory, progress made."""

    first_request_s: float | None
    rss_mib: float | None
    rows: int
    exit_code: int
    problem: str | None


def huge_list_run(
    www: Path, items: Sequence[peers.Item], work: Path, *, plan: Plan, run_no: int
) -> HugeRun:
    """fetcher on a `lines`-line list (corpus URLs, cycled), SIGINT after `seconds`.

    The first request's arrival is nginx's own log time for it ($msec - $request_time), and
    the start is taken just before the process is spawned, so the figure includes
    interpreter start-up and everything fetcher does before its first request.
    """
    lines, seconds = plan.huge_lines, plan.huge_seconds
    log = work / f"huge-access-{run_no}.log"
    out = work / "out-huge"
    shutil.rmtree(out, ignore_errors=True)
    with Nginx(www, access_log=log) as srv:
        big = work / "huge.txt"
        corpus.write_lines(
            big, (f"{srv.base}/{items[i % len(items)].relpath}" for i in range(lines))
        )
        argv = [*fetcher_cmd(), "fetch", str(big), "-o", str(out), "-j", "16", "--no-progress"]
        started = time.time()
        run = run_measured(argv, f"huge-{run_no}", work, seconds)
    # The first GET: Nginx.start() probes readiness with a HEAD before fetcher starts.
    gets = [line.split() for line in log.read_text().splitlines() if " GET " in line]
    first = float(gets[0][0]) - float(gets[0][1]) - started if gets else None
    manifest = out / peers.MANIFEST
    rows = 0
    problem = None
    if manifest.exists():
        with manifest.open() as fh:
            for line in fh:
                if json.loads(line).get("index") != rows:
                    problem = f"manifest row {rows} out of order"
                    break
                rows += 1
    if run.exit_code != (130 if run.interrupted else 0):
        problem = f"exit {run.exit_code}: {run.stderr_tail[-200:]!r}"
    shutil.rmtree(out, ignore_errors=True)
    big.unlink()
    rss = run.maxrss_kib / 1024 if run.maxrss_kib is not None else None
    return HugeRun(first, rss, rows, run.exit_code, problem)


def help_times(runs: int, work: Path) -> list[float]:
    """Wall time of `fetcher --help`, `runs` times (under /usr/bin/time, about 1 ms more)."""
    times = []
    for run_no in range(runs):
        run = run_measured([*fetcher_cmd(), "--help"], f"help-{run_no}", work, 60)
        if run.exit_code != 0:
            raise HarnessError(f"fetcher --help exited {run.exit_code}: {run.stderr_tail}")
        times.append(run.wall_s)
    return times


def tool_table(summaries: Sequence[Summary], *, large: bool = False, prefix: str = "") -> list[str]:
    """Markdown table of medians per tool (names shown without `prefix`)."""
    if large:
        rows = ["| tool | runs | MB/s | (min-max) | peak RSS MiB (median / max) |"]
        rows.append("|---|---|---:|---:|---:|")
    else:
        rows = [
            "| tool | runs | files/s | (min-max) | MB/s | CPU us/file | (min-max) "
            "| core-h per 1M files | connections opened | peak RSS MiB (median / max) |"
        ]
        rows.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in summaries:
        rss = f"{fmt(s.rss_mib, '.0f')} / {fmt(s.max_rss_mib, '.0f')}"
        if large:
            cells = [fmt(s.mb_per_s), s.mb_range, rss]
        else:
            cells = [
                fmt(s.files_per_s), s.files_range, fmt(s.mb_per_s), fmt(s.cpu_us), s.cpu_range,
                fmt(s.core_hours_per_million, ".2f"), fmt(s.connections), rss,
            ]  # fmt: skip
        rows.append(f"| {s.tool.removeprefix(prefix)} | {s.status} | {' | '.join(cells)} |")
    return rows


def shorten(command: str, work: Path, disk: Path | None = None) -> str:
    """A command with the scratch dirs written as $WORK (tmpfs) and $DISK."""
    command = command.replace(str(work), "$WORK")
    return command.replace(str(disk), "$DISK") if disk is not None else command


def main(argv: list[str] | None = None) -> int:
    """Set up, measure everything, write and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, help="runs per tool (default 3; 1 with --quick)")
    parser.add_argument("--files", type=int, help="small-file corpus size (default 5000)")
    parser.add_argument(
        "--disk-dir", type=Path, help="folder on a real disk for the disk runs (default: found)"
    )
    parser.add_argument(
        "--journaled",
        action="store_true",
        help="disk runs on a fresh journaled ext4 image on that disk (root); compare_journaled.md",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    args = parser.parse_args(argv)
    if (args.runs is not None and args.runs < 1) or (args.files is not None and args.files < 1):
        parser.error("--runs and --files must be positive")
    plan = plan_from(args)
    peers.interrupt_on_sigterm()
    try:
        peers.install_peers()
        need = plan.files * 70 * 1024 + 512 * MIB
        disk_root, disk_note = peers.pick_disk_root(2 * need, args.disk_dir)
        with ExitStack() as stack:
            if args.journaled:
                disk_root, disk_note = stack.enter_context(
                    peers.journaled_ext4(disk_root, 2 * need)
                )
            tmp = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="fetcher-compare-", dir=pick_temp_root(need))
            )
            disk = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="fetcher-compare-", dir=disk_root)
            )
            measured = measure(plan, Path(tmp), Path(disk), disk_note)
            report = render(measured)
    except (HarnessError, subprocess.SubprocessError, OSError) as exc:
        print(f"compare: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("compare: interrupted; nginx stopped, scratch data removed", file=sys.stderr)
        return 130
    name = "compare_journaled.md" if args.journaled else "compare.md"
    peers.write_report(name, report, args.quick)
    return 0 if measured.all_ok else 1


FILE_SYSTEMS = ("tmpfs", "disk")
DEFAULTS = "fetcher"
PROCESSES = "fetcher --processes 2"
FETCHERS = (DEFAULTS, PROCESSES)
TTY = "fetcher on a tty, "
TTY_VARIANTS = (
    ("bar + manifest", ()),
    ("--no-progress --manifest /dev/null", ("--no-progress", "--manifest", "/dev/null")),
)
MIN1, MIN2 = peers.minimal_name(1), peers.minimal_name(2)
PEERS = ("parfive", "wget (sequential)", "curl --parallel", "aria2c", "wget2", MIN1, MIN2)
TMPFS_ONLY = tuple(TTY + name for name, _ in TTY_VARIANTS)
CEILING = "curl -o /dev/null (1 stream)"
SCALING = (
    ("defaults", ()),
    ("--processes 1", ("-j", "16", "--processes", "1")),
    ("--processes 2", ("-j", "16", "--processes", "2")),
    ("--processes 4", ("-j", "16", "--processes", "4")),
)
SCALE = "scaling: fetcher "
EMPTY = "empty list: fetcher "


def key(fs: str, tool: str) -> str:
    """A small-file case's key: file system and tool."""
    return f"{fs}: {tool}"


@dataclass
class Measured:
    """Everything one compare run measured, reduced to summaries."""

    plan: Plan
    header: list[str]
    work: Path
    disk: Path
    small: dict[str, Summary]
    scaling: dict[str, Summary]
    large: dict[str, Summary]
    huge: list[HugeRun]
    helps: list[float]
    all_ok: bool
    end: list[str] = dataclasses.field(default_factory=list)


def small_tools() -> list[Tool]:
    """The small-file tools, every one with 16 connections (fetcher: its default -j)."""
    return [
        peers.fetcher(DEFAULTS, "--no-progress"),
        peers.fetcher(PROCESSES, "--processes", "2", "--no-progress"),
        peers.parfive(),
        peers.wget(),
        peers.curl_parallel(),
        peers.aria2c(),
        peers.wget2(),
        peers.requests_minimal(1),
        peers.requests_minimal(2),
        *[peers.fetcher(TTY + name, *opts, terminal=True) for name, opts in TTY_VARIANTS],
    ]


def measure(plan: Plan, work: Path, disk: Path, disk_note: str) -> Measured:
    """Build the data, serve it, run every measurement."""
    header = peers.context_lines(work.parent)
    www = work / "www"
    started = time.monotonic()
    index = corpus.build_corpus(www, plan.files, index_path=work / "index.json")
    small_bytes = sum((www / rel).stat().st_size for rel in index)
    plan, large_note = fit_large(plan, shutil.disk_usage(work).free, small_bytes)
    sizes = {"big.bin": plan.big_mib * MIB}
    sizes |= {f"medium{k}.bin": plan.medium_mib * MIB for k in range(plan.medium_count)}
    large_shas = peers.write_large_files(www / "large", sizes)
    header += [
        f"real disk for the disk runs: {disk_note}; outputs only (the corpus nginx serves "
        "stays on tmpfs); `sync` before each disk run, not timed",
        f"corpus: {plan.files:,} files of 1-64 KiB in {corpus.FOLDERS} folders "
        f"({small_bytes / 1e6:,.0f} MB) and {plan.big_mib} MiB + {plan.medium_count} x "
        f"{plan.medium_mib} MiB, built in {time.monotonic() - started:.1f} s"
        f"{large_note}; nginx 1 worker on 127.0.0.1, sendfile on; {plan.runs} runs per tool",
    ]
    large_tools = [
        peers.fetcher("fetcher", "--no-progress"),
        peers.curl_parallel(),
        peers.wget2(),
        peers.aria2c(),
    ]
    with Nginx(www) as srv:
        small = peers.make_batch("small", peers.corpus_items(srv.base, www, index), work)
        empty = peers.make_batch("empty", [], work)
        large_items = [
            peers.Item(f"{srv.base}/large/{name}", f"large/{name}", sha, sizes[name])
            for name, sha in large_shas.items()
        ]
        large = peers.make_batch("large", large_items, work)
        single = peers.make_batch("single", large_items[:1], work)
        # Each tool's tmpfs and disk runs side by side, so drifting load hits both alike.
        cases = [
            Case(key(fs, tool.name), tool, small, None if fs == "tmpfs" else disk)
            for tool in small_tools()
            for fs in FILE_SYSTEMS
            if fs == "tmpfs" or tool.name not in TMPFS_ONLY
        ]
        print(f"small files: {plan.files:,} files x {len(cases)} cases x {plan.runs} runs")
        small_out = peers.run_cases(cases, work, plan.runs, SMALL_TIMEOUT_S, server=srv)
        scaling = [
            Case(prefix + name, peers.fetcher_rusage(prefix + name, *opts, "--no-progress"), batch)
            for prefix, batch in ((SCALE, small), (EMPTY, empty))
            for name, opts in SCALING
        ]
        print(f"processes: {len(scaling)} cases x {plan.runs} runs")
        scaling_out = peers.run_cases(scaling, work, plan.runs, SMALL_TIMEOUT_S)
        large_cases = [Case(t.name, t, large) for t in large_tools]
        large_cases.append(Case(CEILING, peers.curl_single(), single))
        print(f"large files: {len(large_items)} files x {len(large_cases)} tools")
        large_out = peers.run_cases(large_cases, work, plan.runs, LARGE_TIMEOUT_S)
    print(f"huge list: {plan.huge_lines:,} lines, SIGINT after {plan.huge_seconds:g} s")
    huge = [
        huge_list_run(www, small.items, work, plan=plan, run_no=run_no)
        for run_no in range(1, plan.runs + 1)
    ]
    outcomes = itertools.chain(*small_out.values(), *scaling_out.values(), *large_out.values())
    return Measured(
        plan=plan,
        header=header,
        work=work,
        disk=disk,
        small={name: peers.summarise(runs) for name, runs in small_out.items()},
        scaling={name: peers.summarise(runs) for name, runs in scaling_out.items()},
        large={name: peers.summarise(runs) for name, runs in large_out.items()},
        huge=huge,
        helps=help_times(HELP_RUNS, work),
        all_ok=all(o.ok for o in outcomes) and all(h.problem is None for h in huge),
        end=peers.end_lines(),
    )


Target = tuple[str, float | None, Callable[[float], bool]]


def default_processes(m: Measured) -> int | None:
    """How many processes fetcher's defaults ran on (1: threads in one interpreter), as
    the processes table saw it; None if unknown."""
    seen = m.scaling.get(SCALE + "defaults")
    if seen is None or "processes" not in seen.extra:
        return None
    return max(1, round(seen.extra["processes"]))


def small_section(m: Measured, fs: str) -> tuple[list[str], list[Target]]:
    """One file system's small-file table, ratios and targets."""
    small = {name.removeprefix(f"{fs}: "): s for name, s in m.small.items() if name.startswith(fs)}
    where = "tmpfs (/dev/shm)" if fs == "tmpfs" else f"a real disk ({m.disk})"
    out = [f"## Small files on {where}: {m.plan.files:,} files of 1-64 KiB", ""]
    shown = [v for name, v in small.items() if not name.startswith(TTY)]
    out += tool_table(shown, prefix=f"{fs}: ")
    out += [
        "",
        "| fetcher / peer | files/s: fetcher | files/s: --processes 2 | CPU/file: fetcher "
        "| CPU/file: --processes 2 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in PEERS:
        if name not in small:
            continue
        peer = small[name]
        cells = [ratio(small[f].files_per_s, peer.files_per_s) for f in FETCHERS]
        cells += [ratio(small[f].cpu_us, peer.cpu_us) for f in FETCHERS]
        out.append(f"| {name} | {' | '.join(fmt(c, '.2f') for c in cells)} |")
    out += [
        "",
        "files/s ratios above 1 are fetcher faster; CPU/file ratios above 1 are fetcher "
        "using more CPU per file than the peer.",
    ]
    fetch = small[DEFAULTS]
    procs = default_processes(m)
    same = {1: MIN1, 2: MIN2}.get(procs or 1)
    targets: list[Target] = [
        (
            f"{fs}: defaults >= 1.0 x parfive files/s",
            ratio(fetch.files_per_s, small["parfive"].files_per_s),
            lambda v: v >= 1.0,
        ),
        (
            f"{fs}: --processes 2 >= 0.9 x {MIN2} files/s",
            ratio(small[PROCESSES].files_per_s, small[MIN2].files_per_s),
            lambda v: v >= 0.9,
        ),
        (
            f"{fs}: --processes 2 CPU/file <= 1.1 x {MIN2}",
            ratio(small[PROCESSES].cpu_us, small[MIN2].cpu_us),
            lambda v: v <= 1.1,
        ),
    ]
    if same is not None:
        targets += [
            (
                f"{fs}: defaults (ran on {procs or 1}) >= 0.9 x {same} files/s",
                ratio(fetch.files_per_s, small[same].files_per_s),
                lambda v: v >= 0.9,
            ),
            (
                f"{fs}: defaults CPU/file <= 1.1 x {same}",
                ratio(fetch.cpu_us, small[same].cpu_us),
                lambda v: v <= 1.1,
            ),
        ]
    return out, targets


def cpu_costs_section(m: Measured) -> list[str]:
    """CPU per file on both file systems side by side, with the core-hours per million."""
    out = [
        "## CPU per file and the cost of a million files",
        "",
        "Client CPU is user + sys of the whole process tree (every child reaped), from "
        "/usr/bin/time -v, divided by the files verified. A million files cost "
        "`us per file x 10^6 / 3.6 x 10^9` = `us per file / 3,600` core-hours. The server's "
        "CPU is not in it.",
        "",
        "| tool | tmpfs us/file | disk us/file | disk / tmpfs | tmpfs core-h per 1M | "
        "disk core-h per 1M | tmpfs files/s | disk files/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in (*FETCHERS, *PEERS):
        t, d = m.small.get(key("tmpfs", name)), m.small.get(key("disk", name))
        if t is None:
            continue
        dcpu = d.cpu_us if d else None
        cells = [
            fmt(t.cpu_us), fmt(dcpu), fmt(ratio(dcpu, t.cpu_us), ".2f"),
            fmt(t.core_hours_per_million, ".2f"),
            fmt(d.core_hours_per_million if d else None, ".2f"),
            fmt(t.files_per_s), fmt(d.files_per_s if d else None),
        ]  # fmt: skip
        out.append(f"| {name} | {' | '.join(cells)} |")
    return out


def per_item(seconds: float | None, items: int) -> float | None:
    """Seconds over a run as microseconds per item."""
    return None if seconds is None else seconds / items * 1e6


def scaling_section(m: Measured) -> tuple[list[str], list[Target]]:
    """files/s with 1, 2, 4 processes, and the parent's share of the CPU per item."""
    out = [
        f"## Processes: fetcher with the same 16 threads on 1, 2 and 4 processes "
        f"(tmpfs, {m.plan.files:,} small files)",
        "",
        "| fetcher | runs | processes seen | files/s | (min-max) | total CPU us/item "
        "| parent us/item | parent share | parent us/item, net of start-up | parent share, net "
        "| parent start-up CPU ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    targets: list[Target] = []
    files = m.plan.files
    for name, _ in SCALING:
        s, e = m.scaling.get(SCALE + name), m.scaling.get(EMPTY + name)
        if s is None:
            continue
        parent, children = s.extra.get("parent_cpu_s"), s.extra.get("children_cpu_s")
        total = parent + children if parent is not None and children is not None else None
        p0 = e.extra.get("parent_cpu_s") if e else None
        c0 = e.extra.get("children_cpu_s") if e else None
        start_up = p0 + c0 if p0 is not None and c0 is not None else None
        net_parent = parent - p0 if parent is not None and p0 is not None else None
        net_total = total - start_up if total is not None and start_up is not None else None
        share, net_share = ratio(parent, total), ratio(net_parent, net_total)
        procs = s.extra.get("processes")
        cells = [
            s.status, fmt(max(1.0, procs) if procs is not None else None, ".0f"),
            fmt(s.files_per_s), s.files_range, fmt(per_item(total, files)),
            fmt(per_item(parent, files)), fmt(share, ".1%"), fmt(per_item(net_parent, files)),
            fmt(net_share, ".1%"),
            fmt(p0 * 1000 if p0 is not None else None),
        ]  # fmt: skip
        out.append(f"| {name} | {' | '.join(cells)} |")
        if name in ("--processes 2", "--processes 4"):
            targets.append(
                (f"parent share of CPU per item, {name} (net of start-up) <= 1/8", net_share,
                 lambda v: v <= PARENT_SHARE_TARGET)
            )  # fmt: skip
    out += [
        "",
        "Run through `cli_rusage.py`, which calls `fetcher.cli.main()` in its own process and "
        "on exit (also through SystemExit) writes `getrusage(RUSAGE_SELF)` (the parent: "
        "order, names, state store, manifest, feeding the pool) and `RUSAGE_CHILDREN` (the "
        "worker processes, joined before it is read). Total = parent + children. "
        "`processes seen`: the most worker processes alive at once (1 = threads in one "
        "interpreter; /proc sampled every 0.1 s). Start-up: the same command on an empty "
        "list (interpreter, imports, pool start when it starts one); `net of start-up` "
        "subtracts it, which is the CPU per item that grows with the list. Target: the "
        "parent <= 1/8 of the CPU per item, so one parent can keep >= 8 processes busy.",
    ]
    return out, targets


def overhead_section(m: Measured) -> tuple[list[str], list[Target]]:
    """Progress bar and manifest: with vs without (small files, tmpfs)."""
    bar, bare = (m.small[key("tmpfs", TTY + name)] for name, _ in TTY_VARIANTS)
    plain = m.small[key("tmpfs", DEFAULTS)]
    rows = [
        ("on a terminal: bar + manifest", bar),
        ("not on a terminal: `--no-progress` (the `fetcher` row above)", plain),
        ("on a terminal: `--no-progress --manifest /dev/null`", bare),
    ]
    full = bar.files_per_s
    out = ["## Overhead of the progress bar and the manifest (small files, tmpfs)", ""]
    out += ["| fetcher | runs | files/s | (min-max) | vs bar + manifest | CPU us/file |"]
    out += ["|---|---|---:|---:|---:|---:|"]
    for label, s in rows:
        out.append(
            f"| {label} | {s.status} | {fmt(s.files_per_s)} | {s.files_range} | "
            f"{fmt(ratio(s.files_per_s, full), '.3f')} | {fmt(s.cpu_us)} |"
        )
    cost = (1 - full / bare.files_per_s) * 100 if full and bare.files_per_s else None
    out += [
        "",
        "The terminal rows run under `script -qfec` (util-linux) so stderr is a terminal and "
        "the bar really draws; the bar's cost is row 1 vs row 2, the manifest write's row 2 "
        "vs row 3 (to `/dev/null` every row is still serialised). Input-order delivery "
        "cannot be switched off (it is the contract), so its cost is inside every row. "
        f"Bar + manifest cost (1 - row 1 / row 3): {fmt(cost, '.1f')} % of throughput; "
        "compare it with the min-max spread: an effect smaller than the run-to-run noise "
        "needs more runs (`--runs`) to resolve.",
    ]
    return out, [("bar + manifest cost <= 5 % of files/s", cost, lambda v: v <= 5.0)]


def large_section(m: Measured) -> tuple[list[str], list[Target]]:
    """Large-file MB/s against the peers and the one-stream ceiling, and fetcher's RSS."""
    plan, large = m.plan, m.large
    ceiling, lf = large[CEILING], large["fetcher"]
    best = max(
        (s for n, s in large.items() if n not in ("fetcher", CEILING)),
        key=lambda s: s.mb_per_s or 0.0,
    )
    out = [
        f"## Large files: {plan.big_mib} MiB + {plan.medium_count} x {plan.medium_mib} MiB",
        "",
        *tool_table(list(large.values()), large=True),
        "",
        f"The ceiling row fetches only the {plan.big_mib} MiB file, into /dev/null, on one "
        f"connection. fetcher / best peer ({best.tool}): "
        f"{fmt(ratio(lf.mb_per_s, best.mb_per_s), '.2f')}; fetcher / ceiling: "
        f"{fmt(ratio(lf.mb_per_s, ceiling.mb_per_s), '.2f')}.",
    ]
    targets: list[Target] = [
        (
            "large: fetcher >= 1.0 x best peer MB/s",
            ratio(lf.mb_per_s, best.mb_per_s),
            lambda v: v >= 1.0,
        ),
        (
            "large: fetcher >= 0.8 x single-stream curl MB/s",
            ratio(lf.mb_per_s, ceiling.mb_per_s),
            lambda v: v >= 0.8,
        ),
        ("large: fetcher peak RSS < 64 MiB", lf.max_rss_mib, lambda v: v < TARGET_RSS_MIB),
    ]
    return out, targets


def huge_section(m: Measured) -> tuple[list[str], list[Target]]:
    """Start-up latency and memory on a huge list, plus `--help` time."""
    firsts = [h.first_request_s for h in m.huge if h.first_request_s is not None]
    rss = [h.rss_mib for h in m.huge if h.rss_mib is not None]
    first = statistics.median(firsts) if firsts else None
    max_rss = max(rss) if rss else None
    out = [
        f"## Huge list: {m.plan.huge_lines:,} URLs, SIGINT after {m.plan.huge_seconds:g} s",
        "",
        "| run | first request after s | peak RSS MiB | manifest rows | exit | problem |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for n, h in enumerate(m.huge, 1):
        out.append(
            f"| {n} | {fmt(h.first_request_s, '.3f')} | {fmt(h.rss_mib, '.1f')} | "
            f"{h.rows:,} | {h.exit_code} | {h.problem or ''} |"
        )
    help_median = statistics.median(m.helps)
    out += [
        "",
        "First request: nginx's log time of the first request ($msec - $request_time) minus "
        "the moment before the process was spawned. Command: "
        f"`{shlex.join([*fetcher_cmd(), 'fetch', 'huge.txt', '-o', 'OUT', '-j', '16'])}"
        " --no-progress`.",
        "",
        f"## `fetcher --help`: median {help_median:.3f} s of {len(m.helps)} runs",
    ]
    targets: list[Target] = [
        ("huge list: first request < 1 s", first, lambda v: v < 1.0),
        ("huge list: peak RSS < 64 MiB", max_rss, lambda v: v < TARGET_RSS_MIB),
        ("fetcher --help < 0.3 s", help_median, lambda v: v < 0.3),
    ]
    return out, targets


def render(m: Measured) -> str:
    """The markdown report: context, one section per measurement, targets, commands."""
    out = ["# fetcher vs peers", "", *[f"- {line}" for line in m.header]]
    out += [*[f"- {line}" for line in m.end], ""]
    targets: list[Target] = []
    sections: list[Callable[[Measured], tuple[list[str], list[Target]]]] = [
        lambda m: small_section(m, "tmpfs"),
        lambda m: small_section(m, "disk"),
        lambda m: (cpu_costs_section(m), []),
        scaling_section,
        overhead_section,
        large_section,
        huge_section,
    ]
    for section in sections:
        lines, found = section(m)
        out += [*lines, ""]
        targets += found
    out += ["## Targets (issue 10)", "", "| target | measured | verdict |", "|---|---:|---|"]
    out += [f"| {name} | {fmt(v, '.3f')} | {verdict(v, ok)} |" for name, v, ok in targets]
    out += [
        "",
        "The latency targets (>= 0.9 x curl at equal connections) are in `latency.md`.",
        "",
        "## Commands (first run of each; $WORK is the scratch dir on tmpfs, $DISK on disk)",
        "",
    ]
    summaries = [*m.small.values(), *m.scaling.values(), *m.large.values()]
    out += [f"- {s.tool}: `{shorten(s.command, m.work, m.disk)}`" for s in summaries]
    problems = [f"{s.tool}: {p}" for s in summaries for p in s.problems]
    problems += [f"huge list run {n}: {h.problem}" for n, h in enumerate(m.huge, 1) if h.problem]
    if problems:
        out += ["", "## Problems (runs that failed their check are not in the medians)", ""]
        out += [f"- {p}" for p in problems]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
