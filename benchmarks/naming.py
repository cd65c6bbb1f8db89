"""Flat names shared by many items against the indexed layout (issue: naming must cost
O(1) per item, with no cap on how many items share a name).

Why: in the `flat` layout, N items whose URLs differ only in the query (`f.dat?i=0` ...
`f.dat?i=N-1`) all want the name `f.dat`; input order gives them `f.dat`, `f.1.dat`,
`f.2.dat` ... A search that tries every earlier counter costs O(N) per item and O(N^2) per
run. The `indexed` layout (`000000_f.dat` ...) never collides, so it is the baseline: the
same list, the same server, only the naming differs. Runs are interleaved (flat, indexed,
flat, ...) at each list length, medians of `--runs`, and every run is checked: every row ok,
every path distinct, every file on disk the served size.

    python benchmarks/naming.py [--items 2000,4000,8000] [--runs 3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import peers
from nginx import Nginx

BODY = b"x" * 4096
TARGET = 1.5
"""Flat within this factor of indexed, at every length."""
LAYOUTS = ("flat", "indexed")


def run_once(fetcher: list[str], urls: Path, out: Path, layout: str, items: int) -> float:
    """Wall seconds of one run; raises if any row or file is wrong."""
    wall, rows = peers.timed_fetch(fetcher, urls, out, items, ("--layout", layout))
    paths = {row["path"] for row in rows}
    if len(paths) != items:
        raise RuntimeError(f"{layout}: {len(paths)} distinct paths for {items} items")
    if any((out / p).stat().st_size != len(BODY) for p in paths):
        raise RuntimeError(f"{layout}: a file is not the served size")
    return wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", default="2000,4000,8000", help="list lengths, comma-separated")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="500 items, 1 run: a smoke test")
    args = parser.parse_args(argv)
    peers.interrupt_on_sigterm()
    lengths = [500] if args.quick else [int(n) for n in args.items.split(",")]
    runs = 1 if args.quick else args.runs
    fetcher = peers.fetcher_cmd()
    with tempfile.TemporaryDirectory(prefix="fetcher-naming-", dir="/dev/shm") as tmp:
        work = Path(tmp)
        (work / "www").mkdir()
        (work / "www" / "f.dat").write_bytes(BODY)
        lines = peers.context_lines(work)
        walls: dict[tuple[int, str], list[float]] = {}
        with Nginx(work / "www") as server:
            for items in lengths:
                urls = work / f"list-{items}.txt"
                urls.write_text("".join(f"{server.base}/f.dat?i={i}\n" for i in range(items)))
                for run in range(runs):
                    for layout in LAYOUTS:
                        wall = run_once(fetcher, urls, work / "out", layout, items)
                        walls.setdefault((items, layout), []).append(wall)
                        print(f"  [{run + 1}/{runs}] {items} {layout}: {wall:.2f} s", flush=True)
        lines += peers.end_lines()
    report = render(lines, walls, lengths)
    peers.write_report("naming.md", report, args.quick)
    return 0


def render(lines: list[str], walls: dict[tuple[int, str], list[float]], lengths: list[int]) -> str:
    out = peers.report_head("Many items sharing one flat name, against the indexed layout", lines)
    out += [
        "- one 4 KiB file served by nginx on 127.0.0.1; item i is `f.dat?i=i`; "
        "`fetcher fetch LIST -o OUT --layout L --no-progress -q`",
        "",
        "| items | flat s (median) | (min-max) | indexed s (median) | (min-max) | flat / indexed "
        "| flat us/item |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    for items in lengths:
        flat, indexed = walls[(items, "flat")], walls[(items, "indexed")]
        r = peers.ratio(peers.median(flat), peers.median(indexed))
        per_item = (peers.median(flat) or 0) / items * 1e6
        out.append(
            f"| {items:,} | {peers.fmt(peers.median(flat), '.2f')} | {peers.spread(flat, '.2f')} "
            f"| {peers.fmt(peers.median(indexed), '.2f')} | {peers.spread(indexed, '.2f')} "
            f"| {peers.fmt(r, '.2f')} | {per_item:,.0f} |"
        )
        verdicts.append((items, r))
    out += ["", "| target | measured | verdict |", "|---|---:|---|"]
    for items, r in verdicts:
        ok = r is not None and r <= TARGET
        out.append(
            f"| {items:,} items: flat <= {TARGET} x indexed | {peers.fmt(r, '.2f')} "
            f"| {'PASS' if ok else 'FAIL'} |"
        )
    out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
