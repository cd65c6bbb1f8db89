"""Temp files and their placement: each body is written to a temporary file at the top of the
output dir, hashed while it is written, and renamed into place only when complete;
directories are created without ever following a symlink out of the output directory."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from fetcher.digests import Digests
from fetcher.errors import ItemError
from fetcher.results import ErrorType

TEMP_PREFIX = ".fetcher-"
TEMP_SUFFIX = ".part"
STATE_DIR = ".fetcher"
"""Hidden folder in the output dir for the state store and the default manifest."""


def temp_name(index: int, target: str) -> str:
    """Recognisable and stable for the same item, so a later run can find and replace it;
    sanitised names never start with '.', so it cannot clash with an output."""
    token = hashlib.sha256(target.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{TEMP_PREFIX}{index}-{token}{TEMP_SUFFIX}"


def make_dir(path: Path) -> bool:
    """Make `path` a real directory if nothing is there; False when a file or a symlink is
    in the way (a symlink is never followed, so nothing is created outside the output dir)."""
    try:
        path.mkdir()
    except FileExistsError:
        pass  # checked just below
    except OSError as exc:
        raise os_item_error(exc, f"cannot create directory {path}") from exc
    mode = path.lstat().st_mode
    return stat.S_ISDIR(mode) and not stat.S_ISLNK(mode)


@dataclass(frozen=True)
class FileStamp:
    """Which file, exactly: what the state store records of an output it places."""

    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, info: os.stat_result) -> FileStamp:
        return cls(info.st_ino, info.st_size, info.st_mtime_ns)


class CompleteTemp(Protocol):
    """What the committer needs of a complete temp file, whoever wrote it."""

    @property
    def path(self) -> str | Path: ...

    @property
    def size(self) -> int: ...

    @property
    def resumable(self) -> bool: ...

    @property
    def sha256(self) -> str: ...

    @property
    def stamp(self) -> FileStamp: ...

    def discard(self) -> None: ...

    def placed(self) -> None: ...


@dataclass
class FinishedTemp:
    """A complete temp file whose writer has closed it, as it crosses from another process
    (`--processes`, a cluster worker): plain data until `adopt` makes it this process's."""

    path: str
    size: int
    sha256: str
    resumable: bool
    stamp: FileStamp
    live: LiveTemps | None = None

    def adopt(self, live: LiveTemps) -> None:
        """Owned here from now on: removed with the run's other temps if it stops."""
        self.live = live
        live.add(self)

    def discard(self) -> None:
        remove_quietly(self.path)
        self.placed()

    def placed(self) -> None:
        if self.live is not None:
            self.live.discard(self.path)


class LiveTemps:
    """Temp files in use right now, so an interrupted run can remove them (all but those
    marked resumable, which the next run continues)."""

    def __init__(self) -> None:
        self._outputs: dict[str, CompleteTemp | TempOutput] = {}
        self._lock = threading.Lock()

    def add(self, output: CompleteTemp | TempOutput) -> None:
        with self._lock:
            self._outputs[os.fspath(output.path)] = output

    def discard(self, path: str | Path) -> None:
        with self._lock:
            self._outputs.pop(os.fspath(path), None)

    def remove_all(self) -> None:
        with self._lock:
            outputs, self._outputs = self._outputs, {}
        for path, output in outputs.items():
            if not output.resumable:
                remove_quietly(path)


