"""Deterministic shards, for schedulers without Dask (cron, a SLURM job array, CI jobs): run
`K` of `N` fetches the items whose global index `i` has `i % N == K`, keeping that index;
N runs with K = 0..N-1 cover the list exactly once, each shard spread evenly over the list.
`merge_manifests` joins the shards' manifests back into one, in input order, and says
which indices are missing or came twice."""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fetcher.errors import UsageError
from fetcher.manifest import ManifestRewrite, check_manifest, read_manifest
from fetcher.sources import Source

SHOWN_GAPS = 10


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise UsageError(f"--shard K/N needs 0 <= K < N, not {self.index}/{self.count}")

    def holds(self, index: int) -> bool:
        return index % self.count == self.index

    def of(self, sources: Iterable[Source]) -> Iterator[Source]:
        """This shard's sources, with their global indexes."""
        return (source for source in sources if self.holds(source.index))

    def share(self, total: int) -> int:
        """How many of `total` items are this shard's."""
        return total // self.count + (self.index < total % self.count)


def parse_shard(text: str) -> Shard:
    """'K/N' as given to --shard."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None:
        raise UsageError(f"--shard takes K/N (shard K of N, from 0), not {text!r}")
    return Shard(int(match.group(1)), int(match.group(2)))


@dataclass
class MergeReport:
    rows: int = 0
    missing: list[tuple[int, int]] = field(default_factory=list)
    """Runs of absent indices, as (first, last), between 0 and the last index seen."""
    duplicates: list[int] = field(default_factory=list)
    """Indices found in more than one manifest (the first one's row is kept)."""

    @property
    def complete(self) -> bool:
        return not self.missing and not self.duplicates

    def missing_count(self) -> int:
        return sum(last - first + 1 for first, last in self.missing)


def merge_manifests(manifests: Iterable[Path], out: Path) -> MergeReport:
    """Join manifests into `out` (JSON Lines, or CSV for a `.csv` path) in input order. Each
    input is checked first; `out` appears only once complete (it may be one of them)."""
    inputs = list(manifests)
    if not inputs:
        raise UsageError("name the manifests to merge")
    for path in inputs:
        check_manifest(path)
    report = MergeReport()
    rewrite = ManifestRewrite(out)
    try:
        expected = 0
        for row in heapq.merge(*(read_manifest(p) for p in inputs), key=lambda r: r.index):
            if row.index < expected:
                report.duplicates.append(row.index)
                continue
            if row.index > expected:
                report.missing.append((expected, row.index - 1))
            rewrite.write_all((row,))
            report.rows += 1
            expected = row.index + 1
        rewrite.commit()
    except BaseException:
        rewrite.abandon()
        raise
    return report


def describe(report: MergeReport) -> list[str]:
    """What the merge found wrong, for people."""
    lines = []
    if report.missing:
        shown = ", ".join(
            str(first) if first == last else f"{first}-{last}"
            for first, last in report.missing[:SHOWN_GAPS]
        )
        more = ", ..." if len(report.missing) > SHOWN_GAPS else ""
        lines.append(f"missing: {_indices(report.missing_count())} ({shown}{more})")
    if report.duplicates:
        shown = ", ".join(map(str, report.duplicates[:SHOWN_GAPS]))
        more = ", ..." if len(report.duplicates) > SHOWN_GAPS else ""
        lines.append(f"duplicated: {_indices(len(report.duplicates))} ({shown}{more})")
    return lines


def _indices(count: int) -> str:
    return f"{count} index" if count == 1 else f"{count} indices"
