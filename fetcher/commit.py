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
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from fetcher.errors import ItemError
from fetcher.naming import with_counter
from fetcher.results import ErrorInfo, Result, Status
from fetcher.sources import Source, source_to_json
from fetcher.state import StateStore
from fetcher.worker import Kind, Outcome
from fetcher.writing import CompleteTemp, make_dir, place

MAX_COLLISIONS = 10_000


@dataclass(frozen=True)
class FailureLog:
    """Where failed items are remembered for `fetcher retry`: one manifest's entries in the
    state store. `retrying` also clears entries of items that now succeed."""

    store: StateStore
    manifest: str
    retrying: bool = False

    def note(self, source: Source, result: Result) -> None:
        if result.status is Status.FAILED:
            self.store.remember_failure(self.manifest, source.index, source_to_json(source))
        elif self.retrying:
            self.store.forget_failure(self.manifest, source.index)


def _base(outcome: Outcome) -> Result:
    source = outcome.source
    return Result(
        index=source.index,
        source=source.text,
        path=None,
        status=Status.FAILED,
        attempts=outcome.attempts,
        elapsed_s=outcome.elapsed_s,
        http_status=outcome.http_status,
        error=outcome.error,
        extra=dict(source.extra),
    )


def _already_done(outcome: Outcome, base: Result) -> Result | None:
    """The result of a skipped or unchanged item: its earlier output, as recorded."""
    done = outcome.completed
    if outcome.kind not in (Kind.SKIPPED, Kind.UNCHANGED) or done is None:
        return None
    unchanged = outcome.kind is Kind.UNCHANGED
    return replace(
        base,
        path=done.path,
        status=Status.UNCHANGED if unchanged else Status.SKIPPED,
        bytes=done.bytes,
        sha256=done.sha256,
        http_status=outcome.http_status if unchanged else done.http_status,
    )


def _store_error(exc: sqlite3.OperationalError) -> ErrorInfo:
    text = str(exc)
    if "full" in text:
        return ErrorInfo("disk_full", f"the state store cannot be written: {text}")
    return ErrorInfo("state_store", f"the state store cannot be written: {text}")


@dataclass
class _Step:
    """One outcome on its way to a result: `rel` is where its temp file goes."""

    outcome: Outcome
    result: Result
    rel: str | None = None


class Committer:
    """Places complete downloads under their final names, or streams them out in order."""

    def __init__(
        self,
        root: Path,
        store: StateStore | None,
        stream: BinaryIO | None,
        failures: FailureLog | None = None,
    ) -> None:
        self._root = root
        self._store = store
        self._stream = stream
        self._failures = failures

    def commit(self, outcomes: Sequence[Outcome]) -> list[Result]:
        """Results for a batch of outcomes, in the same order."""
        if self._store is None:
            steps = [self._decide(o) for o in outcomes]
        else:
            try:
                with self._store.transaction():
                    steps = [self._decide(o) for o in outcomes]
                    self._note_failures(steps)
            except sqlite3.OperationalError as exc:  # the store's disk is full, or failing
                steps = [self._unrecorded(o, _store_error(exc)) for o in outcomes]
        moved = [self._deliver(step) for step in steps]
        if any(moved) and self._store is not None:
            with self._store.transaction():  # a rename failed: rare, noted on its own
                self._note_failures([step for step, bad in zip(steps, moved, strict=True) if bad])
        return [step.result for step in steps]

    def _unrecorded(self, outcome: Outcome, error: ErrorInfo) -> _Step:
        """The batch could not be recorded: nothing of it is placed, its temps are freed."""
        base = _base(outcome)
        if outcome.temp is not None:
            outcome.temp.discard()
            return _Step(outcome, replace(base, error=error))
        return _Step(outcome, _already_done(outcome, base) or base)

    def _decide(self, outcome: Outcome) -> _Step:
        source = outcome.source
        base = _base(outcome)
        done = _already_done(outcome, base)
        if done is not None:
            if self._store is not None and done.path is not None:
                self._store.claim(done.path)
            return _Step(outcome, done)
        temp = outcome.temp
        if outcome.kind is not Kind.FETCHED or temp is None:
            error = outcome.error or ErrorInfo("internal", "no outcome")
            return _Step(outcome, replace(base, error=error))
        ok = replace(base, status=Status.OK, bytes=temp.size, sha256=temp.sha256)
        if self._store is None:
            return _Step(outcome, ok)
        try:
            rel = self._choose(outcome)
        except ItemError as exc:
            temp.discard()
            return _Step(outcome, replace(base, error=ErrorInfo(exc.kind, str(exc))))
        self._store.record(
            path=rel,
            source=source.target,
            info=os.stat(temp.path),
            sha256=temp.sha256,
            http_status=outcome.http_status,
            validators=outcome.validators,
        )
        if temp.resumable:
            self._store.drop_partial(temp.path.name)
        return _Step(outcome, replace(ok, path=rel), rel)

    def _deliver(self, step: _Step) -> bool:
        """Rename into place (or stream out); True when that failed and `step` became a
        failure."""
        temp = step.outcome.temp
        if step.result.status is not Status.OK or temp is None:
            return False
        try:
            if self._stream is not None:
                self._stream_out(temp)
            else:
                assert step.rel is not None
                place(temp, self._root / step.rel)
        except ItemError as exc:
            temp.discard()
            step.result = replace(
                step.result, status=Status.FAILED, path=None, error=ErrorInfo(exc.kind, str(exc))
            )
            return True
        return False

    def _stream_out(self, temp: CompleteTemp) -> None:
        assert self._stream is not None
        with temp.path.open("rb") as body:
            shutil.copyfileobj(body, self._stream, 1024 * 1024)
        self._stream.flush()
        temp.discard()

    def _note_failures(self, steps: Sequence[_Step]) -> None:
        if self._failures is not None:
            for step in steps:
                self._failures.note(step.outcome.source, step.result)

    def _choose(self, outcome: Outcome) -> str:
        """The first free name by input order: not claimed by an earlier item of this run,
        and not an existing file that some other source (or no record at all) owns."""
        assert self._store is not None
        dirs = self._make_dirs(outcome.dirs)
        for n in range(MAX_COLLISIONS):
            rel = "/".join((*dirs, with_counter(outcome.name, n)))
            if not self._store.claim(rel):
                continue
            if os.path.lexists(self._root / rel) and (
                self._store.owner(rel) != outcome.source.target
            ):
                continue
            return rel
        raise ItemError("path_conflict", f"no free name for {outcome.name!r}")

    def _make_dirs(self, parts: tuple[str, ...]) -> tuple[str, ...]:
        """Create the folders of a `mirror` path; a component taken by a file (on disk, or
        claimed by an earlier item whose rename is still to come) or by a symlink gets the
        next counter name, as a file would (`a` → `a.1`)."""
        assert self._store is not None
        made: list[str] = []
        for part in parts:
            for n in range(MAX_COLLISIONS):
                candidate = with_counter(part, n)
                if self._store.is_claimed("/".join((*made, candidate))):
                    continue
                if make_dir(self._root.joinpath(*made, candidate)):
                    made.append(candidate)
                    break
            else:
                raise ItemError("path_conflict", f"no free folder name for {part!r}")
        return tuple(made)
