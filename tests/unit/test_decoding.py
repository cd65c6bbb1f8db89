"""--compressed decoding: every coding decoded exactly, in bounded pieces whatever the
ratio, and a body cut short or not what it claims is an error."""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Callable

import pytest

from fetcher.decoding import PIECE_BYTES, decoder_for
from fetcher.errors import ItemError
from fetcher.results import ErrorType

DATA = os.urandom(200_000) + bytes(3_000_000)


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


def _decode(coding: str, body: bytes, step: int = 65_536) -> tuple[bytes, int]:
    decoder = decoder_for(coding)
    assert decoder is not None
    pieces = [p for i in range(0, len(body), step) for p in decoder.feed(body[i : i + step])]
    decoder.finish()
    return b"".join(pieces), max(map(len, pieces))


@pytest.mark.parametrize(
    ("coding", "pack"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("gzip", lambda d: gzip.compress(d[:1000]) + gzip.compress(d[1000:])),
        ("deflate", zlib.compress),
        ("deflate", _raw_deflate),
    ],
    ids=["gzip", "x-gzip", "gzip-members", "deflate-zlib", "deflate-raw"],
)
def test_each_coding_decodes_exactly_in_bounded_pieces(
    coding: str, pack: Callable[[bytes], bytes]
) -> None:
    decoded, largest = _decode(coding, pack(DATA))
    assert decoded == DATA
    assert largest <= PIECE_BYTES


def test_a_bomb_comes_out_a_piece_at_a_time() -> None:
    bomb = gzip.compress(bytes(64 << 20))  # 64 MiB of zeros: about 64 KB
    decoder = decoder_for("gzip")
    assert decoder is not None
    pieces = decoder.feed(bomb)
    assert len(next(pieces)) <= PIECE_BYTES  # lazily: nothing more is decoded until asked


@pytest.mark.parametrize("body", [gzip.compress(DATA)[:-500], b"\x1f\x8b not gzip at all"])
def test_a_cut_or_false_body_is_a_decode_error(body: bytes) -> None:
    with pytest.raises(ItemError) as raised:
        _decode("gzip", body)
    assert raised.value.kind is ErrorType.DECODE


@pytest.mark.parametrize("coding", [None, "", "identity", " Identity "])
def test_identity_needs_no_decoder(coding: str | None) -> None:
    assert decoder_for(coding) is None


def test_an_unknown_coding_is_a_decode_error() -> None:
    with pytest.raises(ItemError) as raised:
        decoder_for("compress")
    assert raised.value.kind is ErrorType.DECODE
