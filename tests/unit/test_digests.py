"""Running digests: the same hex digests as hashlib over the same bytes in the same order,
whether blocks were hashed inline or on the helper thread."""

from __future__ import annotations

import hashlib
import random
import threading
from pathlib import Path

import pytest

from fetcher.digests import OFFLOAD_BYTES, Digests
from fetcher.temps import LiveTemps, TempOutput

BLOCK = 256 * 1024


def blocks(total: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    while total > 0:
        size = min(total, rng.randint(1, BLOCK))
        out.append(rng.randbytes(size))
        total -= size
    return out


def helpers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "fetcher-hash"]


def test_small_body_is_hashed_inline_without_a_helper() -> None:
    digests = Digests(md5=True)
    data = blocks(OFFLOAD_BYTES // 2)
    for block in data:
        digests.update(block)
    assert not helpers()
    whole = b"".join(data)
    assert digests.hexdigest("sha256") == hashlib.sha256(whole).hexdigest()
    assert digests.hexdigest("md5") == hashlib.md5(whole).hexdigest()


def test_large_body_is_hashed_on_a_helper_in_order() -> None:
    digests = Digests(md5=True)
    data = blocks(3 * OFFLOAD_BYTES)
    for block in data:
        digests.update(block)
    assert len(helpers()) == 1
    whole = b"".join(data)
    assert digests.hexdigest("sha256") == hashlib.sha256(whole).hexdigest()
    assert digests.hexdigest("md5") == hashlib.md5(whole).hexdigest()
    digests.finish()
    assert not helpers()
    # Still readable after the helper is gone, and finishing twice is harmless.
    assert digests.hexdigest("sha256") == hashlib.sha256(whole).hexdigest()
    digests.finish()


def test_digest_read_mid_stream_covers_everything_so_far() -> None:
    digests = Digests()
    data = blocks(2 * OFFLOAD_BYTES)
    for block in data:
        digests.update(block)
    assert digests.hexdigest("sha256") == hashlib.sha256(b"".join(data)).hexdigest()
    more = blocks(OFFLOAD_BYTES, seed=8)
    for block in more:
        digests.update(block)
    assert digests.hexdigest("sha256") == hashlib.sha256(b"".join(data + more)).hexdigest()
    digests.finish()


def test_reused_buffer_views_are_hashed_after_the_queued_blocks() -> None:
    """A memoryview of a buffer the caller overwrites next must be hashed at once, and only
    after the bytes queued before it."""
    digests = Digests()
    head = blocks(2 * OFFLOAD_BYTES)
    for block in head:
        digests.update(block)
    buffer = bytearray(BLOCK)
    expected = hashlib.sha256(b"".join(head))
    for value in range(4):
        buffer[:] = bytes([value]) * BLOCK
        digests.update(memoryview(buffer))
        expected.update(bytes(buffer))
    assert digests.hexdigest("sha256") == expected.hexdigest()
    digests.finish()


@pytest.mark.parametrize("total", [0, 1, OFFLOAD_BYTES, OFFLOAD_BYTES + 1])
def test_sizes_around_the_offload_threshold(total: int) -> None:
    digests = Digests()
    data = blocks(total)
    for block in data:
        digests.update(block)
    digests.finish()
    assert digests.hexdigest("sha256") == hashlib.sha256(b"".join(data)).hexdigest()


def test_temp_output_restarted_mid_offload_hashes_only_the_new_body(tmp_path: Path) -> None:
    temp = TempOutput(tmp_path / "t.part", LiveTemps())
    for block in blocks(2 * OFFLOAD_BYTES):
        temp.write(block)
    temp.restart()
    second = blocks(2 * OFFLOAD_BYTES, seed=9)
    for block in second:
        temp.write(block)
    temp.close()
    whole = b"".join(second)
    assert temp.sha256 == hashlib.sha256(whole).hexdigest()
    assert (tmp_path / "t.part").read_bytes() == whole
    assert not helpers()


def test_temp_output_resumed_from_a_large_partial_hashes_old_and_new_bytes(
    tmp_path: Path,
) -> None:
    """A partial left by an interrupted run is re-hashed on reopening (offloaded past the
    threshold), then the rest of the body continues it."""
    head, tail = blocks(OFFLOAD_BYTES + 3 * BLOCK), blocks(2 * BLOCK, seed=10)
    path = tmp_path / "t.part"
    path.write_bytes(b"".join(head))
    temp = TempOutput(path, LiveTemps(), resume=True, md5=True)
    assert temp.size == len(b"".join(head))
    for block in tail:
        temp.write(block)
    temp.close()
    whole = b"".join(head + tail)
    assert temp.sha256 == hashlib.sha256(whole).hexdigest()
    temp.verify((("md5", hashlib.md5(whole).hexdigest()),))
    assert path.read_bytes() == whole
    assert not helpers()
