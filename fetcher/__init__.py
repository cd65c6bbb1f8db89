"""fetcher: concurrent bulk fetching of URL and file-path lists, results in input order.

    from fetcher import fetch_all
    results = fetch_all(["https://example.org/a.txt", "notes/b.txt"], output_dir="out")
    failed = [r for r in results if not r.ok]

Names are loaded on first use, so that `fetcher --help` does not pay for `requests`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fetcher.version import __version__

if TYPE_CHECKING:
    from fetcher.api import fetch_all, fetch_iter
    from fetcher.errors import FetcherError, UsageError
    from fetcher.options import FetchOptions, Layout, RetryPolicy
    from fetcher.results import ErrorInfo, Result, Status

_EXPORTS = {
    "fetch_all": "fetcher.api",
    "fetch_iter": "fetcher.api",
    "FetcherError": "fetcher.errors",
    "UsageError": "fetcher.errors",
    "FetchOptions": "fetcher.options",
    "Layout": "fetcher.options",
    "RetryPolicy": "fetcher.options",
    "ErrorInfo": "fetcher.results",
    "Result": "fetcher.results",
    "Status": "fetcher.results",
}

__all__ = [
    "ErrorInfo",
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
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fetcher' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
