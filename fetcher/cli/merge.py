"""`fetcher merge MANIFEST... -o OUT`: the shards' manifests as one, and what is missing."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from fetcher.cli.env import Environment
from fetcher.cli.exit import ExitStatus
from fetcher.cli.interrupts import Interrupts
from fetcher.cli.summary import plural
from fetcher.shards import describe, merge_manifests


@dataclass(frozen=True)
class MergeCommand:
    env: Environment
    manifests: tuple[Path, ...]
    output: Path

    @classmethod
    def build(cls, env: Environment, manifests: tuple[Path, ...], output: Path) -> MergeCommand:
        return cls(env, manifests, output)

    def run(self, interrupts: Interrupts) -> ExitStatus:
        report = merge_manifests(self.manifests, self.output)
        if logging.getLogger("fetcher").isEnabledFor(logging.WARNING) or not report.complete:
            lines = [f"Merged {plural(report.rows, 'row')} into {self.output}."]
            lines += [f"fetcher: {line}" for line in describe(report)]
            self.env.stderr.write("\n".join(lines) + "\n")
            self.env.stderr.flush()
        return ExitStatus.OK if report.complete else ExitStatus.FAILURES
