"""The merge of `fetcher retry`: the earlier manifest's rows walked beside the retried
results, each row written as its turn comes (new result, or as it was), every row written
whatever stops the run, and the rewrite put in place only when it holds every row."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest

from fetcher.errors import FetcherError, UsageError
from fetcher.manifest import ManifestRewrite, ManifestWriter, read_manifest
from fetcher.results import ErrorInfo, ErrorType, Result, Status
from fetcher.retry import _complete_or_leave, _Merge
from fetcher.sources import Source
from tests.unit.builders import failed_row, ok_row, url_source


class FakePlan:
    """Which failed rows were sent again: every one, except the `unsendable` (their rules
    are missing); `interrupt_at` raises as Ctrl-C would while a row is being settled."""

    def __init__(self, unsendable: Iterable[int] = (), interrupt_at: int | None = None) -> None:
        self.unsendable = set(unsendable)
        self.interrupt_at = interrupt_at

    def source(self, row: Result) -> Source | ErrorInfo:
        if row.index == self.interrupt_at:
            raise KeyboardInterrupt
        if row.index in self.unsendable:
            return ErrorInfo(
                ErrorType.RETRY_RULES_MISSING, f"not retried: no record of #{row.index}"
            )
        return url_source(row.index)


class FullDisk(ManifestRewrite):
    """The real rewrite, on a disk that fills up after `room` rows."""

    def __init__(self, manifest: Path, room: int) -> None:
        super().__init__(manifest)
        self.room = room

    def write_all(self, results: Iterable[Result]) -> None:
        for result in results:
            if self.room == 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.room -= 1
            super().write_all((result,))


def retried(index: int) -> Result:
    """A failed row's new result."""
    return replace(ok_row(index), source=f"https://example.org/{index}", attempts=1)


def manifest_of(tmp_path: Path, rows: list[Result]) -> Path:
    path = tmp_path / "m.jsonl"
    writer = ManifestWriter(path)
    writer.write_all(rows)
    writer.close()
    return path


def merge_of(
    manifest: Path, plan: FakePlan, out: ManifestRewrite | None = None
) -> tuple[_Merge, ManifestRewrite]:
    out = out or ManifestRewrite(manifest)
    return _Merge(read_manifest(manifest), cast(Any, plan), out), out


def committed(merge: _Merge, out: ManifestRewrite, manifest: Path, rows: int) -> list[Result]:
    assert merge.written == rows
    out.commit()
    return list(read_manifest(manifest))


ROWS = [ok_row(0), failed_row(1), ok_row(2), failed_row(3), ok_row(4)]


# --------------------------------------------------------------------------- add and finish


def test_retried_results_replace_their_rows_and_the_others_are_kept(tmp_path: Path) -> None:
    manifest = manifest_of(tmp_path, ROWS)
    merge, out = merge_of(manifest, FakePlan())
    merge.add([retried(1)])
    merge.add([retried(3)])
    list(merge.finish())
    assert committed(merge, out, manifest, 5) == [
        ok_row(0), retried(1), ok_row(2), retried(3), ok_row(4),
    ]  # fmt: skip


def test_add_gives_back_every_row_it_wrote_in_order(tmp_path: Path) -> None:
    merge, out = merge_of(manifest_of(tmp_path, ROWS), FakePlan())
    assert merge.add([retried(1), retried(3)]) == [ok_row(0), retried(1), ok_row(2), retried(3)]
    assert list(merge.finish()) == [[ok_row(4)]]
    out.abandon()


def test_finish_gives_the_rows_after_the_last_result_in_batches(tmp_path: Path) -> None:
    rows = [failed_row(0), *(ok_row(i) for i in range(1, 6))]
    merge, out = merge_of(manifest_of(tmp_path, rows), FakePlan())
    merge.add([retried(0)])
    assert list(merge.finish(batch=2)) == [[ok_row(1), ok_row(2)], [ok_row(3), ok_row(4)],
                                           [ok_row(5)]]  # fmt: skip
    out.abandon()


def test_finish_marks_unsendable_failed_rows(tmp_path: Path) -> None:
    manifest = manifest_of(tmp_path, ROWS)
    merge, out = merge_of(manifest, FakePlan(unsendable={1, 3}))
    list(merge.finish())
    rows = committed(merge, out, manifest, 5)
    for index in (1, 3):
        row = rows[index]
        assert row.status is Status.FAILED
        assert row.error == ErrorInfo(
            ErrorType.RETRY_RULES_MISSING, f"not retried: no record of #{index}"
        )
        assert replace(row, error=None) == replace(failed_row(index), error=None)
    assert [rows[i] for i in (0, 2, 4)] == [ok_row(0), ok_row(2), ok_row(4)]


