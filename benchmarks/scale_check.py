"""Scale check for `fetcher`: throughput, correctness and peak memory on big inputs.

Why: unit tests cannot show that a 10,000-item HTTP batch lands byte-exact and in
order, or that a 1,000,000-line list streams in bounded memory. This runs the real
CLI against a private nginx on 127.0.0.1 and against local files, under
/usr/bin/time -v, and checks every manifest row while streaming it.

    python benchmarks/scale_check.py [--items 10000] [--lines 1000000] [--runs 1]

Set FETCHER to choose the command (default: `fetcher` on PATH, else `python -m fetcher`).
Writes a markdown table to stdout and to benchmarks/results/scale_check.md.
Exit status: 0 all checks passed, 1 some check failed, 2 the harness could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import corpus
from nginx import Nginx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS_FILE = HERE / "results" / "scale_check.md"
TIME_BIN = "/usr/bin/time"
SMALL_FILES = 16
SMALL_SEED = 7
INTERRUPT_GRACE_S = 30.0
MAX_SAMPLES = 5
# fetcher keeps its state store (and default manifest) here inside the output dir.
STATE_DIR = ".fetcher"
MIB = 1024 * 1024
# Disk estimate per 1M-list line: list text plus a manifest row (~300 B) with headroom.
BYTES_PER_LINE = 700
# Average corpus file is ~32.5 KiB; corpus plus one fetched copy must fit.
BYTES_PER_ITEM = 2 * 33 * 1024
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


class HarnessError(RuntimeError):
    """The harness itself could not run (setup, missing tools, no space)."""


@dataclass
class Problems:
    """Counts problems but keeps only the first few messages, so 1M bad rows stay cheap."""

    count: int = 0
    samples: list[str] = field(default_factory=list)

    def add(self, message: str) -> None:
        """Count one problem; keep its message only while there are few."""
        self.count += 1
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append(message)


@dataclass
class Run:
    """One measured fetcher process: how it ended and what /usr/bin/time -v saw."""

    exit_code: int
    wall_s: float
    maxrss_kib: int | None
    cpu_s: float | None
    interrupted: bool
    killed: bool
    stderr_tail: str


@dataclass
class Result:
    """One table row: a check's run plus what verifying its manifest found."""

    check: str
    run_no: int
    run: Run
    rows: int
    problems: Problems
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """A check passes only with no problem at all."""
        return self.problems.count == 0


def fetcher_cmd() -> list[str]:
    """The fetcher command: $FETCHER, else the `fetcher` beside this interpreter (a venv's
    bin/), else `fetcher` on PATH, else `python -m fetcher`."""
    override = os.environ.get("FETCHER", "").strip()
    if override:
        return shlex.split(override)
    beside = Path(sys.executable).parent / "fetcher"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    if shutil.which("fetcher"):
        return ["fetcher"]
    return [sys.executable, "-m", "fetcher"]


def child_env(work: Path | None = None) -> dict[str, str]:
    """Environment for fetcher: no proxies, so traffic to 127.0.0.1 stays local, and
    TMPDIR in the scratch dir, so even a killed run leaves no temp data behind."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env["NO_PROXY"] = env["no_proxy"] = "*"
    if work is not None:
        env["TMPDIR"] = str(work)
    return env


def check_fetcher(cmd: list[str]) -> None:
    """Fail early and clearly if the fetcher command or its `fetch` subcommand is missing."""
    try:
        proc = subprocess.run(
            [*cmd, "fetch", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HarnessError(f"fetcher not usable ({shlex.join(cmd)}): {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise HarnessError(
            f"fetcher not usable ({shlex.join(cmd)} fetch --help exited {proc.returncode}):\n{tail}"
        )


def run_setup() -> None:
    """Run setup.sh (idempotent: installs nginx only when missing)."""
    try:
        subprocess.run(["bash", str(HERE / "setup.sh")], timeout=900, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise HarnessError(f"benchmarks/setup.sh failed: {exc}") from exc
    if not Path(TIME_BIN).is_file():
        raise HarnessError(f"{TIME_BIN} is missing (Debian package `time`)")


def pick_temp_root(need: int) -> Path:
    """/dev/shm when it has room (keeps disk speed out of the numbers), else the temp dir."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free >= need:
        return shm
    fallback = Path(tempfile.gettempdir())
    if shutil.disk_usage(fallback).free < need:
        raise HarnessError(f"need ~{need // MIB} MiB free in /dev/shm or {fallback}")
    return fallback


