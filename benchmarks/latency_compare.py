"""fetcher against curl --parallel, aria2c and parfive when the network, not the CPU, limits.

Why: on loopback every request is answered in microseconds, so every tool is CPU-bound and
the numbers say nothing about a real network, where a client with C connections and a round
trip of d can fetch at most C / d small files per second. This adds the round trip in the
server: nginx's echo module (`echo_sleep`, Debian's libnginx-mod-http-echo) answers every
request d ms late, on a timer that holds neither the worker nor the connection's bytes, then
serves the file as usual (nginx.py `delay_ms`). Measured here, in one run:

- the sweep: curl --parallel and fetcher at 16 connections (d = 0, 5, 10, 20, 50 ms) and 64
  (d = 0, 20, 50, 100, 200 ms): files/s against the bound C / d. curl following the bound
  proves the method adds latency without capping throughput; where fetcher leaves the
  bound, the CPU (its cores-busy column) is the limit: the crossover latency;
- peers at equal connections on >= 5,000 files, where the network limits curl: 16
  connections at 50 ms and 64 at 100 ms; fetcher, curl --parallel, aria2c, parfive;
- many hosts: 20 loopback addresses (127.0.0.1 ... 127.0.0.20, one nginx listening on
  each, no /etc/hosts edits), the list spread over them round robin, fetcher with
  `--per-host 4` against curl --parallel, at 0 and 100 ms;
- for contrast, the old method (latency.py: a namespace behind a userspace TUN relay,
  needs root) with curl at 16 and 64 connections: the relay's own ceiling.

fetcher runs as `fetcher fetch LIST -o OUT -j C --per-host C --no-progress` (`--per-host C`
so that C threads can hold C connections to the one server). Every output is checked by
sha256 (fetcher's manifest too); each run also gives the client's CPU (user + sys of its
process tree), the connections it opened (nginx's stub_status) and its steady rate (files
over the span from the first request's start to the last one's end, in nginx's log), which
leaves process start-up out. Runs are interleaved round robin over every point and tool
(one nginx per delay, all running), medians of `--runs`.

    python benchmarks/latency_compare.py [--runs 3] [--quick] [--no-relay]

Writes benchmarks/results/latency.md (results/quick/ with --quick) and prints it. Exit 0
when every run passed its check, 1 when some failed, 2 when the harness could not run.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import corpus
import peers
from latency import LatencyError, LatencyLink
from nginx import Nginx, NginxError
from peers import MIB, Batch, Case, Item, Summary, Tool, fmt, ratio
from scale_check import HarnessError, pick_temp_root

RUN_TIMEOUT_S = 300.0
HOSTS = 20
PER_HOST = 4
MANY_CONNS = 64
TARGET = 0.9  # fetcher >= 0.9 x curl at equal connections where the network limits


@dataclass(frozen=True)
class Plan:
    """What one run measures (full, or --quick for a smoke test)."""

    runs: int
    sweep_files: int
    sweep: tuple[tuple[int, tuple[int, ...]], ...]  # (connections, delays ms), curl + fetcher
    peer_files: int
    peer_points: tuple[tuple[int, int], ...]  # (connections, delay ms)
    hosts_files: int
    hosts_delays: tuple[int, ...]
    relay_files: int
    relay_delay_ms: int
    relay_conns: tuple[int, ...]


FULL = Plan(
    runs=3, sweep_files=1500, sweep=((16, (0, 5, 10, 20, 50)), (64, (0, 20, 50, 100, 200))),
    peer_files=5000, peer_points=((16, 50), (64, 100)), hosts_files=5000, hosts_delays=(0, 100),
    relay_files=2000, relay_delay_ms=20, relay_conns=(16, 64),
)  # fmt: skip
QUICK = Plan(
    runs=1, sweep_files=300, sweep=((16, (0, 20)), (64, (0, 100))), peer_files=500,
    peer_points=((16, 50), (64, 100)), hosts_files=500, hosts_delays=(0,), relay_files=300,
    relay_delay_ms=20, relay_conns=(64,),
)  # fmt: skip


def fetcher_at(conns: int, name: str = "fetcher", *extra: str) -> Tool:
    """fetcher with `conns` threads that may all talk to one host."""
    c = str(conns)
    return peers.fetcher(name, "-j", c, "--per-host", c, *extra, "--no-progress")


def bound(conns: int, delay_ms: int) -> float | None:
    """The most small files per second `conns` connections can fetch at this round trip."""
    return conns / (delay_ms / 1000) if delay_ms else None


def point_key(tool: str, conns: int, delay_ms: int) -> str:
    """A case's key: tool, connections, delay."""
    return f"{tool} | {conns} | {delay_ms}"


