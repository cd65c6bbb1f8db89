"""The fastest requests-based downloader we know how to write: a ceiling for fetcher.

fetcher must use requests (the project's chosen stack), so this script asks what requests
itself allows on this machine, with every feature fetcher adds taken away: keep-alive
Sessions per thread (`trust_env` off), each body streamed straight to its final file, and
nothing else: no hashing, no temp files or renames, no input order, no manifest, no state
store, no retries or error handling. The list is split over `--processes` interpreters
(forked before any thread exists), each with a ThreadPool of `-j / processes` threads, so
one interpreter lock is not the limit.

    python benchmarks/requests_minimal.py LIST OUT [-j 16] [--processes 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import threading
from multiprocessing.pool import ThreadPool
from pathlib import Path
from urllib.parse import urlsplit

import requests

BLOCK = 256 * 1024


def fetch_share(urls: list[str], out: Path, threads: int) -> int:
    """Fetch `urls` on `threads` threads; return the bytes written."""
    local = threading.local()

    def fetch(url: str) -> int:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.trust_env = False
        path = out / urlsplit(url).path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with session.get(url, stream=True, timeout=60) as response, path.open("wb") as f:
            response.raise_for_status()
            while block := response.raw.read1(BLOCK):
                written += f.write(block)
        return written

    with ThreadPool(threads) as pool:
        return sum(pool.imap_unordered(fetch, urls, chunksize=4))


def main(argv: list[str] | None = None) -> int:
    """Fetch every URL of LIST into OUT/<url path>."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("list", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("-j", "--jobs", type=int, default=16)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args(argv)
    urls = args.list.read_text().split()
    shares = [
        (urls[k :: args.processes], args.out, max(1, args.jobs // args.processes))
        for k in range(args.processes)
    ]
    with multiprocessing.get_context("fork").Pool(args.processes) as pool:
        total = sum(pool.starmap(fetch_share, shares))
    print(f"{len(urls)} files, {total} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
