"""The state store's rules, checked on a real SQLite file in tmp_path: the lock, completion
from the exact file on disk, per-run name claims and counters, failures and rules kept for
`retry`, transactions, schema versions, private modes, symlinks, and the partials log."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fetcher.errors import UsageError
from fetcher.results import ErrorType
from fetcher.state import (
    DB_NAME,
    LOCK_NAME,
    SCHEMA_VERSION,
    PartialsLog,
    StateStore,
    StoreWriteError,
    Validators,
)
from fetcher.temps import FileStamp

SOURCE = "https://example.org/a.txt"
NO_VALIDATORS = Validators()
NEEDS_ERROR_CODES = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="sqlite3 errors carry their SQLite code from 3.11 on"
)


def state_dir(root: Path) -> Path:
    return root / ".fetcher"


@contextlib.contextmanager
def opened(root: Path) -> Iterator[StateStore]:
    store = StateStore(root, state_dir(root))
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with opened(tmp_path) as store:
        yield store


def place_file(
    store: StateStore,
    root: Path,
    rel: str,
    body: bytes = b"hello",
    *,
    source: str = SOURCE,
    validators: Validators = NO_VALIDATORS,
) -> Path:
    """What the committer does: write a temp, record it, then rename it into place."""
    temp = root / f".tmp-{rel.replace('/', '_')}"
    temp.write_bytes(body)
    store.record(
        path=rel,
        source=source,
        stamp=FileStamp.of(os.stat(temp)),
        sha256="0" * 64,
        http_status=200,
        validators=validators,
    )
    final = root / rel
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(temp, final)
    return final


def sqlite_error(statement: str, *, max_pages: int | None = None) -> sqlite3.Error:
    """A real error raised by SQLite (with its error code), from a scratch database."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE TABLE t (x BLOB)")
        if max_pages is not None:
            conn.execute(f"PRAGMA max_page_count = {max_pages}")
        conn.execute(statement)
    except sqlite3.Error as exc:
        return exc
    finally:
        conn.close()
    raise AssertionError(f"{statement!r} did not fail")