def spread_items(items: Sequence[Item], bases: Sequence[str]) -> list[Item]:
    """The items with item i served from bases[i % len(bases)] (round robin over hosts)."""
    return [
        Item(f"{bases[i % len(bases)]}/{it.relpath}", it.relpath, it.sha256, it.size)
        for i, it in enumerate(items)
    ]


@dataclass
class Results:
    """Summaries by case key per section, and what describes the run."""

    plan: Plan
    header: list[str]
    sweep: dict[str, Summary]
    peer: dict[str, Summary]
    hosts: dict[str, Summary]
    relay: dict[str, Summary]
    relay_note: str
    all_ok: bool
    end: list[str] = field(default_factory=list)


def start_servers(
    stack: ExitStack, www: Path, work: Path, delays: set[int], hosts: Sequence[str] = ()
) -> dict[int, Nginx]:
    """One nginx per delay (all running at once, so runs can interleave), each with a
    timing log for the steady rate."""
    servers = {}
    for delay in sorted(delays):
        tag = f"{'hosts-' if hosts else ''}d{delay}"
        servers[delay] = stack.enter_context(
            Nginx(www, delay_ms=delay, extra_hosts=hosts, access_log=work / f"{tag}.log")
        )
    return servers


def check_delay(server: Nginx, item: Item) -> str:
    """One timed GET: the server really waits and still sends the right bytes."""
    out = subprocess.run(
        ["curl", "-sS", "--fail", "-o", "-", "-w", "%{stderr}%{time_starttransfer}", server.base
         + "/" + item.relpath],
        capture_output=True, timeout=30, check=True,
    )  # fmt: skip
    ok = hashlib.sha256(out.stdout).hexdigest() == item.sha256
    return f"{float(out.stderr) * 1000:.1f} ms to first byte, sha256 {'ok' if ok else 'WRONG'}"


def measure(plan: Plan, work: Path, relay: bool) -> Results:
    """Build the corpus, start the servers, run every section."""
    header = peers.context_lines(work.parent)
    www = work / "www"
    files = max(plan.sweep_files, plan.peer_files, plan.hosts_files, plan.relay_files)
    index = corpus.build_corpus(www, files, index_path=work / "index.json")
    hosts = [f"127.0.0.{k}" for k in range(2, HOSTS + 1)]
    with ExitStack() as stack:
        delays = {d for _, ds in plan.sweep for d in ds} | {d for _, d in plan.peer_points}
        servers = start_servers(stack, www, work, delays)
        many = start_servers(stack, www, work, set(plan.hosts_delays), hosts)
        probes = [
            f"{d} ms: {check_delay(srv, peers.corpus_items(srv.base, www, index)[0])}"
            for d, srv in servers.items()
        ]
        header.append("delay check (one curl GET per server): " + "; ".join(probes))

        batches: dict[str, Batch] = {}

        def batch(name: str, srv: Nginx, count: int) -> Batch:
            if name not in batches:
                items = peers.corpus_items(srv.base, www, index)[:count]
                batches[name] = peers.make_batch(name, items, work)
            return batches[name]

        sweep_cases = []
        for c, ds in plan.sweep:
            for d in ds:
                b = batch(f"sweep-d{d}", servers[d], plan.sweep_files)
                sweep_cases += [
                    Case(point_key(name, c, d), tool, b, None, servers[d])
                    for name, tool in (("curl", peers.curl_parallel(c)), ("fetcher", fetcher_at(c)))
                ]
        print(f"sweep: {len(sweep_cases)} cases x {plan.runs} runs", flush=True)
        sweep = peers.run_cases(sweep_cases, work, plan.runs, RUN_TIMEOUT_S)

        peer_cases = []
        for c, d in plan.peer_points:
            b = batch(f"peer-d{d}", servers[d], plan.peer_files)
            tools = [fetcher_at(c), peers.curl_parallel(c), peers.aria2c(c), peers.parfive(c)]
            peer_cases += [Case(point_key(t.name, c, d), t, b, None, servers[d]) for t in tools]
        print(f"peers: {len(peer_cases)} cases x {plan.runs} runs", flush=True)
        peer = peers.run_cases(peer_cases, work, plan.runs, RUN_TIMEOUT_S)

        host_cases = []
        for d in plan.hosts_delays:
            srv = many[d]
            items = spread_items(peers.corpus_items(srv.base, www, index)[: plan.hosts_files],
                                 srv.bases)  # fmt: skip
            b = peers.make_batch(f"hosts-d{d}", items, work)
            j, per = str(MANY_CONNS), str(PER_HOST)
            tools = [
                peers.fetcher(f"fetcher -j {j} --per-host {per}", "-j", j, "--per-host", per,
                              "--no-progress"),
                peers.curl_parallel(MANY_CONNS, f"curl --parallel-max {j}"),
            ]  # fmt: skip
            host_cases += [Case(point_key(t.name, MANY_CONNS, d), t, b, None, srv) for t in tools]
        print(f"many hosts: {len(host_cases)} cases x {plan.runs} runs", flush=True)
        many_hosts = peers.run_cases(host_cases, work, plan.runs, RUN_TIMEOUT_S)

    relay_out, relay_note = run_relay(plan, www, index, work) if relay else ({}, "not run")
    outcomes = [
        o for r in (sweep, peer, many_hosts, relay_out) for runs in r.values() for o in runs
    ]

    def summaries(out: dict[str, list[peers.Outcome]]) -> dict[str, Summary]:
        return {k: peers.summarise(v) for k, v in out.items()}

    return Results(
        plan, header, summaries(sweep), summaries(peer), summaries(many_hosts),
        summaries(relay_out), relay_note, all(o.ok for o in outcomes), peers.end_lines(),
    )  # fmt: skip


