"""Does `fetcher tune` predict what a full run then reaches, and does it say the same twice?

Why: `tune` fetches a sample under several settings and recommends one with its rate. That
is only useful if the rate holds for the whole list and the advice does not change from one
`tune` to the next. Here, against nginx on 127.0.0.1 and a corpus of `--items` small files:

1. `fetcher tune LIST -o OUT` runs `--tunes` times (its defaults: a 1,000-item sample, each
   setting 3 times); each recommendation and its rate is kept;
2. right after each `tune`, the full list is fetched with its recommended setting and with
   the defaults, interleaved, `--runs` times each, so that each prediction meets runs made
   on the machine as it was then (a shared machine's speed drifts over minutes); every run
   must give one ok row per item;
3. for each `tune`: full-run files/s (median, wall clock) with its setting / the rate it
   forecast for this list (its rate once running, plus the fixed costs of a run: fetcher's
   start-up, the pools' and processes', closing). Target: within 20 %.

    python benchmarks/tune_check.py [--items 20000] [--tunes 3] [--runs 2] [--disk]
        [--disk-dir DIR] [--journaled]

With `--disk`, the outputs (tune's trials and the full runs) go to a real disk file system
(the corpus stays on tmpfs), each full run after a `sync`, as in compare.py; the report is
`tune_check_disk.md`, or `tune_check_disk_nojournal.md` on an ext4 without a journal (there
a run slows down after files were deleted: see `deleted_inodes.py`). `--disk-dir` picks
the disk; `--journaled` writes to a fresh ext4 with a journal, an image on that disk
loop-mounted for the run (root only). Both imply `--disk`.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import peers
from corpus import build_corpus, url_lines, write_lines
from nginx import Nginx

from fetcher.filesystems import ext4_without_journal

TARGET = 0.2
"""A full run within this share of the rate `tune` predicted."""
ADVICE = re.compile(r"Recommended: (?P<setting>.+?) \((?P<running>[\d.]+) items/s")
FORECAST = re.compile(r"For this list \([\d,]+ to fetch\): about (?P<rate>[\d,]+) items/s")
DEFAULTS = "(defaults)"


@dataclass(frozen=True)
class Advice:
    """One `tune`'s recommendation, its rates, and the full runs made right after it."""

    setting: str
    running: float
    """Items/s once running, on the sample."""
    forecast: float
    """Items/s over the whole list, fixed costs included."""
    output: str
    """What `tune` printed: its table, the recommendation and the forecast."""
    after: list[float] = field(default_factory=list)


def tune(fetcher: list[str], urls: Path, out: Path) -> Advice:
    """One `tune`: its recommended options and the rates it gave for them."""
    proc = subprocess.run(
        [*fetcher, "tune", str(urls), "-o", str(out)], capture_output=True, text=True, check=True
    )
    advice, forecast = ADVICE.search(proc.stdout), FORECAST.search(proc.stdout)
    if advice is None or forecast is None:
        raise RuntimeError(f"no recommendation in tune's output:\n{proc.stdout}{proc.stderr}")
    rate = float(forecast["rate"].replace(",", ""))
    return Advice(advice["setting"], float(advice["running"]), rate, proc.stdout.strip())


