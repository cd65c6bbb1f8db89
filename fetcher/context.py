"""The run context: what every worker of one run shares, built once by the job (or, in a
worker process or on a cluster worker, from the `RunSpec` the job sends there)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from fetcher.cookies import SharedJar
from fetcher.options import FetchOptions
from fetcher.state import PartialsLog
from fetcher.stats import Stats
from fetcher.temps import STATE_DIR, LiveTemps, remove_stale_temps


@dataclass(frozen=True)
class RunContext:
    """One run, as its workers see it."""

    options: FetchOptions
    root: Path
    """The output dir (absolute), or the spool folder of a --stdout run: where temps go."""
    store: PartialsLog | None
    """Where workers register partial downloads for a later run (None: no state kept)."""
    live: LiveTemps = field(default_factory=LiveTemps)
    """Temp files being written, removed if the run stops."""
    stats: Stats = field(default_factory=Stats)
    stop: threading.Event = field(default_factory=threading.Event)
    """Set when the run stops: workers abandon their items at the next safe point."""
    cookies: SharedJar = field(default_factory=SharedJar)
    """The run's cookie jar, shared by its threads."""

    def remove_stray_temps(self) -> None:
        """After a stop: temps that other processes (or machines) were writing, which this
        one never saw; the partial downloads registered for a later run stay."""
        keep = frozenset() if self.store is None else self.store.partial_temps()
        remove_stale_temps(self.root, keep=keep)

    def spec(self, options: FetchOptions | None = None) -> RunSpec:
        """What another process needs to join this run (with its own share of `options`)."""
        return RunSpec(options or self.options, self.root, self.store is not None)


@dataclass(frozen=True)
class RunSpec:
    """A run, as it crosses to a worker process or a cluster worker (picklable)."""

    options: FetchOptions
    root: Path
    keeps_state: bool
    """Whether the run has a state store there to register partial downloads in."""

    def open(self) -> RunContext:
        """A context of the worker's own: its stop, stats and temps, the same store."""
        store = PartialsLog(self.root / STATE_DIR) if self.keeps_state else None
        return RunContext(self.options, self.root, store)
