"""fetcher against the tools people use instead, in one run, on one machine.

Why: "fast" only means something next to curl --parallel, wget2, aria2c, parfive and the
ThreadPool + requests script people write by hand, on the same server, list and machine.
One command sets everything up (setup.sh), builds the corpus on tmpfs, runs a private
nginx (one worker) on 127.0.0.1, and measures, each tool with 16 connections, every run
into a fresh output dir and every output file checked against its sha256:

- small files: N files of 1-64 KiB in 50 folders; files/s, MB/s and ratios;
- overhead: fetcher on a terminal with its progress bar, without it, and without the
  manifest write (`--manifest /dev/null`);
- large files: 1 GiB + 8 x 64 MiB; MB/s against the peers and the single-stream
  `curl -o /dev/null` ceiling, and fetcher's peak RSS;
- huge list: 1,000,000 URLs; time from process start to the first request nginx logs,
  and peak RSS (SIGINT after 10 s);
- `fetcher --help` wall time.

Runs of different tools are interleaved round-robin so machine noise spreads evenly, and
medians are taken over the runs that passed their check.

    python benchmarks/compare.py [--runs 3] [--files 5000] [--quick]

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
from dataclasses import dataclass
from pathlib import Path

import corpus
import peers
from nginx import Nginx
from peers import MIB, Batch, Outcome, Summary, Tool, fmt
from scale_check import HarnessError, fetcher_cmd, pick_temp_root, run_measured

SMALL_TIMEOUT_S = 300.0
LARGE_TIMEOUT_S = 600.0
HELP_RUNS = 10
HUGE_SECONDS = 10.0
TARGET_RSS_MIB = 64


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


def run_rounds(
    tools: Sequence[Tool], batch: Batch, work: Path, runs: int, timeout_s: float
) -> dict[str, list[Outcome]]:
    """`runs` rounds over all tools, each round starting one tool later (round robin), so no
    tool always runs first or right after the slowest one."""
    outcomes: dict[str, list[Outcome]] = {tool.name: [] for tool in tools}
    for run_no in range(1, runs + 1):
        shift = (run_no - 1) % len(tools)
        for tool in [*tools[shift:], *tools[:shift]]:
            outcome = peers.run_tool(tool, batch, work, run_no, timeout_s)
            outcomes[tool.name].append(outcome)
            rate = outcome.files / outcome.run.wall_s
            mb_s = outcome.bytes / outcome.run.wall_s / 1e6
            state = "ok" if outcome.ok else f"FAILED: {outcome.problems.samples[:1]}"
            print(
                f"  [{batch.name} {run_no}/{runs}] {tool.name}: {outcome.run.wall_s:.2f} s, "
                f"{rate:,.0f} files/s, {mb_s:,.0f} MB/s {state}",
                flush=True,
            )
    return outcomes


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing."""
    return a / b if a is not None and b else None


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


def tool_table(summaries: Sequence[Summary], *, large: bool = False) -> list[str]:
    """Markdown table of medians per tool."""
    if large:
        rows = ["| tool | runs | MB/s | (min-max) | peak RSS MiB (median / max) |"]
        rows.append("|---|---|---:|---:|---:|")
    else:
        rows = ["| tool | runs | files/s | (min-max) | MB/s | peak RSS MiB (median / max) |"]
        rows.append("|---|---|---:|---:|---:|---:|")
    for s in summaries:
        rss = f"{fmt(s.rss_mib, '.0f')} / {fmt(s.max_rss_mib, '.0f')}"
        if large:
            cells = [fmt(s.mb_per_s), s.mb_range, rss]
        else:
            cells = [fmt(s.files_per_s), s.files_range, fmt(s.mb_per_s), rss]
        rows.append(f"| {s.tool} | {s.status} | {' | '.join(cells)} |")
    return rows


def shorten(command: str, work: Path) -> str:
    """A command with the scratch dir written as $WORK."""
    return command.replace(str(work), "$WORK")


