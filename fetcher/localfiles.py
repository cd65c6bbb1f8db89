"""Local sources (paths and file:// URLs): copied through the same hashing temp file as
downloads. One pass reads, hashes and writes each block: the sha256 needs every byte anyway,
so a kernel-side copy (sendfile) would only add a second read."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from fetcher.errors import Interrupted, ItemError
from fetcher.results import ErrorType
from fetcher.temps import TempOutput, os_item_error
from fetcher.transport import CHUNK_BYTES


def copy_local(
    path: str,
    make_output: Callable[[int], TempOutput],
    stopping: Callable[[], bool],
    spend: Callable[[int], None] | None = None,
) -> TempOutput:
    """Copy a regular file into a new temp output; `make_output` gets the source's size,
    `spend` each block's size (the run's bandwidth limit)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # a FIFO must not block us
    except OSError as exc:
        raise _source_error(exc, path) from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ItemError(ErrorType.IS_DIRECTORY, f"{path} is a directory")
        raise ItemError(ErrorType.NOT_REGULAR, f"{path} is not a regular file")
    with os.fdopen(fd, "rb", buffering=0) as source:
        out = make_output(info.st_size)
        try:
            # Sized to the file: a 2 KiB file needs no full-size buffer per thread.
            buffer = bytearray(min(CHUNK_BYTES, max(info.st_size, 1) + 1))
            view = memoryview(buffer)
            while True:
                if stopping():
                    raise Interrupted
                try:
                    count = source.readinto(buffer)
                except OSError as exc:
                    raise _source_error(exc, path) from exc
                if not count:
                    break
                if spend is not None:
                    spend(count)
                out.write(view[:count])
            os.utime(out.path, ns=(info.st_atime_ns, info.st_mtime_ns))  # as `cp -p` does
            out.close()
        except BaseException:
            out.discard()
            raise
    return out


def local_validator(path: str) -> str | None:
    """A local source's version for `--update`: its size and mtime, like rsync's quick check."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return f"{info.st_size}:{info.st_mtime_ns}"


def _source_error(exc: OSError, path: str) -> ItemError:
    if isinstance(exc, FileNotFoundError):
        return ItemError(ErrorType.NOT_FOUND, f"{path}: no such file")
    if isinstance(exc, IsADirectoryError):
        return ItemError(ErrorType.IS_DIRECTORY, f"{path} is a directory")
    return os_item_error(exc, f"cannot read {path}")
