"""`fetcher retry MANIFEST`: the failed rows again, under the rules their run recorded, the
manifest rewritten complete or left as it was."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fetcher.cli.args import SharedArgs
from fetcher.cli.env import Environment
from fetcher.cli.exit import ExitStatus
from fetcher.cli.interrupts import Interrupts
from fetcher.cli.runner import drive
from fetcher.manifest import check_manifest
from fetcher.options import FetchOptions
from fetcher.retry import output_dir_of, retry_batches
from fetcher.stats import Stats


@dataclass(frozen=True)
class RetryCommand:
    env: Environment
    shared: SharedArgs
    manifest: Path
    output_dir: Path
    progress: bool

    @classmethod
    def build(
        cls,
        env: Environment,
        shared: SharedArgs,
        *,
        manifest: Path,
        output_dir: Path | None,
        progress: bool,
    ) -> RetryCommand:
        """A file that is not a manifest, or a manifest whose output dir cannot be told, is
        a usage error found before anything is written."""
        shared.apply(FetchOptions())  # bad values fail here, not half-way
        check_manifest(manifest)
        return cls(env, shared, manifest, output_dir or output_dir_of(manifest), progress)

    def run(self, interrupts: Interrupts) -> ExitStatus:
        stats = Stats()
        batches = retry_batches(
            self.manifest,
            self.output_dir,
            self.shared.apply,
            stats=stats,
            check_interrupt=interrupts.check,
        )
        return drive(
            batches,
            self.env,
            stats,
            progress=self.progress,
            workers=self.shared.workers or FetchOptions().workers,
            manifest=str(self.manifest),
        )