class TempOutput:
    """One item's body on its way to disk, kept open across the item's attempts so that a
    broken transfer can continue where it stopped; `max_size` is enforced as bytes arrive."""

    def __init__(
        self,
        path: Path,
        live: LiveTemps,
        *,
        max_size: int | None = None,
        on_bytes: Callable[[int], None] | None = None,
        md5: bool = False,
        resume: bool = False,
    ) -> None:
        self.path = path
        self.size = 0
        self._stamp: FileStamp | None = None
        self._max_size = max_size
        self._on_bytes = on_bytes
        self._md5 = md5
        self._digests = Digests(md5=md5)
        self._live = live
        self.resumable = False
        """Set once the bytes so far can be continued by a later run: then an interrupted
        run keeps the file instead of removing it."""
        self._file = self._open_existing() if resume else None
        if self._file is None:
            self._file = os.fdopen(_create(path), "wb", buffering=0)
        live.add(self)

    def _open_existing(self) -> BinaryIO | None:
        """Reopen a partial file left by an interrupted run, re-hashing what it holds."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        handle = os.fdopen(fd, "r+b", buffering=0)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            handle.close()
            return None
        while block := handle.read(1024 * 1024):
            self._digests.update(block)
            self.size += len(block)
        return handle

    def write(self, data: bytes | memoryview) -> None:
        self.size += len(data)
        if self._max_size is not None and self.size > self._max_size:
            raise ItemError(
                ErrorType.TOO_LARGE, f"body exceeds --max-size ({self._max_size} bytes)"
            )
        self._digests.update(data)
        view = memoryview(data)
        assert self._file is not None
        try:
            while view:
                view = view[self._file.write(view) or 0 :]
        except OSError as exc:
            raise os_item_error(exc, f"cannot write {self.path}") from exc
        if self._on_bytes is not None:
            self._on_bytes(len(data))

    def restart(self) -> None:
        """Throw away the bytes so far: the server sent the whole body again."""
        assert self._file is not None
        self._file.truncate(0)
        self._file.seek(0)  # or the next write lands after a hole at the old offset
        self.size = 0
        self._digests.finish()
        self._digests = Digests(md5=self._md5)

    @property
    def sha256(self) -> str:
        return self._digests.hexdigest("sha256")

    def verify(self, checksums: tuple[tuple[str, str], ...]) -> None:
        """Compare with the expected digests; a mismatch fails the item."""
        for algorithm, expected in checksums:
            actual = self._digests.hexdigest(algorithm)
            if actual != expected:
                raise ItemError(
                    ErrorType.CHECKSUM_MISMATCH, f"{algorithm} is {actual}, expected {expected}"
                )

    def close(self) -> None:
        """Done writing (its mtime set): what the file now is, is what will be placed."""
        assert self._file is not None
        self._stamp = FileStamp.of(os.fstat(self._file.fileno()))
        self._file.close()
        self._digests.finish()

    @property
    def stamp(self) -> FileStamp:
        if self._stamp is None:
            raise RuntimeError("the temp file is still being written")
        return self._stamp

    def discard(self) -> None:
        assert self._file is not None
        self._file.close()
        self._digests.finish()
        remove_quietly(self.path)
        self._live.discard(self.path)

    def placed(self) -> None:
        """The file was renamed into place or consumed: no longer ours to clean up."""
        self._live.discard(self.path)

    def finished(self) -> FinishedTemp:
        """The closed file as plain data, to hand to another process."""
        return FinishedTemp(str(self.path), self.size, self.sha256, self.resumable, self.stamp)


def _create(path: Path) -> int:
    """A new, empty file; a stale temp of an earlier run (or anything planted there) is
    removed first, never opened or followed."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        try:
            return os.open(path, flags, 0o644)
        except FileExistsError:
            remove_quietly(path)
            return os.open(path, flags, 0o644)
    except OSError as exc:
        raise os_item_error(exc, f"cannot create {path}") from exc


def remove_quietly(path: str | Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def remove_stale_temps(root: Path, keep: frozenset[str]) -> None:
    """Temp files left by a killed run, except those registered for resuming."""
    with os.scandir(root) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX) and name not in keep:
                remove_quietly(root / name)


def place(temp: CompleteTemp, final: str | Path) -> None:
    """Atomic rename into place; a symlink at `final` is replaced, never written through."""
    try:
        os.replace(temp.path, final)
    except OSError as exc:
        raise os_item_error(exc, f"cannot move the download to {final}") from exc
    temp.placed()


def os_item_error(exc: OSError, context: str) -> ItemError:
    """The one translation of OS errors into item errors."""
    if exc.errno == errno.ENOSPC:
        return ItemError(ErrorType.DISK_FULL, f"{context}: no space left on device")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return ItemError(ErrorType.PERMISSION, f"{context}: permission denied")
    if exc.errno == errno.ELOOP:
        return ItemError(ErrorType.PATH_CONFLICT, f"{context}: a symlink is in the way")
    return ItemError(ErrorType.IO, f"{context}: {exc.strerror or exc}")
