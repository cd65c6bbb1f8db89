"""parfive, the asyncio bulk downloader, driven the way its docs show: enqueue all, download.

`max_conn` is the number of files in flight and `max_splits=1` keeps one connection per
file, so it uses the same number of connections as the other tools; every other setting
is parfive's default. Files land where the URL's path says.

    python benchmarks/parfive_fetch.py LIST OUT [-j 16]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import urlsplit

from parfive import Downloader


def main(argv: list[str] | None = None) -> int:
    """Fetch every URL of LIST into OUT/<url path>; exit 1 if parfive reports errors."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("list", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("-j", "--jobs", type=int, default=16)
    args = parser.parse_args(argv)
    downloader = Downloader(max_conn=args.jobs, max_splits=1, progress=False, overwrite=True)
    for url in args.list.read_text().split():
        rel = Path(urlsplit(url).path.lstrip("/"))
        downloader.enqueue_file(url, path=args.out / rel.parent, filename=rel.name)
    results = downloader.download()
    for error in results.errors[:5]:
        print(f"parfive: {error.url}: {error.exception}", file=sys.stderr)
    print(f"{len(results)} files, {len(results.errors)} errors")
    return 1 if results.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
