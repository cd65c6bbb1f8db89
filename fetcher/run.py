"""What `fetcher fetch` and `fetcher retry` do once their options are parsed: a job plus the
manifest, the progress bar, the end-of-run summary and the exit status."""

from __future__ import annotations

import csv
import itertools
import json
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fetcher.errors import UsageError
from fetcher.interrupts import Interrupts
from fetcher.job import Job
from fetcher.lists import check_lists, count_items, read_lists
from fetcher.manifest import ManifestWriter
from fetcher.options import (
    FetchOptions,
    Layout,
    RetryPolicy,
    parse_checksum,
    parse_header,
    parse_rate,
    parse_size,
)
from fetcher.progress import ProgressBar, Stats, Tally
from fetcher.results import ErrorInfo, Result, Status
from fetcher.sources import Source, parse_source
from fetcher.tables import ListFormat
from fetcher.writing import STATE_DIR

if TYPE_CHECKING:
    from fetcher.tune import Trial

DEFAULT_MANIFEST = "manifest.jsonl"


@dataclass(frozen=True)
class Settings:
    """The validated options both commands share."""

    options: FetchOptions
    manifest: Path | None
    progress: bool

    @classmethod
    def build(
        cls,
        *,
        output_dir: Path | None,
        workers: int,
        processes: int,
        chunksize: str,
        layout: Layout,
        retries: int,
        retry_wait: float,
        retry_max_wait: float,
        retry_on: str,
        timeout: float,
        deadline: float | None,
        header: list[str] | None,
        max_size: str | None,
        per_host: int,
        rate: str | None,
        insecure: bool,
        ca_bundle: Path | None,
        overwrite: bool,
        update: bool,
        stdout: bool,
        manifest: Path | None,
        progress: bool,
    ) -> Settings:
        """Check everything that can be checked before any work starts."""
        if stdout and output_dir is not None:
            raise UsageError("--stdout keeps no files: drop --output-dir (or drop --stdout)")
        if chunksize != "auto" and not chunksize.isdigit():
            raise UsageError(f"--chunksize must be 'auto' or a number, not {chunksize!r}")
        root = output_dir or Path()
        options = FetchOptions(
            output_dir=root,
            workers=workers,
            processes=processes,
            chunksize=None if chunksize == "auto" else int(chunksize),
            layout=layout,
            retry=RetryPolicy(
                retries=retries,
                backoff_s=retry_wait,
                max_wait_s=retry_max_wait,
                statuses=_statuses(retry_on),
            ),
            timeout_s=timeout,
            deadline_s=deadline,
            overwrite=overwrite,
            update=update,
            headers=parse_headers(header),
            max_size=None if max_size is None else parse_size(max_size),
            per_host=per_host,
            rate=None if rate is None else parse_rate(rate),
            verify=tls_verify(insecure, ca_bundle),
            stream_to=sys.stdout.buffer if stdout else None,
        )
        if manifest is None and not stdout:
            manifest = root / STATE_DIR / DEFAULT_MANIFEST
        return cls(options, manifest, progress)