def user_version(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def tables(db: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {str(r[0]) for r in rows}


# --------------------------------------------------------------------------- the lock


def test_a_second_store_on_the_same_dir_is_a_usage_error(store: StateStore, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="another fetcher run"):
        StateStore(tmp_path, state_dir(tmp_path))


def test_closing_the_store_releases_the_lock(tmp_path: Path) -> None:
    with opened(tmp_path):
        pass
    with opened(tmp_path) as again:
        assert again.run == 1


def test_stores_of_different_output_dirs_do_not_share_a_lock(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with opened(tmp_path / "a"), opened(tmp_path / "b") as other:
        assert other.claim("x")


# --------------------------------------------------------------------------- completed


def test_nothing_is_completed_in_a_fresh_store(store: StateStore) -> None:
    assert store.completed(SOURCE) is None


def test_an_output_placed_by_an_earlier_run_is_completed(tmp_path: Path) -> None:
    etag = Validators(etag='"v1"', last_modified="Mon, 01 Jan 2024 00:00:00 GMT")
    with opened(tmp_path) as first:
        place_file(first, tmp_path, "a.txt", b"hello", validators=etag)
    with opened(tmp_path) as second:
        done = second.completed(SOURCE)
    assert done is not None
    assert (done.path, done.bytes, done.http_status, done.validators) == ("a.txt", 5, 200, etag)


def test_an_output_placed_by_this_run_is_not_completed_for_it(tmp_path: Path) -> None:
    with opened(tmp_path) as first:
        place_file(first, tmp_path, "a.txt")
        assert first.completed(SOURCE) is None


def test_each_run_has_a_number_one_past_the_last_that_placed_something(tmp_path: Path) -> None:
    with opened(tmp_path) as first:
        assert first.run == 1
        place_file(first, tmp_path, "a.txt")
    with opened(tmp_path) as second:
        assert second.run == 2


def _grow(path: Path) -> None:
    path.write_bytes(b"hello, changed")


def _same_size_new_mtime(path: Path) -> None:
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))


def _replaced_by_a_copy(path: Path) -> None:
    """Same bytes, same mtime, another inode (as a user's `cp -p` over it would leave)."""
    info = path.stat()
    copy = path.with_name("copy")
    copy.write_bytes(path.read_bytes())
    os.utime(copy, ns=(info.st_atime_ns, info.st_mtime_ns))
    os.replace(copy, path)


def _removed(path: Path) -> None:
    path.unlink()


def _replaced_by_a_symlink(path: Path) -> None:
    target = path.with_name("elsewhere")
    os.replace(path, target)  # the very same file, reached through a link
    path.symlink_to(target)


def _replaced_by_a_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


@pytest.mark.parametrize(
    "change",
    [
        _grow,
        _same_size_new_mtime,
        _replaced_by_a_copy,
        _removed,
        _replaced_by_a_symlink,
        _replaced_by_a_folder,
    ],
)
def test_an_output_changed_on_disk_is_not_completed(
    tmp_path: Path, change: Callable[[Path], None]
) -> None:
    with opened(tmp_path) as first:
        final = place_file(first, tmp_path, "a.txt")
    change(final)
    with opened(tmp_path) as second:
        assert second.completed(SOURCE) is None


def test_a_record_whose_rename_never_happened_is_not_completed(tmp_path: Path) -> None:
    """The row is written before the rename: a crash between the two leaves a row that
    matches no file, so the item is fetched again."""
    with opened(tmp_path) as first:
        temp = tmp_path / "temp"
        temp.write_bytes(b"hello")
        first.record(
            path="a.txt",
            source=SOURCE,
            stamp=FileStamp.of(os.stat(temp)),
            sha256="0" * 64,
            http_status=200,
            validators=Validators(),
        )
        assert first.owner("a.txt") == SOURCE
    with opened(tmp_path) as second:
        assert second.completed(SOURCE) is None


def test_an_older_output_of_a_source_still_counts_when_a_newer_one_is_gone(
    tmp_path: Path,
) -> None:
    with opened(tmp_path) as first:
        place_file(first, tmp_path, "a.txt")
        place_file(first, tmp_path, "a.1.txt")
    (tmp_path / "a.1.txt").unlink()
    with opened(tmp_path) as second:
        done = second.completed(SOURCE)
    assert done is not None
    assert done.path == "a.txt"


def test_completed_is_per_source(tmp_path: Path) -> None:
    with opened(tmp_path) as first:
        place_file(first, tmp_path, "a.txt")
    with opened(tmp_path) as second:
        assert second.completed("https://example.org/other.txt") is None


def test_record_of_the_same_path_replaces_the_earlier_owner(
    store: StateStore, tmp_path: Path
) -> None:
    place_file(store, tmp_path, "a.txt", source="https://one.example/a.txt")
    place_file(store, tmp_path, "a.txt", source="https://two.example/a.txt")
    assert store.owner("a.txt") == "https://two.example/a.txt"


def test_a_path_nobody_placed_has_no_owner(store: StateStore) -> None:
    assert store.owner("a.txt") is None


# --------------------------------------------------------------------------- claims and counters


def test_a_name_is_claimed_once_per_run(store: StateStore) -> None:
    assert store.claim("a.txt") is True
    assert store.claim("a.txt") is False


@pytest.mark.parametrize(
    ("first", "second"),
    [("A.txt", "a.txt"), ("dir/Report.PDF", "DIR/report.pdf"), ("straße", "STRASSE")],
)
def test_claims_are_case_folded(store: StateStore, first: str, second: str) -> None:
    assert store.claim(first)
    assert not store.claim(second)
    assert store.is_claimed(second)


def test_is_claimed_only_after_a_claim(store: StateStore) -> None:
    assert not store.is_claimed("a.txt")
    store.claim("a.txt")
    assert store.is_claimed("a.txt")


def test_claims_do_not_outlive_the_run(tmp_path: Path) -> None:
    with opened(tmp_path) as first:
        first.claim("a.txt")
    with opened(tmp_path) as second:
        assert not second.is_claimed("a.txt")
        assert second.claim("a.txt")


def test_a_counter_starts_at_one(store: StateStore) -> None:
    assert store.next_counter("a.txt") == 1


def test_a_counter_continues_where_it_was_set(store: StateStore) -> None:
    store.set_counter("a.txt", 5)
    assert store.next_counter("a.txt") == 5
    assert store.next_counter("b.txt") == 1


def test_counters_are_case_folded(store: StateStore) -> None:
    store.set_counter("A.TXT", 3)
    assert store.next_counter("a.txt") == 3


def test_counters_do_not_outlive_the_run(tmp_path: Path) -> None:
    with opened(tmp_path) as first:
        first.set_counter("a.txt", 7)
    with opened(tmp_path) as second:
        assert second.next_counter("a.txt") == 1


# --------------------------------------------------------------------------- rules and failures


def test_rules_are_unknown_for_a_manifest_never_started(store: StateStore) -> None:
    assert store.rules("/out/.fetcher/manifest.jsonl") is None


def test_start_manifest_keeps_the_rules_for_later_runs(tmp_path: Path) -> None:
    rules = {"layout": "mirror", "headers": [["X-A", "1"]], "max_size": None}
    with opened(tmp_path) as first:
        first.start_manifest("m.jsonl", rules)
    with opened(tmp_path) as second:
        assert second.rules("m.jsonl") == rules


def test_start_manifest_again_replaces_the_rules(store: StateStore) -> None:
    store.start_manifest("m.jsonl", {"layout": "flat"})
    store.start_manifest("m.jsonl", {"layout": "indexed"})
    assert store.rules("m.jsonl") == {"layout": "indexed"}


def test_a_failure_is_remembered_for_later_runs(tmp_path: Path) -> None:
    with opened(tmp_path) as first:
        first.remember_failure("m.jsonl", 3, '{"text": "x"}')
    with opened(tmp_path) as second:
        assert second.failure("m.jsonl", 3) == '{"text": "x"}'


@pytest.mark.parametrize(("manifest", "index"), [("m.jsonl", 4), ("other.jsonl", 3)])
def test_a_failure_is_found_only_under_its_manifest_and_index(
    store: StateStore, manifest: str, index: int
) -> None:
    store.remember_failure("m.jsonl", 3, "source")
    assert store.failure(manifest, index) is None


def test_start_manifest_forgets_that_manifests_failures_only(store: StateStore) -> None:
    store.remember_failure("m.jsonl", 0, "mine")
    store.remember_failure("other.jsonl", 0, "theirs")
    store.start_manifest("m.jsonl", {})
    assert store.failure("m.jsonl", 0) is None
    assert store.failure("other.jsonl", 0) == "theirs"


# --------------------------------------------------------------------------- transactions


def test_a_transaction_commits_its_writes(tmp_path: Path) -> None:
    with opened(tmp_path) as first, first.transaction():
        first.remember_failure("m.jsonl", 0, "kept")
    with opened(tmp_path) as second:
        assert second.failure("m.jsonl", 0) == "kept"


def test_an_exception_rolls_the_transaction_back(store: StateStore, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.claim("a.txt")
        store.set_counter("a.txt", 4)
        place_file(store, tmp_path, "a.txt")
        store.remember_failure("m.jsonl", 0, "source")
        raise RuntimeError("boom")
    assert not store.is_claimed("a.txt")
    assert store.next_counter("a.txt") == 1
    assert store.owner("a.txt") is None
    assert store.failure("m.jsonl", 0) is None


def test_the_store_is_usable_after_a_rolled_back_transaction(store: StateStore) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        raise RuntimeError("boom")
    with store.transaction():
        assert store.claim("a.txt")
    assert store.is_claimed("a.txt")


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        pytest.param(
            lambda: sqlite_error("INSERT INTO t VALUES (zeroblob(100000))", max_pages=2),
            ErrorType.DISK_FULL,
            marks=NEEDS_ERROR_CODES,
        ),
        (lambda: sqlite_error("INSERT INTO missing VALUES (1)"), ErrorType.STATE_STORE),
        (lambda: sqlite3.OperationalError("disk I/O error"), ErrorType.STATE_STORE),
    ],
    ids=["sqlite-full", "sqlite-error", "no-error-code"],
)
def test_a_sqlite_error_in_a_transaction_becomes_a_store_write_error(
    store: StateStore, error: Callable[[], sqlite3.Error], kind: ErrorType
) -> None:
    with pytest.raises(StoreWriteError) as raised, store.transaction():
        store.claim("a.txt")
        raise error()
    assert raised.value.error_type is kind
    assert "state store" in str(raised.value)
    assert not store.is_claimed("a.txt")


