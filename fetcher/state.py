"""The embedded state store (SQLite in `.fetcher/` inside the output dir).

It records every output this tool placed: which source it came from and the exact file
(inode, size, mtime) that was renamed into place. Completion is read from here, never guessed
from a file's size; a file the store does not know is never overwritten. The row is written
*before* the rename, so a crash between the two leaves a row whose inode does not match the
file on disk: the item is fetched again, and the name stays its own.

Name claims of the current run live in a temporary table, so that collision handling for a
list of millions of items does not hold millions of names in memory.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from fetcher.errors import UsageError

DB_NAME = "state.sqlite"
_DB_SIDE_FILES = ("state.sqlite-wal", "state.sqlite-shm")
SCHEMA_VERSION = 1
LOCK_NAME = "lock"

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
"""


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


class StateStore:
    """One store per output dir; an exclusive lock keeps two runs from sharing it."""

    def __init__(self, root: Path, state_dir: Path, *, attach_to_run: int | None = None) -> None:
        """Open (and lock) the store of an output dir; with `attach_to_run`, join the store
        a parent process has open for that run instead (`--processes`): no lock, reads and
        partial-file bookkeeping only."""
        self._root = root
        self._db = state_dir / DB_NAME
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self._lock_file: TextIO | None = None
        if attach_to_run is not None:
            self._run = attach_to_run
            self._left_partials = self.partial_temps()
            self._earlier_outputs = self._any_earlier_outputs()
            return
        refuse_symlinks(state_dir, *(state_dir / n for n in (DB_NAME, *_DB_SIDE_FILES, LOCK_NAME)))
        state_dir.mkdir(exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        lock_file = os.fdopen(os.open(state_dir / LOCK_NAME, flags, 0o644), "w")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            raise UsageError(f"another fetcher run is using {root}") from None
        self._lock_file = lock_file
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
        self._left_partials = self.partial_temps()
        latest = self._writer.execute("SELECT MAX(run) FROM outputs").fetchone()[0]
        # This run's number: outputs it places are not `completed` for itself, so a source
        # listed twice is fetched twice, whatever the timing.
        self._run = (latest or 0) + 1
        self._earlier_outputs = self._any_earlier_outputs()

    def _any_earlier_outputs(self) -> bool:
        row = (
            self._connection()
            .execute("SELECT 1 FROM outputs WHERE run < ? LIMIT 1", (self._run,))
            .fetchone()
        )
        return row is not None

    def _open_schema(self, state_dir: Path) -> sqlite3.Connection:
        writer = self._connection()
        version = writer.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise UsageError(
                f"{self._db} was written by another version of fetcher (schema {version},"
                f" this one uses {SCHEMA_VERSION}); remove {state_dir} to start afresh"
            )
        if (
            version == 0
            and writer.execute("SELECT 1 FROM sqlite_master WHERE name = 'outputs'").fetchone()
        ):
            raise UsageError(f"{self._db} is not a fetcher state store this version can read")
        writer.executescript(_SCHEMA)
        writer.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        writer.execute("CREATE TEMP TABLE claims (key TEXT PRIMARY KEY) WITHOUT ROWID")
        return writer

    def _connection(self) -> sqlite3.Connection:
        """Per-thread connections: workers look up completions while the committer writes."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._db, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA temp_store=FILE")
            conn.execute("PRAGMA busy_timeout=10000")
            self._local.conn = conn
            with self._guard:
                self._connections.append(conn)
        return conn

    def completed(self, source: str) -> Completed | None:
        """The output recorded for `source`, if the file on disk is still exactly that one
        (no query on a first run: a read per item costs a handful of system calls)."""
        if not self._earlier_outputs:
            return None
        rows = self._connection().execute(
            "SELECT path, bytes, sha256, ino, mtime_ns, http_status, etag, last_modified"
            " FROM outputs WHERE source = ? AND run < ? ORDER BY rowid",
            (source, self._run),
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

    @property
    def run(self) -> int:
        return self._run

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

    def record(
        self,
        *,
        path: str,
        source: str,
        info: os.stat_result,
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
                path, source, info.st_size, sha256, info.st_ino, info.st_mtime_ns, http_status,
                validators.etag, validators.last_modified, self._run,
            ),
        )  # fmt: skip

    def keep_partial(self, temp: str, source: str, validator: str) -> None:
        """A temp file worth resuming: its source and the validator its bytes belong to."""
        self._connection().execute(
            "INSERT OR REPLACE INTO partials (temp, source, validator) VALUES (?, ?, ?)",
            (temp, source, validator),
        )

    @property
    def left_partials(self) -> frozenset[str]:
        """Temp files registered for resuming when this run began."""
        return self._left_partials

    def partial(self, temp: str, source: str) -> str | None:
        """The validator of a resumable temp file an earlier run left for `source`, if any
        (no query for the usual case: nothing was left under that name)."""
        if temp not in self._left_partials:
            return None
        row = (
            self._connection()
            .execute("SELECT validator FROM partials WHERE temp = ? AND source = ?", (temp, source))
            .fetchone()
        )
        return None if row is None else str(row[0])

    def drop_partial(self, temp: str) -> None:
        self._connection().execute("DELETE FROM partials WHERE temp = ?", (temp,))

    def partial_temps(self) -> frozenset[str]:
        """Names of all temp files registered for resuming (a few: only large bodies)."""
        return frozenset(str(r[0]) for r in self._connection().execute("SELECT temp FROM partials"))

    def clear_failures(self, manifest: str) -> None:
        """A new run writes `manifest` afresh: forget the failures of the previous one."""
        self._writer.execute("DELETE FROM failures WHERE manifest = ?", (manifest,))

    def remember_failure(self, manifest: str, index: int, source: str) -> None:
        """Keep a failed item's full source (JSON) so `fetcher retry` can run it again."""
        self._writer.execute(
            "INSERT OR REPLACE INTO failures (manifest, idx, source) VALUES (?, ?, ?)",
            (manifest, index, source),
        )

    def forget_failure(self, manifest: str, index: int) -> None:
        self._writer.execute(
            "DELETE FROM failures WHERE manifest = ? AND idx = ?", (manifest, index)
        )

    def failure(self, manifest: str, index: int) -> str | None:
        row = self._writer.execute(
            "SELECT source FROM failures WHERE manifest = ? AND idx = ?", (manifest, index)
        ).fetchone()
        return None if row is None else str(row[0])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One commit for a batch of the committer's writes (claims, records, failures)."""
        self._writer.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._writer.execute("ROLLBACK")
            raise
        self._writer.execute("COMMIT")

    def close(self) -> None:
        with self._guard:
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
