"""How fast a disk creates small files, fresh and right after many were deleted.

Why: on an ext4 file system without a journal the kernel will not reuse an inode freed in
the last one to six minutes (`recently_deleted()` in fs/ext4/ialloc.c), and it finds that
out for each freed inode, one by one, every time it creates a file. So any run that writes
many files (fetcher, wget, curl alike) slows down after many files were deleted on that
disk, and stays slow for minutes: a benchmark that deletes one run's outputs before the
next, or a `tune` whose trials delete their files, measures that, not the tool. This
isolates it from any tool: one Python thread creates `--files` files of 16 KiB (open,
write, close), timed,

1. `fresh`: into a new folder, the files kept (emptied afterwards, which frees no inode);
2. `after deleting`: right after creating and deleting as many files in another folder.

Fresh runs first (they delete nothing), then the deleting ones; medians of `--runs`. A
fresh run is only fresh if nothing was deleted on that file system in the last minutes.

    python benchmarks/deleted_inodes.py [--dir DIR] [--journaled] [--files 3000] [--runs 3]

`--journaled` runs on a fresh ext4 with a journal, an image on that disk loop-mounted for
the run (root only): there both cases should be alike.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import peers

from fetcher.filesystems import ext4_without_journal

BODY = b"x" * 16 * 1024


def create(folder: Path, files: int) -> float:
    """Files per second, creating `files` new files in `folder`."""
    folder.mkdir()
    started = time.perf_counter()
    for i in range(files):
        with open(folder / f"f{i}", "wb") as f:
            f.write(BODY)
    return files / (time.perf_counter() - started)


def empty(folder: Path) -> None:
    for path in folder.iterdir():
        os.truncate(path, 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="folder on the disk to test (default: found)")
    parser.add_argument("--journaled", action="store_true", help="a journaled ext4 image on it")
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="300 files, 1 run")
    args = parser.parse_args(argv)
    peers.interrupt_on_sigterm()
    files, runs = (300, 1) if args.quick else (args.files, args.runs)
    need = 4 * runs * files * len(BODY)
    root, note = peers.pick_disk_root(need, args.dir)
    rates: dict[str, list[float]] = {"fresh": [], "after deleting": []}
    with contextlib.ExitStack() as stack:
        if args.journaled:
            root, note = stack.enter_context(peers.journaled_ext4(root, need))
        work = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="fetcher-inodes-", dir=root))
        )
        unjournaled = ext4_without_journal(work)
        lines = peers.context_lines(work)
        lines.append(f"disk: {note}")
        for run in range(runs):
            os.sync()
            rates["fresh"].append(create(work / f"fresh{run}", files))
            empty(work / f"fresh{run}")
        for run in range(runs):
            create(work / f"doomed{run}", files)
            shutil.rmtree(work / f"doomed{run}")
            os.sync()
            rates["after deleting"].append(create(work / f"after{run}", files))
            empty(work / f"after{run}")
        lines += peers.end_lines()
    out = peers.report_head("Creating small files, fresh and right after deletions", lines)
    out += ["", "| case | files/s (median) | (min-max) |", "|---|---:|---:|"]
    for case, values in rates.items():
        out.append(
            f"| {case} | {statistics.median(values):,.0f} | {min(values):,.0f}-{max(values):,.0f} |"
        )
    ratio = statistics.median(rates["after deleting"]) / statistics.median(rates["fresh"])
    out += ["", f"After deleting {files:,} files / fresh: {ratio:.2f}."]
    name = "deleted_inodes_nojournal.md" if unjournaled else "deleted_inodes.md"
    peers.write_report(name, "\n".join(out) + "\n", args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