def run_relay(
    plan: Plan, www: Path, index: dict[str, str], work: Path
) -> tuple[dict[str, list[peers.Outcome]], str]:
    """curl through the old userspace relay (latency.py), to show its ceiling."""
    try:
        with (
            LatencyLink(plan.relay_delay_ms) as link,
            Nginx(www, host=link.server_ip, netns=link.netns, access_log=work / "relay.log") as srv,
        ):
            rtt = link.measure_rtt_ms(srv.port)
            b = peers.make_batch(
                "relay", peers.corpus_items(srv.base, www, index)[: plan.relay_files], work
            )
            cases = [
                Case(point_key("curl via relay", c, plan.relay_delay_ms), peers.curl_parallel(c),
                     b, None, srv)
                for c in plan.relay_conns
            ]  # fmt: skip
            print(f"relay: {len(cases)} cases x {plan.runs} runs", flush=True)
            out = peers.run_cases(cases, work, plan.runs, RUN_TIMEOUT_S)
            return out, f"{link.method}; measured TCP connect (1 RTT) {rtt:.1f} ms"
    except (LatencyError, NginxError) as exc:
        return {}, f"skipped: {exc}"


def parse_key(k: str) -> tuple[str, int, int]:
    """(tool, connections, delay) from a case key."""
    tool, conns, delay = (part.strip() for part in k.split("|"))
    return tool, int(conns), int(delay)


def steady(s: Summary, files: int) -> float | None:
    """Files per second over the server-side span of the run (start-up left out)."""
    span = s.extra.get("span_s")
    return files / span if span else None


def cores(s: Summary) -> float | None:
    """Client CPU seconds per wall second: how many cores it kept busy."""
    if s.cpu_us is None or s.files_per_s is None:
        return None
    return s.cpu_us * s.files_per_s / 1e6


ROW_HEAD = (
    "| tool | conns | delay ms | runs | files/s | (min-max) | bound C/d | files/s / bound "
    "| steady files/s | steady / bound | CPU us/file | cores busy | conns opened |"
)
ROW_RULE = "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"


