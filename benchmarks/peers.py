"""How each tool fetches a URL list into an output dir, and how its output is checked.

Why: a files/s figure means something only if every tool did the same job: the same list,
the same number of connections, a fresh empty output dir on tmpfs, and every file byte-exact
afterwards. A tool that leaves a file missing, short or wrong is reported as failed, never
timed as a success. Wall time is taken around the whole process (startup included), under
/usr/bin/time -v for the peak RSS.

Tools: fetcher (any options, optionally on a terminal so that its bar draws), curl
--parallel, wget2, aria2c --deferred-input, parfive (parfive_fetch.py), the hand-written
ThreadPool + requests script (handwritten.py), and the single-stream `curl -o /dev/null`
ceiling. Peers keep the server's folder structure; fetcher uses its default flat layout
(corpus names are unique).
"""

from __future__ import annotations

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from scale_check import (
    Problems,
    Run,
    check_fetcher,
    fetcher_cmd,
    git_revision,
    run_measured,
)

HERE = Path(__file__).resolve().parent


def results_dir(quick: bool) -> Path:
    """Where a report goes: smoke runs (`--quick`) never overwrite the measured results."""
    return HERE / "results" / "quick" if quick else HERE / "results"


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


@dataclass(frozen=True)
class Tool:
    """One way of fetching a batch, with the check that says whether it did."""

    name: str
    argv: Argv
    verify: Verifier

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
    `terminal`, so that stderr is a tty and the progress bar is drawn as for a person.
    The default manifest is checked too, unless OPTIONS send it elsewhere."""

    def argv(batch: Batch, out: Path, scratch: Path) -> list[str]:
        cmd = [*fetcher_cmd(), "fetch", str(batch.list_path), "-o", str(out), *options]
        if terminal:
            return ["script", "-qfec", shlex.join(cmd), "/dev/null"]
        return cmd

    if "--manifest" in options:
        return Tool(name, argv, files_verifier(flat_path, STATE_DIR))
    return Tool(name, argv, fetcher_verifier)


def curl_parallel() -> Tool:
    """curl --parallel with a config file of url/output pairs (folders created)."""

    def argv(batch: Batch, out: Path, scratch: Path) -> list[str]:
        config = scratch / f"{batch.name}.curl.cfg"
        config.write_text(
            "".join(f'url = "{i.url}"\noutput = "{out / i.relpath}"\n' for i in batch.items)
        )
        return [
            "curl", "--parallel", "--parallel-max", str(CONNECTIONS),
            "--create-dirs", "--fail", "--silent", "--show-error", "--config", str(config),
        ]  # fmt: skip

    return Tool("curl --parallel", argv, files_verifier(same_path))


def curl_single() -> Tool:
    """One `curl -o /dev/null` stream: the ceiling of one connection on this machine."""

    def argv(batch: Batch, out: Path, scratch: Path) -> list[str]:
        (item,) = batch.items
        return [
            "curl", "--fail", "--silent", "--show-error", "-o", "/dev/null",
            "--write-out", r"%{stderr}%{size_download}\n", item.url,
        ]  # fmt: skip

    return Tool("curl -o /dev/null (1 stream)", argv, size_report_verifier)


def wget2() -> Tool:
    """wget2 -i with threads, server folders kept (-x -nH), extra work switched off."""

    def argv(batch: Batch, out: Path, scratch: Path) -> list[str]:
        return [
            "wget2", f"--max-threads={CONNECTIONS}", "-i", str(batch.list_path),
            "-P", str(out), "-x", "-nH", "-q", "--no-robots", "--no-hsts", "--no-hpkp",
            "--no-xattr", "--no-cookies", "--no-netrc",
        ]  # fmt: skip

    return Tool("wget2", argv, files_verifier(same_path))


def aria2c() -> Tool:
    """aria2c -i with deferred input and per-item `out=` (folders kept), no preallocation."""

    def argv(batch: Batch, out: Path, scratch: Path) -> list[str]:
        listing = scratch / f"{batch.name}.aria2.txt"
        listing.write_text("".join(f"{i.url}\n  out={i.relpath}\n" for i in batch.items))
        return [
            "aria2c", "-i", str(listing), "-d", str(out), "-j", str(CONNECTIONS),
            "--deferred-input=true", "--console-log-level=warn", "--summary-interval=0",
            "--download-result=hide", "--allow-overwrite=true", "--auto-file-renaming=false",
            "--file-allocation=none",
        ]  # fmt: skip

    return Tool("aria2c", argv, files_verifier(same_path))


def python_script(name: str, script: str, *options: str) -> Tool:
    """One of the Python scripts beside this file: SCRIPT LIST OUT -j 16 OPTIONS."""

    def argv(batch: Batch, out: Path, scratch: Path) -> list[str]:
        return [
            sys.executable,
            str(HERE / script),
            str(batch.list_path),
            str(out),
            "-j",
            str(CONNECTIONS),
            *options,
        ]

    return Tool(name, argv, files_verifier(same_path))


def parfive() -> Tool:
    """parfive with 16 files in flight, one connection each."""
    return python_script("parfive", "parfive_fetch.py")


def handwritten() -> Tool:
    """ThreadPool(16) + one requests.get per item."""
    return python_script("handwritten ThreadPool+requests", "handwritten.py")


def requests_minimal() -> Tool:
    """The fastest requests-based script we could write, on two processes: a ceiling."""
    return python_script(
        "minimal requests script, 2 processes", "requests_minimal.py", "--processes", "2"
    )


def run_tool(tool: Tool, batch: Batch, work: Path, run_no: int, timeout_s: float) -> Outcome:
    """One measured run into a fresh, empty output dir under work, then the check; the
    output is removed afterwards so tmpfs holds one copy at a time."""
    out = work / f"out-{tool.slug}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    argv = tool.argv(batch, out, work)
    run = run_measured(argv, f"{batch.name}-{tool.slug}-{run_no}", work, timeout_s)
    problems = Problems()
    if run.interrupted:
        problems.add(f"still running after {timeout_s:g} s: stopped")
    elif run.exit_code != 0:
        problems.add(f"exit {run.exit_code}: {run.stderr_tail[-300:]!r}")
    files, nbytes = tool.verify(batch, out, run, problems)
    shutil.rmtree(out, ignore_errors=True)
    return Outcome(tool.name, run_no, run, files, nbytes, problems, shlex.join(argv))


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

    @property
    def status(self) -> str:
        """ok, or how many runs failed their check."""
        failed = self.runs - self.ok_runs
        return f"FAILED {failed}/{self.runs}" if failed else "ok"


def summarise(outcomes: Sequence[Outcome]) -> Summary:
    """Medians of files/s, MB/s and peak RSS over one tool's passing runs."""
    good = [o for o in outcomes if o.ok]
    rss = [o.run.maxrss_kib / 1024 for o in good if o.run.maxrss_kib is not None]

    files = [o.files / o.run.wall_s for o in good]
    mbs = [o.bytes / o.run.wall_s / 1e6 for o in good]

    def median(values: list[float]) -> float | None:
        return statistics.median(values) if values else None

    def spread(values: list[float]) -> str:
        return f"{min(values):,.0f}-{max(values):,.0f}" if values else "n/a"

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
    )


def install_peers() -> None:
    """setup.sh (installs nginx, the peers and parfive where missing), then a check that
    the fetcher command to measure answers."""
    subprocess.run(
        ["bash", str(HERE / "setup.sh")],
        env={**os.environ, "PYTHON": sys.executable},
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


def tool_version(argv: list[str]) -> str:
    """First line a tool prints about its version, or why there is none."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def context_lines(scratch: Path) -> list[str]:
    """What makes numbers comparable: when, which commit, which machine, which tools."""
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    py = [sys.executable, "-c"]
    versions = [
        tool_version([*fetcher_cmd(), "--version"]),
        " ".join(tool_version(["curl", "--version"]).split()[:2]),
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
