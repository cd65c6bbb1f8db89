"""`--compressed`: bodies sent with a `Content-Encoding` (gzip, deflate, and br when the
`brotli` module is installed) saved decoded. Decoding hands out at most `PIECE_BYTES` at a
time whatever the compression ratio, so a decompression bomb meets `--max-size` with flat
memory instead of filling it."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any, Protocol

from fetcher.errors import ItemError
from fetcher.results import ErrorType

PIECE_BYTES = 256 * 1024

try:
    import brotli as _brotli  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # optional: br is asked for only when it can be decoded
    _brotli = None
_BROTLI: Any = (
    _brotli if hasattr(getattr(_brotli, "Decompressor", None), "can_accept_more_data") else None
)


def accepted_encodings() -> str:
    """What to ask servers for (`Accept-Encoding`)."""
    return "gzip, deflate, br" if _BROTLI is not None else "gzip, deflate"


class Decoder(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]: ...

    def finish(self) -> None: ...


def decoder_for(content_encoding: str | None) -> Decoder | None:
    """The decoder of a response's `Content-Encoding` (None for identity)."""
    coding = (content_encoding or "").strip().lower()
    if coding in ("", "identity"):
        return None
    if coding in ("gzip", "x-gzip"):
        return _Zlib(16 + zlib.MAX_WBITS)
    if coding == "deflate":
        return _Zlib(None)
    if coding == "br" and _BROTLI is not None:
        return _Brotli()
    raise ItemError(ErrorType.DECODE, f"cannot decode Content-Encoding {content_encoding!r}")


class _Zlib:
    """gzip (members one after another, too) or deflate (zlib-wrapped, or raw as some
    servers send it)."""

    def __init__(self, wbits: int | None) -> None:
        self._wbits = wbits
        self._inflate: Any = None if wbits is None else zlib.decompressobj(wbits)
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._inflate is None:  # deflate: tell zlib-wrapped from raw by the first byte
            if not data:
                return
            wrapped = (data[0] & 0x0F) == 8 and len(data) > 1 and (data[0] << 8 | data[1]) % 31 == 0
            self._inflate = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        try:
            yield from self._pieces(data)
        except zlib.error as exc:
            raise ItemError(ErrorType.DECODE, f"cannot decode the body: {exc}") from None

    def _pieces(self, data: bytes) -> Iterator[bytes]:
        while data:
            self._started = True
            piece = self._inflate.decompress(data, PIECE_BYTES)
            while piece:
                yield piece
                data = self._inflate.unconsumed_tail
                # Output may still be pending once all input is in: ask until there is none.
                piece = b"" if data else self._inflate.decompress(b"", PIECE_BYTES)
            data = self._inflate.unconsumed_tail
            if not data and self._inflate.eof and self._inflate.unused_data and self._wbits:
                data = self._inflate.unused_data  # the next gzip member
                self._inflate = zlib.decompressobj(self._wbits)

    def finish(self) -> None:
        if self._started and not self._inflate.eof:
            raise ItemError(ErrorType.DECODE, "the compressed body ends before its end")


class _Brotli:
    def __init__(self) -> None:
        self._decompressor = _BROTLI.Decompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        try:
            piece = self._decompressor.process(data, output_buffer_limit=PIECE_BYTES)
            while True:
                if piece:
                    yield piece
                if self._decompressor.can_accept_more_data():
                    return
                piece = self._decompressor.process(b"", output_buffer_limit=PIECE_BYTES)
        except _BROTLI.error as exc:
            raise ItemError(ErrorType.DECODE, f"cannot decode the body: {exc}") from None

    def finish(self) -> None:
        if not self._decompressor.is_finished():
            raise ItemError(ErrorType.DECODE, "the compressed body ends before its end")