def row(k: str, s: Summary, files: int) -> str:
    """One table row for a case."""
    tool, c, d = parse_key(k)
    b, st = bound(c, d), steady(s, files)
    cells = [
        tool, str(c), str(d), s.status, fmt(s.files_per_s), s.files_range, fmt(b),
        fmt(ratio(s.files_per_s, b), ".2f"), fmt(st), fmt(ratio(st, b), ".2f"), fmt(s.cpu_us),
        fmt(cores(s), ".2f"), fmt(s.connections),
    ]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def sweep_section(r: Results) -> list[str]:
    """curl and fetcher against the bound, and fetcher's crossover latency."""
    plan = r.plan
    out = [
        f"## Sweep: files/s against connections / latency ({plan.sweep_files:,} files)",
        "",
        ROW_HEAD,
        ROW_RULE,
    ]
    ordered = sorted(r.sweep.items(), key=lambda kv: (parse_key(kv[0])[1], parse_key(kv[0])[2]))
    out += [row(k, s, plan.sweep_files) for k, s in ordered]
    out += [
        "",
        "`bound C/d`: C connections, each busy one round trip d per file (HTTP/1.1, no "
        "pipelining): the most a client can reach; the transfer itself (<= 64 KiB over "
        "loopback) adds well under a millisecond. `steady`: files over the span from the "
        "first request's start to the last one's end in nginx's log, i.e. without process "
        "start-up and shutdown. `cores busy`: client CPU seconds per wall second (2 = both "
        "cores of this machine). `conns opened`: connections nginx accepted during the run.",
        "",
        "### fetcher: where it stops following the bound",
        "",
        "| connections | fetcher steady files/s at 0 ms (its CPU ceiling) | cores busy at 0 ms "
        "| crossover: C / ceiling | fetcher / curl (files/s) per delay "
        "| smallest delay with steady >= 0.8 x bound |",
        "|---:|---:|---:|---:|---|---:|",
    ]
    for c, delays in plan.sweep:
        zero = r.sweep.get(point_key("fetcher", c, 0))
        ceiling = steady(zero, plan.sweep_files) if zero else None
        cross = c / ceiling * 1000 if ceiling else None
        per_delay, follows = [], None
        for d in delays:
            f, cu = r.sweep.get(point_key("fetcher", c, d)), r.sweep.get(point_key("curl", c, d))
            if f is None or cu is None:
                continue
            per_delay.append(f"{d} ms: {fmt(ratio(f.files_per_s, cu.files_per_s), '.2f')}")
            eff = ratio(steady(f, plan.sweep_files), bound(c, d))
            if follows is None and eff is not None and eff >= 0.8:
                follows = d
        out.append(
            f"| {c} | {fmt(ceiling)} | {fmt(cores(zero) if zero else None, '.2f')} | "
            f"{fmt(cross, '.0f')} ms | {'; '.join(per_delay)} | "
            f"{'none swept' if follows is None else f'{follows} ms'} |"
        )
    out += [
        "",
        "A client with C connections reaches at most min(C / d, what its CPU allows). fetcher's "
        "CPU ceiling is its steady rate at 0 ms; the crossover C / ceiling is the latency "
        "below which the CPU, not the network, limits it at C connections: there it keeps "
        "its interpreter busy (cores busy near 1 for one process) and files/s stays flat as "
        "the delay shrinks. curl needs a tenth of the CPU per file, so it follows C / d down "
        "to much smaller delays, until it meets this machine's own loopback ceiling (its 0 ms "
        "row: one nginx worker, 2 shared cores). Where C / d is well below that ceiling, "
        "curl's steady / bound near 1 is the proof that the echo-module delay adds latency "
        "without capping throughput.",
    ]
    return out


def peer_section(r: Results) -> tuple[list[str], list[tuple[str, float | None]]]:
    """Peers at equal connections where the network limits curl, and the target."""
    plan = r.plan
    out = [
        f"## Peers at equal connections, {plan.peer_files:,} files, network-bound for curl",
        "",
        ROW_HEAD.replace("| conns opened |", "| conns opened | fetcher / tool |"),
        ROW_RULE + "---:|",
    ]
    targets: list[tuple[str, float | None]] = []
    for c, d in plan.peer_points:
        f = r.peer.get(point_key("fetcher", c, d))
        for k, s in r.peer.items():
            if parse_key(k)[1:] != (c, d):
                continue
            rel = ratio(f.files_per_s if f else None, s.files_per_s)
            out.append(row(k, s, plan.peer_files) + f" {fmt(rel, '.2f')} |")
        curl = r.peer.get(point_key("curl --parallel", c, d))
        targets.append(
            (
                f"fetcher >= {TARGET} x curl --parallel, {c} connections at {d} ms",
                ratio(f.files_per_s if f else None, curl.files_per_s if curl else None),
            )
        )
    out += [
        "",
        "Commands: fetcher `-j C --per-host C --no-progress`; curl `--parallel "
        "--parallel-max C`; aria2c `-j C`; parfive `max_conn=C, max_splits=1`.",
    ]
    return out, targets


