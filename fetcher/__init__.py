"""fetcher: concurrent bulk fetching of URL and file-path lists, results in input order.

    from fetcher import fetch_all
    results = fetch_all(["https://example.org/a.txt", "notes/b.txt"], output_dir="out")
    failed = [r for r in results if not r.ok]

The pipeline, module by module:

    api          fetch_all / fetch_iter / retry_failed / retry_iter: the thin facade
    options      FetchOptions, RetryPolicy, Layout, and the parsers of their CLI strings
    results      Result, Status, ErrorType: the manifest's contract
    lists tables sources   list files and table rows into numbered `Source`s
    job          one run: output dir, state store, executor, committer, manifest
    context      RunContext: what every worker of a run shares; RunSpec to rebuild it
    executors    where items are fetched, chosen in one place: pool (threads), processes,
                 adaptive (threads, then processes once CPU-bound), cluster (Dask)
    worker       fetch one item (the one place exceptions become outcomes); build_worker
    work         WorkItem in; Fetched / AlreadyDone / Failed / Stopped out
    download     one HTTP attempt: conditional GETs, ranges, the body into its temp file
    transport session watch   requests: routing, the per-thread session, deadlines
    localfiles politeness bandwidth cookies decoding   local copies, host gates,
                 --limit-rate, the run's cookie jar, --compressed
    naming temps digests   output names, temp files and placement, running hashes
    commit state manifest   ordered commit, the SQLite store, the manifest read and written
    retry        a manifest's failed rows again, the manifest rewritten complete or untouched
    shards       --shard K/N and merging the shards' manifests
    stats tune   live counters; `fetcher tune`'s trials
    cli/         the command line: the only part that prints or touches sys.std*

Names are loaded on first use, so that `fetcher --help` does not pay for `requests`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fetcher.version import __version__

if TYPE_CHECKING:
    from fetcher.api import fetch_all, fetch_iter, retry_failed, retry_iter
    from fetcher.errors import FetcherError, UsageError
    from fetcher.options import FetchOptions, Layout, RetryPolicy
    from fetcher.results import ErrorInfo, ErrorType, Result, Status

_EXPORTS = {
    "fetch_all": "fetcher.api",
    "fetch_iter": "fetcher.api",
    "retry_failed": "fetcher.api",
    "retry_iter": "fetcher.api",
    "FetcherError": "fetcher.errors",
    "UsageError": "fetcher.errors",
    "FetchOptions": "fetcher.options",
    "Layout": "fetcher.options",
    "RetryPolicy": "fetcher.options",
    "ErrorInfo": "fetcher.results",
    "ErrorType": "fetcher.results",
    "Result": "fetcher.results",
    "Status": "fetcher.results",
}

__all__ = [
    "ErrorInfo",
    "ErrorType",
    "FetchOptions",
    "FetcherError",
    "Layout",
    "Result",
    "RetryPolicy",
    "Status",
    "UsageError",
    "__version__",
    "fetch_all",
    "fetch_iter",
    "retry_failed",
    "retry_iter",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fetcher' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
