"""The ordered committer, with real temp files and a real state store (no HTTP): names by
input order, what is never overwritten, mirror folders, what the store failing costs, the
stream, and each outcome's row."""

from __future__ import annotations

import contextlib
import io
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from fetcher.commit import Committer, FailureLog, result_of, stopped_at
from fetcher.errors import OutputClosed
from fetcher.results import ErrorInfo, ErrorType, Result, Status
from fetcher.sources import Source, source_to_json
from fetcher.state import Completed, StateStore, Validators
from fetcher.temps import TEMP_PREFIX, LiveTemps
from fetcher.work import AlreadyDone, Failed, Fetched, Outcome, Stopped
from tests.unit.builders import complete_temp, url_source

STATE = ".fetcher"
ETAG = Validators(etag='"v1"')


class CountingStore(StateStore):
    """The real store, counting the name claims; `failing` makes its writes raise as SQLite
    does when its disk fails."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, root / STATE)
        self.claims = 0
        self.failing = False

    def claim(self, path: str) -> bool:
        self.claims += 1
        return super().claim(path)

    def record(self, **kwargs: object) -> None:
        if self.failing:
            raise sqlite3.OperationalError("disk I/O error")
        super().record(**kwargs)  # type: ignore[arg-type]


@contextlib.contextmanager
def opened(root: Path) -> Iterator[CountingStore]:
    store = CountingStore(root)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    return out


@pytest.fixture
def store(root: Path) -> Iterator[CountingStore]:
    with opened(root) as store:
        yield store


@pytest.fixture
def live() -> LiveTemps:
    return LiveTemps()


def fetched(
    root: Path,
    live: LiveTemps,
    index: int,
    name: str = "a.txt",
    body: bytes | None = None,
    *,
    dirs: tuple[str, ...] = (),
    source: Source | None = None,
) -> Fetched:
    source = source or url_source(index, f"{index}/{name}")
    data = f"body {index}".encode() if body is None else body
    temp = complete_temp(root, source, data, live)
    return Fetched(source, temp, dirs, name, 200, ETAG, attempts=1)


def paths(results: Sequence[Result]) -> list[str | None]:
    return [r.path for r in results]


def temps_left(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith(TEMP_PREFIX))


# --------------------------------------------------------------------------- names by input order


def test_items_sharing_a_name_are_numbered_by_input_order(
    root: Path, store: CountingStore, live: LiveTemps
) -> None:
    batch = [fetched(root, live, i, "a.txt", f"body {i}".encode()) for i in range(3)]
    results = Committer(root, store, None).commit(batch)
    assert paths(results) == ["a.txt", "a.1.txt", "a.2.txt"]
    assert [(root / p).read_bytes() for p in ("a.txt", "a.1.txt", "a.2.txt")] == [
        b"body 0",
        b"body 1",
        b"body 2",
    ]


def test_numbering_continues_in_the_next_batch(
    root: Path, store: CountingStore, live: LiveTemps
) -> None:
    committer = Committer(root, store, None)
    first = committer.commit([fetched(root, live, 0), fetched(root, live, 1)])
    second = committer.commit([fetched(root, live, 2)])
    assert paths(first) + paths(second) == ["a.txt", "a.1.txt", "a.2.txt"]


def test_names_collide_regardless_of_case(
    root: Path, store: CountingStore, live: LiveTemps
) -> None:
    results = Committer(root, store, None).commit(
        [fetched(root, live, 0, "Read.ME"), fetched(root, live, 1, "read.me")]
    )
    assert paths(results) == ["Read.ME", "read.1.me"]


def test_a_failed_item_takes_no_name(root: Path, store: CountingStore, live: LiveTemps) -> None:
    failed = Failed(url_source(0), ErrorInfo(ErrorType.TIMEOUT, "timed out"))
    results = Committer(root, store, None).commit([failed, fetched(root, live, 1)])
    assert paths(results) == [None, "a.txt"]


def test_a_file_fetcher_did_not_write_is_never_overwritten(
    root: Path, store: CountingStore, live: LiveTemps
) -> None:
    (root / "a.txt").write_bytes(b"the user's own")
    (root / "a.1.txt").write_bytes(b"also the user's")
    results = Committer(root, store, None).commit([fetched(root, live, 0, body=b"new")])
    assert paths(results) == ["a.2.txt"]
    assert (root / "a.txt").read_bytes() == b"the user's own"
    assert (root / "a.1.txt").read_bytes() == b"also the user's"
    assert (root / "a.2.txt").read_bytes() == b"new"


def test_the_items_own_earlier_output_is_replaced(root: Path, live: LiveTemps) -> None:
    source = url_source(0)
    with opened(root) as first:
        Committer(root, first, None).commit([fetched(root, live, 0, body=b"old", source=source)])
    with opened(root) as second:
        results = Committer(root, second, None).commit(
            [fetched(root, live, 0, body=b"new", source=source)]
        )
    assert paths(results) == ["a.txt"]
    assert (root / "a.txt").read_bytes() == b"new"


def test_another_sources_earlier_output_is_not_replaced(root: Path, live: LiveTemps) -> None:
    with opened(root) as first:
        Committer(root, first, None).commit(
            [fetched(root, live, 0, body=b"first", source=url_source(0, "a.txt", "one.example"))]
        )
    with opened(root) as second:
        results = Committer(root, second, None).commit(
            [fetched(root, live, 0, body=b"second", source=url_source(0, "a.txt", "two.example"))]
        )
    assert paths(results) == ["a.1.txt"]
    assert (root / "a.txt").read_bytes() == b"first"


def test_a_symlink_in_the_way_of_a_file_is_not_written_through(
    root: Path, tmp_path: Path, store: CountingStore, live: LiveTemps
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"keep me")
    (root / "a.txt").symlink_to(outside)
    results = Committer(root, store, None).commit([fetched(root, live, 0, body=b"new")])
    assert paths(results) == ["a.1.txt"]
    assert outside.read_bytes() == b"keep me"
    assert (root / "a.txt").is_symlink()


def test_many_items_sharing_a_name_cost_one_counter_step_each(
    root: Path, store: CountingStore, live: LiveTemps
) -> None:
    committer = Committer(root, store, None)
    for count in (50, 100):
        store.claims = 0
        results = committer.commit([fetched(root, live, i, "same.txt", b"x") for i in range(count)])
        assert len(set(paths(results))) == count
        # each item: its own name (taken) and then one counter name; never one per earlier
        # item, which would be count**2 / 2
        assert store.claims <= 2 * count


# --------------------------------------------------------------------------- mirror folders


def test_mirror_folders_are_created_in_order(
    root: Path, store: CountingStore, live: LiveTemps
) -> None:
    results = Committer(root, store, None).commit(
        [fetched(root, live, 0, "a.txt", b"deep", dirs=("host", "sub", "dir"))]
    )
    assert paths(results) == ["host/sub/dir/a.txt"]
    assert (root / "host/sub/dir/a.txt").read_bytes() == b"deep"


def test_an_existing_folder_is_used(root: Path, store: CountingStore, live: LiveTemps) -> None:
    (root / "host").mkdir()
    (root / "host" / "theirs.txt").write_bytes(b"x")
    results = Committer(root, store, None).commit([fetched(root, live, 0, dirs=("host",))])
    assert paths(results) == ["host/a.txt"]


def test_a_file_in_the_way_of_a_folder_gives_the_folder_the_next_name(
    root: Path, store: CountingStore, live: LiveTemps
) -> None:
    (root / "host").write_bytes(b"a file")
    results = Committer(root, store, None).commit([fetched(root, live, 0, dirs=("host", "sub"))])
    assert paths(results) == ["host.1/sub/a.txt"]
    assert (root / "host").read_bytes() == b"a file"


def test_a_name_claimed_earlier_in_the_batch_is_not_used_as_a_folder(
    root: Path, store: CountingStore, live: LiveTemps
) -> None:
    """Item 0's file `host` is renamed into place after item 1's folders are made."""
    results = Committer(root, store, None).commit(
        [fetched(root, live, 0, "host", b"file"), fetched(root, live, 1, dirs=("host",))]
    )
    assert paths(results) == ["host", "host.1/a.txt"]
    assert (root / "host").read_bytes() == b"file"


def test_a_symlink_in_the_way_of_a_folder_is_never_followed(
    root: Path, tmp_path: Path, store: CountingStore, live: LiveTemps
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "host").symlink_to(outside, target_is_directory=True)
    results = Committer(root, store, None).commit([fetched(root, live, 0, dirs=("host", "sub"))])
    assert paths(results) == ["host.1/sub/a.txt"]
    assert list(outside.iterdir()) == []


# --------------------------------------------------------------------------- other outcomes


def test_already_done_claims_its_path(root: Path, store: CountingStore, live: LiveTemps) -> None:
    (root / "a.txt").write_bytes(b"from an earlier run")
    done = AlreadyDone(
        url_source(0), Completed("a.txt", 19, "f" * 64, 200, ETAG), unchanged=False, http_status=200
    )
    results = Committer(root, store, None).commit([done, fetched(root, live, 1)])
    assert paths(results) == ["a.txt", "a.1.txt"]
    assert results[0].status is Status.SKIPPED
    assert (root / "a.txt").read_bytes() == b"from an earlier run"


def test_a_failed_outcome_passes_through(root: Path, store: CountingStore) -> None:
    error = ErrorInfo(ErrorType.NOT_FOUND, "/x: no such file")
    [result] = Committer(root, store, None).commit(
        [Failed(url_source(4), error, http_status=404, attempts=2)]
    )
    assert (result.index, result.status, result.error, result.http_status, result.attempts) == (
        4,
        Status.FAILED,
        error,
        404,
        2,
    )


def test_results_come_in_the_order_of_the_outcomes(
    root: Path, store: CountingStore, live: LiveTemps
) -> None:
    batch: list[Outcome] = [
        fetched(root, live, 5, "e.txt"),
        Failed(url_source(6), ErrorInfo(ErrorType.TIMEOUT, "slow")),
        fetched(root, live, 7, "g.txt"),
    ]
    results = Committer(root, store, None).commit(batch)
    assert [r.index for r in results] == [5, 6, 7]


def test_a_placed_output_is_recorded_as_completed_for_the_next_run(
    root: Path, live: LiveTemps
) -> None:
    source = url_source(0)
    with opened(root) as first:
        Committer(root, first, None).commit([fetched(root, live, 0, body=b"abc", source=source)])
    with opened(root) as second:
        done = second.completed(source.target)
    assert done is not None
    assert (done.path, done.bytes, done.validators) == ("a.txt", 3, ETAG)


# --------------------------------------------------------------------------- failures


def test_the_store_failing_fails_the_batch_and_places_nothing(
    root: Path, store: CountingStore, live: LiveTemps
) -> None:
    store.failing = True
    failed = Failed(url_source(2), ErrorInfo(ErrorType.TIMEOUT, "slow"))
    results = Committer(root, store, None).commit(
        [fetched(root, live, 0), fetched(root, live, 1, "b.txt"), failed]
    )
    assert [r.status for r in results] == [Status.FAILED] * 3
    assert [r.error.type for r in results if r.error] == [
        ErrorType.STATE_STORE,
        ErrorType.STATE_STORE,
        ErrorType.TIMEOUT,
    ]
    assert paths(results) == [None, None, None]
    assert sorted(p.name for p in root.iterdir()) == [STATE]
    assert not store.is_claimed("a.txt")  # the batch's claims were rolled back


def test_a_failed_rename_fails_only_that_item(root: Path, live: LiveTemps) -> None:
    """The item's own earlier output was replaced by a folder: its rename fails."""
    source = url_source(0)
    with opened(root) as first:
        Committer(root, first, None).commit([fetched(root, live, 0, source=source)])
    (root / "a.txt").unlink()
    (root / "a.txt").mkdir()
    (root / "a.txt" / "inside").write_bytes(b"x")
    with opened(root) as second:
        log = FailureLog(second, "m.jsonl")
        results = Committer(root, second, None, log).commit(
            [fetched(root, live, 0, source=source), fetched(root, live, 1, "b.txt")]
        )
        assert second.failure("m.jsonl", 0) == source_to_json(source)
        assert second.failure("m.jsonl", 1) is None
    assert [r.status for r in results] == [Status.FAILED, Status.OK]
    assert results[0].error is not None
    assert results[0].error.type is ErrorType.IO
    assert results[0].path is None
    assert (root / "b.txt").exists()
    assert temps_left(root) == []


