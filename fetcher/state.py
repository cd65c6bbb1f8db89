"""The embedded state store (SQLite in `.fetcher/` inside the output dir).

It records every output this tool placed: which source it came from and the exact file
(inode, size, mtime) that was renamed into place. Completion is read from here, never guessed
from a file's size; a file the store does not know is never overwritten. The row is written
*before* the rename, so a crash between the two leaves a row whose inode does not match the
file on disk: the item is fetched again, and the name stays its own.

Two types, two modes: `StateStore` is the run's one writer (it holds the output dir's lock,
names outputs, records them, remembers failures and the rules of each run), in the process
that keeps the order; `PartialsLog` is what worker processes of the same run open beside it,
to register the partial downloads a later run may continue, and nothing else.

The store also keeps what `fetcher retry` needs: the rules each run was started with and
the full source of each failed item, URL credentials included (which the manifest masks).
So the state folder is private to its owner (0700, files 0600).

Name claims of the current run live in a temporary table, so that collision handling for a
list of millions of items does not hold millions of names in memory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from fetcher.errors import UsageError
from fetcher.results import ErrorType
from fetcher.temps import FileStamp

DB_NAME = "state.sqlite"
_DB_SIDE_FILES = ("state.sqlite-wal", "state.sqlite-shm")
SCHEMA_VERSION = 2
"""1: outputs, failures, partials; 2 adds runs (the rules of each run, for `retry`)."""
LOCK_NAME = "lock"
_PRIVATE_FILE = 0o600
_PRIVATE_DIR = 0o700

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outputs (
    path TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    ino INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    http_status INTEGER,
    etag TEXT,
    last_modified TEXT,
    run INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outputs_source ON outputs (source);
CREATE TABLE IF NOT EXISTS failures (
    manifest TEXT NOT NULL,
    idx INTEGER NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (manifest, idx)
);
CREATE TABLE IF NOT EXISTS partials (
    temp TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    validator TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    manifest TEXT PRIMARY KEY,
    rules TEXT NOT NULL
);
"""