def hosts_section(r: Results) -> list[str]:
    """Many hosts with --per-host in force."""
    plan = r.plan
    out = [
        f"## Many hosts: {plan.hosts_files:,} files over {HOSTS} loopback addresses, "
        f"{MANY_CONNS} connections",
        "",
        ROW_HEAD,
        ROW_RULE,
    ]
    out += [row(k, s, plan.hosts_files) for k, s in r.hosts.items()]
    out += [
        "",
        f"One nginx listening on 127.0.0.1 ... 127.0.0.{HOSTS} (same port); item i is served "
        f"from address i mod {HOSTS}, so any {MANY_CONNS} consecutive items spread over all "
        f"hosts and a per-host cap of {PER_HOST} ({HOSTS} x {PER_HOST} = {HOSTS * PER_HOST} "
        f">= {MANY_CONNS} slots) binds only when the order bunches. curl has no per-host cap "
        f"in this version. `bound C/d` counts {MANY_CONNS} connections. `conns opened` counts "
        "every connection the server accepted during the run: a client that keeps fewer idle "
        "connections per host than it uses reconnects.",
    ]
    return out


def relay_section(r: Results) -> list[str]:
    """The old userspace relay, for contrast."""
    out = [f"## For contrast: the old TUN relay (latency.py), {r.plan.relay_delay_ms} ms", ""]
    out += [r.relay_note, ""]
    if r.relay:
        out += [ROW_HEAD, ROW_RULE]
        out += [row(k, s, r.plan.relay_files) for k, s in r.relay.items()]
        out += [
            "",
            "A real delayed link also delays every packet, so a 1-64 KiB body can take more "
            "than one round trip (TCP slow start); but the relay also copies every packet "
            "through one Python process, which caps the rate whatever the connection count. "
            "The echo-module delay above has neither limit, which is why the sweep uses it.",
        ]
    return out


def render(r: Results) -> str:
    """The markdown report."""
    out = ["# fetcher behind latency, and on many hosts", "", *[f"- {h}" for h in r.header]]
    out += [
        *[f"- {line}" for line in r.end],
        "- latency method: nginx's echo module (`echo_sleep` then `echo_exec` to the static "
        "file) delays every answer by d ms; keep-alive connections pay it once per request",
        "",
    ]
    lines, targets = peer_section(r)
    out += [*sweep_section(r), "", *lines, "", *hosts_section(r), "", *relay_section(r), ""]
    out += ["## Targets (issue 10)", "", "| target | measured | verdict |", "|---|---:|---|"]
    for name, value in targets:
        verdict = "n/a" if value is None else ("PASS" if value >= TARGET else "FAIL")
        out.append(f"| {name} | {fmt(value, '.3f')} | {verdict} |")
    summaries = [*r.sweep.values(), *r.peer.values(), *r.hosts.values(), *r.relay.values()]
    problems = [f"{s.tool}: {p}" for s in summaries for p in s.problems]
    if problems:
        out += ["", "## Problems (runs that failed their check are not in the medians)", ""]
        out += [f"- {p}" for p in problems]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Set up, measure, write and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, help="runs per case (default 3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--no-relay", action="store_true", help="skip the old-relay contrast")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.runs is not None:
        if args.runs < 1:
            parser.error("--runs must be positive")
        plan = Plan(**{**plan.__dict__, "runs": args.runs})
    peers.interrupt_on_sigterm()
    started = time.monotonic()
    try:
        peers.install_peers()
        files = max(plan.sweep_files, plan.peer_files, plan.hosts_files)
        need = files * 70 * 1024 * 2 + 256 * MIB
        with tempfile.TemporaryDirectory(
            prefix="fetcher-latency-", dir=pick_temp_root(need)
        ) as tmp:
            results = measure(plan, Path(tmp), relay=not args.no_relay)
    except (HarnessError, NginxError, subprocess.SubprocessError, OSError) as exc:
        print(f"latency_compare: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("latency_compare: interrupted; servers and namespace removed", file=sys.stderr)
        return 130
    results.header.append(f"{plan.runs} runs per case, {time.monotonic() - started:.0f} s in all")
    report = render(results)
    peers.write_report("latency.md", report, args.quick)
    return 0 if results.all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