def parse_headers(headers: list[str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(parse_header(h) for h in headers or [])


def tls_verify(insecure: bool, ca_bundle: Path | None) -> bool | str:
    """`FetchOptions.verify` from --insecure / --ca-bundle, checked."""
    if insecure and ca_bundle is not None:
        raise UsageError("--insecure and --ca-bundle contradict each other")
    if ca_bundle is not None and not ca_bundle.is_file():
        raise UsageError(f"CA bundle not found: {ca_bundle}")
    return False if insecure else (str(ca_bundle) if ca_bundle else True)


def _statuses(text: str) -> frozenset[int]:
    try:
        codes = frozenset(int(code) for code in text.split(",") if code.strip())
    except ValueError:
        raise UsageError(f"--retry-on takes HTTP status codes like 429,503, not {text!r}") from None
    if any(not 100 <= code <= 599 for code in codes):
        raise UsageError(f"--retry-on: status codes run from 100 to 599: {text!r}")
    return codes


@dataclass(frozen=True)
class FetchCommand:
    """`fetcher fetch LIST...`."""

    settings: Settings
    lists: tuple[str, ...]
    checksum: tuple[str, str] | None
    input_format: ListFormat

    @classmethod
    def build(
        cls,
        settings: Settings,
        lists: list[str],
        checksum: str | None,
        input_format: ListFormat,
    ) -> FetchCommand:
        check_lists(lists)
        parsed = None if checksum is None else parse_checksum(checksum)
        return cls(settings, tuple(lists), parsed, input_format)

    def run(self, interrupts: Interrupts) -> int:
        settings = self.settings
        sources = read_lists(self.lists, sys.stdin.buffer, self.input_format)
        if self.checksum is not None:
            sources = _single_with_checksum(sources, self.checksum)
        stats = Stats()
        with Job(
            settings.options, stats, manifest=settings.manifest, check_interrupt=interrupts.check
        ) as job:
            return _report(
                settings, stats, lambda flush: job.run(sources, flush),
                manifest=settings.manifest, lists=self.lists,
            )  # fmt: skip


def _single_with_checksum(sources: Iterator[Source], checksum: tuple[str, str]) -> Iterator[Source]:
    head = list(itertools.islice(sources, 2))
    if len(head) != 1:
        raise UsageError(f"--checksum needs a list of exactly one item, not {len(head)}+")
    yield replace(head[0], checksums=(checksum,))


@dataclass(frozen=True)
class RetryCommand:
    """`fetcher retry MANIFEST`: the failed rows again, merged back in input order."""

    settings: Settings

    @staticmethod
    def default_output_dir(manifest: Path) -> Path:
        parent = manifest.absolute().parent
        return parent.parent if parent.name == STATE_DIR else Path()

    @classmethod
    def build(cls, settings: Settings) -> RetryCommand:
        manifest = settings.manifest
        if manifest is None or not manifest.is_file():
            raise UsageError(f"manifest not found: {manifest}")
        return cls(settings)

    def run(self, interrupts: Interrupts) -> int:
        settings = self.settings
        manifest = settings.manifest
        assert manifest is not None
        # Same suffix as the manifest: the suffix decides the format (JSON Lines or CSV).
        merged = manifest.with_name(f"{manifest.stem}.retry-tmp{manifest.suffix}")
        stats = Stats()
        try:
            with Job(
                settings.options,
                stats,
                manifest=manifest,
                retrying=True,
                check_interrupt=interrupts.check,
            ) as job:
                failed = (
                    job.failed_source(row["index"]) or _reparse(row)
                    for row in read_manifest(manifest)
                    if row["status"] == Status.FAILED.value
                )
                merge = Merge(read_manifest(manifest))
                return _report(
                    settings, stats, lambda flush: merge.rows(job.run(failed, flush)),
                    manifest=merged, lists=None, rest=merge.rest,
                )  # fmt: skip
        finally:
            if merged.exists():
                os.replace(merged, manifest)


class Merge:
    """Walks the earlier manifest and the retry's results together, both in input order:
    failed rows are replaced by their new result, the others are kept as they were."""

    def __init__(self, earlier: Iterator[dict[str, Any]]) -> None:
        self._earlier = earlier

    def rows(self, retried: Iterator[Result]) -> Iterator[Result]:
        for row in self._earlier:
            if row["status"] == Status.FAILED.value:
                result = next(retried, None)
                if result is None or result.index != row["index"]:
                    raise UsageError(f"manifest changed while retrying (row {row['index']})")
                yield replace(result, extra={**_row_result(row).extra, **result.extra})
            else:
                yield _row_result(row)

    def rest(self) -> Iterator[Result]:
        """After an interruption: every row not yet written, as it was."""
        return (_row_result(row) for row in self._earlier)


@dataclass(frozen=True)
class TuneCommand:
    """`fetcher tune LIST...`."""

    lists: tuple[str, ...]
    sample: int
    options: FetchOptions

    @classmethod
    def build(cls, lists: list[str], sample: int, given: dict[str, Any]) -> TuneCommand:
        check_lists(lists)
        if sample < 1:
            raise UsageError("--sample must be at least 1")
        options = FetchOptions(
            timeout_s=given["timeout"],
            per_host=given["per_host"],
            headers=parse_headers(given["header"]),
            verify=tls_verify(given["insecure"], given["ca_bundle"]),
            retry=RetryPolicy(retries=0),
        )
        return cls(tuple(lists), sample, options)

    def run(self, interrupts: Interrupts) -> int:
        from fetcher.tune import processes_to_try, recommend, run_trials, table, usable_cpus

        sources = read_lists(self.lists, sys.stdin.buffer)
        sample = list(itertools.islice(sources, self.sample))
        if not sample:
            raise UsageError("the lists hold no items to sample")
        print(f"Sampling {len(sample)} items per trial...", file=sys.stderr)
        trials = self._trials(run_trials(sample, self.options, interrupts.check))
        if all(t.failed == t.items for t in trials):
            print("fetcher: every item of the sample failed in every trial; nothing to"
                  " recommend (check the list with `fetcher fetch`)", file=sys.stderr)  # fmt: skip
            return 1
        best = recommend(trials)
        processes = processes_to_try(best, usable_cpus())
        if processes is not None:
            print(f"  CPU-bound at -j {best.workers}: one more trial on {processes} processes",
                  file=sys.stderr)  # fmt: skip
            more = run_trials(
                sample,
                self.options,
                interrupts.check,
                workers_grid=[best.workers],
                chunksize_grid=[None],  # chunksize 1 would cross processes per item
                processes=processes,
            )
            trials += self._trials(more)
        print(table(trials, recommend(trials)))
        return 0

    @staticmethod
    def _trials(trials: Iterable[Trial]) -> list[Trial]:
        """The trials, each reported on stderr as it finishes."""
        done = []
        for trial in trials:
            processes = f" --processes {trial.processes}" if trial.processes > 1 else ""
            print(
                f"  -j {trial.workers:>2} --chunksize {trial.chunksize or 'auto'}{processes}:"
                f" {trial.items_per_s:.0f} items/s",
                file=sys.stderr,
            )
            done.append(trial)
        return done


def _reparse(row: dict[str, Any]) -> Source:
    """A failed row the state store does not know (another output dir): from its text."""
    return parse_source(str(row["source"]), int(row["index"]), Path.cwd())


def read_manifest(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSONL or CSV manifest, one at a time."""
    with path.open(encoding="utf-8", newline="") as handle:
        if path.suffix.lower() != ".csv":
            for line in handle:
                if line.strip():
                    yield json.loads(line)
            return
        for row in csv.DictReader(handle):
            yield _csv_row(row)


def _csv_row(row: dict[str, str]) -> dict[str, Any]:
    """A CSV manifest row back into the manifest's JSON shape."""
    error = None
    if row.get("error_type"):
        error = {"type": row["error_type"], "message": row.get("error_message", "")}
    out: dict[str, Any] = {
        "index": int(row["index"]),
        "source": row["source"],
        "path": row["path"] or None,
        "status": row["status"],
        "bytes": int(row["bytes"] or 0),
        "sha256": row["sha256"] or None,
        "http_status": int(row["http_status"]) if row["http_status"] else None,
        "attempts": int(row["attempts"] or 0),
        "elapsed_s": float(row["elapsed_s"] or 0),
        "error": error,
    }
    if row.get("extra"):
        out.update(json.loads(row["extra"]))
    return out


def _row_result(row: dict[str, Any]) -> Result:
    """An earlier manifest row, unchanged, as a Result (for the merged manifest)."""
    error = row.get("error")
    known = {"index", "source", "path", "status", "bytes", "sha256", "http_status",
             "attempts", "elapsed_s", "error"}  # fmt: skip
    return Result(
        index=row["index"], source=row["source"], path=row["path"], status=Status(row["status"]),
        bytes=row["bytes"], sha256=row["sha256"], http_status=row["http_status"],
        attempts=row["attempts"], elapsed_s=row["elapsed_s"],
        error=None if error is None else ErrorInfo(error["type"], error["message"]),
        extra={k: v for k, v in row.items() if k not in known},
    )  # fmt: skip


def _report(
    settings: Settings,
    stats: Stats,
    results_for: Callable[[Callable[[], None]], Iterator[Result]],
    *,
    manifest: Path | None,
    lists: tuple[str, ...] | None,
    rest: Callable[[], Iterator[Result]] | None = None,
) -> int:
    """Write the manifest in order (flushed whenever the job waits for more results), show
    progress and the summary, and give the exit status.
    KeyboardInterrupt (and its SIGTERM subclass) propagates once the manifest is consistent:
    an in-order prefix, or, with `rest`, every row."""
    if settings.options.verify is False:
        print("fetcher: warning: TLS certificates are not verified (--insecure)", file=sys.stderr)
    tally = Tally()
    bar = ProgressBar(stats, sys.stderr) if settings.progress else None
    if bar is not None and lists is not None:
        threading.Thread(
            target=lambda: bar.set_total(count_items(lists)), name="fetcher-count", daemon=True
        ).start()
    writer = ManifestWriter(manifest) if manifest else None
    interrupted = False
    try:
        for result in results_for(writer.flush if writer else lambda: None):
            if writer is not None:
                writer.write(result)
            tally.add(result)
    except KeyboardInterrupt:
        interrupted = True
        if rest is not None and writer is not None:
            for result in rest():
                writer.write(result)
        raise
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
        shown = str(settings.manifest) if settings.manifest else None
        print(tally.summary(shown, interrupted), file=sys.stderr)
    return 1 if tally.statuses[Status.FAILED] else 0