def parse_time_v(path: Path) -> dict[str, str]:
    """`/usr/bin/time -v` report as key -> value (empty if time itself was killed)."""
    if not path.exists():
        return {}
    report: dict[str, str] = {}
    for line in path.read_text(errors="replace").splitlines():
        key, sep, value = line.strip().partition(": ")
        if sep:
            report[key] = value.strip()
    return report


def run_measured(cmd: list[str], name: str, work: Path, limit_s: float) -> Run:
    """Run cmd under /usr/bin/time -v (peak RSS, CPU), stdout to /dev/null, in its own
    process group; SIGINT after limit_s (as Ctrl-C would), SIGKILL if it lingers.

    The wall time is exact: Popen.wait(timeout) would poll in sleeps of up to 50 ms, too
    coarse for a curl run of 0.3 s, so the wait blocks and timers send the signals.
    """
    time_file = work / f"{name}.time"
    err_file = work / f"{name}.stderr"
    flags = {"interrupted": False, "killed": False}
    with Path(os.devnull).open("wb") as out, err_file.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [TIME_BIN, "-v", "-o", str(time_file), *cmd],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=REPO,
            env=child_env(work),
            start_new_session=True,
        )

        def signal_group(sig: signal.Signals, flag: str) -> None:
            flags[flag] = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)

        timers = [
            threading.Timer(limit_s, signal_group, (signal.SIGINT, "interrupted")),
            threading.Timer(limit_s + INTERRUPT_GRACE_S, signal_group, (signal.SIGKILL, "killed")),
        ]
        for timer in timers:
            timer.daemon = True
            timer.start()
        try:
            proc.wait()
        finally:
            wall = time.perf_counter() - start
            for timer in timers:
                timer.cancel()
            if proc.poll() is None:  # the harness itself was interrupted
                signal_group(signal.SIGKILL, "killed")
                proc.wait()
    report = parse_time_v(time_file)
    rss = report.get("Maximum resident set size (kbytes)")
    user, system = report.get("User time (seconds)"), report.get("System time (seconds)")
    stderr_lines = err_file.read_text(errors="replace").strip().splitlines()
    return Run(
        exit_code=proc.returncode,
        wall_s=wall,
        maxrss_kib=int(rss) if rss else None,
        cpu_s=float(user) + float(system) if user and system else None,
        interrupted=flags["interrupted"],
        killed=flags["killed"],
        stderr_tail="\n".join(stderr_lines[-5:]),
    )


def scan_manifest(
    path: Path,
    source_of: Callable[[int], str],
    check_row: Callable[[int, dict[str, Any]], str | None],
    problems: Problems,
) -> tuple[int, Counter[str]]:
    """Stream the manifest: valid JSON, index i on line i, the list's source, row check.

    Returns the row count and the status counts; never holds more than one row.
    """
    statuses: Counter[str] = Counter()
    if not path.exists():
        problems.add(f"manifest {path.name} missing")
        return 0, statuses
    rows = 0
    with path.open(encoding="utf-8", errors="replace") as fh:
        for i, line in enumerate(fh):
            rows += 1
            try:
                row = json.loads(line)
            except ValueError:
                problems.add(f"row {i}: not valid JSON: {line[:80]!r}")
                continue
            if not isinstance(row, dict):
                problems.add(f"row {i}: not a JSON object")
                continue
            statuses[str(row.get("status"))] += 1
            if row.get("index") != i:
                problems.add(f"row {i}: index is {row.get('index')!r}")
            if row.get("source") != source_of(i):
                problems.add(f"row {i}: source {row.get('source')!r} != {source_of(i)!r}")
            message = check_row(i, row)
            if message:
                problems.add(f"row {i}: {message}")
    return rows, statuses


