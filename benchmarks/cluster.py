"""The Dask cluster executor (`--cluster`, issue 11): one worker against two where the
network is the limit, the client's CPU per item, and the same run across network namespaces.

Why: a cluster run pays only if (a) a second worker adds its threads' worth of throughput
when the network, not the machine, is the limit, and (b) the client, which still keeps the
order, the names, the state store and the manifest of every item, is cheap enough per item
to feed many workers. Both are measured here, with nginx (echo-module delay, nginx.py
`delay_ms`) answering every request of a small-file corpus d ms late, so that J threads per
worker can fetch at most J / d files per second, whatever this 2-core machine does.

Measured, interleaved round robin over `--runs` rounds, every cluster up the whole time:

- `local:1`, `local:2`: `fetcher fetch LIST -o OUT --cluster local:N -j J --per-host N*J
  --no-progress` through cli_rusage.py. The LocalCluster lives in the client: its
  scheduler runs in the client process (so in its RUSAGE_SELF), its worker processes are
  the client's children (RUSAGE_CHILDREN, including their start-up);
- `tcp, 1 worker`, `tcp, 2 workers`: a `dask scheduler` and `dask worker --nthreads 1
  --no-nanny` processes started here on 127.0.0.1, the same command with `--cluster
  tcp://127.0.0.1:PORT`: RUSAGE_SELF is the client alone; the scheduler's and the
  workers' CPU come from /proc/PID/stat before and after each run;
- `netns, 2 workers`: the scheduler and each worker in a network namespace of its own
  (fbench-sched, fbench-w1, fbench-w2, iproute2, needs root), joined by veth pairs to a
  bridge in the root namespace, 169.254.78.0/24 (link-local, used nowhere else): the root
  namespace is .1, where a second nginx serves the corpus to the workers; the scheduler
  is .2, the workers .3 and .4. The client stays in the root namespace and reaches the
  scheduler over the bridge; the output dir is on /dev/shm, which every namespace shares.
  Skipped, with the reason in the report, without root or namespace support. Everything
  made is removed on exit, on Ctrl-C, SIGTERM and errors too; what a killed run left is
  removed by the next;
- each case also on a short list (`--small` items): the start-up. The client's CPU per
  item net of start-up is (CPU on the list - CPU on the short list) / (items - short).

`--per-host` is the run's cap per host, shared out among the workers present, so it is
N x J here: each worker keeps J connections to the one server, as with `local:1`.
Every output is checked by sha256 and every manifest row (peers.fetcher_verifier); the
steady rate is files over the span from the first request's start to the last one's end
in nginx's log (process and cluster start-up left out). The report ends with the figures
of a 100-million-URL plan computed from these numbers.

    python benchmarks/cluster.py [--runs 3] [--items 4000] [--threads 16] [--delay-ms 100]
    python benchmarks/cluster.py --quick      # smoke test: 1 run, 480 items
    python benchmarks/cluster.py --no-netns   # loopback only

Writes benchmarks/results/cluster.md (results/quick/ with --quick) and prints it. Exit 0
when every run passed its check, 1 when some failed, 2 when the harness could not run,
130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType

import corpus
import peers
from nginx import Nginx, NginxError
from peers import MIB, Batch, Case, Item, Outcome, Tool, fmt, ratio
from scale_check import HarnessError, child_env, pick_temp_root

WARM_TIMEOUT_S = 120.0
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
CMD_TIMEOUT_S = 20.0
IDLE_TIMEOUT_S = 900  # a scheduler left behind by a killed harness stops by itself
DEATH_TIMEOUT_S = 60  # and its workers after it
TARGET = 1.8  # two workers >= 1.8 x one, where the network limits
CLK_TCK = os.sysconf("SC_CLK_TCK")
NET = "169.254.78"
PREFIX = 24
BRIDGE = "br-fbc"
NAMESPACES = ("fbench-sched", "fbench-w1", "fbench-w2")
ONE_E8 = 100_000_000
PROFILER_ENV = "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED"
PROFILER_NOTE = (
    "Dask's worker profiler is off ({env}=False, for every Dask process here, the "
    "LocalClusters' too): it calls sys._current_frames() every 10 ms on the worker's event "
    "loop, and on CPython before 3.11.9 a garbage collection inside that call deadlocks the "
    "whole worker when it frees a threading.local (CPython gh-106883; fetcher's worker "
    "threads keep their sessions in one), which hung a worker here; --dask-profiler keeps "
    "Dask's default"
)
DEFAULT_PER_HOST_KEY = "local:2, default --per-host"

WAIT_FOR_WORKERS = """
import sys
from distributed import Client
with Client(sys.argv[1], timeout=30, set_as_default=False) as client:
    client.wait_for_workers(int(sys.argv[2]), timeout=60)
"""
FETCHER_CONSTANTS = """
import json, sys
from fetcher.cluster import BLOCKS_PER_WORKER, block_size
from fetcher.pool import LOOKAHEAD_PER_WORKER, auto_chunksize
j, known = int(sys.argv[1]), int(sys.argv[2])
chunk = auto_chunksize(j, min(known, j * LOOKAHEAD_PER_WORKER))
print(json.dumps({"chunksize": chunk, "block": block_size(chunk, j),
                  "blocks_per_worker": BLOCKS_PER_WORKER}))