class StoreWriteError(Exception):
    """The store could not be written (its disk is full, or failing): the items of the
    batch being committed fail with `error_type`, and nothing of that batch is placed."""

    def __init__(self, error_type: ErrorType, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def refuse_symlinks(*paths: Path) -> None:
    """The state folder and its files are opened by name: a symlink planted there would make
    this tool write wherever it points."""
    for path in paths:
        if path.is_symlink():
            raise UsageError(f"{path} is a symlink; refusing to write through it")


@dataclass(frozen=True)
class Validators:
    """What a server (or a local file's size and mtime) said about a version of a source."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class Completed:
    """An output already in place and unchanged since this tool wrote it."""

    path: str
    bytes: int
    sha256: str
    http_status: int | None
    validators: Validators


class _Connections:
    """Per-thread SQLite connections to one database file: workers register partial
    files while the committer writes."""

    def __init__(self, db: Path) -> None:
        self._db = db
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._guard = threading.Lock()

    def get(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._db, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA temp_store=FILE")
            conn.execute("PRAGMA busy_timeout=10000")
            self._local.conn = conn
            with self._guard:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._guard:
            connections, self._all = self._all, []
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):
                conn.close()


class PartialsLog:
    """A worker process's access to the store of the run it belongs to: it registers the
    partial downloads worth continuing in a later run, and forgets them once used."""

    def __init__(self, state_dir: Path) -> None:
        self._connections = _Connections(state_dir / DB_NAME)

    def keep_partial(self, temp: str, source: str, validator: str) -> None:
        """A temp file worth resuming: its source and the validator its bytes belong to."""
        self._connections.get().execute(
            "INSERT OR REPLACE INTO partials (temp, source, validator) VALUES (?, ?, ?)",
            (temp, source, validator),
        )

    def drop_partial(self, temp: str) -> None:
        self._connections.get().execute("DELETE FROM partials WHERE temp = ?", (temp,))

    def partial_temps(self) -> frozenset[str]:
        """Names of all temp files registered for resuming (a few: only large bodies)."""
        rows = self._connections.get().execute("SELECT temp FROM partials")
        return frozenset(str(r[0]) for r in rows)

    def close(self) -> None:
        self._connections.close()


class StateStore(PartialsLog):
    """One store per output dir, opened by the run's one writer; an exclusive lock keeps
    two runs from sharing it."""

    def __init__(self, root: Path, state_dir: Path) -> None:
        self._root = root
        self._db = state_dir / DB_NAME
        self._lock_file: TextIO | None = None
        refuse_symlinks(state_dir, *(state_dir / n for n in (DB_NAME, *_DB_SIDE_FILES, LOCK_NAME)))
        _make_private_dir(state_dir)
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        lock_file = os.fdopen(os.open(state_dir / LOCK_NAME, flags, _PRIVATE_FILE), "w")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            raise UsageError(f"another fetcher run is using {root}") from None
        self._lock_file = lock_file
        _touch_private(self._db)
        super().__init__(state_dir)
        try:
            self._writer = self._open_schema(state_dir)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise UsageError(
                f"{self._db} is not a usable fetcher state store ({exc});"
                f" remove {state_dir} to start afresh"
            ) from None
        except UsageError:
            self.close()
            raise
        # Partial files earlier runs left: the only ones an item can resume when it starts.
        self.left_partials = self.partial_temps()
        latest = self._writer.execute("SELECT MAX(run) FROM outputs").fetchone()[0]
        self.run = (latest or 0) + 1
        """This run's number: outputs it places are not `completed` for itself, so a source
        listed twice is fetched twice, whatever the timing."""
        self._earlier_outputs = (
            self._writer.execute("SELECT 1 FROM outputs LIMIT 1").fetchone() is not None
        )

    def _open_schema(self, state_dir: Path) -> sqlite3.Connection:
        writer = self._connections.get()
        version = writer.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, 1, SCHEMA_VERSION):
            raise UsageError(
                f"{self._db} was written by another version of fetcher (schema {version},"
                f" this one uses {SCHEMA_VERSION}); remove {state_dir} to start afresh"
            )
        if (
            version == 0
            and writer.execute("SELECT 1 FROM sqlite_master WHERE name = 'outputs'").fetchone()
        ):
            raise UsageError(f"{self._db} is not a fetcher state store this version can read")
        writer.executescript(_SCHEMA)  # version 1 gains the runs table
        writer.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        writer.execute("CREATE TEMP TABLE claims (key TEXT PRIMARY KEY) WITHOUT ROWID")
        writer.execute(
            "CREATE TEMP TABLE counters (key TEXT PRIMARY KEY, next INTEGER) WITHOUT ROWID"
        )
        return writer

    def completed(self, source: str) -> Completed | None:
        """The output recorded for `source`, if the file on disk is still exactly that one
        (no query when no earlier run placed anything: it costs a handful of system calls)."""
        if not self._earlier_outputs:
            return None
        rows = self._connections.get().execute(
            "SELECT path, bytes, sha256, ino, mtime_ns, http_status, etag, last_modified"
            " FROM outputs WHERE source = ? AND run < ? ORDER BY rowid",
            (source, self.run),
        )
        for path, size, sha256, ino, mtime_ns, http_status, etag, last_modified in rows:
            try:
                info = (self._root / path).lstat()
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode) and (info.st_ino, info.st_size, info.st_mtime_ns) == (
                ino,
                size,
                mtime_ns,
            ):
                return Completed(path, size, sha256, http_status, Validators(etag, last_modified))
        return None

    def partial(self, temp: str, source: str) -> str | None:
        """The validator of a resumable temp file an earlier run left for `source`, if any
        (no query for the usual case: nothing was left under that name)."""
        if temp not in self.left_partials:
            return None
        row = (
            self._connections.get()
            .execute("SELECT validator FROM partials WHERE temp = ? AND source = ?", (temp, source))
            .fetchone()
        )
        return None if row is None else str(row[0])

    def owner(self, path: str) -> str | None:
        """The source whose output was last placed at `path`, if any."""
        row = self._writer.execute("SELECT source FROM outputs WHERE path = ?", (path,)).fetchone()
        return None if row is None else str(row[0])

    def claim(self, path: str) -> bool:
        """Reserve a name for this run; False when an earlier item already has it. Keys are
        case-folded so names stay distinct on case-insensitive file systems too."""
        cursor = self._writer.execute(
            "INSERT OR IGNORE INTO claims (key) VALUES (?)", (path.casefold(),)
        )
        return cursor.rowcount == 1

    def is_claimed(self, path: str) -> bool:
        """Whether an earlier item of this run took `path` as a file name."""
        row = self._writer.execute(
            "SELECT 1 FROM claims WHERE key = ?", (path.casefold(),)
        ).fetchone()
        return row is not None

    def next_counter(self, name: str) -> int:
        """Where the search for a free `name.N` starts: one past the last one this run gave
        out, so many items sharing a name cost one step each, not one per earlier item."""
        row = self._writer.execute(
            "SELECT next FROM counters WHERE key = ?", (name.casefold(),)
        ).fetchone()
        return 1 if row is None else int(row[0])

    def set_counter(self, name: str, following: int) -> None:
        self._writer.execute(
            "INSERT OR REPLACE INTO counters (key, next) VALUES (?, ?)",
            (name.casefold(), following),
        )

    def record(
        self,
        *,
        path: str,
        source: str,
        stamp: FileStamp,
        sha256: str,
        http_status: int | None,
        validators: Validators,
    ) -> None:
        """Remember the file about to be renamed to `path` (call before the rename)."""
        self._writer.execute(
            "INSERT OR REPLACE INTO outputs"
            " (path, source, bytes, sha256, ino, mtime_ns, http_status, etag, last_modified,"
            " run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                path, source, stamp.size, sha256, stamp.ino, stamp.mtime_ns, http_status,
                validators.etag, validators.last_modified, self.run,
            ),
        )  # fmt: skip

    def start_manifest(self, manifest: str, rules: dict[str, Any]) -> None:
        """A run writes `manifest` afresh: forget the failures of the run that wrote it
        before, and keep the rules this one runs by, for `fetcher retry`."""
        with self.transaction():
            self._writer.execute("DELETE FROM failures WHERE manifest = ?", (manifest,))
            self._writer.execute(
                "INSERT OR REPLACE INTO runs (manifest, rules) VALUES (?, ?)",
                (manifest, json.dumps(rules)),
            )

    def rules(self, manifest: str) -> dict[str, Any] | None:
        """The rules recorded by the run that wrote `manifest`, if this store has them."""
        row = self._writer.execute(
            "SELECT rules FROM runs WHERE manifest = ?", (manifest,)
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def remember_failure(self, manifest: str, index: int, source: str) -> None:
        """Keep a failed item's full source (JSON) so `fetcher retry` can run it again. It
        stays after a retry succeeds: should that retry's manifest never be written (a full
        disk), the failed row is still there to retry, and still found here."""
        self._writer.execute(
            "INSERT OR REPLACE INTO failures (manifest, idx, source) VALUES (?, ?, ?)",
            (manifest, index, source),
        )

    def failure(self, manifest: str, index: int) -> str | None:
        row = self._writer.execute(
            "SELECT source FROM failures WHERE manifest = ? AND idx = ?", (manifest, index)
        ).fetchone()
        return None if row is None else str(row[0])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One commit for a batch of the committer's writes (claims, records, failures);
        SQLite's own errors become a `StoreWriteError`."""
        try:
            self._writer.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _write_error(exc) from exc
        try:
            yield
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._writer.execute("ROLLBACK")
            raise _write_error(exc) from exc
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._writer.execute("ROLLBACK")
            raise
        try:
            self._writer.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._writer.execute("ROLLBACK")
            raise _write_error(exc) from exc

    def close(self) -> None:
        super().close()
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None


def _write_error(exc: sqlite3.Error) -> StoreWriteError:
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    full = code == getattr(sqlite3, "SQLITE_FULL", 13)
    return StoreWriteError(
        ErrorType.DISK_FULL if full else ErrorType.STATE_STORE,
        f"the state store cannot be written: {exc}",
    )


def _make_private_dir(path: Path) -> None:
    """The state folder, owner-only: also one an older fetcher made readable to all (it
    holds full sources now, URL credentials included)."""
    try:
        path.mkdir(mode=_PRIVATE_DIR, exist_ok=True)
        os.chmod(path, _PRIVATE_DIR)
        for name in (DB_NAME, *_DB_SIDE_FILES, LOCK_NAME):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(path / name, _PRIVATE_FILE)
    except OSError as exc:
        raise UsageError(f"cannot use {path}: {exc.strerror}") from None


def _touch_private(db: Path) -> None:
    """Create the database file owner-only before SQLite does (with the umask's mode)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    with contextlib.suppress(FileExistsError):
        os.close(os.open(db, flags, _PRIVATE_FILE))