def expect_ok(row: dict[str, Any], sha: str, size: int) -> str | None:
    """Problem with an item that must have been fetched intact, or None."""
    if row.get("status") != "ok":
        return f"status {row.get('status')!r}, error {row.get('error')!r}"
    if row.get("sha256") != sha:
        return f"manifest sha256 {row.get('sha256')!r} != expected"
    if row.get("bytes") != size:
        return f"bytes {row.get('bytes')!r} != {size}"
    return None


def check_exit(run: Run, problems: Problems, *, interrupt_expected: bool = False) -> None:
    """Record a run that overran, lingered after SIGINT or exited with the wrong status.

    Expected: 0 for a run that finished by itself, 130 for one stopped with SIGINT.
    """
    if run.killed:
        problems.add(f"still running {INTERRUPT_GRACE_S:g} s after SIGINT: killed")
        return
    if run.interrupted and not interrupt_expected:
        problems.add("ran over the --timeout limit and was interrupted")
    expected = 130 if run.interrupted else 0
    if run.exit_code != expected:
        problems.add(f"exit {run.exit_code}, expected {expected}: {run.stderr_tail!r}")


@dataclass(frozen=True)
class Bench:
    """What every check needs: the fetcher command, the scratch dir and the options."""

    cmd: list[str]
    work: Path
    args: argparse.Namespace


@dataclass(frozen=True)
class Served:
    """The corpus as nginx serves it: each item's URL, sha256 and size, by position."""

    base: str
    relpaths: list[str]
    shas: list[str]
    sizes: list[int]

    def url(self, i: int) -> str:
        """URL for list line i; lists longer than the corpus wrap around it."""
        return f"{self.base}/{self.relpaths[i % len(self.relpaths)]}"

    def expect_ok(self, i: int, row: dict[str, Any]) -> str | None:
        """Problem with row i as a fetch of the corpus item behind line i, or None."""
        k = i % len(self.relpaths)
        return expect_ok(row, self.shas[k], self.sizes[k])


def check_corpus_fetch(bench: Bench, served: Served, run_no: int) -> Result:
    """(a) 10k HTTP items to files: exit 0, every file byte-exact, manifest in order."""
    items = len(served.relpaths)
    list_path = bench.work / "list.txt"
    if not list_path.exists():
        corpus.write_lines(list_path, (served.url(i) for i in range(items)))
    out = bench.work / f"out-a{run_no}"
    manifest = out / "m.jsonl"
    jobs = bench.args.jobs
    argv = [*bench.cmd, "fetch", str(list_path), "-o", str(out), "-j", str(jobs)]
    argv += ["--no-progress", "--manifest", str(manifest)]
    run = run_measured(argv, f"a{run_no}", bench.work, bench.args.timeout)
    problems = Problems()
    check_exit(run, problems)
    out_resolved = out.resolve()
    seen: set[Path] = set()

    def check_row(i: int, row: dict[str, Any]) -> str | None:
        bad = served.expect_ok(i, row)
        if bad:
            return bad
        rel = row.get("path")
        if not isinstance(rel, str):
            return f"path {rel!r}"
        target = (out / rel).resolve()
        if not target.is_relative_to(out_resolved):
            return f"path {rel!r} escapes the output dir"
        if not target.is_file():
            return f"file {rel!r} missing"
        seen.add(target)
        if hashlib.sha256(target.read_bytes()).hexdigest() != served.shas[i]:
            return f"file {rel!r} content differs"
        return None

    rows, _ = scan_manifest(manifest, served.url, check_row, problems)
    if rows != items:
        problems.add(f"manifest has {rows} rows, expected {items}")
    if out.is_dir():
        # Anything but the outputs, the manifest and fetcher's own state dir is a leftover
        # (e.g. a temp file that was never renamed into place).
        state = out / STATE_DIR
        extra = [
            p
            for p in out.rglob("*")
            if p.is_file()
            and p != manifest
            and not p.is_relative_to(state)
            and p.resolve() not in seen
        ]
        if extra:
            problems.add(f"{len(extra)} unexpected files in output, e.g. {extra[0].name}")
    shutil.rmtree(out, ignore_errors=True)
    return Result(f"{items:,} http -> files (-j {jobs})", run_no, run, rows, problems)