def test_a_vanished_temp_fails_only_that_item(
    root: Path, store: CountingStore, live: LiveTemps
) -> None:
    gone = fetched(root, live, 0)
    gone.temp.path.unlink()
    results = Committer(root, store, None).commit([gone, fetched(root, live, 1, "b.txt")])
    assert [r.status for r in results] == [Status.FAILED, Status.OK]
    assert (root / "b.txt").exists()


def test_failure_log_notes_failed_items_only(
    root: Path, store: CountingStore, live: LiveTemps
) -> None:
    failed_source = url_source(1, "missing")
    Committer(root, store, None, FailureLog(store, "m.jsonl")).commit(
        [fetched(root, live, 0), Failed(failed_source, ErrorInfo(ErrorType.HTTP_STATUS, "404"))]
    )
    assert store.failure("m.jsonl", 0) is None
    assert store.failure("m.jsonl", 1) == source_to_json(failed_source)


# --------------------------------------------------------------------------- streaming


def test_streaming_writes_the_bodies_in_order_and_keeps_no_files(
    root: Path, live: LiveTemps
) -> None:
    stream = io.BytesIO()
    batch: list[Outcome] = [
        fetched(root, live, 0, body=b"one "),
        Failed(url_source(1), ErrorInfo(ErrorType.TIMEOUT, "slow")),
        fetched(root, live, 2, body=b"two "),
        fetched(root, live, 3, body=b"three"),
    ]
    results = Committer(root, None, stream).commit(batch)
    assert stream.getvalue() == b"one two three"
    assert [r.status for r in results] == [Status.OK, Status.FAILED, Status.OK, Status.OK]
    assert paths(results) == [None, None, None, None]
    assert list(root.iterdir()) == []


