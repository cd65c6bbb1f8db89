"""What `fetcher fetch` does once its options are parsed: a job plus the manifest, the
progress bar, the end-of-run summary and the exit status."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from fetcher.errors import UsageError
from fetcher.job import Job
from fetcher.lists import check_lists, count_items, read_lists
from fetcher.manifest import ManifestWriter
from fetcher.options import FetchOptions, Layout, RetryPolicy, parse_header, parse_size
from fetcher.progress import ProgressBar, Stats, Tally
from fetcher.results import Status
from fetcher.writing import STATE_DIR

DEFAULT_MANIFEST = "manifest.jsonl"


@dataclass(frozen=True)
class Request:
    """A validated `fetch` command line."""

    lists: tuple[str, ...]
    options: FetchOptions
    manifest: Path | None
    progress: bool

    @classmethod
    def build(
        cls,
        *,
        lists: list[str],
        output_dir: Path | None,
        workers: int,
        chunksize: str,
        manifest: Path | None,
        layout: Layout,
        retries: int,
        timeout: float,
        stdout: bool,
        overwrite: bool,
        headers: list[str],
        max_size: str | None,
        insecure: bool,
        ca_bundle: Path | None,
        progress: bool,
    ) -> Request:
        """Check everything that can be checked before any work starts."""
        check_lists(lists)
        if stdout and output_dir is not None:
            raise UsageError("--stdout keeps no files: drop --output-dir (or drop --stdout)")
        if insecure and ca_bundle is not None:
            raise UsageError("--insecure and --ca-bundle contradict each other")
        if ca_bundle is not None and not ca_bundle.is_file():
            raise UsageError(f"CA bundle not found: {ca_bundle}")
        if chunksize != "auto" and not chunksize.isdigit():
            raise UsageError(f"--chunksize must be 'auto' or a number, not {chunksize!r}")
        root = output_dir or Path()
        options = FetchOptions(
            output_dir=root,
            workers=workers,
            chunksize=None if chunksize == "auto" else int(chunksize),
            layout=layout,
            retry=RetryPolicy(retries=retries),
            timeout_s=timeout,
            overwrite=overwrite,
            headers=tuple(parse_header(h) for h in headers),
            max_size=None if max_size is None else parse_size(max_size),
            verify=False if insecure else (str(ca_bundle) if ca_bundle else True),
            stream_to=sys.stdout.buffer if stdout else None,
        )
        if manifest is None and not stdout:
            manifest = root / STATE_DIR / DEFAULT_MANIFEST
        return cls(tuple(lists), options, manifest, progress)


def run(request: Request) -> int:
    """Run the job; KeyboardInterrupt (and its SIGTERM subclass) propagate after the
    manifest and summary are finished, so the caller maps them to 130/143."""
    if request.options.verify is False:
        print("fetcher: warning: TLS certificates are not verified (--insecure)", file=sys.stderr)
    stats = Stats()
    tally = Tally()
    bar = ProgressBar(stats, sys.stderr) if request.progress else None
    if bar is not None:
        threading.Thread(
            target=lambda: bar.set_total(count_items(request.lists)),
            name="fetcher-count",
            daemon=True,
        ).start()
    writer = ManifestWriter(request.manifest) if request.manifest else None
    interrupted = False
    try:
        with Job(request.options, stats) as job:
            for result in job.run(read_lists(request.lists, sys.stdin.buffer)):
                if writer is not None:
                    writer.write(result)
                tally.add(result)
            interrupted = job.stop.is_set()
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
        manifest = str(request.manifest) if request.manifest else None
        print(tally.summary(manifest, interrupted), file=sys.stderr)
    return 1 if tally.statuses[Status.FAILED] else 0
