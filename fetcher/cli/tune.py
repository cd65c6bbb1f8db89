"""`fetcher tune LIST...`: trials on a sample of the list, reported as they finish, then a
table and one recommendation."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fetcher.adaptive import usable_cpus
from fetcher.cli.args import SharedArgs
from fetcher.cli.env import Environment
from fetcher.cli.exit import ExitStatus
from fetcher.cli.interrupts import Interrupts
from fetcher.errors import UsageError
from fetcher.filesystems import ext4_without_journal
from fetcher.lists import check_lists, read_lists
from fetcher.options import FetchOptions
from fetcher.sources import Source
from fetcher.tune import (
    COUNT_LIMIT,
    PROCESSES_SAMPLE,
    Forecast,
    Trial,
    TrialFolders,
    processes_to_try,
    recommend,
    run_trials,
    settings,
    table,
)


@dataclass(frozen=True)
class TuneCommand:
    env: Environment
    items: list[Source]
    """The sample, and after it the rest of what the processes trial fetches."""
    sample: int
    options: FetchOptions
    repeats: int
    forecast: Forecast

    @classmethod
    def build(
        cls,
        env: Environment,
        shared: SharedArgs,
        *,
        lists: tuple[str, ...],
        sample: int,
        repeats: int,
        output_dir: Path | None,
    ) -> TuneCommand:
        if sample < 1:
            raise UsageError("--sample must be at least 1")
        if repeats < 1:
            raise UsageError("--repeat must be at least 1")
        # No trial pays for starting fetcher itself (an interpreter, its imports), a real
        # run does: this process's CPU so far is that cost.
        launch_s = time.process_time()
        options = shared.apply(FetchOptions(output_dir=output_dir or Path()))
        check_lists(lists)
        stream = read_lists(lists, env.stdin)
        items = list(itertools.islice(stream, sample * PROCESSES_SAMPLE))
        if not items:
            raise UsageError("the lists hold no items to sample")
        counted = len(items) + sum(1 for _ in itertools.islice(stream, COUNT_LIMIT))
        forecast = Forecast(min(counted, COUNT_LIMIT), counted > COUNT_LIMIT, launch_s)
        return cls(env, items, min(sample, len(items)), options, repeats, forecast)

    def _say(self, line: str) -> None:
        self.env.stderr.write(line + "\n")
        self.env.stderr.flush()

    def run(self, interrupts: Interrupts) -> ExitStatus:
        self._say(f"Sampling {self.sample} items per trial, each setting {self.repeats} times...")
        with TrialFolders(self.options.output_dir) as folders:
            trials = self._trials(
                run_trials(
                    self.items[: self.sample],
                    self.options,
                    folders,
                    interrupts.check,
                    repeats=self.repeats,
                )
            )
            if all(t.failed == t.items for t in trials):
                self._say(
                    "fetcher: every item of the sample failed in every trial; nothing to"
                    " recommend (check the list with `fetcher fetch`)"
                )
                return ExitStatus.FAILURES
            best = recommend(settings(trials), self.forecast)
            processes = processes_to_try(best, usable_cpus())
            if processes is not None:
                self._say(
                    f"  CPU-bound at -j {best.workers}: the same on 1 and {processes} processes,"
                    f" {len(self.items)} items per trial"
                )
                trials += self._trials(
                    run_trials(
                        self.items,
                        self.options,
                        folders,
                        interrupts.check,
                        workers_grid=[best.workers],
                        chunksize_grid=[best.chunksize],
                        processes_grid=[1, processes],
                        repeats=self.repeats,
                    )
                )
        measured = settings(trials)
        # With a processes trial, threads and processes are judged on the same items.
        finalists = [m for m in measured if processes is None or m.items == len(self.items)]
        choice = recommend(finalists, self.forecast)
        text = table(measured, choice, self.forecast)
        if ext4_without_journal(self.options.output_dir):
            text += (
                f"\nThe output dir ({self.options.output_dir.absolute()}) is on an ext4 file"
                " system without a journal:"
                " there, for one to six minutes after many files were deleted (this tune's"
                " trial files too), creating files is slower, and a run may fall well short"
                " of this forecast."
            )
        self.env.stdout.write((text + "\n").encode())
        self.env.stdout.flush()
        return ExitStatus.OK

    def _trials(self, trials: Iterable[Trial]) -> list[Trial]:
        """The trials, each reported on stderr as it finishes."""
        done = []
        for trial in trials:
            processes = f" --processes {trial.processes}" if trial.processes > 1 else ""
            self._say(
                f"  -j {trial.workers:>2} --chunksize {trial.chunksize or 'auto'}{processes}:"
                f" {trial.items_per_s:.0f} items/s"
            )
            done.append(trial)
        return done
