"""Writing outputs safely: a temporary file in the final directory, hashed while it is
written, renamed into place only when complete; directories created without ever following
a symlink out of the output directory."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

from fetcher.errors import ItemError

TEMP_PREFIX = ".fetcher-"
TEMP_SUFFIX = ".part"
STATE_DIR = ".fetcher"
"""Hidden folder in the output dir for the state store and the default manifest."""


def temp_name(index: int, token: str) -> str:
    """Recognisable and stable for the same item, so a later run can find and replace it;
    sanitised names never start with '.', so it cannot clash with an output."""
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


class LiveTemps:
    """Temp files being written right now, so an interrupted run can remove them."""

    def __init__(self) -> None:
        self._paths: set[Path] = set()
        self._lock = threading.Lock()

    def add(self, path: Path) -> None:
        with self._lock:
            self._paths.add(path)

    def discard(self, path: Path) -> None:
        with self._lock:
            self._paths.discard(path)

    def remove_all(self) -> None:
        with self._lock:
            paths, self._paths = self._paths, set()
        for path in paths:
            remove_quietly(path)


class TempOutput:
    """One item's body on its way to disk; `max_size` is enforced as bytes arrive."""

    def __init__(
        self,
        path: Path,
        live: LiveTemps,
        max_size: int | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        self.path = path
        self.size = 0
        self._max_size = max_size
        self._on_bytes = on_bytes
        self._hash = hashlib.sha256()
        self._live = live
        remove_quietly(path)  # a stale temp of an earlier run, or anything planted there
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as exc:
            raise os_item_error(exc, f"cannot create {path}") from exc
        live.add(path)
        self._file = os.fdopen(fd, "wb", buffering=0)

    def write(self, data: bytes | memoryview) -> None:
        self.size += len(data)
        if self._max_size is not None and self.size > self._max_size:
            raise ItemError("too_large", f"body exceeds --max-size ({self._max_size} bytes)")
        self._hash.update(data)
        view = memoryview(data)
        try:
            while view:
                view = view[self._file.write(view) or 0 :]
        except OSError as exc:
            raise os_item_error(exc, f"cannot write {self.path}") from exc
        if self._on_bytes is not None:
            self._on_bytes(len(data))

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def close(self) -> None:
        self._file.close()

    def discard(self) -> None:
        self._file.close()
        remove_quietly(self.path)
        self._live.discard(self.path)

    def placed(self) -> None:
        """The file was renamed into place or consumed: no longer ours to clean up."""
        self._live.discard(self.path)


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def place(temp: TempOutput, final: Path) -> None:
    """Atomic rename into place; a symlink at `final` is replaced, never written through."""
    try:
        os.replace(temp.path, final)
    except OSError as exc:
        raise os_item_error(exc, f"cannot move the download to {final}") from exc
    temp.placed()


def os_item_error(exc: OSError, context: str) -> ItemError:
    """The one translation of OS errors into item errors."""
    if exc.errno == errno.ENOSPC:
        return ItemError("disk_full", f"{context}: no space left on device")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return ItemError("permission", f"{context}: permission denied")
    if exc.errno == errno.ELOOP:
        return ItemError("path_conflict", f"{context}: a symlink is in the way")
    return ItemError("io", f"{context}: {exc.strerror or exc}")
