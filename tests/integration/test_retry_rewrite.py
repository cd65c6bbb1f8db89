"""`retry_failed` / `retry_iter` from Python, and the rewrite rule under injected failures:
the manifest ends complete (every row, new or as it was) or exactly as it was."""

from __future__ import annotations

import errno
import time
from pathlib import Path
from typing import Any

import pytest

from fetcher import FetcherError, Status, fetch_all, retry_failed, retry_iter
from fetcher.commit import Committer
from fetcher.manifest import ManifestWriter
from fetcher.worker import Worker

N = 12


def _first_run(tmp_path: Path, items: int = N) -> Path:
    """A run of `items` local files, every other one missing (so failed)."""
    for i in range(0, items, 2):
        (tmp_path / f"f{i}.txt").write_text(f"file {i}")
    out = tmp_path / "out"
    manifest = out / ".fetcher" / "manifest.jsonl"
    sources = [str(tmp_path / f"f{i}.txt") for i in range(items)]
    results = fetch_all(sources, output_dir=out, manifest=manifest, workers=1, chunksize=1)
    assert [r.ok for r in results] == [i % 2 == 0 for i in range(items)]
    for i in range(1, items, 2):
        (tmp_path / f"f{i}.txt").write_text(f"file {i}")
    return manifest


def _one_result_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each item takes a moment, so results reach the committer one per batch: a failure
    injected at the n-th batch then always comes after some rows were retried."""
    call = Worker.__call__

    def slow(self: Worker, item: Any) -> Any:
        time.sleep(0.05)
        return call(self, item)

    monkeypatch.setattr(Worker, "__call__", slow)


def _rows_complete(before: list[str], after: list[str]) -> None:
    assert len(after) == len(before)
    for old, new in zip(before, after, strict=True):
        assert new == old or ('"status": "failed"' in old and '"status": "ok"' in new)


def test_retry_failed_returns_every_row_in_order(tmp_path: Path) -> None:
    manifest = _first_run(tmp_path)
    results = retry_failed(manifest, workers=2)
    assert [r.index for r in results] == list(range(N))
    assert all(r.status is Status.OK for r in results)
    assert [r.attempts for r in results[1::2]] == [1] * (N // 2)
    assert (tmp_path / "out" / "f5.txt").read_text() == "file 5"
    assert manifest.read_text().count('"status": "ok"') == N


def test_an_exception_mid_retry_leaves_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = _first_run(tmp_path)
    before = manifest.read_text().splitlines()
    commit = Committer.commit
    calls = []

    def failing(self: Committer, outcomes: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("injected")
        return commit(self, outcomes)

    monkeypatch.setattr(Committer, "commit", failing)
    _one_result_at_a_time(monkeypatch)
    with pytest.raises(RuntimeError, match="injected"):
        retry_failed(manifest, workers=1, chunksize=1)
    after = manifest.read_text().splitlines()
    _rows_complete(before, after)
    assert after != before, "the rows retried before the failure keep their new result"
    assert not list(manifest.parent.glob(".*rewrite*"))


def test_a_caller_that_stops_iterating_gets_a_complete_manifest(tmp_path: Path) -> None:
    manifest = _first_run(tmp_path)
    before = manifest.read_text().splitlines()
    results = retry_iter(manifest, workers=1, chunksize=1)
    first = [next(results) for _ in range(4)]
    results.close()
    assert [r.index for r in first] == [0, 1, 2, 3]
    _rows_complete(before, manifest.read_text().splitlines())


def test_a_full_disk_leaves_the_manifest_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = _first_run(tmp_path)
    content = manifest.read_bytes()
    write = ManifestWriter.write
    written = []

    def full(self: ManifestWriter, result: Any) -> None:
        written.append(1)
        if len(written) > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        write(self, result)

    monkeypatch.setattr(ManifestWriter, "write", full)
    with pytest.raises(FetcherError, match="left as it was"):
        retry_failed(manifest, workers=1, chunksize=1)
    assert manifest.read_bytes() == content
    assert not list(manifest.parent.glob(".*rewrite*"))


def test_a_second_interrupt_while_completing_leaves_the_manifest_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fetcher import retry

    # The last row was ok: whenever the retried results arrive, it is still to be written
    # when the first batch is in, so completing the file is needed.
    manifest = _first_run(tmp_path, N + 1)
    content = manifest.read_bytes()

    def interrupted(self: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(retry._Merge, "rest", interrupted)
    results = retry_iter(manifest, workers=1, chunksize=1)
    next(results)
    with pytest.raises(KeyboardInterrupt):
        results.close()
    assert manifest.read_bytes() == content
    assert not list(manifest.parent.glob(".*rewrite*"))


def test_a_run_without_a_manifest_location_needs_the_output_dir(tmp_path: Path) -> None:
    manifest = _first_run(tmp_path)
    moved = tmp_path / "elsewhere.jsonl"
    moved.write_bytes(manifest.read_bytes())
    with pytest.raises(FetcherError, match="-o"):
        retry_failed(moved)
