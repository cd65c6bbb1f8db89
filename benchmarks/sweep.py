"""Sweep fetcher's --chunksize x --workers, on loopback, behind real latency, and on a mix.

Why: `--chunksize auto` and the `--workers` default are tuning decisions; this shows, on
real servers, which point is best for each kind of job and where `auto` lands. Scenarios:

- loopback: small files (1-64 KiB) from a private nginx on 127.0.0.1;
- latency: the same files from an nginx that answers every request `--delay-ms` late (the
  echo module's `echo_sleep`, see nginx.py): one round trip per request on keep-alive
  connections, without the throughput cap of a userspace packet relay;
- mix: the small files plus 4 files of 32 MiB spread through the list, on loopback.

Every point runs `fetcher fetch LIST -o OUT -j W --chunksize C --per-host W --no-progress`
(`--per-host W`, so that W threads can really hold W connections to the one server), into
a fresh dir on tmpfs, every output checked by sha256 and the manifest by order. Runs are
interleaved across points (round robin) and the median files/s is kept.

    python benchmarks/sweep.py [--quick] [--runs 2] [--scenarios loopback,latency,mix]

Writes benchmarks/results/sweep.md and sweep.png (results/quick/ with --quick). Exit 0 when
every run passed its check, 1 when some failed, 2 when the harness could not run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import corpus
import peers
from nginx import Nginx, NginxError
from peers import MIB, Batch, Outcome, fmt
from scale_check import HarnessError, pick_temp_root

CHUNKS = ("1", "2", "4", "8", "16", "32", "auto")
WORKERS = (4, 8, 16, 32, 64)
QUICK_CHUNKS = ("1", "4", "16", "auto")
QUICK_WORKERS = (4, 16, 64)
MIX_LARGE = 4
MIX_LARGE_MIB = 32
RUN_TIMEOUT_S = 300.0
SCENARIOS = ("loopback", "latency", "mix")

Point = tuple[str, int]  # (chunksize, workers)


@dataclass
class ScenarioResult:
    """One scenario's runs per point, or why it was skipped."""

    key: str
    title: str
    items: int
    runs: dict[Point, list[Outcome]]
    note: str = ""

    def median(self, point: Point) -> float | None:
        """Median files/s of the point's passing runs."""
        if point not in self.runs:
            return None
        return peers.summarise(self.runs[point]).files_per_s


def auto_pick(workers: int, items: int) -> int | None:
    """The chunksize the installed fetcher's auto rule picks for this job, if it says."""
    try:
        from fetcher.pool import LOOKAHEAD_PER_WORKER, auto_chunksize

        return int(auto_chunksize(workers, min(items, workers * LOOKAHEAD_PER_WORKER)))
    except (ImportError, TypeError, ValueError):
        return None