"""


@dataclass(frozen=True)
class Plan:
    """What one run measures (full, or --quick for a smoke test)."""

    runs: int
    items: int
    small: int
    threads: int
    delay_ms: int
    netns: bool
    profiler: bool = False

    @property
    def timeout_s(self) -> float:
        """A run's limit: three times one worker's bound on the list, plus start-up."""
        return 3 * self.items * self.delay_ms / 1000 / self.threads + 60


FULL = Plan(runs=3, items=4000, small=32, threads=16, delay_ms=100, netns=True)
QUICK = Plan(runs=1, items=480, small=32, threads=16, delay_ms=100, netns=True)


# --- Dask processes --------------------------------------------------------------------


def process_cpu_s(pid: int) -> float:
    """user + sys seconds of a live process, all its threads (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def dask_command() -> list[str]:
    """The `dask` command of fetcher's interpreter (its venv's bin/, else `python -m`)."""
    python = peers.fetcher_python()
    beside = Path(python).parent / "dask"
    return [str(beside)] if beside.is_file() else [python, "-m", "dask"]


@dataclass(frozen=True)
class Place:
    """Where a Dask process runs: the address it listens on, and its namespace if any."""

    host: str
    netns: str | None = None


class DaskCluster:
    """A `dask scheduler` and single-threaded `dask worker --no-nanny` processes (the
    process measured is the worker itself), each in a process group of its own, listening
    only on its place's address (dashboards too); stopped on exit."""

    def __init__(self, name: str, work: Path, scheduler: Place, workers: Sequence[Place]):
        self.name = name
        self.work = work
        self.scheduler = scheduler
        self.workers = tuple(workers)
        self.address = ""
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def _spawn(self, role: str, place: Place, args: list[str]) -> None:
        cmd = [*dask_command(), *args]
        if place.netns is not None:  # `ip netns exec` execs the command: same pid, group
            cmd = ["ip", "netns", "exec", place.netns, *cmd]
        with (self.work / f"dask-{self.name}-{role}.log").open("wb") as log:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.work,
                env=child_env(self.work),
                start_new_session=True,  # no terminal Ctrl-C: the harness stops it
            )
        self._procs.append((role, proc))

    def _log_tail(self, role: str) -> str:
        log = self.work / f"dask-{self.name}-{role}.log"
        return " / ".join(log.read_text(errors="replace").splitlines()[-3:]) if log.exists() else ""

    def start(self) -> DaskCluster:
        """Scheduler first (its address from --scheduler-file), then the workers; returns
        once all of them have joined."""
        host = self.scheduler.host
        info = self.work / f"dask-{self.name}-scheduler.json"
        self._spawn("scheduler", self.scheduler, [
            "scheduler", "--host", host, "--port", "0", "--dashboard-address", f"{host}:0",
            "--scheduler-file", str(info), "--idle-timeout", f"{IDLE_TIMEOUT_S}s",
        ])  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.address:
            if self._procs[0][1].poll() is not None or time.monotonic() > deadline:
                raise HarnessError(f"dask scheduler {self.name}: {self._log_tail('scheduler')}")
            with contextlib.suppress(OSError, ValueError):
                self.address = str(json.loads(info.read_text())["address"])
            time.sleep(0.1)
        for k, place in enumerate(self.workers, 1):
            self._spawn(f"worker{k}", place, [
                "worker", self.address, "--nthreads", "1", "--no-nanny", "--host", place.host,
                "--dashboard-address", f"{place.host}:0", "--name", f"{self.name}-w{k}",
                "--local-directory", str(self.work / f"dask-{self.name}"),
                "--death-timeout", f"{DEATH_TIMEOUT_S}s",
            ])  # fmt: skip
        wait = [
            peers.fetcher_python(),
            "-c",
            WAIT_FOR_WORKERS,
            self.address,
            str(len(self.workers)),
        ]
        proc = subprocess.run(
            wait, capture_output=True, text=True, timeout=START_TIMEOUT_S, env=child_env(),
            check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            tails = "; ".join(f"{r}: {self._log_tail(r)}" for r, _ in self._procs)
            raise HarnessError(f"dask cluster {self.name}: workers did not join: {tails}")
        return self

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of the scheduler and of all workers together."""
        times = {"scheduler": 0.0, "workers": 0.0}
        for role, proc in self._procs:
            times["scheduler" if role == "scheduler" else "workers"] += process_cpu_s(proc.pid)
        return times

    def stop(self) -> None:
        """Workers first, then the scheduler: TERM, then KILL on overrun."""
        procs, self._procs = self._procs, []
        for _, proc in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for _, proc in reversed(procs):
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_TIMEOUT_S)

    def __enter__(self) -> DaskCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --- Network namespaces ----------------------------------------------------------------


class NetnsError(RuntimeError):
    """The namespaces could not be made (no root, no kernel support, address range used)."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `ip ARGS` (iproute2); NetnsError with its message on failure."""
    try:
        proc = subprocess.run(
            ["ip", *args], capture_output=True, text=True, timeout=CMD_TIMEOUT_S, check=False
        )
    except OSError as exc:
        raise NetnsError(f"ip: {exc}") from exc
    if check and proc.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def veth(k: int) -> tuple[str, str]:
    """Namespace k's veth pair: (root namespace end, on the bridge; namespace end)."""
    return f"veth-fbc{k}", f"veth-fbc{k}p"


def remove_network() -> None:
    """Delete this benchmark's namespaces (killing only the processes inside them), veth
    pairs and bridge, whichever exist; safe to call any time."""
    listed = ip("netns", "list", check=False).stdout.split()
    for ns in NAMESPACES:
        if ns in listed:
            for pid in ip("netns", "pids", ns, check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            ip("netns", "del", ns, check=False)
    for k in range(len(NAMESPACES)):
        ip("link", "del", veth(k)[0], check=False)
    ip("link", "del", BRIDGE, check=False)


def range_in_use() -> str | None:
    """An address or route of 169.254.78.0/24 on this machine that is not ours, if any."""
    for line in ip("-o", "-4", "addr", "show", check=False).stdout.splitlines():
        parts = line.split()
        if len(parts) > 3 and parts[3].startswith(f"{NET}.") and parts[1] != BRIDGE:
            return f"{parts[3]} on {parts[1]}"
    routes = ip("-4", "route", "show", "match", f"{NET}.1", check=False).stdout.splitlines()
    for route in routes:
        if not route.startswith("default") and f"dev {BRIDGE}" not in route:
            return f"route {route.strip()}"
    return None


class ClusterNet:
    """The bridge `br-fbc` (root namespace, NET.1) and the namespaces NAMESPACES, namespace
    k at NET.(k+2), each on the bridge through a veth pair; removed on exit."""

    root_ip = f"{NET}.1"

    def place(self, k: int) -> Place:
        """Namespace k's address and name."""
        return Place(f"{NET}.{k + 2}", NAMESPACES[k])

    def __enter__(self) -> ClusterNet:
        if os.geteuid() != 0:
            raise NetnsError("network namespaces need root")
        remove_network()  # a killed run's leftovers
        used = range_in_use()
        if used is not None:
            raise NetnsError(f"{NET}.0/{PREFIX} is in use on this machine ({used})")
        try:
            ip("link", "add", BRIDGE, "type", "bridge")
            ip("addr", "add", f"{self.root_ip}/{PREFIX}", "dev", BRIDGE)
            ip("link", "set", BRIDGE, "up")
            for k, ns in enumerate(NAMESPACES):
                outer, inner = veth(k)
                ip("netns", "add", ns)
                ip("-n", ns, "link", "set", "lo", "up")
                ip("link", "add", outer, "type", "veth", "peer", "name", inner, "netns", ns)
                ip("link", "set", outer, "master", BRIDGE)
                ip("link", "set", outer, "up")
                ip("-n", ns, "addr", "add", f"{self.place(k).host}/{PREFIX}", "dev", inner)
                ip("-n", ns, "link", "set", inner, "up")
        except BaseException:
            remove_network()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        remove_network()


def connect_ms(host: str, port: int, samples: int = 5) -> float:
    """Median TCP connect time (one SYN / SYN-ACK round trip) from here."""
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        with socket.create_connection((host, port), timeout=5.0):
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def timed_get(url: str, item: Item, netns: str | None = None) -> str:
    """One curl GET (inside `netns` if given): connect time, time to first byte (the
    server's delay included), and whether the bytes are right."""
    cmd = ["curl", "-sS", "--fail", "--noproxy", "*", "-o", "-",
           "-w", "%{stderr}%{time_connect} %{time_starttransfer}", url]  # fmt: skip
    if netns is not None:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    out = subprocess.run(cmd, capture_output=True, timeout=30, check=True)
    connect, first = (float(x) * 1000 for x in out.stderr.split()[-2:])
    ok = hashlib.sha256(out.stdout).hexdigest() == item.sha256
    return f"connect {connect:.2f} ms, first byte {first:.1f} ms, sha256 {'ok' if ok else 'WRONG'}"


# --- Cases -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """One cluster set-up: its fetcher tool, its server and its two lists."""

    key: str
    kind: str  # local, tcp or netns
    workers: int
    tool: Tool
    server: Nginx
    big: Batch
    small: Batch | None  # None: throughput only, no start-up run


def state_sizes(out: Path) -> dict[str, float]:
    """Manifest bytes per row and the rest of the state dir (SQLite) per item."""
    manifest = out / peers.MANIFEST
    if not manifest.is_file():
        return {}
    with manifest.open("rb") as fh:
        rows = sum(1 for _ in fh)
    state = out / peers.STATE_DIR
    other = sum(p.stat().st_size for p in state.rglob("*") if p.is_file() and p != manifest)
    if not rows:
        return {}
    return {"manifest_b_per_row": manifest.stat().st_size / rows, "state_b_per_item": other / rows}


def cluster_tool(
    name: str,
    address: str,
    workers: int,
    threads: int,
    dask: DaskCluster | None,
    *,
    per_host: bool = True,
) -> Tool:
    """fetcher through cli_rusage.py on a cluster, J threads and (with `per_host`) J
    connections per worker, else the default --per-host; with `dask`, its scheduler's and
    workers' CPU during the run are collected too."""
    limit = ["--per-host", str(threads * workers)] if per_host else []
    base = peers.fetcher_rusage(
        name, "--cluster", address, "-j", str(threads), *limit, "--no-progress"
    )
    # CPU snapshots (monotonic time, CPU seconds by role) taken just before and just after
    # each run; the gap from one run's end to the next one's start is the cluster idle
    # (other cases run meanwhile), which gives its idle CPU rate (heartbeats, timers).
    marks: dict[str, tuple[float, dict[str, float]]] = {}

    def snapshot() -> tuple[float, dict[str, float]]:
        assert dask is not None
        return time.monotonic(), dask.cpu()

    def argv(batch: Batch, out: Path, scratch: Path) -> list[str]:
        cmd = base.argv(batch, out, scratch)
        if dask is not None:
            marks["before"] = snapshot()  # the last thing before the run starts
        return cmd

    def collect(batch: Batch, scratch: Path) -> dict[str, float]:
        data = base.collect(batch, scratch) if base.collect is not None else {}
        if dask is not None and "before" in marks:
            end, after = snapshot()
            start, before = marks["before"]
            data["run_s"] = end - start
            for role, cpu in after.items():
                data[f"{role}_cpu_s"] = cpu - before[role]
            if "after" in marks:
                idle_end, idle_cpu = marks["after"]
                if start > idle_end:
                    for role, cpu in before.items():
                        data[f"{role}_idle_cpu_per_s"] = (cpu - idle_cpu[role]) / (start - idle_end)
            marks["after"] = (end, after)
        data.update(state_sizes(scratch / f"out-{base.slug}"))
        return data

    return Tool(name, argv, base.verify, collect)


def fetcher_constants(threads: int, known: int) -> dict[str, int]:
    """fetcher's own chunksize rule, block size and blocks in flight per worker (asked of
    the installed fetcher, so the plan follows the code measured)."""
    proc = subprocess.run(
        [peers.fetcher_python(), "-c", FETCHER_CONSTANTS, str(threads), str(known)],
        capture_output=True, text=True, timeout=60, env=child_env(), check=True,
    )  # fmt: skip
    return {k: int(v) for k, v in json.loads(proc.stdout).items()}


@dataclass
class Results:
    """Every run's outcome by case key, and what describes the run."""

    plan: Plan
    header: list[str]
    configs: list[Config]
    outcomes: dict[str, list[Outcome]]
    netns_note: str
    constants: dict[str, int]
    list_bytes_per_line: float
    mean_body_bytes: float
    end: list[str] = field(default_factory=list)

    @property
    def all_ok(self) -> bool:
        """Every run passed its check."""
        return all(o.ok for runs in self.outcomes.values() for o in runs)


def list_key(cfg: Config) -> str:
    """The case key of a config on the full list."""
    return f"{cfg.key} | list"


def small_key(cfg: Config) -> str:
    """The case key of a config on the short list (its start-up)."""
    return f"{cfg.key} | start-up"


def loopback_configs(
    stack: ExitStack, plan: Plan, work: Path, srv: Nginx, *, big: Batch, small: Batch
) -> list[Config]:
    """local:1 and local:2 (started by fetcher), then a scheduler with 1 and one with 2
    workers on 127.0.0.1 (started here, kept up for the whole run)."""
    configs = []
    for n in (1, 2):
        tool = cluster_tool(f"local:{n}", f"local:{n}", n, plan.threads, None)
        configs.append(Config(f"local:{n}", "local", n, tool, srv, big, small))
    name = DEFAULT_PER_HOST_KEY
    tool = cluster_tool(name, "local:2", 2, plan.threads, None, per_host=False)
    configs.append(Config(name, "local", 2, tool, srv, big, None))
    for n in (1, 2):
        lo = Place("127.0.0.1")
        dask = stack.enter_context(DaskCluster(f"tcp{n}", work, lo, [lo] * n))
        name = f"tcp, {n} worker{'s' if n > 1 else ''}"
        tool = cluster_tool(name, dask.address, n, plan.threads, dask)
        configs.append(Config(name, "tcp", n, tool, srv, big, small))
    return configs


def netns_config(
    stack: ExitStack, plan: Plan, work: Path, www: Path, index: dict[str, str]
) -> tuple[Config, str]:
    """The namespaces, an nginx on the bridge's root address, the scheduler and two
    workers in their namespaces; the config and a line saying what the hop costs."""
    net = stack.enter_context(ClusterNet())
    srv = stack.enter_context(
        Nginx(www, host=net.root_ip, delay_ms=plan.delay_ms, access_log=work / "netns.log")
    )
    places = [net.place(k) for k in range(len(NAMESPACES))]
    dask = stack.enter_context(DaskCluster("netns2", work, places[0], places[1:]))
    items = peers.corpus_items(srv.base, www, index)
    big = peers.make_batch("netns-list", items[: plan.items], work)
    small = peers.make_batch("netns-short", items[: plan.small], work)
    port = int(dask.address.rsplit(":", 1)[1])
    note = (
        f"namespaces {', '.join(NAMESPACES)} (scheduler, worker 1, worker 2) at "
        f"{NET}.2-{NET}.4, each a veth pair to bridge {BRIDGE} ({net.root_ip}/{PREFIX} in "
        f"the root namespace, where nginx serves them); client in the root namespace. "
        f"TCP connect client -> scheduler {dask.address}: "
        f"{connect_ms(places[0].host, port):.3f} ms; one GET from {NAMESPACES[1]} to nginx: "
        f"{timed_get(items[0].url, items[0], NAMESPACES[1])}"
    )
    tool = cluster_tool("netns, 2 workers", dask.address, 2, plan.threads, dask)
    return Config("netns, 2 workers", "netns", 2, tool, srv, big, small), note


def measure(plan: Plan, work: Path) -> Results:
    """Build the corpus, start the servers and clusters, warm every cluster up, run the
    interleaved rounds."""
    header = peers.context_lines(work.parent)
    py = [peers.fetcher_python(), "-c"]
    header.append(
        "distributed "
        + peers.tool_version([*py, "import distributed; print(distributed.__version__)"])
    )
    www = work / "www"
    index = corpus.build_corpus(www, plan.items, index_path=work / "index.json")
    with ExitStack() as stack:
        srv = stack.enter_context(
            Nginx(www, delay_ms=plan.delay_ms, access_log=work / "loopback.log")
        )
        items = peers.corpus_items(srv.base, www, index)
        big = peers.make_batch("list", items, work)
        small = peers.make_batch("short", items[: plan.small], work)
        header.append(f"delay check, one curl GET on loopback: {timed_get(items[0].url, items[0])}")
        configs = loopback_configs(stack, plan, work, srv, big=big, small=small)
        netns_note = "not run (--no-netns)"
        if plan.netns:
            ns_stack = stack.enter_context(ExitStack())
            try:
                config, netns_note = netns_config(ns_stack, plan, work, www, index)
                configs.append(config)
            except (NetnsError, NginxError, HarnessError, subprocess.SubprocessError) as exc:
                ns_stack.close()  # removes whatever was made
                netns_note = f"skipped: {exc}"
            print(f"netns: {netns_note}", flush=True)
        warm = [Case(c.key, c.tool, small, None, srv) for c in configs if c.kind != "netns"]
        warm += [Case(c.key, c.tool, c.small, None, c.server) for c in configs
                 if c.kind == "netns" and c.small is not None]  # fmt: skip
        print(f"warm-up (not measured): {len(warm)} short runs", flush=True)
        peers.run_cases(warm, work, 1, WARM_TIMEOUT_S)
        cases = [Case(list_key(c), c.tool, c.big, None, c.server) for c in configs]
        cases += [Case(small_key(c), c.tool, c.small, None, c.server)
                  for c in configs if c.small is not None]  # fmt: skip
        print(f"measured: {len(cases)} cases x {plan.runs} runs", flush=True)
        outcomes = peers.run_cases(cases, work, plan.runs, plan.timeout_s)
    results = Results(
        plan=plan,
        header=header,
        configs=configs,
        outcomes=outcomes,
        netns_note=netns_note,
        constants=fetcher_constants(plan.threads, plan.items),
        list_bytes_per_line=big.list_path.stat().st_size / len(big.items),
        mean_body_bytes=statistics.mean(i.size for i in items),
        end=peers.end_lines(),
    )
    # The plan's -j: enough threads for a worker to reach its CPU ceiling at this delay.
    figures = plan_figures(results)
    needed = figures.ceiling * plan.delay_ms / 1000 if figures and figures.ceiling else 0
    plan_threads = max(plan.threads, math.ceil(needed))
    long_list = fetcher_constants(plan_threads, ONE_E8)
    results.constants.update({f"plan_{k}": v for k, v in long_list.items()})
    results.constants["plan_threads"] = plan_threads
    return results


# --- Figures ---------------------------------------------------------------------------

Metric = Callable[[Outcome], "float | None"]


def by_round(outcomes: Sequence[Outcome], metric: Metric) -> dict[int, float]:
    """The metric of every run that passed its check, by round."""
    return {o.run_no: v for o in outcomes if o.ok and (v := metric(o)) is not None}


def med(values: dict[int, float]) -> float | None:
    """Median over the rounds, or None."""
    return statistics.median(values.values()) if values else None


def rng(values: dict[int, float], spec: str = ",.0f") -> str:
    """min-max over the rounds, or n/a."""
    return peers.spread(list(values.values()), spec)


def wall_rate(o: Outcome) -> float | None:
    """Verified files per second of wall time around the whole client process."""
    return o.files / o.run.wall_s if o.run.wall_s else None


def steady_rate(o: Outcome) -> float | None:
    """Files over the server-side span of the run (start-up and shutdown left out)."""
    span = o.extra.get("span_s")
    return o.files / span if span else None


def extra(key: str) -> Metric:
    """A figure the tool collected (CPU seconds, sizes)."""
    return lambda o: o.extra.get(key)


def busy_cpu(role: str) -> Metric:
    """CPU seconds of the cluster's scheduler or workers during the run, less what they
    burn idle (heartbeats, timers) over as long: the part the run's items cost."""

    def metric(o: Outcome) -> float | None:
        cpu = o.extra.get(f"{role}_cpu_s")
        if cpu is None:
            return None
        return cpu - o.extra.get(f"{role}_idle_cpu_per_s", 0.0) * o.extra.get("run_s", 0.0)

    return metric


def tree_cpu(o: Outcome) -> float | None:
    """CPU seconds of the client's whole process tree (/usr/bin/time)."""
    return o.run.cpu_s


def workers_key(cfg: Config) -> str:
    """Where a config's workers' CPU is: the client's children for local:N, else /proc."""
    return "children_cpu_s" if cfg.kind == "local" else "workers_cpu_s"


@dataclass(frozen=True)
class Cpu:
    """A CPU figure per item in microseconds, gross (whole runs of the list) and net of
    start-up (list minus short list, per item of difference), median and range by round."""

    gross: dict[int, float]
    net: dict[int, float]
    startup_s: dict[int, float]


def cpu_per_item(r: Results, cfg: Config, metric: Metric) -> Cpu:
    """Gross and net-of-start-up CPU per item of one process group of a config."""
    big = by_round(r.outcomes[list_key(cfg)], metric)
    small = by_round(r.outcomes.get(small_key(cfg), []), metric)
    n_big, n_small = len(cfg.big.items), len(cfg.small.items) if cfg.small else 0
    gross = {k: v / n_big * 1e6 for k, v in big.items()}
    net = {k: (v - small[k]) / (n_big - n_small) * 1e6 for k, v in big.items() if k in small}
    return Cpu(gross, net, small)


def pooled(r: Results, metric: Metric, kinds: Sequence[str] = ("tcp", "netns")) -> dict[int, float]:
    """Net-of-start-up CPU per item over every round of every 2-process config of these
    kinds (the client's and a worker's work per item do not depend on where the workers
    are): more samples against the start-up's noise."""
    values = [
        v
        for cfg in r.configs
        if cfg.kind in kinds and cfg.small is not None
        for v in cpu_per_item(r, cfg, metric).net.values()
    ]
    return dict(enumerate(values))


def config(r: Results, key: str) -> Config | None:
    """The config with this key, if it ran."""
    return next((c for c in r.configs if c.key == key), None)


def paired(r: Results, a: Config, b: Config, metric: Metric) -> dict[int, float]:
    """a / b of a metric, round by round (both ran in the same minutes)."""
    va, vb = by_round(r.outcomes[list_key(a)], metric), by_round(r.outcomes[list_key(b)], metric)
    return {k: va[k] / vb[k] for k in va if vb.get(k)}


# --- Report ----------------------------------------------------------------------------


def throughput_section(r: Results) -> list[str]:
    """files/s per config, against the bound W x J / d."""
    p = r.plan
    out = [
        f"## Throughput: {p.items:,} files, -j {p.threads} per worker, {p.delay_ms} ms per request",
        "",
        "| cluster | workers x threads | runs | files/s (wall) | (min-max) | steady files/s "
        "| (min-max) | bound W x J / d | steady / bound | conns opened | client peak RSS MiB |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cfg in r.configs:
        runs = r.outcomes[list_key(cfg)]
        summary = peers.summarise(runs)
        wall, steady = by_round(runs, wall_rate), by_round(runs, steady_rate)
        bound = cfg.workers * p.threads / (p.delay_ms / 1000)
        rss = by_round(
            runs, lambda o: None if o.run.maxrss_kib is None else o.run.maxrss_kib / 1024
        )
        cells = [
            cfg.key, f"{cfg.workers} x {p.threads}", summary.status, fmt(med(wall)), rng(wall),
            fmt(med(steady)), rng(steady), fmt(bound), fmt(ratio(med(steady), bound), ".2f"),
            fmt(summary.connections), fmt(med(rss)),
        ]  # fmt: skip
        out.append("| " + " | ".join(cells) + " |")
    out += [
        "",
        "`files/s (wall)`: verified files over the wall time of the whole `fetcher fetch` "
        "process (interpreter start, imports, connecting to or starting the cluster, the "
        "run, shutting down). `steady`: files over the span from the first request's start "
        "to the last one's end in nginx's log. `bound`: W workers x J threads, each busy one "
        "delay d per file. `conns opened`: connections nginx accepted during the run.",
        "",
        "### Two workers against one",
        "",
        f"| pair | wall: ratio of medians | (per round) | steady: ratio of medians "
        f"| (per round) | target >= {TARGET} (steady) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    pairs = [
        ("local:2 / local:1", "local:2", "local:1", True),
        ("tcp, 2 workers / tcp, 1 worker", "tcp, 2 workers", "tcp, 1 worker", True),
        ("netns, 2 workers / tcp, 1 worker", "netns, 2 workers", "tcp, 1 worker", True),
        ("netns, 2 workers / tcp, 2 workers (the hop)", "netns, 2 workers", "tcp, 2 workers",
         False),
        (f"{DEFAULT_PER_HOST_KEY} / local:1", DEFAULT_PER_HOST_KEY, "local:1", False),
    ]  # fmt: skip
    for label, ka, kb, target in pairs:
        a, b = config(r, ka), config(r, kb)
        if a is None or b is None:
            continue
        wall, steady = paired(r, a, b, wall_rate), paired(r, a, b, steady_rate)
        ra = r.outcomes[list_key(a)]
        rb = r.outcomes[list_key(b)]
        wall_med = ratio(med(by_round(ra, wall_rate)), med(by_round(rb, wall_rate)))
        steady_med = ratio(med(by_round(ra, steady_rate)), med(by_round(rb, steady_rate)))
        verdict = ("PASS" if steady_med >= TARGET else "FAIL") if target and steady_med else "-"
        out.append(
            f"| {label} | {fmt(wall_med, '.2f')} | {rng(wall, '.2f')} | "
            f"{fmt(steady_med, '.2f')} | {rng(steady, '.2f')} | {verdict} |"
        )
    out += [
        "",
        "`per round`: the ratio of the two runs of the same round (they ran minutes apart "
        "at most), min-max. The wall ratio carries each run's fixed start-up (for `local:N` "
        "that includes starting the LocalCluster and its worker processes), which is the "
        "same for one worker and two, so it pulls the wall ratio below the steady one; a "
        "long job pays it once. `--per-host` is the run's cap per host, shared among the "
        "workers present at the start, so the runs above pass `--per-host W x J`; the "
        f"`{DEFAULT_PER_HOST_KEY}` row is `local:2 -j {p.threads}` without it.",
    ]
    return out


def idle_share(r: Results, cfg: Config, role: str) -> float | None:
    """Median idle CPU of a cluster's scheduler or workers, in % of one core."""
    rates = by_round(r.outcomes[list_key(cfg)], extra(f"{role}_idle_cpu_per_s"))
    rate = med(rates)
    return None if rate is None else rate * 100


def cpu_section(r: Results) -> list[str]:
    """CPU per item: the client, the workers, the scheduler."""
    p = r.plan
    out = [
        "## CPU per item",
        "",
        "| cluster | client us/item | client net | (min-max) | client start-up CPU s "
        "| workers us/item | workers net | (min-max) | scheduler us/item | scheduler net "
        "| idle: scheduler; workers (% of a core) | client tree (time -v) us/item |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cfg in r.configs:
        if cfg.small is None:
            continue
        local = cfg.kind == "local"
        client = cpu_per_item(r, cfg, extra("parent_cpu_s"))
        gross_workers = cpu_per_item(r, cfg, extra(workers_key(cfg))).gross
        workers = cpu_per_item(r, cfg, extra("children_cpu_s") if local else busy_cpu("workers"))
        sched_gross = cpu_per_item(r, cfg, extra("scheduler_cpu_s")).gross
        sched = cpu_per_item(r, cfg, busy_cpu("scheduler")).net
        tree = cpu_per_item(r, cfg, tree_cpu)
        idle = (
            "n/a"
            if local
            else f"{fmt(idle_share(r, cfg, 'scheduler'), '.1f')}; "
            f"{fmt(idle_share(r, cfg, 'workers'), '.1f')}"
        )
        cells = [
            cfg.key, fmt(med(client.gross)), fmt(med(client.net)), rng(client.net),
            fmt(med(client.startup_s), ".2f"), fmt(med(gross_workers)), fmt(med(workers.net)),
            rng(workers.net), "in client" if local else fmt(med(sched_gross)),
            "in client" if local else fmt(med(sched)), idle, fmt(med(tree.gross)),
        ]  # fmt: skip
        out.append("| " + " | ".join(cells) + " |")
    client_all = pooled(r, extra("parent_cpu_s"))
    workers_all = pooled(r, busy_cpu("workers"))
    out += [
        "",
        f"Microseconds per item of the {p.items:,}-item list, medians over the rounds. "
        "`client`: the `fetcher fetch` process alone (`getrusage(RUSAGE_SELF)` through "
        "cli_rusage.py, all its threads: interpreter start-up and imports, reading the list, "
        "cutting blocks, the Dask client, committing outcomes, names, the state store, the "
        "manifest). For `local:N` that process also runs the LocalCluster's scheduler, and "
        "the workers are its children (`workers`: RUSAGE_CHILDREN, their start-up "
        "included). For `tcp` and `netns` the scheduler and the workers are separate, warm "
        "processes (a run before the rounds), read from /proc/PID/stat just before and "
        "after each run; the client row is the client alone. `net`: (CPU on the list - CPU "
        f"on the {p.small}-item short list) / ({p.items:,} - {p.small}) items, round by "
        "round: what each further item costs, which is what a 100-million-item run pays; "
        "for the scheduler and workers also less their idle CPU over the run's length "
        "(`idle`: measured between their runs, while other cases ran). `client tree`: "
        "/usr/bin/time's user + sys of the whole client process tree.",
        "",
        f"Pooled over every `tcp` and `netns` round (where the client is alone): client net "
        f"{fmt(med(client_all))} us/item ({rng(client_all)}), workers net "
        f"{fmt(med(workers_all))} us/item ({rng(workers_all)}).",
    ]
    return out


def netns_section(r: Results) -> list[str]:
    """What the namespaces were, or why they were skipped."""
    out = ["## Across network namespaces", "", r.netns_note, ""]
    ns, lo = config(r, "netns, 2 workers"), config(r, "tcp, 2 workers")
    if ns is None or lo is None:
        return out
    a = by_round(r.outcomes[list_key(ns)], steady_rate)
    b = by_round(r.outcomes[list_key(lo)], steady_rate)
    out += [
        f"Two workers behind the bridge: {fmt(med(a))} steady files/s ({rng(a)}) against "
        f"{fmt(med(b))} ({rng(b)}) for the same two workers on loopback. Every Dask message "
        "(client <-> scheduler, scheduler <-> workers, results) and every HTTP request "
        "crosses a veth pair and the bridge; no delay is added on the link itself (this "
        "kernel has no netem), the 100 ms per request is the server's.",
    ]
    return out


ASSUMED_URL_BYTES = 100  # a real URL line, for scaling the list and manifest sizes


@dataclass(frozen=True)
class PlanFigures:
    """What the 100-million-URL plan is computed from (microseconds per item, files/s)."""

    client_us: float | None
    workers_us: float | None
    sched_us: float | None
    per_worker: float | None
    ns_per_worker: float | None
    rss_mib: float | None
    manifest_b: float | None
    state_b: float | None

    @property
    def ceiling(self) -> float | None:
        """Items/s one worker process can do on one core when the network is no limit."""
        return 1e6 / self.workers_us if self.workers_us and self.workers_us > 0 else None

    @property
    def client_max(self) -> float | None:
        """Items/s one client can commit (1 / its CPU per item)."""
        return 1e6 / self.client_us if self.client_us and self.client_us > 0 else None

    @property
    def sched_max(self) -> float | None:
        """Items/s the scheduler could hand out at its CPU per item."""
        return 1e6 / self.sched_us if self.sched_us and self.sched_us > 0 else None

    @property
    def cluster_max(self) -> float | None:
        """The lower of the client's and the scheduler's ceilings."""
        caps = [x for x in (self.client_max, self.sched_max) if x]
        return min(caps) if caps else None


def plan_figures(r: Results) -> PlanFigures | None:
    """The figures, from the tcp and netns rounds (client, scheduler and workers measured
    apart and warm); None when they did not run."""
    base = config(r, "tcp, 2 workers")
    if base is None or not by_round(r.outcomes[list_key(base)], steady_rate):
        return None
    runs = r.outcomes[list_key(base)]
    ns = config(r, "netns, 2 workers")
    ns_steady = med(by_round(r.outcomes[list_key(ns)], steady_rate)) if ns else None
    steady = med(by_round(runs, steady_rate))
    return PlanFigures(
        client_us=med(pooled(r, extra("parent_cpu_s"))),
        workers_us=med(pooled(r, busy_cpu("workers"))),
        sched_us=med(pooled(r, busy_cpu("scheduler"))),
        per_worker=steady / base.workers if steady else None,
        ns_per_worker=ns_steady / 2 if ns_steady else None,
        rss_mib=med(by_round(runs, lambda o: (o.run.maxrss_kib or 0) / 1024 or None)),
        manifest_b=med(by_round(runs, extra("manifest_b_per_row"))),
        state_b=med(by_round(runs, extra("state_b_per_item"))),
    )


def gb(per_item: float | None) -> str:
    """Bytes per item scaled to 100M items, in GB."""
    return "n/a" if per_item is None else f"{per_item * ONE_E8 / 1e9:,.1f} GB"


def hours(rate: float | None) -> str:
    """Hours for 100M items at this rate."""
    return "n/a" if not rate else f"{ONE_E8 / rate / 3600:,.1f} h"


def plan_section(r: Results) -> list[str]:
    """The 100-million-URL plan: a table of figures, then the plan in words."""
    p, c, f = r.plan, r.constants, plan_figures(r)
    if f is None:
        return ["## A 100-million-URL job", "", "not computed: the tcp runs did not pass"]
    block, blocks = c["plan_block"], c["plan_blocks_per_worker"]
    d_s = p.delay_ms / 1000
    threads_needed = f.ceiling * d_s if f.ceiling else None
    workers_for_max = ratio(f.cluster_max, f.ceiling)
    ten_measured = min(10 * f.per_worker, f.cluster_max) if f.per_worker and f.cluster_max else None
    ten_cpu = min(10 * f.ceiling, f.cluster_max) if f.ceiling and f.cluster_max else None
    plan_j = c["plan_threads"]
    per_block = f.sched_us * c["block"] / 1000 if f.sched_us is not None else None
    plan_sched_us = per_block * 1000 / block if per_block is not None else None
    total_us = sum(x for x in (f.client_us, f.workers_us, plan_sched_us) if x is not None)
    url_here = r.list_bytes_per_line - 1
    manifest_real = f.manifest_b + ASSUMED_URL_BYTES - url_here if f.manifest_b else None
    rows = [
        ("throughput per worker at J = "
         f"{p.threads}, d = {p.delay_ms} ms: loopback / across the bridge",
         f"{fmt(f.per_worker)} / {fmt(f.ns_per_worker)} files/s",
         f"steady rate of 2 workers / 2; bound J / d = {fmt(p.threads / d_s)}"),
        ("a worker's CPU per item; one worker process's ceiling on one core",
         f"{fmt(f.workers_us)} us; {fmt(f.ceiling)} items/s",
         "net of start-up and idle, pooled; ceiling = 1 / CPU per item"),
        (f"threads per worker to reach that ceiling at RTT {p.delay_ms} ms",
         f"{fmt(threads_needed, ',.1f')}: -j {plan_j}",
         "ceiling x RTT, rounded up (J / RTT must exceed the ceiling)"),
        ("client CPU per item", f"{fmt(f.client_us)} us", "net of start-up, pooled"),
        ("client's maximum items/s (1 / client CPU per item)", f"{fmt(f.client_max)} items/s",
         f"= {fmt(ratio(f.client_max, f.ceiling), ',.1f')} worker processes at their ceiling"),
        ("scheduler CPU per item; its maximum", f"{fmt(f.sched_us)} us; "
         f"{fmt(f.sched_max)} items/s",
         f"at {c['block']:,}-item blocks, net of start-up and idle: "
         f"{fmt(per_block, ',.1f')} ms per block (a task), so {fmt(plan_sched_us, ',.1f')} "
         f"us per item at the plan's {block:,}-item blocks"),
        (f"chunksize (auto) and block size for a long list at the plan's J = {plan_j}",
         f"{c['plan_chunksize']}; {block:,} items",
         f"block_size = max(64, chunksize x J x 8); {c['block']:,} at J = {p.threads}"),
        ("blocks in flight", f"{blocks} per worker",
         f"{blocks * block:,} items per worker, {10 * blocks * block:,} for 10 workers"),
        ("core-hours for 100M items", f"{total_us * ONE_E8 / 3.6e9:,.1f}",
         f"(workers {fmt(f.workers_us)} + scheduler {fmt(plan_sched_us, ',.1f')} + client "
         f"{fmt(f.client_us)}) us x 1e8 / 3.6e9"),
        (f"wall time, 10 workers as measured (J = {p.threads}, d = {p.delay_ms} ms)",
         hours(ten_measured),
         f"{fmt(ten_measured)} items/s"),
        ("wall time, 10 workers at their CPU ceiling", hours(ten_cpu),
         f"{fmt(ten_cpu)} items/s (-j {plan_j} each)"),
        ("wall time at the cluster's maximum (one client, one scheduler)",
         hours(f.cluster_max), f"{fmt(f.cluster_max)} items/s, about "
         f"{fmt(workers_for_max, ',.0f')} worker processes at their ceiling"),
        ("list storage", gb(r.list_bytes_per_line),
         f"{r.list_bytes_per_line:.1f} B per URL line here; {gb(ASSUMED_URL_BYTES + 1)} at "
         f"{ASSUMED_URL_BYTES} B URLs (assumed); read lazily"),
        ("manifest", gb(f.manifest_b), f"{fmt(f.manifest_b)} B per row here (JSON Lines, "
         f"the URL included); {gb(manifest_real)} with {ASSUMED_URL_BYTES} B URLs"),
        ("state store (.fetcher/, SQLite)", gb(f.state_b), f"{fmt(f.state_b)} B per item here"),
        ("outputs", gb(r.mean_body_bytes), f"{r.mean_body_bytes / 1024:,.1f} KiB mean body of "
         "this corpus: scale by the real mean"),
        ("client peak RSS", f"{fmt(f.rss_mib)} MiB", f"at {p.items:,} items"),
    ]  # fmt: skip
    out = [
        "## A 100-million-URL job: the plan, from these numbers",
        "",
        "| figure | value | how |",
        "|---|---:|---|",
        *[f"| {a} | {b} | {h} |" for a, b, h in rows],
        "",
        "Assumed, not measured: the workers' CPU per item of this machine (2 shared cores, "
        "load average in the header) holds on the workers' machines; small bodies (1-64 "
        "KiB); every item from a server that answers in d; no TLS (HTTPS costs the workers "
        "more CPU per new connection, not the client); URLs of "
        f"{ASSUMED_URL_BYTES} B where sizes are scaled. The scheduler's and the client's "
        "figures are per item at this block size: the scheduler's cost is per block (a "
        "task), so larger blocks (larger -j) lower it.",
        "",
        "The plan: keep the list on the client's disk (it is read lazily); start one "
        "`dask scheduler` and one `dask worker --nthreads 1` per core on the workers' "
        f"machines, all seeing the output dir at the same path; run `fetcher fetch LIST -o "
        f"/shared/out --cluster tcp://SCHEDULER:8786 -j J` with J >= {plan_j} "
        f"at {p.delay_ms} ms (ceiling x RTT; more where RTTs are longer). `--per-host` is "
        "the whole run's cap per host, divided among the workers present at the start: set "
        "it for the run, not per worker. One client commits at most "
        f"{fmt(f.client_max)} items/s, so about {fmt(workers_for_max, ',.0f')} worker "
        "processes at their ceiling saturate one client and one scheduler; past that, "
        "split the list with `--shard K/N` into N runs, each its own client (and "
        "scheduler), and join the manifests with `fetcher merge`. Failures: a worker that "
        "dies has its block run again elsewhere (nothing committed is fetched twice); a "
        "client that dies or is stopped leaves an in-order manifest prefix and the state "
        "store, and the same command finishes the rest; items that failed are re-run with "
        "`fetcher retry MANIFEST`. Output storage is the bodies themselves plus at most "
        "the blocks in flight as temp files.",
    ]
    return out


def render(r: Results) -> str:
    """The markdown report."""
    p = r.plan
    out = ["# fetcher on a Dask cluster: one worker against two, the client's CPU", ""]
    out += [f"- {h}" for h in r.header]
    out += [f"- {line}" for line in r.end]
    out += [
        f"- plan: {p.items:,} files (1-64 KiB) per run, short list {p.small} files, -j "
        f"{p.threads} per worker, {p.delay_ms} ms per request (nginx echo module), "
        f"{p.runs} interleaved rounds; chunksize auto = {r.constants['chunksize']}, block "
        f"{r.constants['block']:,} items, {r.constants['blocks_per_worker']} blocks per "
        "worker in flight",
        "",
        *throughput_section(r),
        "",
        *cpu_section(r),
        "",
        *netns_section(r),
        "",
        *plan_section(r),
    ]
    problems = [
        f"{k} run {o.run_no}: {msg}"
        for k, runs in r.outcomes.items()
        for o in runs
        for msg in o.problems.samples[:2]
    ]
    if problems:
        out += ["", "## Problems (runs that failed their check are not in the medians)", ""]
        out += [f"- {m}" for m in problems]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Set up, measure, write and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, help="rounds (default 3; 1 with --quick)")
    parser.add_argument("--items", type=int, help="files per run (default 4000; 480 quick)")
    parser.add_argument("--small", type=int, help="files of the start-up list (default 32)")
    parser.add_argument("--threads", type=int, help="-j per worker (default 16)")
    parser.add_argument("--delay-ms", type=int, help="server delay per request (default 100)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--no-netns", action="store_true", help="skip the namespaces")
    parser.add_argument(
        "--dask-profiler", action="store_true", help="keep Dask's worker profiler on (default off)"
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    given = {
        k: v
        for k, v in (("runs", args.runs), ("items", args.items), ("small", args.small),
                     ("threads", args.threads), ("delay_ms", args.delay_ms))
        if v is not None
    }  # fmt: skip
    if any(v < 1 for v in given.values()):
        parser.error("--runs, --items, --small, --threads and --delay-ms must be positive")
    plan = replace(
        plan, **given, netns=plan.netns and not args.no_netns, profiler=args.dask_profiler
    )
    if plan.small >= plan.items:
        parser.error("--small must be below --items")
    peers.interrupt_on_sigterm()
    if not plan.profiler:  # every Dask process started from here inherits it
        os.environ[PROFILER_ENV] = "False"
    started = time.monotonic()
    try:
        peers.install_peers()
        check = [peers.fetcher_python(), "-c", "import distributed"]
        if subprocess.run(check, capture_output=True, timeout=60, check=False).returncode:
            raise HarnessError(
                "fetcher's interpreter has no distributed: pip install 'fetcher[dask]'"
            )
        need = plan.items * 70 * 1024 * 2 + 256 * MIB
        with tempfile.TemporaryDirectory(
            prefix="fetcher-cluster-", dir=pick_temp_root(need)
        ) as tmp:
            results = measure(plan, Path(tmp))
    except (HarnessError, NginxError, subprocess.SubprocessError, OSError) as exc:
        print(f"cluster: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cluster: interrupted; clusters, servers and namespaces removed", file=sys.stderr)
        return 130
    results.header.append(f"{time.monotonic() - started:.0f} s in all")
    if not plan.profiler:
        results.header.append(PROFILER_NOTE.format(env=PROFILER_ENV))
    report = render(results)
    peers.write_report("cluster.md", report, args.quick)
    return 0 if results.all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