def full_run(
    fetcher: list[str], urls: Path, out: Path, setting: str, items: int, *, sync: bool
) -> float:
    """Files/s of the whole list with `setting`; raises unless every row is ok."""
    options = [] if setting == DEFAULTS else setting.split()
    wall, _ = peers.timed_fetch(fetcher, urls, out, items, options, sync=sync)
    return items / wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--tunes", type=int, default=3)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="2,000 items, 1 tune, 1 run")
    parser.add_argument("--disk", action="store_true", help="outputs on a real disk")
    parser.add_argument("--disk-dir", type=Path, help="folder on a real disk (default: found)")
    parser.add_argument("--journaled", action="store_true", help="a journaled ext4 image on it")
    args = parser.parse_args(argv)
    args.disk = args.disk or args.disk_dir is not None or args.journaled
    peers.interrupt_on_sigterm()
    items, tunes, runs = (2_000, 1, 1) if args.quick else (args.items, args.tunes, args.runs)
    fetcher = peers.fetcher_cmd()
    with contextlib.ExitStack() as stack:
        work = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="fetcher-tune-", dir="/dev/shm"))
        )
        index = build_corpus(work / "www", items)
        lines = peers.context_lines(work)
        outputs, name = work, "tune_check.md"
        if args.disk:
            need = 4 * items * 64 * 1024
            root, note = peers.pick_disk_root(need, args.disk_dir)
            if args.journaled:
                root, note = stack.enter_context(peers.journaled_ext4(root, need))
            outputs = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="fetcher-tune-", dir=root))
            )
            lines.append(f"outputs on a real disk: {note}; `sync` before each full run")
            unjournaled = ext4_without_journal(Path(root))
            name = "tune_check_disk_nojournal.md" if unjournaled else "tune_check_disk.md"
        advice: list[Advice] = []
        rates: dict[str, list[float]] = {}
        with Nginx(work / "www") as server:
            urls = work / "list.txt"
            write_lines(urls, url_lines(server.base, index))
            for n in range(tunes):
                one = tune(fetcher, urls, outputs / "tune-out")
                print(f"  tune {n + 1}/{tunes}: {one.setting} at {one.forecast:.0f}", flush=True)
                for run in range(runs):
                    for each in (one.setting, DEFAULTS):
                        rate = full_run(fetcher, urls, outputs / "out", each, items, sync=args.disk)
                        rates.setdefault(each, []).append(rate)
                        if each == one.setting:
                            one.after.append(rate)
                        print(f"    [{run + 1}/{runs}] {each}: {rate:.0f} files/s", flush=True)
                advice.append(one)
        lines += peers.end_lines()
    report = render(lines, items, advice, rates)
    peers.write_report(name, report, args.quick)
    return 0


def render(
    lines: list[str], items: int, advice: list[Advice], rates: dict[str, list[float]]
) -> str:
    out = peers.report_head("`fetcher tune` against the full run it recommends", lines)
    out += [
        f"- corpus: {items:,} files of 1-64 KiB from nginx on 127.0.0.1; full runs: "
        "`fetcher fetch LIST -o OUT --no-progress -q SETTING`, files/s by the wall clock "
        "(start-up included, as in tune's forecast for the list)",
        "",
        "## Full runs",
        "",
        "| setting | files/s (median) | (min-max) |",
        "|---|---:|---:|",
    ]
    for setting, values in rates.items():
        out.append(f"| `{setting}` | {peers.fmt(peers.median(values))} | {peers.spread(values)} |")
    out += [
        "",
        "## Each tune",
        "",
        "| tune | recommended | once running, files/s | forecast for the list, files/s | "
        f"full runs after it, files/s | full / forecast | within {TARGET:.0%} |",
        "|---:|---|---:|---:|---:|---:|---|",
    ]
    for n, one in enumerate(advice, 1):
        full = peers.median(one.after)
        r = peers.ratio(full, one.forecast)
        ok = r is not None and abs(r - 1) <= TARGET
        out.append(
            f"| {n} | `{one.setting}` | {one.running:,.0f} | {one.forecast:,.0f} "
            f"| {peers.fmt(full)} | {peers.fmt(r, '.2f')} | {'PASS' if ok else 'FAIL'} |"
        )
    forecasts = [one.forecast for one in advice]
    out += [
        "",
        f"Forecasts across tunes: {peers.spread(forecasts)} files/s "
        f"(max / min {peers.fmt(peers.ratio(max(forecasts), min(forecasts)), '.2f')}); "
        f"{len({one.setting for one in advice})} distinct recommendation(s) in "
        f"{len(advice)} tunes. "
        f"Defaults / best recommended full run: "
        f"{peers.fmt(best_ratio(rates), '.2f')}.",
        "",
        "## What each tune printed",
        "",
    ]
    for n, one in enumerate(advice, 1):
        out += [f"### Tune {n}", "", one.output, ""]
    return "\n".join(out)


def best_ratio(rates: dict[str, list[float]]) -> float | None:
    """The defaults' median over the best recommended setting's median."""
    tuned = [peers.median(v) or 0 for s, v in rates.items() if s != DEFAULTS]
    return peers.ratio(peers.median(rates[DEFAULTS]), max(tuned)) if tuned else None


if __name__ == "__main__":
    raise SystemExit(main())