def sweep_points(
    batch: Batch, grid: Sequence[Point], runs: int, work: Path, label: str
) -> dict[Point, list[Outcome]]:
    """Every point `runs` times, interleaved: each round visits all points, starting one
    point later than the previous round."""
    results: dict[Point, list[Outcome]] = {point: [] for point in grid}
    for run_no in range(1, runs + 1):
        shift = (run_no - 1) * max(1, len(grid) // runs)
        for chunk, workers in [*grid[shift:], *grid[:shift]]:
            w = str(workers)
            tool = peers.fetcher(
                f"c{chunk}-j{w}", "-j", w, "--chunksize", chunk, "--per-host", w, "--no-progress"
            )
            outcome = peers.run_tool(tool, batch, work, run_no, RUN_TIMEOUT_S)
            results[(chunk, workers)].append(outcome)
            state = "ok" if outcome.ok else f"FAILED {outcome.problems.samples[:1]}"
            print(
                f"  [{label} {run_no}/{runs}] chunksize {chunk:>4} workers {workers:>2}: "
                f"{outcome.files / outcome.run.wall_s:7,.0f} files/s {state}",
                flush=True,
            )
    return results


def server(key: str, www: Path, stack: ExitStack, delay_ms: float) -> tuple[str, str]:
    """Start the scenario's nginx inside `stack`; return its base URL and a note."""
    if key != "latency":
        return stack.enter_context(Nginx(www)).base, ""
    nginx = stack.enter_context(Nginx(www, delay_ms=delay_ms))
    return nginx.base, (
        f"every answer {delay_ms:g} ms late (nginx echo module: `echo_sleep`, then the static "
        "file); keep-alive connections pay it once per request"
    )


def main(argv: list[str] | None = None) -> int:
    """Set up, sweep every scenario, write the table and the plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced grid: 4 x 3 points")
    parser.add_argument("--runs", type=int, default=3, help="runs per point (default 3)")
    parser.add_argument(
        "--small", type=int, help="small files, loopback and mix (default 1000; 500 --quick)"
    )
    parser.add_argument(
        "--latency-files", type=int, help="files behind latency (default 1000; 300 --quick)"
    )
    parser.add_argument("--delay-ms", type=float, default=20.0, help="round-trip delay")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated")
    args = parser.parse_args(argv)
    args.small = args.small or (500 if args.quick else 1000)
    args.latency_files = args.latency_files or (300 if args.quick else 1000)
    keys = [k for k in args.scenarios.split(",") if k]
    if set(keys) - set(SCENARIOS) or not keys:
        parser.error(f"--scenarios: choose from {', '.join(SCENARIOS)}")
    if min(args.runs, args.small, args.latency_files) < 1 or args.delay_ms < 0:
        parser.error("--runs, --small, --latency-files must be positive")
    chunks, workers = (QUICK_CHUNKS, QUICK_WORKERS) if args.quick else (CHUNKS, WORKERS)
    grid = [(c, w) for w in workers for c in chunks]
    peers.interrupt_on_sigterm()
    try:
        peers.install_peers()
        need = args.small * 70 * 1024 + 3 * MIX_LARGE * MIX_LARGE_MIB * MIB + 256 * MIB
        with tempfile.TemporaryDirectory(prefix="fetcher-sweep-", dir=pick_temp_root(need)) as tmp:
            header = peers.context_lines(Path(tmp).parent)
            started = time.monotonic()
            results = run_all(args, keys, grid, Path(tmp))
            header.append(
                f"grid: chunksize {{{', '.join(chunks)}}} x workers "
                f"{{{', '.join(map(str, workers))}}}, "
                f"{args.runs} runs per point, {time.monotonic() - started:.0f} s in all"
            )
    except (HarnessError, subprocess.SubprocessError, OSError) as exc:
        print(f"sweep: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sweep: interrupted; servers and namespace removed", file=sys.stderr)
        return 130
    report = render(results, header, chunks, workers)
    folder = peers.results_dir(args.quick)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sweep.md").write_text(report)
    plot(results, chunks, workers, folder / "sweep.png")
    print(report)
    print(f"written to {folder / 'sweep.md'} and {folder / 'sweep.png'}")
    ok = all(o.ok for r in results for runs in r.runs.values() for o in runs)
    return 0 if ok else 1


def run_all(
    args: argparse.Namespace, keys: list[str], grid: list[Point], work: Path
) -> list[ScenarioResult]:
    """Build the data once, then run each scenario with its own server."""
    www = work / "www"
    index = corpus.build_corpus(
        www, max(args.small, args.latency_files), index_path=work / "i.json"
    )
    large = {f"mix{k}.bin": MIX_LARGE_MIB * MIB for k in range(MIX_LARGE)}
    large_shas = peers.write_large_files(www / "large", large) if "mix" in keys else {}
    results = []
    for key in keys:
        title = {
            "loopback": f"loopback, {args.small:,} small files",
            "latency": f"RTT {args.delay_ms:g} ms, {args.latency_files:,} small files",
            "mix": f"loopback, {args.small:,} small + {MIX_LARGE} x {MIX_LARGE_MIB} MiB",
        }[key]
        print(f"scenario {key}: {title}", flush=True)
        with ExitStack() as stack:
            try:
                base, note = server(key, www, stack, args.delay_ms)
            except NginxError as exc:
                print(f"scenario {key} skipped: {exc}", file=sys.stderr)
                results.append(ScenarioResult(key, title, 0, {}, f"skipped: {exc}"))
                continue
            count = args.latency_files if key == "latency" else args.small
            items = peers.corpus_items(base, www, index)[:count]
            if key == "mix":
                step = len(items) // MIX_LARGE
                for k, (name, sha) in enumerate(large_shas.items()):
                    big = peers.Item(f"{base}/large/{name}", f"large/{name}", sha, large[name])
                    items.insert(k * step + step // 2 + k, big)
            batch = peers.make_batch(key, items, work)
            runs = sweep_points(batch, grid, args.runs, work, key)
            results.append(ScenarioResult(key, title, len(items), runs, note))
    return results


def render(
    results: list[ScenarioResult], header: list[str], chunks: Sequence[str], workers: Sequence[int]
) -> str:
    """Markdown: per scenario a workers x chunksize table of median files/s, the best
    point, and where auto lands for each worker count."""
    out = ["# fetcher chunksize x workers sweep", "", *[f"- {line}" for line in header], ""]
    for r in results:
        out += [f"## {r.key}: {r.title}", ""]
        if r.note:
            out += [r.note, ""]
        if not r.runs:
            continue
        out += ["| workers \\ chunksize | " + " | ".join(chunks) + " |"]
        out += ["|---:|" + "---:|" * len(chunks)]
        for w in workers:
            cells = [fmt(r.median((c, w))) for c in chunks]
            out.append(f"| {w} | " + " | ".join(cells) + " |")
        scored = [(r.median(p), p) for p in r.runs if r.median(p) is not None]
        if not scored:
            out += ["", "No point passed its check.", ""]
            continue
        best_rate, (best_c, best_w) = max(scored, key=lambda s: s[0] or 0.0)
        out += [
            "",
            f"Best point: chunksize {best_c}, workers {best_w}: {best_rate:,.0f} files/s.",
            "",
        ]
        out += [
            "| workers | auto files/s | auto picks | best fixed | auto / best fixed | auto rank |"
        ]
        out += ["|---:|---:|---:|---:|---:|---:|"]
        for w in workers:
            fixed = [(r.median((c, w)), c) for c in chunks if c != "auto" and r.median((c, w))]
            auto = r.median(("auto", w))
            if not fixed or auto is None:
                continue
            top_rate, top_c = max(fixed, key=lambda f: f[0] or 0.0)
            rank = 1 + sum(1 for rate, _ in fixed if (rate or 0.0) > auto)
            pick = auto_pick(w, r.items)
            out.append(
                f"| {w} | {auto:,.0f} | {pick if pick is not None else 'n/a'} | {top_c} | "
                f"{auto / (top_rate or 1):.2f} | {rank} of {len(fixed) + 1} |"
            )
        out.append("")
        failed = [
            f"chunksize {p[0]} workers {p[1]} run {o.run_no}: {msg}"
            for p, runs in r.runs.items()
            for o in runs
            for msg in o.problems.samples[:1]
        ]
        if failed:
            out += ["Runs that failed their check (not in the medians):", ""]
            out += [f"- {line}" for line in failed] + [""]
    out += [
        "`auto picks`: what the installed fetcher's rule (`fetcher.pool.auto_chunksize`) "
        "chooses for this list length and worker count; n/a if the rule is not importable.",
        "",
    ]
    return "\n".join(out)


def plot(
    results: list[ScenarioResult], chunks: Sequence[str], workers: Sequence[int], target: Path
) -> None:
    """One panel per scenario: files/s against chunksize, a line per worker count, auto as
    a star at the right end in the line's colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in results if r.runs]
    fig, axes = plt.subplots(1, max(1, len(shown)), figsize=(5.5 * max(1, len(shown)), 4.5))
    axes_list = list(axes) if len(shown) > 1 else [axes]
    fixed = [c for c in chunks if c != "auto"]
    for ax, r in zip(axes_list, shown, strict=False):
        for k, w in enumerate(workers):
            color = f"C{k}"
            ys = [r.median((c, w)) for c in fixed]
            xs = [i for i, y in enumerate(ys) if y is not None]
            ax.plot(xs, [ys[i] for i in xs], marker="o", color=color, label=f"{w} workers")
            auto = r.median(("auto", w))
            if "auto" in chunks and auto is not None:
                ax.plot([len(fixed)], [auto], marker="*", markersize=14, color=color)
        ax.set_xticks(range(len(chunks)), list(chunks))
        ax.set_xlabel("chunksize (star: auto)")
        ax.set_ylabel("files/s (median)")
        ax.set_title(r.title, fontsize=10)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("fetcher: chunksize x workers", fontsize=12)
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
