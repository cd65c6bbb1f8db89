"""The running digests of one body (sha256, and md5 when a list asks for it).

Hashing a large body costs about as much CPU as receiving and writing it (sha256 runs at
~2 GB/s on one core), so past `OFFLOAD_BYTES` the blocks are hashed on a helper thread while
the worker goes on receiving and writing: `hashlib` releases the GIL on large blocks, and
one stream then uses two cores instead of one. Small bodies are hashed inline; a thread
would cost them more than it saves.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from typing import Any

OFFLOAD_BYTES = 4 * 1024 * 1024
"""Hashing moves to a helper thread once a body has passed this many bytes."""
QUEUED_BLOCKS = 2
"""Blocks waiting for the helper, at most: a receiver that outruns the hashing waits, so
memory stays bounded. More did not add speed, only peak memory (measured on 9 streams)."""


class Digests:
    """sha256 (and optionally md5) of the bytes given to `update`, in order."""

    def __init__(self, *, md5: bool = False) -> None:
        self._hashes: dict[str, Any] = {"sha256": hashlib.sha256()}
        if md5:
            self._hashes["md5"] = hashlib.md5(usedforsecurity=False)
        self._seen = 0
        self._queue: queue.Queue[bytes | None] | None = None
        self._helper: threading.Thread | None = None

    def update(self, data: bytes | memoryview) -> None:
        self._seen += len(data)
        if isinstance(data, bytes) and self._seen > OFFLOAD_BYTES:
            if self._queue is None:
                self._start_helper()
            assert self._queue is not None
            self._queue.put(data)
            return
        # A view of a buffer the caller reuses cannot wait in a queue: hashed here, after
        # whatever is still queued.
        self._drain()
        self._hash(data)

    def hexdigest(self, algorithm: str) -> str:
        """The digest of everything given so far (waits for queued blocks)."""
        self._drain()
        return str(self._hashes[algorithm].hexdigest())

    def finish(self) -> None:
        """Hash what is queued and stop the helper; the digests stay readable."""
        if self._queue is not None and self._helper is not None:
            self._queue.put(None)
            self._helper.join()
        self._queue = self._helper = None

    def _start_helper(self) -> None:
        self._queue = queue.Queue(QUEUED_BLOCKS)
        self._helper = threading.Thread(
            target=self._hash_queued, args=(self._queue,), name="fetcher-hash", daemon=True
        )
        self._helper.start()

    def _hash_queued(self, blocks: queue.Queue[bytes | None]) -> None:
        while True:
            block = blocks.get()
            try:
                if block is None:
                    return
                self._hash(block)
            finally:
                blocks.task_done()

    def _drain(self) -> None:
        if self._queue is not None:
            self._queue.join()

    def _hash(self, data: bytes | memoryview) -> None:
        for digest in self._hashes.values():
            digest.update(data)
