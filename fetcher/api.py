"""The Python API: sources in, results out in the same order, failures as data.

A thin facade over `Job` (and `retry_batches`): each opens its run in a `with` block, so
that the state store, the temp files and the HTTP sessions are released however the caller
stops iterating.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from fetcher.job import Job
from fetcher.options import FetchOptions, merge_headers
from fetcher.results import Result
from fetcher.retry import retry_batches
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
    if isinstance(sources, str | bytes | os.PathLike):
        raise TypeError("sources must be an iterable of sources, not a single str or path")
    opts = dataclasses.replace(options or FetchOptions(), **overrides)
    with Job(opts) as job, contextlib.closing(job.run(_numbered(sources, Path.cwd()))) as batches:
        for batch in batches:
            yield from batch


def fetch_all(
    sources: Iterable[str | os.PathLike[str]],
    options: FetchOptions | None = None,
    **overrides: Any,
) -> list[Result]:
    """`fetch_iter` collected into a list: `results[i]` is the outcome of `sources[i]`."""
    return list(fetch_iter(sources, options, **overrides))


def retry_iter(
    manifest: str | os.PathLike[str],
    output_dir: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> Iterator[Result]:
    """Fetch the failed rows of `manifest` again and rewrite it: one `Result` per row, in
    input order, retried rows with their new outcome. Each item is fetched under the rules
    its run recorded (layout, names, checksums, headers, politeness); `overrides` are
    `FetchOptions` fields that replace them (a header given again replaces the recorded
    one of that name). `output_dir` defaults to the folder whose `.fetcher/` holds the
    manifest. However iteration ends, the manifest holds every row, new or as it was."""
    out = None if output_dir is None else Path(output_dir)

    def adjust(recorded: FetchOptions) -> FetchOptions:
        given = dict(overrides)
        if "headers" in given:
            given["headers"] = merge_headers(recorded.headers, tuple(given["headers"]))
        return dataclasses.replace(recorded, **given)

    with contextlib.closing(retry_batches(Path(manifest), out, adjust)) as batches:
        for batch in batches:
            yield from batch


def retry_failed(
    manifest: str | os.PathLike[str],
    output_dir: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> list[Result]:
    """`retry_iter` collected into a list: every row of the rewritten manifest."""
    return list(retry_iter(manifest, output_dir, **overrides))


def _numbered(sources: Iterable[str | os.PathLike[str]], base: Path) -> Iterator[Source]:
    for index, item in enumerate(sources):
        if not isinstance(item, str | os.PathLike):
            raise TypeError(f"source #{index} is {type(item).__name__}, not str or path")
        yield parse_source(os.fspath(item).strip(), index, base)
