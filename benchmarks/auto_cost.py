"""What the automatic choice (`--processes auto`, the default) costs where it should not act.

Why: the default starts every run on threads and measures itself; it may start worker
processes only when the run is CPU-bound and long enough. The issue's rule: it must never
cost a short list or a latency-bound list more than 5 % against threads alone
(`--processes 1`). Measured here, interleaved, medians of `--runs`:

- short: `--short` files from nginx on 127.0.0.1 (no delay), where the run ends before a
  hand-over could pay off;
- latency-bound: `--files` files, 16 connections, every answer 50 ms late (nginx's echo
  module), where threads are not the limit;
- for contrast, 64 connections at 100 ms: on this 2-core machine threads nearly fill a core
  there, so the default does start processes (a case it acts on, not one of the rule's).

    python benchmarks/auto_cost.py [--runs 5] [--short 300] [--files 2000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from contextlib import ExitStack
from pathlib import Path

import peers
from corpus import build_corpus, url_lines, write_lines
from nginx import Nginx

LIMIT = 0.05
"""The default at most this much slower than threads alone."""
MODES = {"default (auto)": (), "--processes 1": ("--processes", "1")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--short", type=int, default=300)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 run: a smoke test")
    args = parser.parse_args(argv)
    peers.interrupt_on_sigterm()
    runs, short, files = (1, 100, 300) if args.quick else (args.runs, args.short, args.files)
    fetcher = peers.fetcher_cmd()
    cases = [
        ("short list, no delay", 0, short, ("-j", "16")),
        ("16 connections at 50 ms", 50, files, ("-j", "16", "--per-host", "16")),
        ("64 connections at 100 ms (contrast)", 100, files, ("-j", "64", "--per-host", "64")),
    ]
    with tempfile.TemporaryDirectory(prefix="fetcher-auto-", dir="/dev/shm") as tmp:
        work = Path(tmp)
        index = build_corpus(work / "www", max(short, files))
        lines = peers.context_lines(work)
        walls: dict[tuple[str, str], list[float]] = {}
        with ExitStack() as stack:
            servers = {
                d: stack.enter_context(Nginx(work / "www", delay_ms=d)) for d in (0, 50, 100)
            }
            for run in range(runs):
                for name, delay, items, options in cases:
                    urls = work / f"{delay}-{items}.txt"
                    if not urls.exists():
                        write_lines(urls, url_lines(servers[delay].base, list(index)[:items]))
                    for mode, extra in MODES.items():
                        wall, _ = peers.timed_fetch(
                            fetcher, urls, work / "out", items, (*options, *extra)
                        )
                        walls.setdefault((name, mode), []).append(wall)
                        print(f"  [{run + 1}/{runs}] {name}, {mode}: {wall:.2f} s", flush=True)
        lines += peers.end_lines()
    peers.write_report("auto_cost.md", render(lines, cases, walls), args.quick)
    return 0


def render(
    lines: list[str],
    cases: list[tuple[str, int, int, tuple[str, ...]]],
    walls: dict[tuple[str, str], list[float]],
) -> str:
    out = peers.report_head("The automatic choice against threads alone", lines)
    out += [
        "- `fetcher fetch LIST -o OUT --no-progress -q OPTIONS` with and without "
        "`--processes 1`; wall clock, start-up included",
        "",
        "| case | files | options | default s | --processes 1 s | default / threads alone "
        "| target |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    for name, _, items, options in cases:
        auto = statistics.median(walls[(name, "default (auto)")])
        alone = statistics.median(walls[(name, "--processes 1")])
        contrast = "(contrast)" in name
        verdict = "-" if contrast else ("PASS" if auto / alone <= 1 + LIMIT else "FAIL")
        out.append(
            f"| {name} | {items:,} | `{' '.join(options)}` | {auto:.2f} | {alone:.2f} "
            f"| {auto / alone:.3f} | {verdict} |"
        )
    out += [
        "",
        f"Target: the default at most {LIMIT:.0%} slower (ratio <= {1 + LIMIT:.2f}) where it "
        "should not start processes. Ratios below 1 are the default faster.",
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