def main(argv: list[str] | None = None) -> int:
    """Set up, measure everything, write and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, help="runs per tool (default 3; 1 with --quick)")
    parser.add_argument("--files", type=int, help="small-file corpus size (default 5000)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    args = parser.parse_args(argv)
    if (args.runs is not None and args.runs < 1) or (args.files is not None and args.files < 1):
        parser.error("--runs and --files must be positive")
    plan = plan_from(args)
    peers.interrupt_on_sigterm()
    try:
        peers.install_peers()
        need = plan.files * 70 * 1024 + 512 * MIB
        with tempfile.TemporaryDirectory(
            prefix="fetcher-compare-", dir=pick_temp_root(need)
        ) as tmp:
            measured = measure(plan, Path(tmp))
            report = render(measured)
    except (HarnessError, subprocess.SubprocessError, OSError) as exc:
        print(f"compare: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("compare: interrupted; nginx stopped, scratch data removed", file=sys.stderr)
        return 130
    results_file = peers.results_dir(args.quick) / "compare.md"
    results_file.parent.mkdir(parents=True, exist_ok=True)
    results_file.write_text(report)
    print(report)
    print(f"written to {results_file}")
    return 0 if measured.all_ok else 1


TTY = "fetcher on a tty, "
PROCESSES = "fetcher --processes 2"
TTY_VARIANTS = (
    ("bar + manifest", ()),
    ("--no-progress", ("--no-progress",)),
    ("--no-progress --manifest /dev/null", ("--no-progress", "--manifest", "/dev/null")),
)
MINIMAL = "minimal requests script, 2 processes"
PEERS = (
    "curl --parallel", "wget2", "aria2c", "parfive", "handwritten ThreadPool+requests", MINIMAL,
)  # fmt: skip
CEILING = "curl -o /dev/null (1 stream)"


@dataclass
class Measured:
    """Everything one compare run measured, reduced to summaries."""

    plan: Plan
    header: list[str]
    work: Path
    small: dict[str, Summary]
    large: dict[str, Summary]
    huge: list[HugeRun]
    helps: list[float]
    all_ok: bool


def measure(plan: Plan, work: Path) -> Measured:
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
    header.append(
        f"corpus: {plan.files:,} files of 1-64 KiB in {corpus.FOLDERS} folders "
        f"({small_bytes / 1e6:,.0f} MB) and {plan.big_mib} MiB + {plan.medium_count} x "
        f"{plan.medium_mib} MiB, built in {time.monotonic() - started:.1f} s"
        f"{large_note}; nginx 1 worker on 127.0.0.1, sendfile on; {plan.runs} runs per tool"
    )
    conns = ("-j", "16")
    small_tools = [
        peers.fetcher("fetcher", *conns, "--no-progress"),
        peers.fetcher("fetcher --processes 2", *conns, "--processes", "2", "--no-progress"),
        peers.curl_parallel(),
        peers.wget2(),
        peers.aria2c(),
        peers.parfive(),
        peers.handwritten(),
        peers.requests_minimal(),
        *[peers.fetcher(TTY + name, *conns, *opts, terminal=True) for name, opts in TTY_VARIANTS],
    ]
    large_tools = [
        peers.fetcher("fetcher", *conns, "--no-progress"),
        peers.curl_parallel(),
        peers.wget2(),
        peers.aria2c(),
    ]
    with Nginx(www) as srv:
        small = peers.make_batch("small", peers.corpus_items(srv.base, www, index), work)
        large_items = [
            peers.Item(f"{srv.base}/large/{name}", f"large/{name}", sha, sizes[name])
            for name, sha in large_shas.items()
        ]
        large = peers.make_batch("large", large_items, work)
        single = peers.make_batch("single", large_items[:1], work)
        print(f"small files: {plan.files:,} x {len(small_tools)} tools x {plan.runs} runs")
        small_out = run_rounds(small_tools, small, work, plan.runs, SMALL_TIMEOUT_S)
        print(f"large files: {len(large_items)} files x {len(large_tools) + 1} tools")
        large_out = run_rounds(large_tools, large, work, plan.runs, LARGE_TIMEOUT_S)
        large_out |= run_rounds([peers.curl_single()], single, work, plan.runs, LARGE_TIMEOUT_S)
    print(f"huge list: {plan.huge_lines:,} lines, SIGINT after {plan.huge_seconds:g} s")
    huge = [
        huge_list_run(www, small.items, work, plan=plan, run_no=run_no)
        for run_no in range(1, plan.runs + 1)
    ]
    outcomes = itertools.chain(*small_out.values(), *large_out.values())
    return Measured(
        plan=plan,
        header=header,
        work=work,
        small={name: peers.summarise(runs) for name, runs in small_out.items()},
        large={name: peers.summarise(runs) for name, runs in large_out.items()},
        huge=huge,
        helps=help_times(HELP_RUNS, work),
        all_ok=all(o.ok for o in outcomes) and all(h.problem is None for h in huge),
    )


Target = tuple[str, float | None, Callable[[float], bool]]


def small_section(m: Measured) -> tuple[list[str], list[Target]]:
    """Small-file table and ratios."""
    small, fetch = m.small, m.small["fetcher"]
    out = [f"## Small files: {m.plan.files:,} files of 1-64 KiB, 16 connections", ""]
    out += tool_table([small[n] for n in ["fetcher", PROCESSES, *PEERS]])
    out += [
        "",
        "`fetcher` is the default command (`-j 16`, every default on);"
        f" `{PROCESSES}` shares the same 16 threads between two processes."
        f" `{MINIMAL}` (`requests_minimal.py`) is the fastest requests-based downloader we"
        " could write, with everything fetcher adds taken away (no hashing, temp files,"
        " order, manifest or state): what requests itself allows here, so the small-file"
        " targets can be read against it.",
        "",
        f"| ratio (median files/s) | fetcher | {PROCESSES} |",
        "|---|---:|---:|",
    ]
    for name in PEERS:
        a = ratio(fetch.files_per_s, small[name].files_per_s)
        b = ratio(small[PROCESSES].files_per_s, small[name].files_per_s)
        out.append(f"| fetcher / {name} | {fmt(a, '.2f')} | {fmt(b, '.2f')} |")
    targets: list[Target] = [
        (
            "small: fetcher >= 3 x parfive files/s",
            ratio(fetch.files_per_s, small["parfive"].files_per_s),
            lambda v: v >= 3,
        ),
        (
            "small: fetcher >= 0.5 x curl --parallel files/s",
            ratio(fetch.files_per_s, small["curl --parallel"].files_per_s),
            lambda v: v >= 0.5,
        ),
    ]
    minimal = small[MINIMAL].files_per_s
    if minimal is not None:
        out += [
            "",
            f"The minimal requests script reaches {fmt(minimal)} files/s:"
            f" {fmt(ratio(minimal, small['parfive'].files_per_s), '.2f')} x parfive and"
            f" {fmt(ratio(minimal, small['curl --parallel'].files_per_s), '.2f')} x"
            " curl --parallel.",
        ]
    return out, targets


def overhead_section(m: Measured) -> tuple[list[str], list[Target]]:
    """Progress bar and manifest: with vs without, all on a pseudo-terminal."""
    rows = [m.small[TTY + name] for name, _ in TTY_VARIANTS]
    full, bare = rows[0].files_per_s, rows[-1].files_per_s
    out = ["## Overhead of the progress bar and the manifest (small files)", ""]
    out += ["| fetcher on a pseudo-terminal | runs | files/s | (min-max) | vs bar + manifest |"]
    out += ["|---|---|---:|---:|---:|"]
    for s in rows:
        out.append(
            f"| {s.tool.removeprefix(TTY)} | {s.status} | {fmt(s.files_per_s)} | "
            f"{s.files_range} | {fmt(ratio(s.files_per_s, full), '.3f')} |"
        )
    cost = (1 - full / bare) * 100 if full and bare else None
    out += [
        "",
        "All three run under `script -qfec` (util-linux) so stderr is a terminal and the bar "
        "really draws; the bar's cost is row 1 vs row 2, the manifest write's row 2 vs row 3 "
        "(to `/dev/null` every row is still serialised). Input-order delivery cannot be "
        "switched off (it is the contract), so its cost is inside every row. "
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
    out = ["# fetcher vs peers", "", *[f"- {line}" for line in m.header], ""]
    targets: list[Target] = []
    for section in (small_section, overhead_section, large_section, huge_section):
        lines, found = section(m)
        out += [*lines, ""]
        targets += found
    out += ["## Targets (from the issue)", "", "| target | measured | verdict |", "|---|---:|---|"]
    out += [f"| {name} | {fmt(v, '.3f')} | {verdict(v, ok)} |" for name, v, ok in targets]
    out += ["", "## Commands (first run of each; $WORK is the scratch dir on tmpfs)", ""]
    summaries = [*m.small.values(), *m.large.values()]
    out += [f"- {s.tool}: `{shorten(s.command, m.work)}`" for s in summaries]
    problems = [f"{s.tool}: {p}" for s in summaries for p in s.problems]
    problems += [f"huge list run {n}: {h.problem}" for n, h in enumerate(m.huge, 1) if h.problem]
    if problems:
        out += ["", "## Problems (runs that failed their check are not in the medians)", ""]
        out += [f"- {p}" for p in problems]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