def make_small_files(folder: Path) -> tuple[list[str], list[str], list[int]]:
    """The few 1-4 KiB local files the 1M local list points at: their paths, shas, sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SMALL_SEED)
    paths, shas, sizes = [], [], []
    for k in range(SMALL_FILES):
        data = rng.randbytes(rng.randint(1024, 4096))
        path = folder / f"s{k:02d}.bin"
        path.write_bytes(data)
        paths.append(str(path))
        shas.append(hashlib.sha256(data).hexdigest())
        sizes.append(len(data))
    return paths, shas, sizes


def check_local_stream(bench: Bench, run_no: int) -> Result:
    """(b1) 1M local items to --stdout: bounded RSS, manifest complete and in order."""
    lines = bench.args.lines
    paths, shas, sizes = make_small_files(bench.work / "small")
    uris = [Path(p).as_uri() for p in paths]

    def source_of(i: int) -> str:
        k = i % SMALL_FILES
        # Alternate file:// URLs and plain paths in blocks, so every file gets both forms.
        return uris[k] if (i // SMALL_FILES) % 2 == 0 else paths[k]

    big = bench.work / "big-local.txt"
    if not big.exists():
        corpus.write_lines(big, (source_of(i) for i in range(lines)))
    manifest = bench.work / f"m-b1-{run_no}.jsonl"
    argv = [*bench.cmd, "fetch", str(big), "--stdout", "--no-progress"]
    argv += ["--manifest", str(manifest)]
    run = run_measured(argv, f"b1-{run_no}", bench.work, bench.args.timeout)
    problems = Problems()
    check_exit(run, problems)
    rows, _ = scan_manifest(
        manifest,
        source_of,
        lambda i, row: expect_ok(row, shas[i % SMALL_FILES], sizes[i % SMALL_FILES]),
        problems,
    )
    if rows != lines:
        problems.add(f"manifest has {rows} rows, expected {lines}")
    manifest.unlink(missing_ok=True)
    return Result(f"{lines:,} local -> --stdout", run_no, run, rows, problems)


def check_http_interrupt(bench: Bench, served: Served, run_no: int) -> Result:
    """(b2) 1M HTTP items to --stdout, SIGINT after a while: RSS, exit 130, clean rows."""
    lines, jobs, seconds = bench.args.lines, bench.args.jobs, bench.args.http_seconds
    big = bench.work / "big-http.txt"
    if not big.exists():
        corpus.write_lines(big, (served.url(i) for i in range(lines)))
    manifest = bench.work / f"m-b2-{run_no}.jsonl"
    argv = [*bench.cmd, "fetch", str(big), "--stdout", "--no-progress", "-j", str(jobs)]
    argv += ["--manifest", str(manifest)]
    run = run_measured(argv, f"b2-{run_no}", bench.work, seconds)
    problems = Problems()
    check_exit(run, problems, interrupt_expected=True)

    def check_row(i: int, row: dict[str, Any]) -> str | None:
        # Items in flight at SIGINT may be reported failed; only ok rows must be exact.
        return served.expect_ok(i, row) if row.get("status") == "ok" else None

    rows, statuses = scan_manifest(manifest, served.url, check_row, problems)
    if not run.interrupted and rows != lines:
        problems.add(f"finished but manifest has {rows} rows, expected {lines}")
    if rows == 0:
        problems.add(f"no manifest rows after {run.wall_s:.1f} s")
    manifest.unlink(missing_ok=True)
    notes = [f"statuses: {dict(statuses)}"] if set(statuses) - {"ok"} else []
    label = f"{lines:,} http -> --stdout (-j {jobs}), SIGINT at {seconds:g} s"
    return Result(label, run_no, run, rows, problems, notes)


def fmt(value: float | None, spec: str) -> str:
    """Number for the table, or n/a when time -v could not report it."""
    return "n/a" if value is None else format(value, spec)


def render(results: list[Result], header: list[str], commands: list[str]) -> str:
    """The markdown report: context lines, the table, the commands, then any problems."""
    out = ["# fetcher scale check", "", *[f"- {line}" for line in header], ""]
    out.append("| check | run | exit | wall s | items/s | peak RSS MiB | CPU s | rows | result |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        rate = r.rows / r.run.wall_s if r.run.wall_s > 0 else None
        rss = r.run.maxrss_kib / 1024 if r.run.maxrss_kib is not None else None
        out.append(
            f"| {r.check} | {r.run_no} | {r.run.exit_code} | {r.run.wall_s:.2f} | "
            f"{fmt(rate, ',.0f')} | {fmt(rss, '.1f')} | {fmt(r.run.cpu_s, '.1f')} | "
            f"{r.rows:,} | {'PASS' if r.passed else 'FAIL'} |"
        )
    out += ["", "Commands (paths shortened):", ""]
    out += [f"- `{c}`" for c in commands]
    details = [(r, line) for r in results for line in r.notes]
    details += [(r, line) for r in results for line in r.problems.samples]
    if details:
        out += ["", "Notes and problems (first few per check):", ""]
        out += [f"- {r.check} #{r.run_no}: {line}" for r, line in details]
        out += [
            f"- {r.check} #{r.run_no}: {r.problems.count} problems in total"
            for r in results
            if r.problems.count > MAX_SAMPLES
        ]
    return "\n".join(out) + "\n"


def spot_check(served: Served) -> None:
    """Harness-only mode: fetch a sample of corpus files from nginx and compare sha256."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    sample = range(0, len(served.relpaths), max(1, len(served.relpaths) // 20))
    for i in sample:
        with opener.open(served.url(i), timeout=10) as resp:
            if hashlib.sha256(resp.read()).hexdigest() != served.shas[i]:
                raise HarnessError(f"nginx served wrong bytes for {served.url(i)}")
    print(f"harness ok: nginx at {served.base} served {len(sample)} files byte-exact")