@NEEDS_ERROR_CODES
def test_a_full_database_fails_the_transaction_as_disk_full(store: StateStore) -> None:
    """A real SQLITE_FULL from the store's own connection (capped at its current size)."""
    writer = store._writer  # no public seam to make the store's own disk full
    pages = writer.execute("PRAGMA page_count").fetchone()[0]
    writer.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StoreWriteError) as raised, store.transaction():
        store.remember_failure("m.jsonl", 0, "x" * 1_000_000)
    assert raised.value.error_type is ErrorType.DISK_FULL
    assert store.failure("m.jsonl", 0) is None


# --------------------------------------------------------------------------- schema versions


def test_a_new_store_has_the_current_schema_version(store: StateStore, tmp_path: Path) -> None:
    assert user_version(state_dir(tmp_path) / DB_NAME) == SCHEMA_VERSION


def test_a_file_that_is_not_sqlite_is_a_usage_error(tmp_path: Path) -> None:
    state_dir(tmp_path).mkdir()
    db = state_dir(tmp_path) / DB_NAME
    db.write_bytes(b"this is not a database, just a file someone left here" * 100)
    with pytest.raises(UsageError, match="not a usable fetcher state store"):
        StateStore(tmp_path, state_dir(tmp_path))


def test_a_foreign_sqlite_file_is_a_usage_error_and_left_alone(tmp_path: Path) -> None:
    state_dir(tmp_path).mkdir()
    db = state_dir(tmp_path) / DB_NAME
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE outputs (name TEXT, colour TEXT)")
        conn.commit()
    with pytest.raises(UsageError, match="not a fetcher state store"):
        StateStore(tmp_path, state_dir(tmp_path))
    assert tables(db) == {"outputs"}
    assert user_version(db) == 0


