"""`fetcher fetch LIST...`: the lists' items fetched into the output dir (or to stdout), a
manifest row each, in input order."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from fetcher.cli.args import SharedArgs
from fetcher.cli.env import Environment
from fetcher.cli.exit import ExitStatus
from fetcher.cli.interrupts import Interrupts
from fetcher.cli.runner import drive
from fetcher.cookies import load_cookies
from fetcher.errors import UsageError
from fetcher.job import Job
from fetcher.lists import check_lists, count_items, read_lists
from fetcher.options import FetchOptions, parse_checksum, parse_layout
from fetcher.shards import Shard, parse_shard
from fetcher.sources import Source
from fetcher.stats import Stats
from fetcher.tables import parse_input_format
from fetcher.temps import STATE_DIR

DEFAULT_MANIFEST = "manifest.jsonl"


@dataclass(frozen=True)
class FetchCommand:
    env: Environment
    options: FetchOptions
    lists: tuple[str, ...]
    sources: Iterator[Source]
    progress: bool
    shard: Shard | None

    @classmethod
    def build(
        cls,
        env: Environment,
        shared: SharedArgs,
        *,
        lists: tuple[str, ...],
        output_dir: Path | None,
        manifest: Path | None,
        layout: str,
        stdout: bool,
        overwrite: bool,
        update: bool,
        checksum: str | None,
        input_format: str,
        shard: str | None,
        progress: bool,
    ) -> FetchCommand:
        """Everything that can be checked is checked here, before anything is written."""
        if stdout and output_dir is not None:
            raise UsageError("--stdout keeps no files: drop --output-dir (or drop --stdout)")
        root = output_dir or Path()
        if manifest is None and not stdout:
            manifest = root / STATE_DIR / DEFAULT_MANIFEST
        options = shared.apply(
            FetchOptions(
                output_dir=root,
                layout=parse_layout(layout),
                overwrite=overwrite,
                update=update,
                stream_to=env.stdout if stdout else None,
                manifest=manifest,
            )
        )
        if options.cookies is not None:
            load_cookies(options.cookies)  # a file that is not a cookie file: usage error
        check_lists(lists)
        sources = read_lists(lists, env.stdin, parse_input_format(input_format))
        part = None if shard is None else parse_shard(shard)
        if part is not None:
            sources = part.of(sources)
        if checksum is not None:
            sources = _single_with_checksum(sources, parse_checksum(checksum))
        return cls(env, options, lists, sources, progress, part)

    def run(self, interrupts: Interrupts) -> ExitStatus:
        stats = Stats()
        options = self.options
        with Job(options, stats=stats, check_interrupt=interrupts.check) as job:
            return drive(
                job.run(self.sources),
                self.env,
                stats,
                progress=self.progress,
                workers=options.workers,
                manifest=None if options.manifest is None else str(options.manifest),
                count=self._count,
            )

    def _count(self) -> int | None:
        total = count_items(self.lists)
        return total if total is None or self.shard is None else self.shard.share(total)


def _single_with_checksum(sources: Iterator[Source], checksum: tuple[str, str]) -> Iterator[Source]:
    """The one item of the list, with the expected digest; read now, so that a list of more
    items is a usage error before anything is written."""
    head = list(itertools.islice(sources, 2))
    if len(head) != 1:
        many = "no items" if not head else "more than one item"
        raise UsageError(f"--checksum needs a list of exactly one item; this one has {many}")
    return iter([replace(head[0], checksums=(checksum,))])
