"""How each tool fetches a URL list into an output dir, and how its output is checked.

Why: a files/s figure means something only if every tool did the same job: the same list,
the same number of connections, a fresh empty output dir on tmpfs, and every file byte-exact
afterwards. A tool that leaves a file missing, short or wrong is reported as failed, never
timed as a success. Wall time is taken around the whole process (startup included), under
/usr/bin/time -v for the peak RSS.

Tools: fetcher (any options, optionally on a terminal so that its bar draws, or through
cli_rusage.py to split the parent's CPU from its children's), curl --parallel, wget
(sequential), wget2, aria2c --deferred-input, parfive (parfive_fetch.py), the hand-written
ThreadPool + requests script (handwritten.py), the minimal requests script
(requests_minimal.py) and the single-stream `curl -o /dev/null` ceiling; each with a given
number of connections. Peers keep the server's folder structure; fetcher uses its default
flat layout (corpus names are unique).

Every run also records the client's CPU (user + sys of the whole process tree, from
/usr/bin/time) and, when the server is given, how many connections the client opened
(nginx's stub_status count before and after).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import random
import re
import shlex
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nginx import Nginx
from scale_check import (
    HarnessError,
    Problems,
    Run,
    check_fetcher,
    fetcher_cmd,
    git_revision,
    run_measured,
    source_digest,
)

from fetcher.filesystems import ext4_without_journal

HERE = Path(__file__).resolve().parent


def results_dir(quick: bool) -> Path:
    """Where a report goes: smoke runs (`--quick`) never overwrite the measured results."""
    return HERE / "results" / "quick" if quick else HERE / "results"


def timed_fetch(
    fetcher: list[str],
    urls: Path,
    out: Path,
    items: int,
    options: Sequence[str],
    *,
    sync: bool = False,
) -> tuple[float, list[dict[str, Any]]]:
    """Wall seconds of `fetcher fetch URLS -o OUT --no-progress -q OPTIONS` into a fresh
    OUT (after a `sync`, not timed, when asked: on a real disk the last run's writes and
    deletions must not land on this one), and its manifest rows; raises unless there is one
    ok row per item."""
    shutil.rmtree(out, ignore_errors=True)
    if sync:
        os.sync()
    start = time.perf_counter()
    subprocess.run(
        [*fetcher, "fetch", str(urls), "-o", str(out), "--no-progress", "-q", *options],
        check=True,
    )
    wall = time.perf_counter() - start
    rows = [json.loads(line) for line in (out / MANIFEST).read_text().splitlines()]
    if len(rows) != items or any(row["status"] != "ok" for row in rows):
        raise HarnessError(f"{' '.join(options)}: {len(rows)} rows, not all ok")
    return wall, rows


def report_head(title: str, lines: Sequence[str]) -> list[str]:
    """A report's title and its context lines (a Markdown list)."""
    return [f"# {title}", "", *(f"- {line}" for line in lines)]


def write_report(name: str, report: str, quick: bool) -> None:
    """Print a report and write it to the results folder."""
    target = results_dir(quick) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(report)
    print(report)
    print(f"written to {target}")


MIB = 1 << 20
HASH_BLOCK = MIB
STATE_DIR = ".fetcher"  # fetcher's state store and default manifest, inside the output dir
MANIFEST = f"{STATE_DIR}/manifest.jsonl"
CONNECTIONS = 16


@dataclass(frozen=True)
class Item:
    """One file the server has: URL, path below the served root, sha256 and size."""

    url: str
    relpath: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Batch:
    """Items to fetch as one job, with their URL list already written to `list_path`."""

    name: str
    items: Sequence[Item]
    list_path: Path


def corpus_items(base: str, root: Path, index: dict[str, str]) -> list[Item]:
    """Items for files under root served at base, from a relpath -> sha256 index."""
    return [
        Item(f"{base}/{rel}", rel, sha, (root / rel).stat().st_size) for rel, sha in index.items()
    ]