def test_a_store_of_a_newer_schema_is_a_usage_error_and_left_alone(tmp_path: Path) -> None:
    state_dir(tmp_path).mkdir()
    db = state_dir(tmp_path) / DB_NAME
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(UsageError, match="another version of fetcher"):
        StateStore(tmp_path, state_dir(tmp_path))
    assert user_version(db) == SCHEMA_VERSION + 1
    assert tables(db) == set()


def test_a_refused_store_releases_its_lock(tmp_path: Path) -> None:
    """The same refusal again, not 'another fetcher run is using it'."""
    state_dir(tmp_path).mkdir()
    with contextlib.closing(sqlite3.connect(state_dir(tmp_path) / DB_NAME)) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    for _ in range(2):
        with pytest.raises(UsageError, match="another version of fetcher"):
            StateStore(tmp_path, state_dir(tmp_path))


_VERSION_1 = """
CREATE TABLE outputs (
    path TEXT PRIMARY KEY, source TEXT NOT NULL, bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL, ino INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    http_status INTEGER, etag TEXT, last_modified TEXT, run INTEGER NOT NULL
);
CREATE INDEX outputs_source ON outputs (source);
CREATE TABLE failures (
    manifest TEXT NOT NULL, idx INTEGER NOT NULL, source TEXT NOT NULL,
    PRIMARY KEY (manifest, idx)
);
CREATE TABLE partials (temp TEXT PRIMARY KEY, source TEXT NOT NULL, validator TEXT NOT NULL);
PRAGMA user_version = 1;
"""


def test_a_version_1_store_gains_the_runs_table_and_keeps_its_rows(tmp_path: Path) -> None:
    state_dir(tmp_path).mkdir()
    db = state_dir(tmp_path) / DB_NAME
    final = tmp_path / "a.txt"
    final.write_bytes(b"hello")
    info = final.stat()
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.executescript(_VERSION_1)
        conn.execute(
            "INSERT INTO outputs VALUES ('a.txt', ?, 5, ?, ?, ?, 200, NULL, NULL, 1)",
            (SOURCE, "0" * 64, info.st_ino, info.st_mtime_ns),
        )
        conn.execute("INSERT INTO failures VALUES ('m.jsonl', 2, 'src')")
        conn.commit()
    with opened(tmp_path) as store:
        assert store.run == 2
        assert store.completed(SOURCE) is not None
        assert store.failure("m.jsonl", 2) == "src"
        assert store.rules("m.jsonl") is None
        store.start_manifest("m.jsonl", {"layout": "flat"})
        assert store.rules("m.jsonl") == {"layout": "flat"}
    assert "runs" in tables(db)
    assert user_version(db) == SCHEMA_VERSION


