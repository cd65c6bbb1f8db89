"""The ordered committer: turns worker outcomes into results, in input order, a batch at a
time.

Final names are decided only here, so collisions resolve by input order (never by which
download finished first) and the same list always gives the same names, whatever `-j` is.
A batch's names, claims and store records are committed in one transaction *before* any of
its files is renamed into place: a crash in between leaves records whose inode does not
match, so those items are fetched again under the same names.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from fetcher.errors import ItemError, OutputClosed
from fetcher.naming import with_counter
from fetcher.results import ErrorInfo, Result, Status
from fetcher.sources import Source, source_to_json
from fetcher.state import StateStore, StoreWriteError
from fetcher.temps import CompleteTemp, make_dir, place
from fetcher.work import AlreadyDone, Failed, Fetched, Outcome, Stopped

FOLDERS_CACHED = 65_536
"""Folders resolved by this run (made, or found in place), so a mirror of many files in
few folders does not ask the file system again for every file."""


@dataclass(frozen=True)
class FailureLog:
    """Where failed items are remembered for `fetcher retry`: one manifest's entries in the
    state store."""

    store: StateStore
    manifest: str

    def note(self, source: Source) -> None:
        self.store.remember_failure(self.manifest, source.index, source_to_json(source))


def result_of(
    outcome: Outcome, path: str | None = None, failure: ErrorInfo | None = None
) -> Result:
    """The manifest row of an outcome: a fetched one placed at `path`, or failed while it
    was being committed (`failure`: its size and digest are kept, it has no path)."""
    source = outcome.source
    state: Status
    size, sha256, error = 0, None, failure
    match outcome:
        case AlreadyDone(completed=done, unchanged=unchanged, http_status=status):
            state = Status.UNCHANGED if unchanged else Status.SKIPPED
            path, size, sha256 = done.path, done.bytes, done.sha256
        case Failed(error=error, http_status=status):
            state, path = Status.FAILED, None
        case Fetched(temp=temp, http_status=status):
            state = Status.OK if failure is None else Status.FAILED
            size, sha256 = temp.size, temp.sha256
            if failure is not None:
                path = None
        case Stopped():
            raise ValueError("a stopped item has no result")
    return Result(
        source.index, source.shown, path, state, size, sha256, status, outcome.attempts,
        outcome.elapsed_s, error, dict(source.extra) if source.extra else {},
    )  # fmt: skip


@dataclass
class _Step:
    """One outcome on its way to a result: `rel` is where its temp file goes, `failure`
    what went wrong while committing it."""

    outcome: Outcome
    rel: str | None = None
    failure: ErrorInfo | None = None

    @property
    def placing(self) -> bool:
        """A fetched body still on its way to its final name."""
        return isinstance(self.outcome, Fetched) and self.failure is None

    @property
    def failed(self) -> bool:
        return isinstance(self.outcome, Failed) or self.failure is not None

    def result(self) -> Result:
        return result_of(self.outcome, self.rel, self.failure)


class Committer:
    """Places complete downloads under their final names, or streams them out in order."""

    def __init__(
        self,
        root: Path,
        store: StateStore | None,
        stream: BinaryIO | None,
        failures: FailureLog | None = None,
    ) -> None:
        self._root = os.fspath(root)
        self._store = store
        self._stream = stream
        self._failures = failures
        self._folders: dict[str, str] = {}

    def commit(self, outcomes: Sequence[Outcome]) -> list[Result]:
        """Results for a batch of outcomes, in the same order."""
        steps = [_Step(o) for o in outcomes]
        if self._store is None:
            for step in steps:
                self._name(step)
        else:
            try:
                with self._store.transaction():
                    for step in steps:
                        self._name(step)
                    self._note_failures(steps)
            except StoreWriteError as exc:
                self._unrecorded(steps, ErrorInfo(exc.error_type, str(exc)))
        moved = [step for step in steps if self._deliver(step)]
        if moved and self._store is not None:
            try:
                with self._store.transaction():  # a rename failed: rare, noted on its own
                    self._note_failures(moved)
            except StoreWriteError:
                pass  # the rows say it failed; only `retry` will not find them
        return [step.result() for step in steps]

    def _unrecorded(self, steps: Sequence[_Step], error: ErrorInfo) -> None:
        """The batch could not be recorded: nothing of it is placed, its temps are freed."""
        for step in steps:
            if isinstance(step.outcome, Fetched):
                step.outcome.temp.discard()
                step.failure = error
            step.rel = None

    def _name(self, step: _Step) -> None:
        """Claim the name of a placed or already present output, within the transaction."""
        outcome = step.outcome
        if isinstance(outcome, AlreadyDone):
            if self._store is not None:
                self._store.claim(outcome.completed.path)
            return
        if not isinstance(outcome, Fetched) or self._store is None:
            return
        try:
            rel = self._choose(outcome)
        except ItemError as exc:
            outcome.temp.discard()
            step.failure = exc.info
            return
        self._store.record(
            path=rel,
            source=outcome.source.target,
            stamp=outcome.temp.stamp,
            sha256=outcome.temp.sha256,
            http_status=outcome.http_status,
            validators=outcome.validators,
        )
        if outcome.temp.resumable:
            self._store.drop_partial(os.path.basename(outcome.temp.path))
        step.rel = rel

    def _deliver(self, step: _Step) -> bool:
        """Rename into place (or stream out); True when that failed and `step` became a
        failure."""
        outcome = step.outcome
        if not isinstance(outcome, Fetched) or not step.placing:
            return False
        temp = outcome.temp
        try:
            if self._stream is not None:
                self._stream_out(temp)
            else:
                assert step.rel is not None
                place(temp, os.path.join(self._root, step.rel))
        except ItemError as exc:
            temp.discard()
            step.failure = exc.info
            return True
        return False

    def _stream_out(self, temp: CompleteTemp) -> None:
        assert self._stream is not None
        try:
            with open(temp.path, "rb") as body:
                shutil.copyfileobj(body, self._stream, 1024 * 1024)
            self._stream.flush()
        except BrokenPipeError:
            temp.discard()
            raise OutputClosed("standard output was closed; stopping") from None
        temp.discard()

    def _note_failures(self, steps: Sequence[_Step]) -> None:
        if self._failures is not None:
            for step in steps:
                if step.failed:
                    self._failures.note(step.outcome.source)

    def _choose(self, outcome: Fetched) -> str:
        """The first free name by input order: not claimed by an earlier item of this run,
        and not an existing file that some other source (or no record at all) owns. On a
        collision the search starts where the last one for that name ended, so each item
        costs one step however many share its name."""
        dirs = self._make_dirs(outcome.dirs)
        wanted = "/".join((*dirs, outcome.name))
        target = outcome.source.target
        if self._free(wanted, target):
            return wanted
        assert self._store is not None
        n = self._store.next_counter(wanted)
        while True:
            rel = "/".join((*dirs, with_counter(outcome.name, n)))
            n += 1
            if self._free(rel, target):
                self._store.set_counter(wanted, n)
                return rel

    def _free(self, rel: str, target: str) -> bool:
        assert self._store is not None
        if not self._store.claim(rel):
            return False
        return (
            not os.path.lexists(os.path.join(self._root, rel)) or self._store.owner(rel) == target
        )

    def _make_dirs(self, parts: tuple[str, ...]) -> tuple[str, ...]:
        """Create the folders of a `mirror` path; a component taken by a file (on disk, or
        claimed by an earlier item whose rename is still to come) or by a symlink gets the
        next counter name, as a file would (`a` → `a.1`). Folders already resolved by this
        run are not asked of the file system again."""
        made: list[str] = []
        for part in parts:
            wanted = "/".join((*made, part))
            rel = self._folders.get(wanted)
            if rel is None:
                rel = self._make_dir(made, part)
                if len(self._folders) >= FOLDERS_CACHED:
                    self._folders.clear()
                self._folders[wanted] = rel
            made = rel.split("/")
        return tuple(made)

    def _make_dir(self, parent: list[str], part: str) -> str:
        assert self._store is not None
        n = 0
        while True:
            rel = "/".join((*parent, with_counter(part, n)))
            if not self._store.is_claimed(rel) and make_dir(Path(self._root, rel)):
                return rel
            n += 1


def stopped_at(outcomes: Sequence[Outcome]) -> int | None:
    """Where the first stopped item is: the batch is committed up to there, not beyond."""
    return next((i for i, o in enumerate(outcomes) if isinstance(o, Stopped)), None)
