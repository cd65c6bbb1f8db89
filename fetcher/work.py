"""What a worker is given (`WorkItem`) and what it hands back: one small type per outcome,
matched on by the ordered committer. Outcomes are plain (unfrozen, slotted) records: the
worker fills in their attempts and time as it ends them, and cheaply."""

from __future__ import annotations

from dataclasses import dataclass

from fetcher.results import ErrorInfo
from fetcher.sources import Source
from fetcher.state import Completed, Validators
from fetcher.temps import CompleteTemp


@dataclass(frozen=True)
class WorkItem:
    """One source and what the state store knew of it when it was handed out. The store
    is read by the process that keeps the order, so workers (threads, processes, machines
    of a cluster) never need to read it."""

    source: Source
    completed: Completed | None = None
    """Its output from an earlier run, still in place (None with --overwrite)."""
    resume_from: str | None = None
    """The validator of a partial download an earlier run left for it, to continue."""


@dataclass(slots=True)
class Fetched:
    """A complete, verified body in a temp file, waiting for its final name."""

    source: Source
    temp: CompleteTemp
    dirs: tuple[str, ...]
    """Folders of its path below the output dir (the `mirror` layout, a `path` column)."""
    name: str
    """The name it asks for; the committer may give it `name.N` on a collision."""
    http_status: int | None
    validators: Validators
    attempts: int
    elapsed_s: float = 0.0


@dataclass(slots=True)
class AlreadyDone:
    """Its output from an earlier run stands: skipped, or `unchanged` by a conditional GET
    (or by a local file's size and mtime) under --update."""

    source: Source
    completed: Completed
    unchanged: bool
    http_status: int | None
    attempts: int = 0
    elapsed_s: float = 0.0


@dataclass(slots=True)
class Failed:
    source: Source
    error: ErrorInfo
    http_status: int | None = None
    """The last status received, if any response came (also for errors after it)."""
    attempts: int = 0
    elapsed_s: float = 0.0


@dataclass(slots=True)
class Stopped:
    """The run stopped before the item finished: it is not reported, and the manifest ends
    before it."""

    source: Source
    attempts: int = 0
    elapsed_s: float = 0.0


Outcome = Fetched | AlreadyDone | Failed | Stopped
