"""Deterministic benchmark corpus: N random files spread over folders, plus a URL list.

Sizes are uniform in [1 KiB, 64 KiB] and contents come from a seeded RNG, so every
run of a benchmark sees the same bytes and a fetch can be checked against the
sha256 index. File names are globally unique (f000123.bin) so that a `flat` output
layout cannot collide.

CLI: ``python benchmarks/corpus.py ROOT [--items N] [--seed S] [--base URL --list PATH]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections.abc import Iterable
from pathlib import Path

MIN_SIZE = 1024
MAX_SIZE = 64 * 1024
FOLDERS = 50
DEFAULT_SEED = 20240601


def relpath_for(i: int) -> str:
    """Corpus-relative path of item i: folder by round robin, globally unique name."""
    return f"d{i % FOLDERS:02d}/f{i:06d}.bin"


def build_corpus(
    root: Path, items: int, seed: int = DEFAULT_SEED, index_path: Path | None = None
) -> dict[str, str]:
    """Write `items` files under root; return (and write as JSON) relative path -> sha256.

    The index is kept in item order, so list(index) is the natural list order.
    """
    rng = random.Random(seed)
    for folder in range(min(items, FOLDERS)):
        (root / f"d{folder:02d}").mkdir(parents=True, exist_ok=True)
    index: dict[str, str] = {}
    for i in range(items):
        data = rng.randbytes(rng.randint(MIN_SIZE, MAX_SIZE))
        rel = relpath_for(i)
        (root / rel).write_bytes(data)
        index[rel] = hashlib.sha256(data).hexdigest()
    target = index_path if index_path is not None else root / "index.json"
    target.write_text(json.dumps(index, indent=0))
    return index


def write_lines(path: Path, lines: Iterable[str]) -> int:
    """Write lines lazily (a generator is never materialised); return how many."""
    count = 0
    with path.open("w", encoding="utf-8", buffering=1 << 20) as out:
        for line in lines:
            out.write(line)
            out.write("\n")
            count += 1
    return count


def url_lines(base: str, relpaths: Iterable[str]) -> Iterable[str]:
    """One URL per corpus file, under base (e.g. http://127.0.0.1:8080)."""
    base = base.rstrip("/")
    return (f"{base}/{rel}" for rel in relpaths)


def main(argv: list[str] | None = None) -> int:
    """Build a corpus from the command line, optionally with its URL list."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="directory to create the corpus in")
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--index", type=Path, help="index JSON path (default ROOT/index.json)")
    parser.add_argument("--base", help="base URL for the list, e.g. http://127.0.0.1:8080")
    parser.add_argument("--list", type=Path, help="where to write the URL list (needs --base)")
    args = parser.parse_args(argv)
    if (args.base is None) != (args.list is None):
        parser.error("--base and --list go together")
    index = build_corpus(args.root, args.items, args.seed, args.index)
    print(f"wrote {len(index)} files under {args.root}")
    if args.list is not None:
        count = write_lines(args.list, url_lines(args.base, index))
        print(f"wrote {count} URLs to {args.list}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