def git_revision() -> str:
    """The repo's commit, flagged when fetcher/ differs from it, so numbers map to code."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(REPO), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.strip()

    rev = git("rev-parse", "--short", "HEAD") or "no commit"
    dirty = git("status", "--porcelain", "--", "fetcher")
    if dirty:
        return f"{rev} + uncommitted changes in fetcher/ (source digest {source_digest()})"
    return rev


def source_digest() -> str:
    """Short sha256 over fetcher/'s Python files (names and contents): the same digest
    means the same code, commit or not; compared at the start and end of a run, it shows
    whether the code measured changed underneath (an editable install runs the work tree)."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "fetcher").rglob("*.py")):
        digest.update(path.relative_to(REPO).as_posix().encode() + b"\0")
        with contextlib.suppress(OSError):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def context_lines(
    cmd: list[str], rev: str, temp_root: Path, items: int, build_s: float
) -> list[str]:
    """Header facts that make numbers comparable between machines and commits."""
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"{when}; git {rev}; fetcher command `{shlex.join(cmd)}`",
        f"{os.cpu_count()} CPUs, {mem_gib:.1f} GiB RAM, Python {platform.python_version()}, "
        f"scratch dir (also fetcher's TMPDIR) on {temp_root}",
        f"corpus: {items:,} files of 1-64 KiB in {corpus.FOLDERS} folders "
        f"(built in {build_s:.1f} s), served by a private nginx on 127.0.0.1",
    ]


