"""The ordered committer: turns worker outcomes into results, one at a time, in input order.

Final names are decided only here, so collisions resolve by input order (never by which
download finished first) and the same list always gives the same names, whatever `-j` is.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from fetcher.errors import ItemError
from fetcher.naming import with_counter
from fetcher.results import ErrorInfo, Result, Status
from fetcher.sources import Source, source_to_json
from fetcher.state import StateStore
from fetcher.worker import Kind, Outcome
from fetcher.writing import TempOutput, make_dir, place

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

    def commit(self, outcome: Outcome) -> Result:
        result = self._result(outcome)
        if self._failures is not None:
            self._failures.note(outcome.source, result)
        return result

    def _result(self, outcome: Outcome) -> Result:
        source = outcome.source
        base = Result(
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
        done = outcome.completed
        if outcome.kind in (Kind.SKIPPED, Kind.UNCHANGED) and done is not None:
            if self._store is not None:
                self._store.claim(done.path)
            unchanged = outcome.kind is Kind.UNCHANGED
            return replace(
                base,
                path=done.path,
                status=Status.UNCHANGED if unchanged else Status.SKIPPED,
                bytes=done.bytes,
                sha256=done.sha256,
                http_status=outcome.http_status if unchanged else done.http_status,
            )
        temp = outcome.temp
        if outcome.kind is not Kind.FETCHED or temp is None:
            return replace(base, error=outcome.error or ErrorInfo("internal", "no outcome"))
        try:
            path = self._deliver(outcome, temp)
        except ItemError as exc:
            temp.discard()
            return replace(base, error=ErrorInfo(exc.kind, str(exc)))
        return replace(base, path=path, status=Status.OK, bytes=temp.size, sha256=temp.sha256)

    def _deliver(self, outcome: Outcome, temp: TempOutput) -> str | None:
        if self._stream is not None:
            with temp.path.open("rb") as body:
                shutil.copyfileobj(body, self._stream, 1024 * 1024)
            self._stream.flush()
            temp.discard()
            return None
        assert self._store is not None
        rel = self._choose(outcome)
        self._store.record(
            path=rel,
            source=outcome.source.target,
            info=os.stat(temp.path),
            sha256=temp.sha256,
            http_status=outcome.http_status,
            validators=outcome.validators,
        )
        place(temp, self._root / rel)
        if temp.resumable:
            self._store.drop_partial(temp.path.name)
        return rel

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
        """Create the folders of a `mirror` path; a component taken by a file or a symlink
        gets the next counter name, as a file would (`a` → `a.1`)."""
        made: list[str] = []
        for part in parts:
            for n in range(MAX_COLLISIONS):
                candidate = with_counter(part, n)
                if make_dir(self._root.joinpath(*made, candidate)):
                    made.append(candidate)
                    break
            else:
                raise ItemError("path_conflict", f"no free folder name for {part!r}")
        return tuple(made)