# --------------------------------------------------------------------------- privacy and symlinks


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_the_state_folder_is_private(store: StateStore, tmp_path: Path) -> None:
    assert _mode(state_dir(tmp_path)) == 0o700


def test_the_state_files_are_private(store: StateStore, tmp_path: Path) -> None:
    store.remember_failure("m.jsonl", 0, "https://user:secret@example.org/")
    files = sorted(state_dir(tmp_path).iterdir())
    assert {p.name for p in files} >= {DB_NAME, LOCK_NAME}
    assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}


def test_an_existing_state_folder_is_made_private(tmp_path: Path) -> None:
    with opened(tmp_path) as first:
        first.remember_failure("m.jsonl", 0, "https://user:secret@example.org/")
    os.chmod(state_dir(tmp_path), 0o755)
    for path in state_dir(tmp_path).iterdir():
        os.chmod(path, 0o644)
    with opened(tmp_path):
        modes = {p.name: _mode(p) for p in state_dir(tmp_path).iterdir()}
        assert _mode(state_dir(tmp_path)) == 0o700
        assert modes == dict.fromkeys(modes, 0o600)


@pytest.mark.parametrize("name", [None, DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", LOCK_NAME])
def test_a_symlink_in_the_state_folder_is_refused(tmp_path: Path, name: str | None) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "out"
    root.mkdir()
    if name is None:
        state_dir(root).symlink_to(elsewhere)
    else:
        state_dir(root).mkdir(mode=0o700)
        (state_dir(root) / name).symlink_to(elsewhere / name)
    with pytest.raises(UsageError, match="symlink"):
        StateStore(root, state_dir(root))
    assert list(elsewhere.iterdir()) == []


# --------------------------------------------------------------------------- partials


def test_a_kept_partial_is_listed(store: StateStore) -> None:
    store.keep_partial(".fetcher-0-abc.part", SOURCE, '"etag"')
    assert store.partial_temps() == frozenset({".fetcher-0-abc.part"})


def test_a_dropped_partial_is_not_listed(store: StateStore) -> None:
    store.keep_partial(".fetcher-0-abc.part", SOURCE, '"etag"')
    store.keep_partial(".fetcher-1-def.part", SOURCE, '"etag"')
    store.drop_partial(".fetcher-0-abc.part")
    assert store.partial_temps() == frozenset({".fetcher-1-def.part"})


def test_a_partials_log_shares_the_store_of_its_run(store: StateStore, tmp_path: Path) -> None:
    log = PartialsLog(state_dir(tmp_path))
    try:
        log.keep_partial("worker.part", SOURCE, '"v"')
        assert store.partial_temps() == frozenset({"worker.part"})
        store.drop_partial("worker.part")
        assert log.partial_temps() == frozenset()
    finally:
        log.close()


def test_partial_answers_for_a_temp_left_by_an_earlier_run(tmp_path: Path) -> None:
    with opened(tmp_path) as first:
        first.keep_partial("t.part", SOURCE, '"v1"')
        first.keep_partial("t.part", SOURCE, '"v2"')  # the same temp, a newer validator
    with opened(tmp_path) as second:
        assert second.left_partials == frozenset({"t.part"})
        assert second.partial("t.part", SOURCE) == '"v2"'


def test_partial_does_not_answer_for_a_temp_of_this_run(store: StateStore) -> None:
    store.keep_partial("t.part", SOURCE, '"v1"')
    assert store.partial("t.part", SOURCE) is None


def test_partial_does_not_answer_for_another_source(tmp_path: Path) -> None:
    with opened(tmp_path) as first:
        first.keep_partial("t.part", SOURCE, '"v1"')
    with opened(tmp_path) as second:
        assert second.partial("t.part", "https://example.org/other") is None


def test_partial_does_not_answer_once_dropped(tmp_path: Path) -> None:
    with opened(tmp_path) as first:
        first.keep_partial("t.part", SOURCE, '"v1"')
    with opened(tmp_path) as second:
        second.drop_partial("t.part")
        assert second.partial("t.part", SOURCE) is None