def run_checks(args: argparse.Namespace, work: Path, cmd: list[str]) -> list[Result]:
    """Build the corpus, serve it, and run every check `args.runs` times."""
    rev = git_revision()  # before the runs: the tree may change while they go on
    started = time.monotonic()
    root = work / "corpus"
    index = corpus.build_corpus(root, args.items, index_path=work / "index.json")
    build_s = time.monotonic() - started
    relpaths = list(index)
    shas = list(index.values())
    sizes = [(root / rel).stat().st_size for rel in relpaths]
    results: list[Result] = []
    with Nginx(root) as srv:
        served = Served(srv.base, relpaths, shas, sizes)
        if args.harness_only:
            spot_check(served)
            return results
        bench = Bench(cmd, work, args)
        for run_no in range(1, args.runs + 1):
            results.append(check_corpus_fetch(bench, served, run_no))
            results.append(check_local_stream(bench, run_no))
            results.append(check_http_interrupt(bench, served, run_no))
    exe = shlex.join(cmd)
    commands = [
        f"{exe} fetch list.txt -o OUT -j {args.jobs} --no-progress --manifest OUT/m.jsonl",
        f"{exe} fetch big-local.txt --stdout --no-progress --manifest M.jsonl > /dev/null",
        f"{exe} fetch big-http.txt --stdout --no-progress -j {args.jobs} --manifest M.jsonl"
        f" > /dev/null  (SIGINT after {args.http_seconds:g} s)",
    ]
    report = render(results, context_lines(cmd, rev, work.parent, args.items, build_s), commands)
    print(report)
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(report)
    print(f"written to {RESULTS_FILE.relative_to(REPO)}")
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options; defaults are the sizes the scale check is specified at."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000, help="corpus size for check a")
    parser.add_argument("--lines", type=int, default=1_000_000, help="list length for b")
    parser.add_argument("--runs", type=int, default=1, help="repeat every check this often")
    parser.add_argument("--jobs", type=int, default=16, help="-j for the HTTP checks")
    parser.add_argument(
        "--timeout",
        type=float,
        default=1200.0,
        help="limit per run in seconds: then SIGINT, and SIGKILL if still running 30 s later",
    )
    parser.add_argument(
        "--http-seconds", type=float, default=60.0, help="SIGINT the 1M HTTP run after this"
    )
    parser.add_argument(
        "--harness-only",
        action="store_true",
        help="only set up, build the corpus and spot-check nginx (no fetcher needed)",
    )
    args = parser.parse_args(argv)
    if args.items < 1 or args.lines < 1 or args.runs < 1 or args.jobs < 1:
        parser.error("--items, --lines, --runs and --jobs must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    """Set up, run every check in a temp dir that is always removed, report."""
    args = parse_args(argv)
    # Started as a background job, this process (and so every fetcher it starts) would
    # ignore SIGINT; the checks send fetcher a Ctrl-C, which a user's fetcher would obey.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    cmd = fetcher_cmd()
    try:
        run_setup()
        if not args.harness_only:
            check_fetcher(cmd)
        need = args.items * BYTES_PER_ITEM + 2 * args.lines * BYTES_PER_LINE + 256 * MIB
        with tempfile.TemporaryDirectory(prefix="fetcher-scale-", dir=pick_temp_root(need)) as tmp:
            results = run_checks(args, Path(tmp), cmd)
    except HarnessError as exc:
        print(f"scale_check: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "scale_check: interrupted; fetcher and nginx stopped, temp data removed",
            file=sys.stderr,
        )
        return 130
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
