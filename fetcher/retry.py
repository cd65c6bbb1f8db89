"""Retrying a manifest's failed rows: each fetched again under the rules its run recorded in
the state store (layout, checks, headers, politeness, the list's own columns), the results
merged back in input order, and the manifest rewritten complete or not at all.

The rule the rewrite keeps, whatever happens (Ctrl-C, SIGTERM, an exception, a full disk):
every row of the earlier manifest is in the file, in order, holding its new result or its
old one; or the file is exactly as it was. A row whose rules cannot be found is not fetched
with weaker ones: it stays failed, with an error that says why.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from collections.abc import Callable, Generator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from fetcher.errors import FetcherError, UsageError
from fetcher.job import Job, manifest_key
from fetcher.manifest import ManifestRewrite, check_manifest, read_manifest
from fetcher.options import FetchOptions
from fetcher.results import ErrorInfo, ErrorType, Result, Status
from fetcher.sources import Source, source_from_json
from fetcher.state import DB_NAME
from fetcher.stats import Stats
from fetcher.temps import STATE_DIR

log = logging.getLogger(__name__)


def output_dir_of(manifest: Path) -> Path:
    """The output dir of the run that wrote `manifest`, when the manifest sits in that
    dir's state folder (the default place); anywhere else, the caller must say."""
    folder = manifest.absolute().parent
    if folder.name != STATE_DIR:
        raise UsageError(
            f"{manifest} is not in an output dir's {STATE_DIR}/ folder: name the output dir"
            " of the run that wrote it (-o)"
        )
    return folder.parent


def recorded_rules(root: Path, manifest: Path) -> dict[str, Any] | None:
    """The rules the run that wrote `manifest` recorded in `root`'s state store, read
    without taking the store's lock (the retry's own run takes it)."""
    db = root / STATE_DIR / DB_NAME
    if not db.is_file():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)) as conn:
            row = conn.execute(
                "SELECT rules FROM runs WHERE manifest = ?", (manifest_key(manifest),)
            ).fetchone()
    except sqlite3.Error:
        return None  # an older store (no runs table) or an unreadable one
    return None if row is None else dict(json.loads(row[0]))


class _Plan:
    """Which failed rows are fetched again, and with which full source."""

    def __init__(self, job: Job, manifest: Path, root: Path, rules_known: bool) -> None:
        self._job = job
        self._manifest = manifest
        self._root = root
        self._rules_known = rules_known

    def source(self, row: Result) -> Source | ErrorInfo:
        """The row's source as first fetched, or why it cannot be retried."""
        if not self._rules_known:
            return self._missing(
                row, f"{self._root} has no record of the run that wrote {self._manifest}"
            )
        stored = self._job.failed_source(self._manifest, row.index)
        if stored is None:
            return self._missing(row, f"{self._root} has no record of item #{row.index}")
        source = source_from_json(stored)
        if source.shown != row.source or source.index != row.index:
            return self._missing(
                row, f"item #{row.index} in {self._root} is not the row's source {row.source!r}"
            )
        return source

    @staticmethod
    def _missing(row: Result, why: str) -> ErrorInfo:
        earlier = f"; it had failed with {row.error.type}: {row.error.message}" if row.error else ""
        return ErrorInfo(
            ErrorType.RETRY_RULES_MISSING,
            f"not retried: {why} (the manifest was moved, or written by a --stdout run or"
            f" an older fetcher){earlier}",
        )


