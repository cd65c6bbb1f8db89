"""The ThreadPool + requests script people write by hand: the baseline fetcher must beat.

Deliberately naive, like the scripts it stands for: one `requests.get` per item (no
Session, so a new connection every time), the whole body in memory, written where the
URL's path says. Any failure raises and ends the script with a traceback.

    python benchmarks/handwritten.py LIST OUT [-j 16]
"""

from __future__ import annotations

import argparse
from multiprocessing.pool import ThreadPool
from pathlib import Path
from urllib.parse import urlsplit

import requests


def main(argv: list[str] | None = None) -> int:
    """Fetch every URL of LIST into OUT/<url path> on -j threads."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("list", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("-j", "--jobs", type=int, default=16)
    args = parser.parse_args(argv)
    urls = args.list.read_text().split()

    def fetch(url: str) -> int:
        response = requests.get(url, timeout=60)
        response.raise_for_status()
        path = args.out / urlsplit(url).path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(response.content)
        return len(response.content)

    with ThreadPool(args.jobs) as pool:
        total = sum(pool.imap(fetch, urls))
    print(f"{len(urls)} files, {total} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
