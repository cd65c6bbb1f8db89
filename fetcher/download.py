"""One HTTP attempt at one item: a conditional GET for `--update`, a `Range` request guarded
by `If-Range` to continue a broken transfer, and the body streamed into the item's temp file.

`Transfer` is what survives between the attempts of one item (and, through the state store,
between runs): the temp file with its running hashes, and the validator its bytes belong to.
"""

from __future__ import annotations

import email.utils
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from fetcher.bandwidth import Bandwidth
from fetcher.decoding import Decoder, decoder_for
from fetcher.errors import Interrupted, ItemError
from fetcher.politeness import HostGate
from fetcher.results import ErrorType
from fetcher.session import Answer
from fetcher.state import PartialsLog, Validators
from fetcher.temps import TempOutput
from fetcher.transport import Transport, body_blocks
from fetcher.watch import Watch

RESUME_MIN_BYTES = 1024 * 1024
"""Bodies at least this large (or of unknown length) are registered for resuming by a later
run; for smaller ones a restart costs less than the bookkeeping."""
log = logging.getLogger(__name__)

SLOW_DOWN_STATUSES = frozenset({429, 503})
"""A host that answers these is overloaded: its next request starts are spaced out."""
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_UNSATISFIED = re.compile(r"^bytes \*/(\d+)$")


@dataclass
class Transfer:
    """One item's download across its attempts."""

    key: str
    """The source's target (URL), as the state store knows it."""
    key_shown: str = ""
    """How log lines name the item: its index and source, any password masked."""
    deadline: float | None = None
    """`time.monotonic()` by which the item must be done (`--deadline`), retries included."""
    temp: TempOutput | None = None
    validator: str | None = None
    """`If-Range` value for the bytes in `temp`: a strong ETag or a Last-Modified date."""
    http_status: int | None = None
    """The last status received: the manifest reports it even when the item then fails."""

    def time_left(self) -> float | None:
        if self.deadline is None:
            return None
        return max(self.deadline - time.monotonic(), 0.001)

    def check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise DeadlineExceeded


class DeadlineExceeded(ItemError):
    """The item ran past `--deadline`: never retried, since the time is spent."""

    def __init__(self) -> None:
        super().__init__(ErrorType.DEADLINE, "exceeded --deadline")


@dataclass(frozen=True)
class Received:
    """The response facts the committer and the manifest need."""

    http_status: int
    validators: Validators
    disposition: str | None
    unchanged: bool = False