def test_add_marks_unsendable_failed_rows_before_a_result(tmp_path: Path) -> None:
    merge, out = merge_of(manifest_of(tmp_path, ROWS), FakePlan(unsendable={1}))
    merged = merge.add([retried(3)])
    assert [r.index for r in merged] == [0, 1, 2, 3]
    assert merged[1].error is not None
    assert merged[1].error.type is ErrorType.RETRY_RULES_MISSING
    out.abandon()


def test_a_result_for_a_row_that_does_not_exist_raises(tmp_path: Path) -> None:
    merge, out = merge_of(manifest_of(tmp_path, ROWS), FakePlan())
    with pytest.raises(UsageError, match="changed while it was being retried"):
        merge.add([retried(1), retried(9)])
    out.abandon()


def test_a_sent_row_without_a_result_raises(tmp_path: Path) -> None:
    merge, out = merge_of(manifest_of(tmp_path, ROWS), FakePlan())
    merge.add([retried(1)])
    with pytest.raises(UsageError, match=r"changed while it was being retried \(row 3\)"):
        list(merge.finish())
    out.abandon()


# --------------------------------------------------------------------------- interrupted


def test_rest_writes_every_row_not_yet_written_as_it_was(tmp_path: Path) -> None:
    manifest = manifest_of(tmp_path, ROWS)
    merge, out = merge_of(manifest, FakePlan())
    merge.add([retried(1)])  # then Ctrl-C while item 3 is being fetched again
    merge.rest()
    assert committed(merge, out, manifest, 5) == [ok_row(0), retried(1), *ROWS[2:]]


def test_rest_writes_the_held_row(tmp_path: Path) -> None:
    """The run stops after a row was read and before it was written."""
    manifest = manifest_of(tmp_path, ROWS)
    merge, out = merge_of(manifest, FakePlan(unsendable={3}, interrupt_at=1))
    with pytest.raises(KeyboardInterrupt):
        list(merge.finish())
    merge.rest()
    assert committed(merge, out, manifest, 5) == ROWS


def test_rest_before_any_result_writes_the_manifest_as_it_was(tmp_path: Path) -> None:
    manifest = manifest_of(tmp_path, ROWS)
    before = manifest.read_bytes()
    merge, out = merge_of(manifest, FakePlan())
    merge.rest()
    committed(merge, out, manifest, 5)
    assert manifest.read_bytes() == before


def test_rest_after_the_last_row_writes_nothing_more(tmp_path: Path) -> None:
    manifest = manifest_of(tmp_path, ROWS)
    merge, out = merge_of(manifest, FakePlan())
    merge.add([retried(1), retried(3)])
    list(merge.finish())
    merge.rest()
    assert len(committed(merge, out, manifest, 5)) == 5


# --------------------------------------------------------------------------- complete or untouched


def test_an_interrupted_rewrite_is_completed_and_put_in_place(tmp_path: Path) -> None:
    manifest = manifest_of(tmp_path, ROWS)
    merge, out = merge_of(manifest, FakePlan())
    merge.add([retried(1)])
    _complete_or_leave(manifest, 5, merge, out, complete=False)
    assert list(read_manifest(manifest)) == [ok_row(0), retried(1), *ROWS[2:]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.jsonl"]


def test_a_full_disk_while_merging_fails_the_write_as_a_fetcher_error(tmp_path: Path) -> None:
    manifest = manifest_of(tmp_path, ROWS)
    merge, out = merge_of(manifest, FakePlan(), FullDisk(manifest, room=1))
    with pytest.raises(FetcherError, match="left as it was"):
        merge.add([retried(1)])
    out.abandon()


@pytest.mark.parametrize("room", [0, 2, 4])
def test_a_rewrite_that_cannot_hold_every_row_leaves_the_manifest_untouched(
    tmp_path: Path, room: int
) -> None:
    manifest = manifest_of(tmp_path, ROWS)
    before = manifest.read_bytes()
    merge, out = merge_of(manifest, FakePlan(), FullDisk(manifest, room=room))
    with contextlib.suppress(FetcherError):  # room 4: the disk fills up in `rest`
        merge.add([retried(1), retried(3)])
    _complete_or_leave(manifest, 5, merge, out, complete=False)
    assert manifest.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.jsonl"]