class _Merge:
    """Walks the earlier manifest's rows beside the retried results (both in input order)
    and writes each row as its turn comes: the new result of a retried row, the others as
    they were. `_held` is the one row read and not yet written, so that no row is lost
    between reading it and its result arriving."""

    def __init__(self, rows: Iterator[Result], plan: _Plan, out: ManifestRewrite) -> None:
        self._rows = rows
        self._plan = plan
        self._out = out
        self._held: Result | None = None
        self.written = 0

    def add(self, results: list[Result]) -> list[Result]:
        """Write the rows up to each retried result, that result in place of its row."""
        merged: list[Result] = []
        for result in results:
            while (row := self._take()).index != result.index:
                merged.append(self._write(self._settled(row)))
            merged.append(self._write(result))
        self._out.flush()
        return merged

    def finish(self, batch: int = 1024) -> Iterator[list[Result]]:
        """The rows after the last retried one."""
        while True:
            rows: list[Result] = []
            while len(rows) < batch and (row := self._next()) is not None:
                rows.append(self._write(self._settled(row)))
            if not rows:
                return
            yield rows

    def rest(self) -> None:
        """The run stopped: every row not yet written, as it was."""
        while (row := self._next()) is not None:
            self._write(row)

    def _next(self) -> Result | None:
        """The held row, or the next one (None at the end)."""
        if self._held is None:
            self._held = next(self._rows, None)
        return self._held

    def _take(self) -> Result:
        row = self._next()
        if row is None:
            raise UsageError("the manifest changed while it was being retried")
        return row

    def _write(self, result: Result) -> Result:
        try:
            self._out.write_all((result,))
        except OSError as exc:
            raise FetcherError(
                f"cannot write the new {self._out.manifest} ({exc.strerror}); it is left as it was"
            ) from None
        self._held = None
        self.written += 1
        return result

    def _settled(self, row: Result) -> Result:
        """A row that was not sent: as it was, or failed for want of rules."""
        if row.status is not Status.FAILED:
            return row
        decision = self._plan.source(row)
        if isinstance(decision, ErrorInfo):
            return replace(row, error=decision)
        raise UsageError(f"the manifest changed while it was being retried (row {row.index})")


def _sources(manifest: Path, plan: _Plan) -> Iterator[Source]:
    for row in read_manifest(manifest):
        if row.status is Status.FAILED:
            decision = plan.source(row)
            if isinstance(decision, Source):
                yield decision


def retry_batches(
    manifest: Path,
    output_dir: Path | None = None,
    adjust: Callable[[FetchOptions], FetchOptions] | None = None,
    *,
    stats: Stats | None = None,
    check_interrupt: Callable[[], None] | None = None,
) -> Generator[list[Result], None, None]:
    """Every row of `manifest`, in input order and in batches, its failed rows fetched
    again; the manifest is rewritten as the rows go. `adjust` changes the options the run
    recorded (workers, headers, politeness...) before they are used."""
    summary = check_manifest(manifest)
    root = (Path(output_dir) if output_dir is not None else output_dir_of(manifest)).absolute()
    if not root.is_dir():
        raise UsageError(f"output dir not found: {root}")
    rules = recorded_rules(root, manifest)
    options = FetchOptions(output_dir=root)
    if rules is not None:
        options = options.with_rules(rules)
    if adjust is not None:
        options = adjust(options)
    options = replace(
        options, output_dir=root, manifest=None, stream_to=None, overwrite=False, update=False
    )
    log.debug("retrying %d failed rows of %d in %s", summary.failed, summary.rows, manifest)
    with Job(options, stats=stats, check_interrupt=check_interrupt, retry_of=manifest) as job:
        plan = _Plan(job, manifest, root, rules is not None)
        out = ManifestRewrite(manifest)
        merge = _Merge(read_manifest(manifest), plan, out)
        complete = False
        try:
            batches = job.run(_sources(manifest, plan))
            try:
                for results in batches:
                    yield merge.add(results)
            finally:
                batches.close()
            yield from merge.finish()
            complete = True
        finally:
            _complete_or_leave(manifest, summary.rows, merge, out, complete)


def _complete_or_leave(
    manifest: Path, rows: int, merge: _Merge, out: ManifestRewrite, complete: bool
) -> None:
    """Put the rewritten manifest in place if it holds every row, else leave the old one."""
    try:
        if not complete:
            try:
                merge.rest()
            except Exception as exc:  # the old rows cannot be written out: keep the old file
                log.warning("%s is left as it was: %s", manifest, exc)
    finally:
        if merge.written == rows:
            try:
                out.commit()
            except OSError as exc:
                raise FetcherError(
                    f"cannot rewrite {manifest} ({exc.strerror}); it is left as it was"
                ) from None
        else:
            out.abandon()