class Downloader:
    """Runs single HTTP attempts; shared by all worker threads."""

    def __init__(
        self,
        transport: Transport,
        gate: HostGate,
        partials: PartialsLog | None,
        stop: threading.Event,
        *,
        bandwidth: Bandwidth | None = None,
        decode: bool = False,
    ) -> None:
        """`decode`: save bodies sent with a Content-Encoding decoded (--compressed)."""
        self._transport = transport
        self._gate = gate
        self._partials = partials
        self._stop = stop
        self._bandwidth = bandwidth
        self._decode = decode

    def forget_partial(self, temp: str) -> None:
        """A registered partial download was given up: a later run must not continue it."""
        if self._partials is not None:
            self._partials.drop_partial(temp)

    def close(self) -> None:
        self._transport.close()

    def attempt(
        self,
        url: str,
        transfer: Transfer,
        make_output: Callable[[int | None], TempOutput],
        conditional: Validators | None,
    ) -> Received:
        """One request; raises ItemError (retryable or not) on failure, leaving in
        `transfer` whatever can be continued."""
        headers = _request_headers(transfer, conditional)
        host = urlsplit(url).hostname or ""
        with self._gate.slot(host):
            try:
                response = self._open(url, headers, transfer)
            except ItemError as exc:
                transfer.http_status = exc.http_status or transfer.http_status
                if exc.http_status in SLOW_DOWN_STATUSES:
                    self._gate.slow_down(host, exc.retry_after)
                raise
            transfer.http_status = response.status_code
            with response:
                fetched = self._receive(response, transfer, make_output, conditional)
            self._gate.succeeded(host)
        return fetched

    def _open(self, url: str, headers: dict[str, str], transfer: Transfer) -> Answer:
        left = transfer.time_left()
        if left is None:
            return self._transport.open(url, headers)
        with Watch(left) as watch:
            response = self._transport.open(url, headers, left)
        if watch.expired:  # a cut header section can parse as a complete, empty response
            response.close()
            raise DeadlineExceeded
        return response

    def _receive(
        self,
        response: Answer,
        transfer: Transfer,
        make_output: Callable[[int | None], TempOutput],
        conditional: Validators | None,
    ) -> Received:
        status = response.status_code
        validators = Validators(response.headers.get("ETag"), response.headers.get("Last-Modified"))
        if status == 304:
            if conditional is None:
                raise ItemError(
                    ErrorType.HTTP_STATUS, "HTTP 304 to a request that was not conditional"
                )
            return Received(status, validators, None, unchanged=True)
        if status == 416:
            return self._unsatisfiable(response, transfer, validators)
        total = self._expected_total(response, transfer)
        decoder = decoder_for(response.headers.get("Content-Encoding")) if self._decode else None
        temp = transfer.temp
        if temp is None:
            temp = transfer.temp = make_output(None if decoder else total)
        # A decoded body cannot be continued by a range of the encoded one: it restarts.
        transfer.validator = None if decoder else _if_range_value(validators)
        self._register(transfer, total)
        received = self._stream(response, transfer, temp, decoder)
        transfer.check_deadline()  # a body ended by a cut connection is not complete
        kept = received if decoder else temp.size
        if total is not None and kept != total:
            raise ItemError(
                ErrorType.TRUNCATED, f"received {kept} of {total} bytes", retryable=True
            )
        _set_mtime(temp, validators.last_modified)
        return Received(200 if status == 206 else status, validators, _disposition(response))

    def _stream(
        self, response: Answer, transfer: Transfer, temp: TempOutput, decoder: Decoder | None
    ) -> int:
        """The body into the temp file (decoded, if it is to be); the bytes received."""
        received = 0
        for block in body_blocks(response):
            if self._stop.is_set():
                raise Interrupted
            transfer.check_deadline()
            received += len(block)
            if self._bandwidth is not None:
                self._bandwidth.spend(len(block))
            if decoder is None:
                temp.write(block)
            else:
                for piece in decoder.feed(block):
                    temp.write(piece)
        if decoder is not None:
            decoder.finish()
        return received

    def _expected_total(self, response: Answer, transfer: Transfer) -> int | None:
        """The whole body's size, if declared; a partial answer must continue exactly the
        bytes kept, and a full answer to a range request starts them over."""
        temp = transfer.temp
        content_range = response.headers.get("Content-Range")
        if response.status_code == 206:
            if temp is None or not _continues(content_range, temp.size):
                raise ItemError(ErrorType.RANGE, "server sent an unexpected range", retryable=True)
            log.info("%s: continuing after %d bytes", transfer.key_shown, temp.size)
            return _range_total(content_range)
        if temp is not None and temp.size:
            log.info(
                "%s: the server sent the whole body again (range ignored, or the file"
                " changed); starting over",
                transfer.key_shown,
            )
            temp.restart()
        return _declared_length(response)

    def _unsatisfiable(
        self, response: Answer, transfer: Transfer, validators: Validators
    ) -> Received:
        """416 to `bytes=N-`: when N is the whole size, the kept bytes are the whole body
        (If-Range matched, or the server would have sent 200)."""
        temp = transfer.temp
        match = _UNSATISFIED.match(response.headers.get("Content-Range", ""))
        if temp is not None and match and int(match.group(1)) == temp.size and temp.size:
            _set_mtime(temp, validators.last_modified)
            return Received(200, validators, _disposition(response))
        if temp is not None:
            temp.restart()
        transfer.validator = None
        raise ItemError(ErrorType.RANGE, "HTTP 416: range not satisfiable", retryable=True)

    def _register(self, transfer: Transfer, total: int | None) -> None:
        temp, validator = transfer.temp, transfer.validator
        worth_it = total is None or total >= RESUME_MIN_BYTES
        if self._partials is None or temp is None or validator is None or not worth_it:
            return
        self._partials.keep_partial(temp.path.name, transfer.key, validator)
        temp.resumable = True


def _disposition(response: Answer) -> str | None:
    """The server's name for the body, only from the host the list named: a redirect to
    another host must not choose names in the output dir."""
    value: str | None = response.headers.get("Content-Disposition")
    if value is None or not response.history:
        return value
    first = response.history[0].url
    if urlsplit(first).netloc.lower() != urlsplit(response.url).netloc.lower():
        return None
    return value


def _request_headers(transfer: Transfer, conditional: Validators | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if conditional is not None:
        if conditional.etag:
            headers["If-None-Match"] = conditional.etag
        if conditional.last_modified:
            headers["If-Modified-Since"] = conditional.last_modified
    temp = transfer.temp
    if temp is not None and temp.size and transfer.validator:
        headers["Range"] = f"bytes={temp.size}-"
        headers["If-Range"] = transfer.validator
    return headers


def _if_range_value(validators: Validators) -> str | None:
    """If-Range needs a strong validator: a weak ETag (W/"...") cannot guard a range."""
    if validators.etag and not validators.etag.startswith("W/"):
        return validators.etag
    return validators.last_modified


def _declared_length(response: Answer) -> int | None:
    length = response.headers.get("Content-Length", "")
    return int(length) if length.isdigit() else None


def _continues(content_range: str | None, offset: int) -> bool:
    match = _CONTENT_RANGE.match(content_range or "")
    return match is not None and int(match.group(1)) == offset


def _range_total(content_range: str | None) -> int | None:
    match = _CONTENT_RANGE.match(content_range or "")
    return int(match.group(3)) if match and match.group(3) != "*" else None


def _set_mtime(temp: TempOutput, last_modified: str | None) -> None:
    """Outputs carry the server's Last-Modified as their mtime, as `wget -N` does."""
    if not last_modified:
        return
    try:
        when = email.utils.parsedate_to_datetime(last_modified).timestamp()
    except (TypeError, ValueError):
        return
    os.utime(temp.path, (time.time(), when))
