"""The Python API: sources in, results out in the same order, failures as data.

A thin facade over `Job`: it opens one in a `with` block so that the state store, the
temp files and the HTTP sessions are released however the caller stops iterating.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from fetcher.job import Job
from fetcher.options import FetchOptions
from fetcher.results import Result
from fetcher.sources import Source, parse_source


def fetch_iter(
    sources: Iterable[str | os.PathLike[str]],
    options: FetchOptions | None = None,
    **overrides: Any,
) -> Iterator[Result]:
    """Fetch every source, yielding one `Result` per source in input order as each becomes
    ready. Lazy: `sources` may be a generator of millions of items; memory stays bounded.

    Each element is one item (no comment or blank-line skipping, unlike list files), so
    `results[i]` always belongs to `sources[i]`; relative paths resolve against the current
    folder. `overrides` are `FetchOptions` fields, e.g. `output_dir="out", workers=8`.
    """
    opts = dataclasses.replace(options or FetchOptions(), **overrides)
    with Job(opts) as job:
        yield from job.run(_numbered(sources, Path.cwd()))


def fetch_all(
    sources: Iterable[str | os.PathLike[str]],
    options: FetchOptions | None = None,
    **overrides: Any,
) -> list[Result]:
    """`fetch_iter` collected into a list: `results[i]` is the outcome of `sources[i]`."""
    return list(fetch_iter(sources, options, **overrides))


def _numbered(sources: Iterable[str | os.PathLike[str]], base: Path) -> Iterator[Source]:
    for index, item in enumerate(sources):
        if not isinstance(item, str | os.PathLike):
            raise TypeError(f"source #{index} is {type(item).__name__}, not str or path")
        yield parse_source(os.fspath(item).strip(), index, base)