def write_large_files(folder: Path, sizes: dict[str, int], seed: int = 1) -> dict[str, str]:
    """Write files of the given sizes (name -> bytes) fast; return name -> sha256.

    Each MiB is one seeded random block stamped with its file and block number, so no two
    MiB are alike (nothing a cache or compressor could shortcut) without generating
    gigabytes of random numbers.
    """
    folder.mkdir(parents=True, exist_ok=True)
    block = bytearray(random.Random(seed).randbytes(MIB))
    shas = {}
    for file_no, (name, size) in enumerate(sizes.items()):
        digest = hashlib.sha256()
        with (folder / name).open("wb") as fh:
            for k in range(-(-size // MIB)):
                block[:16] = struct.pack("<QQ", file_no, k)
                chunk = memoryview(block)[: min(MIB, size - k * MIB)]
                fh.write(chunk)
                digest.update(chunk)
        shas[name] = digest.hexdigest()
    return shas


def make_batch(name: str, items: Sequence[Item], scratch: Path) -> Batch:
    """Write the batch's URL list (one URL a line) and return the batch."""
    list_path = scratch / f"{name}.urls.txt"
    list_path.write_text("".join(f"{item.url}\n" for item in items))
    return Batch(name, items, list_path)


# argv(batch, out, scratch): the command line; writes any input file it needs to scratch.
Argv = Callable[[Batch, Path, Path], list[str]]
# verify(batch, out, run, problems): (files verified, their bytes); adds what is wrong.
Verifier = Callable[[Batch, Path, Run, Problems], tuple[int, int]]
# collect(batch, scratch): figures a tool left behind after a run (e.g. its parent's CPU).
Collector = Callable[[Batch, Path], dict[str, float]]


@dataclass(frozen=True)
class Tool:
    """One way of fetching a batch, with the check that says whether it did, and
    optionally what else to read after each run."""

    name: str
    argv: Argv
    verify: Verifier
    collect: Collector | None = None

    @property
    def slug(self) -> str:
        """The name as a file-name fragment."""
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


@dataclass
class Outcome:
    """One measured run of a tool: the process, and what checking its output found."""

    tool: str
    run_no: int
    run: Run
    files: int
    bytes: int
    problems: Problems
    command: str
    connections: int | None = None
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def cpu_us_per_file(self) -> float | None:
        """Client CPU (user + sys, all its processes) per verified file, in microseconds."""
        if self.run.cpu_s is None or not self.files:
            return None
        return self.run.cpu_s / self.files * 1e6

    @property
    def ok(self) -> bool:
        """Exited 0 within its time limit and every file is byte-exact."""
        return self.problems.count == 0


def sha256_file(path: Path) -> str:
    """sha256 of a file, read in blocks (large outputs never sit whole in memory)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def same_path(relpath: str) -> str:
    """Output path of a tool that keeps the server's folders."""
    return relpath


def flat_path(relpath: str) -> str:
    """Output path under fetcher's default flat layout: the file name alone."""
    return relpath.rsplit("/", 1)[-1]


def files_verifier(output: Callable[[str], str], own_dir: str | None = None) -> Verifier:
    """Every item at output(relpath) with the right size and sha256, and nothing else in
    the output dir except the tool's own state dir."""

    def verify(batch: Batch, out: Path, run: Run, problems: Problems) -> tuple[int, int]:
        files = nbytes = 0
        expected: set[str] = set()
        for item in batch.items:
            rel = output(item.relpath)
            expected.add(rel)
            path = out / rel
            if not path.is_file():
                problems.add(f"{rel}: missing")
            elif (size := path.stat().st_size) != item.size:
                problems.add(f"{rel}: {size} bytes, expected {item.size}")
            elif sha256_file(path) != item.sha256:
                problems.add(f"{rel}: content differs")
            else:
                files += 1
                nbytes += item.size
        extra = [
            rel
            for p in out.rglob("*")
            if p.is_file()
            and (rel := p.relative_to(out).as_posix()) not in expected
            and rel.split("/", 1)[0] != own_dir
        ]
        if extra:
            problems.add(f"{len(extra)} unexpected files, e.g. {extra[0]}")
        return files, nbytes

    return verify


def fetcher_verifier(batch: Batch, out: Path, run: Run, problems: Problems) -> tuple[int, int]:
    """fetcher's files (flat layout) plus its manifest: one ok row per item, in order."""
    result = files_verifier(flat_path, STATE_DIR)(batch, out, run, problems)
    manifest = out / MANIFEST
    rows: list[dict[str, Any]] = []
    if manifest.is_file():
        rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    if len(rows) != len(batch.items):
        problems.add(f"manifest has {len(rows)} rows, expected {len(batch.items)}")
    for i, (row, item) in enumerate(zip(rows, batch.items, strict=False)):
        if row.get("index") != i or row.get("source") != item.url:
            problems.add(f"manifest row {i} out of order: {row.get('index')} {row.get('source')}")
            break
        if row.get("status") != "ok" or row.get("sha256") != item.sha256:
            problems.add(f"manifest row {i}: {row.get('status')} {row.get('error')}")
            break
    return result


def size_report_verifier(batch: Batch, out: Path, run: Run, problems: Problems) -> tuple[int, int]:
    """For output to /dev/null: the byte count curl reports (last stderr line) must match."""
    (item,) = batch.items
    reported = run.stderr_tail.splitlines()[-1:] or [""]
    if reported[0].strip() != str(item.size):
        problems.add(f"curl reported {reported[0]!r} bytes, expected {item.size}")
        return 0, 0
    return 1, item.size


def fetcher(name: str, *options: str, terminal: bool = False) -> Tool:
    """`fetcher fetch LIST -o OUT OPTIONS`; on a pseudo-terminal (util-linux `script`) when
    `terminal`, so that stderr is a tty and the progress bar is drawn as for a person (the
    terminal's text is kept in the scratch dir, and its last lines explain a failed run).
    The default manifest is checked too, unless OPTIONS send it elsewhere."""

    typescripts: dict[str, Path] = {}  # batch name -> the terminal's text of the last run

    def argv(batch: Batch, out: Path, scratch: Path) -> list[str]:
        cmd = [*fetcher_cmd(), "fetch", str(batch.list_path), "-o", str(out), *options]
        if terminal:
            slug = re.sub(r"[^a-z0-9]+", "-", name.lower())
            path = typescripts[batch.name] = scratch / f"{batch.name}-{slug}.tty"
            return ["script", "-qfec", shlex.join(cmd), str(path)]
        return cmd

    check = files_verifier(flat_path, STATE_DIR) if "--manifest" in options else fetcher_verifier
    if not terminal:
        return Tool(name, argv, check)

    def verify(batch: Batch, out: Path, run: Run, problems: Problems) -> tuple[int, int]:
        path = typescripts.get(batch.name)
        if run.exit_code != 0 and path is not None and path.is_file():
            text = path.read_text(errors="replace")
            tail = [line for line in re.split(r"[\r\n]+", text) if line.strip()][-3:]
            problems.add(f"on the terminal: {' / '.join(tail)[-400:]}")
        return check(batch, out, run, problems)

    return Tool(name, argv, verify)


def curl_parallel(conns: int = CONNECTIONS, name: str = "curl --parallel") -> Tool:
    """curl --parallel with a config file of url/output pairs (folders created)."""

    def argv(batch: Batch, out: Path, scratch: Path) -> list[str]:
        config = scratch / f"{batch.name}.curl.cfg"
        config.write_text(
            "".join(f'url = "{i.url}"\noutput = "{out / i.relpath}"\n' for i in batch.items)
        )
        return [
            "curl", "--parallel", "--parallel-max", str(conns),
            "--create-dirs", "--fail", "--silent", "--show-error", "--config", str(config),
        ]  # fmt: skip

    return Tool(name, argv, files_verifier(same_path))


def curl_single() -> Tool:
    """One `curl -o /dev/null` stream: the ceiling of one connection on this machine."""

    def argv(batch: Batch, out: Path, scratch: Path) -> list[str]:
        (item,) = batch.items
        return [
            "curl", "--fail", "--silent", "--show-error", "-o", "/dev/null",
            "--write-out", r"%{stderr}%{size_download}\n", item.url,
        ]  # fmt: skip

    return Tool("curl -o /dev/null (1 stream)", argv, size_report_verifier)


def wget() -> Tool:
    """GNU wget -i: one connection, one file after the other, server folders kept."""

    def argv(batch: Batch, out: Path, scratch: Path) -> list[str]:
        return [
            "wget", "-i", str(batch.list_path), "-P", str(out), "-x", "-nH", "-q",
            "--no-config", "--no-hsts", "--no-cookies",
        ]  # fmt: skip

    return Tool("wget (sequential)", argv, files_verifier(same_path))


def wget2(conns: int = CONNECTIONS) -> Tool:
    """wget2 -i with threads, server folders kept (-x -nH), extra work switched off."""

    def argv(batch: Batch, out: Path, scratch: Path) -> list[str]:
        return [
            "wget2", f"--max-threads={conns}", "-i", str(batch.list_path),
            "-P", str(out), "-x", "-nH", "-q", "--no-robots", "--no-hsts", "--no-hpkp",
            "--no-xattr", "--no-cookies", "--no-netrc",
        ]  # fmt: skip

    return Tool("wget2", argv, files_verifier(same_path))


def aria2c(conns: int = CONNECTIONS) -> Tool:
    """aria2c -i with deferred input and per-item `out=` (folders kept), no preallocation."""

    def argv(batch: Batch, out: Path, scratch: Path) -> list[str]:
        listing = scratch / f"{batch.name}.aria2.txt"
        listing.write_text("".join(f"{i.url}\n  out={i.relpath}\n" for i in batch.items))
        return [
            "aria2c", "-i", str(listing), "-d", str(out), "-j", str(conns),
            "--deferred-input=true", "--console-log-level=warn", "--summary-interval=0",
            "--download-result=hide", "--allow-overwrite=true", "--auto-file-renaming=false",
            "--file-allocation=none",
        ]  # fmt: skip

    return Tool("aria2c", argv, files_verifier(same_path))


def python_script(
    name: str, script: str, *options: str, conns: int = CONNECTIONS, python: str | None = None
) -> Tool:
    """One of the Python scripts beside this file: SCRIPT LIST OUT -j CONNS OPTIONS, run by
    `python` (default: fetcher's interpreter, which has requests and parfive)."""

    def argv(batch: Batch, out: Path, scratch: Path) -> list[str]:
        return [
            python or fetcher_python(),
            str(HERE / script),
            str(batch.list_path),
            str(out),
            "-j",
            str(conns),
            *options,
        ]

    return Tool(name, argv, files_verifier(same_path))


def parfive(conns: int = CONNECTIONS) -> Tool:
    """parfive with `conns` files in flight, one connection each."""
    return python_script("parfive", "parfive_fetch.py", conns=conns)


def handwritten(conns: int = CONNECTIONS) -> Tool:
    """ThreadPool(conns) + one requests.get per item."""
    return python_script("handwritten ThreadPool+requests", "handwritten.py", conns=conns)


def minimal_name(processes: int) -> str:
    """Table name of the minimal requests script on `processes` processes."""
    return f"minimal requests, {processes} process{'es' if processes > 1 else ''}"


def requests_minimal(processes: int = 2, conns: int = CONNECTIONS) -> Tool:
    """The fastest requests-based script we could write, on `processes` processes sharing
    `conns` threads: the ceiling requests itself sets."""
    return python_script(
        minimal_name(processes),
        "requests_minimal.py",
        "--processes",
        str(processes),
        conns=conns,
    )


def fetcher_python() -> str:
    """The interpreter fetcher runs in: the `#!` line of the fetcher command when it is a
    console script (a venv's bin/fetcher), else this interpreter."""
    cmd = fetcher_cmd()
    exe = shutil.which(cmd[0]) if len(cmd) == 1 else None
    if exe is not None:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            first = Path(exe).read_bytes()[:256].split(b"\n", 1)[0].decode()
            if first.startswith("#!") and "python" in first:
                return first[2:].strip().split()[0]
    if len(cmd) >= 3 and cmd[1:3] == ["-m", "fetcher"]:
        return cmd[0]
    return sys.executable


def fetcher_rusage(name: str, *options: str) -> Tool:
    """fetcher through cli_rusage.py: the same CLI, plus the parent's own CPU and its
    children's (getrusage) and the most child processes it had at once, read after the run
    as `parent_cpu_s`, `children_cpu_s` and `processes`."""

    def report(batch: Batch, scratch: Path) -> Path:
        return scratch / f"{batch.name}-{re.sub(r'[^a-z0-9]+', '-', name.lower())}.rusage"

    def argv(batch: Batch, out: Path, scratch: Path) -> list[str]:
        path = report(batch, scratch)
        path.unlink(missing_ok=True)
        return [
            fetcher_python(), str(HERE / "cli_rusage.py"), str(path),
            "fetch", str(batch.list_path), "-o", str(out), *options,
        ]  # fmt: skip

    def collect(batch: Batch, scratch: Path) -> dict[str, float]:
        path = report(batch, scratch)
        if not path.is_file():
            return {}
        data = json.loads(path.read_text())
        return {k: float(v) for k, v in data.items() if isinstance(v, int | float)}

    return Tool(name, argv, fetcher_verifier, collect)


def run_tool(
    tool: Tool,
    batch: Batch,
    work: Path,
    run_no: int,
    timeout_s: float,
    *,
    out_root: Path | None = None,
    server: Nginx | None = None,
) -> Outcome:
    """One measured run into a fresh, empty output dir, then the check; the output is
    removed afterwards so the file system holds one copy at a time.

    Outputs go under `out_root` (default: work, where the tool's inputs and TMPDIR are);
    when it is not work, it is taken to be a real disk, and everything is flushed (sync)
    before the run, so no run pays for the previous one's write-back. With `server`, the
    connections the tool opened are counted.
    """
    root = out_root or work
    out = root / f"out-{tool.slug}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    if root != work:
        os.sync()
    argv = tool.argv(batch, out, work)
    before = server.connections() if server is not None else None
    log = server.access_log if server is not None else None
    offset = log.stat().st_size if log is not None and log.exists() else 0
    run = run_measured(argv, f"{batch.name}-{tool.slug}-{run_no}", work, timeout_s)
    # Minus 1: the second status request counts itself.
    opened = None if server is None or before is None else server.connections() - before - 1
    problems = Problems()
    if run.interrupted:
        problems.add(f"still running after {timeout_s:g} s: stopped")
    elif run.exit_code != 0:
        problems.add(f"exit {run.exit_code}: {run.stderr_tail[-300:]!r}")
    files, nbytes = tool.verify(batch, out, run, problems)
    extra = tool.collect(batch, work) if tool.collect is not None else {}
    if log is not None and (span := request_span(log, offset)) is not None:
        extra["span_s"] = span
    shutil.rmtree(out, ignore_errors=True)
    return Outcome(tool.name, run_no, run, files, nbytes, problems, shlex.join(argv), opened, extra)


def request_span(log: Path, offset: int) -> float | None:
    """Seconds from the start of the first GET to the end of the last one, from nginx's
    timing log (`$msec $request_time ...`) past `offset`: the client's steady transfer,
    without its start-up and shutdown."""
    starts, ends = [], []
    with log.open("rb") as fh:
        fh.seek(offset)
        for line in fh:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == b"GET":
                end = float(parts[0])
                starts.append(end - float(parts[1]))
                ends.append(end)
    return max(ends) - min(starts) if starts else None


@dataclass(frozen=True)
class Case:
    """One cell of a measurement: a tool on a batch, its outputs under `out_root` (None: the
    scratch dir), its label in the results (`key`)."""

    key: str
    tool: Tool
    batch: Batch
    out_root: Path | None = None
    server: Nginx | None = None  # the server of this case's batch, if not run_cases' own


def run_cases(
    cases: Sequence[Case],
    work: Path,
    runs: int,
    timeout_s: float,
    *,
    server: Nginx | None = None,
) -> dict[str, list[Outcome]]:
    """`runs` rounds over all cases, each round starting len(cases) / runs cases later
    (round robin), so no case always runs first or right after the same one, and machine
    noise spreads over all of them. Returns the outcomes by case key, in run order."""
    outcomes: dict[str, list[Outcome]] = {case.key: [] for case in cases}
    for run_no in range(1, runs + 1):
        shift = (run_no - 1) * max(1, len(cases) // runs) % len(cases)
        for case in [*cases[shift:], *cases[:shift]]:
            outcome = run_tool(
                case.tool, case.batch, work, run_no, timeout_s, out_root=case.out_root,
                server=case.server or server,
            )  # fmt: skip
            outcome.tool = case.key
            outcomes[case.key].append(outcome)
            wall = outcome.run.wall_s
            cpu = outcome.cpu_us_per_file
            state = "ok" if outcome.ok else f"FAILED: {outcome.problems.samples[:1]}"
            print(
                f"  [{run_no}/{runs}] {case.key}: {wall:.2f} s, "
                f"{outcome.files / wall:,.0f} files/s, {outcome.bytes / wall / 1e6:,.0f} MB/s, "
                f"{fmt(cpu)} us CPU/file {state}",
                flush=True,
            )
    return outcomes


REAL_FILE_SYSTEMS = ("ext4", "xfs", "btrfs", "ext3", "f2fs")


def pick_disk_root(need: int, preferred: Path | None = None) -> tuple[Path, str]:
    """A writable folder on a real disk file system (ext4, xfs, ...) with `need` bytes
    free, and a description such as `ext4 on /dev/vda (/var/tmp)`; `preferred` first, then
    /var/tmp, the repository's folder, the home folder and /tmp. HarnessError if none."""
    candidates = [preferred] if preferred is not None else []
    candidates += [Path("/var/tmp"), HERE.parent.parent, Path.home(), Path("/tmp")]
    seen: list[str] = []
    for folder in candidates:
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            continue
        proc = subprocess.run(
            ["findmnt", "-n", "-o", "FSTYPE,SOURCE", "-T", str(folder)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        fstype, _, source = proc.stdout.strip().partition(" ")
        seen.append(f"{folder}: {fstype or 'unknown'}")
        if fstype in REAL_FILE_SYSTEMS and shutil.disk_usage(folder).free >= need:
            journal = ", no journal" if ext4_without_journal(folder) else ""
            return folder, f"{fstype} on {source.strip()} ({folder}){journal}"
    raise HarnessError(f"no real disk with {need // MIB} MiB free: {'; '.join(seen)}")


@contextlib.contextmanager
def journaled_ext4(root: Path, size: int) -> Iterator[tuple[Path, str]]:
    """A fresh ext4 with a journal (mkfs.ext4's default, as on most users' disks), in a
    sparse image of `size` bytes under `root` on the real disk, loop-mounted for the run,
    then unmounted and deleted; and its description. Needs root."""
    with tempfile.TemporaryDirectory(prefix="fetcher-ext4-", dir=root) as tmp:
        image, mount = Path(tmp) / "ext4.img", Path(tmp) / "mnt"
        mount.mkdir()
        with open(image, "wb") as f:
            f.truncate(size)
        for cmd in (
            ["mkfs.ext4", "-q", "-F", str(image)],
            ["mount", "-o", "loop", str(image), str(mount)],
        ):
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
            if proc.returncode != 0:
                raise HarnessError(f"{shlex.join(cmd)}: {proc.stderr.strip()} (needs root)")
        try:
            yield (
                mount,
                f"ext4 with a journal, a {size // MIB:,} MiB image loop-mounted from {root}",
            )
        finally:
            subprocess.run(["umount", str(mount)], capture_output=True, timeout=120, check=False)


@dataclass(frozen=True)
class Summary:
    """A tool's runs reduced to medians over the runs that passed their check."""

    tool: str
    runs: int
    ok_runs: int
    files_per_s: float | None
    mb_per_s: float | None
    files_range: str
    mb_range: str
    rss_mib: float | None
    max_rss_mib: float | None
    command: str
    problems: list[str]
    cpu_us: float | None = None
    cpu_range: str = "n/a"
    connections: float | None = None
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """ok, or how many runs failed their check."""
        failed = self.runs - self.ok_runs
        return f"FAILED {failed}/{self.runs}" if failed else "ok"

    @property
    def core_hours_per_million(self) -> float | None:
        """CPU per file scaled to a million files, in core-hours (us / 3,600)."""
        return None if self.cpu_us is None else self.cpu_us / 3600


def median(values: Sequence[float]) -> float | None:
    """Median, or None for no values."""
    return statistics.median(values) if values else None


def spread(values: Sequence[float], spec: str = ",.0f") -> str:
    """min-max, or n/a for no values."""
    return f"{min(values):{spec}}-{max(values):{spec}}" if values else "n/a"


def summarise(outcomes: Sequence[Outcome]) -> Summary:
    """Medians of files/s, MB/s, CPU per file, peak RSS, connections opened and any
    collected figure, over one tool's passing runs."""
    good = [o for o in outcomes if o.ok]
    rss = [o.run.maxrss_kib / 1024 for o in good if o.run.maxrss_kib is not None]
    files = [o.files / o.run.wall_s for o in good]
    mbs = [o.bytes / o.run.wall_s / 1e6 for o in good]
    cpu = [c for o in good if (c := o.cpu_us_per_file) is not None]
    conns = [float(o.connections) for o in good if o.connections is not None]
    keys = sorted({k for o in good for k in o.extra})
    extra = {k: statistics.median([o.extra[k] for o in good if k in o.extra]) for k in keys}
    return Summary(
        tool=outcomes[0].tool,
        runs=len(outcomes),
        ok_runs=len(good),
        files_per_s=median(files),
        mb_per_s=median(mbs),
        files_range=spread(files),
        mb_range=spread(mbs),
        rss_mib=median(rss),
        max_rss_mib=max(rss) if rss else None,
        command=outcomes[0].command,
        problems=[f"run {o.run_no}: {p}" for o in outcomes for p in o.problems.samples[:2]],
        cpu_us=median(cpu),
        cpu_range=spread(cpu),
        connections=median(conns),
        extra=extra,
    )


def install_peers() -> None:
    """setup.sh (installs nginx, the peers and parfive where missing), then a check that
    the fetcher command to measure answers."""
    subprocess.run(
        ["bash", str(HERE / "setup.sh")],
        env={**os.environ, "PYTHON": fetcher_python()},
        timeout=900,
        check=True,
    )
    check_fetcher(fetcher_cmd())


def interrupt_on_sigterm() -> None:
    """Treat SIGTERM like Ctrl-C, so servers, namespaces and scratch data are cleaned up
    on the way out instead of being left behind. Ctrl-C itself gets Python's handler back:
    a harness started as a background job ignores SIGINT, and every fetcher it starts would
    inherit that and ignore the Ctrl-C the measurements send it."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def fmt(value: float | None, spec: str = ",.0f") -> str:
    """A number for a table, or n/a."""
    return "n/a" if value is None else format(value, spec)


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing."""
    return a / b if a is not None and b else None


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, e.g. `1.7, 1.9, 1.9`."""
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def tool_version(argv: list[str]) -> str:
    """First line a tool prints about its version, or why there is none."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        return f"unavailable ({last[0]})"
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


_START_DIGEST: list[str] = []  # fetcher/'s source digest when context_lines() ran


def end_lines() -> list[str]:
    """What to add to a report's context at the end: the load average then, and whether
    fetcher's source changed while the run went on."""
    now = source_digest()
    start = _START_DIGEST[-1] if _START_DIGEST else now
    code = (
        f"fetcher/ source unchanged during the run (digest {now})"
        if now == start
        else f"fetcher/ source CHANGED during the run (digest {start} at start, {now} at end): "
        "runs may have measured different code"
    )
    return [f"load average at the end {load_average()}", code]


def context_lines(scratch: Path) -> list[str]:
    """What makes numbers comparable: when, which commit, which machine, which tools."""
    _START_DIGEST.append(source_digest())
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = load_average()
    py = [fetcher_python(), "-c"]
    versions = [
        tool_version([*fetcher_cmd(), "--version"]),
        " ".join(tool_version(["curl", "--version"]).split()[:2]),
        tool_version(["wget", "--version"]).split(" built")[0],
        tool_version(["wget2", "--version"]).split(" - ")[0],
        tool_version(["aria2c", "--version"]),
        tool_version(["/usr/sbin/nginx", "-v"]).removeprefix("nginx version: "),
        "parfive " + tool_version([*py, "import parfive; print(parfive.__version__)"]),
        "requests " + tool_version([*py, "import requests; print(requests.__version__)"]),
    ]
    return [
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}; git `{git_revision()}`",
        f"{os.cpu_count()} CPUs, {mem_gib:.1f} GiB RAM, Linux {platform.release()}, "
        f"Python {platform.python_version()}; load average at start {load} "
        "(the machine may be shared: interleaved runs and medians spread that noise)",
        f"scratch (corpus, outputs, TMPDIR) on {scratch}",
        "versions: " + "; ".join(versions),
    ]