class _ClosedPipe(io.BytesIO):
    def write(self, data: object) -> int:
        raise BrokenPipeError


def test_a_closed_stream_stops_the_run_and_frees_the_temp(root: Path, live: LiveTemps) -> None:
    with pytest.raises(OutputClosed):
        Committer(root, None, _ClosedPipe()).commit([fetched(root, live, 0)])
    assert list(root.iterdir()) == []


# --------------------------------------------------------------------------- result_of, stopped_at


def _done(unchanged: bool) -> AlreadyDone:
    completed = Completed("d/a.txt", 9, "c" * 64, 200, ETAG)
    return AlreadyDone(url_source(3), completed, unchanged, http_status=304 if unchanged else 200)


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (
            _done(unchanged=False),
            {"status": "skipped", "path": "d/a.txt", "bytes": 9, "sha256": "c" * 64,
             "http_status": 200, "error": None},
        ),
        (
            _done(unchanged=True),
            {"status": "unchanged", "path": "d/a.txt", "bytes": 9, "sha256": "c" * 64,
             "http_status": 304, "error": None},
        ),
        (
            Failed(url_source(3), ErrorInfo(ErrorType.TLS, "bad cert"), http_status=None,
                   attempts=1),
            {"status": "failed", "path": None, "bytes": 0, "sha256": None, "http_status": None,
             "error": {"type": "tls", "message": "bad cert"}},
        ),
        (
            Failed(url_source(3), ErrorInfo(ErrorType.TRUNCATED, "cut"), http_status=200),
            {"status": "failed", "path": None, "bytes": 0, "sha256": None, "http_status": 200,
             "error": {"type": "truncated", "message": "cut"}},
        ),
    ],
    ids=["skipped", "unchanged", "failed", "failed-after-response"],
)  # fmt: skip
def test_result_of_each_outcome(outcome: Outcome, expected: dict[str, object]) -> None:
    row = result_of(outcome).to_dict()
    assert row["index"] == 3
    assert row["source"] == "https://example.org/a.txt"
    assert {k: row[k] for k in expected} == expected


def test_result_of_a_fetched_item_has_its_size_and_digest_but_no_path_yet(
    root: Path, live: LiveTemps
) -> None:
    outcome = fetched(root, live, 0, body=b"abc")
    result = result_of(outcome)
    assert (result.status, result.path, result.bytes, result.http_status) == (
        Status.OK,
        None,
        3,
        200,
    )
    assert result.sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_result_of_masks_the_password_and_carries_the_columns() -> None:
    source = url_source(0)
    source = Source(
        0,
        "https://user:secret@example.org/a",
        source.kind,
        "https://user:secret@example.org/a",
        source.base_dir,
        extra=(("label", "x"),),
    )
    result = result_of(Failed(source, ErrorInfo(ErrorType.TIMEOUT, "slow")))
    assert result.source == "https://user:***@example.org/a"
    assert dict(result.extra) == {"label": "x"}


def test_a_stopped_outcome_has_no_result() -> None:
    with pytest.raises(ValueError, match="stopped"):
        result_of(Stopped(url_source(0)))


_FAILED = Failed(url_source(0), ErrorInfo(ErrorType.TIMEOUT, "slow"))
_STOPPED = Stopped(url_source(0))


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ([], None),
        ([_FAILED, _FAILED], None),
        ([_STOPPED, _FAILED], 0),
        ([_FAILED, _STOPPED, _FAILED, _STOPPED], 1),
    ],
)
def test_stopped_at_is_the_first_stopped_item(
    outcomes: list[Outcome], expected: int | None
) -> None:
    assert stopped_at(outcomes) == expected
