"""One HTTP attempt: the header and range helpers as tables, and `Downloader.attempt` against
a fake transport (no sockets): conditional answers, range answers, restarts, short bodies,
partial downloads worth keeping, and the status kept for the manifest."""

from __future__ import annotations

import email.utils
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
import urllib3
from requests.structures import CaseInsensitiveDict

from fetcher.download import (
    RESUME_MIN_BYTES,
    Downloader,
    Received,
    Transfer,
    _continues,
    _declared_length,
    _disposition,
    _if_range_value,
    _range_total,
    _request_headers,
)
from fetcher.errors import Interrupted, ItemError
from fetcher.results import ErrorType
from fetcher.state import Validators
from fetcher.temps import LiveTemps, TempOutput

URL = "https://example.org/file.bin"
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"


# --------------------------------------------------------------------------- fakes


class FakeRaw:
    """`response.raw`: the body in small blocks, optionally broken after it."""

    def __init__(self, body: bytes, *, broken: bool = False) -> None:
        self._body = body
        self._broken = broken

    def read1(self, size: int, decode_content: bool = True) -> bytes:
        assert decode_content is False  # bytes as served, never decoded
        block, self._body = self._body[:7], self._body[7:]
        if not block and self._broken:
            raise urllib3.exceptions.ProtocolError("Connection broken: IncompleteRead")
        return block


@dataclass
class FakeResponse:
    status_code: int
    body: bytes = b""
    headers: CaseInsensitiveDict[str] = field(default_factory=CaseInsensitiveDict)
    url: str = URL
    history: list[Any] = field(default_factory=list)
    broken: bool = False
    closed: bool = False

    def __post_init__(self) -> None:
        self.raw = FakeRaw(self.body, broken=self.broken)

    def __enter__(self) -> FakeResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.closed = True


def response(
    status: int,
    body: bytes = b"",
    *,
    broken: bool = False,
    headers: dict[str, str] | None = None,
    **named_headers: str,
) -> FakeResponse:
    """Header names given as Python names: content_length → Content-Length."""
    given = {**(headers or {}), **named_headers}
    named = {k.replace("_", "-").title().replace("Etag", "ETag"): v for k, v in given.items()}
    return FakeResponse(status, body, CaseInsensitiveDict(named), broken=broken)


class FakeTransport:
    """Hands out prepared answers (a response, or an error to raise) and notes requests."""

    def __init__(self, *answers: FakeResponse | ItemError) -> None:
        self._answers = list(answers)
        self.requests: list[dict[str, str]] = []

    def open(
        self, url: str, headers: dict[str, str] | None = None, timeout_s: float | None = None
    ) -> FakeResponse:
        self.requests.append(dict(headers or {}))
        answer = self._answers.pop(0)
        if isinstance(answer, ItemError):
            raise answer
        return answer

    def close(self) -> None:
        pass


class FakeGate:
    """Records what the downloader tells the host gate."""

    def __init__(self) -> None:
        self.slow_downs: list[tuple[str, float | None]] = []
        self.successes: list[str] = []

    @contextmanager
    def slot(self, host: str) -> Iterator[None]:
        yield

    def slow_down(self, host: str, retry_after: float | None) -> None:
        self.slow_downs.append((host, retry_after))

    def succeeded(self, host: str) -> None:
        self.successes.append(host)


class FakePartials:
    def __init__(self) -> None:
        self.kept: dict[str, tuple[str, str]] = {}

    def keep_partial(self, temp: str, source: str, validator: str) -> None:
        self.kept[temp] = (source, validator)

    def drop_partial(self, temp: str) -> None:
        self.kept.pop(temp, None)


@dataclass
class Rig:
    """A downloader on fakes, and where its temp file goes."""

    tmp_path: Path
    transport: FakeTransport
    gate: FakeGate = field(default_factory=FakeGate)
    partials: FakePartials = field(default_factory=FakePartials)
    stop: threading.Event = field(default_factory=threading.Event)
    live: LiveTemps = field(default_factory=LiveTemps)
    declared: list[int | None] = field(default_factory=list)
    outputs: list[TempOutput] = field(default_factory=list)

    @property
    def downloader(self) -> Downloader:
        return Downloader(
            cast(Any, self.transport), cast(Any, self.gate), cast(Any, self.partials), self.stop
        )

    def make_output(self, declared: int | None) -> TempOutput:
        self.declared.append(declared)
        output = TempOutput(self.tmp_path / "item.part", self.live)
        self.outputs.append(output)
        return output

    def attempt(self, transfer: Transfer, conditional: Validators | None = None) -> Received:
        return self.downloader.attempt(URL, transfer, self.make_output, conditional)

    def kept_bytes(self, data: bytes, validator: str | None = '"v1"') -> Transfer:
        """A transfer holding `data` from an earlier attempt."""
        transfer = Transfer(URL)
        transfer.temp = self.make_output(None)
        transfer.temp.write(data)
        transfer.validator = validator
        self.declared.clear()
        return transfer


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    """`rig(*answers)`: a downloader on fakes; its temp files are closed after the test."""
    made: list[Rig] = []

    def make(*answers: FakeResponse | ItemError) -> Rig:
        made.append(Rig(tmp_path, FakeTransport(*answers)))
        return made[-1]

    yield make
    for each in made:
        for output in each.outputs:
            output.close()


# --------------------------------------------------------------------------- pure helpers


class _Sized:
    def __init__(self, size: int) -> None:
        self.size = size


def _transfer(size: int | None, validator: str | None) -> Transfer:
    transfer = Transfer(URL, validator=validator)
    if size is not None:
        transfer.temp = cast(TempOutput, _Sized(size))
    return transfer


@pytest.mark.parametrize(
    ("size", "validator", "conditional", "expected"),
    [
        (None, None, None, {}),
        (None, None, Validators(etag='"e"'), {"If-None-Match": '"e"'}),
        (None, None, Validators(last_modified=LAST_MODIFIED),
         {"If-Modified-Since": LAST_MODIFIED}),
        (None, None, Validators('"e"', LAST_MODIFIED),
         {"If-None-Match": '"e"', "If-Modified-Since": LAST_MODIFIED}),
        (100, '"e"', None, {"Range": "bytes=100-", "If-Range": '"e"'}),
        (0, '"e"', None, {}),
        (100, None, None, {}),
        (100, LAST_MODIFIED, Validators(etag='"old"'),
         {"If-None-Match": '"old"', "Range": "bytes=100-", "If-Range": LAST_MODIFIED}),
    ],
    ids=["plain", "etag", "last-modified", "both-validators", "range", "nothing-kept-yet",
         "no-validator-no-range", "conditional-and-range"],
)  # fmt: skip
def test_request_headers(
    size: int | None,
    validator: str | None,
    conditional: Validators | None,
    expected: dict[str, str],
) -> None:
    assert _request_headers(_transfer(size, validator), conditional) == expected


@pytest.mark.parametrize(
    ("validators", "expected"),
    [
        (Validators('"strong"', LAST_MODIFIED), '"strong"'),
        (Validators('W/"weak"', LAST_MODIFIED), LAST_MODIFIED),
        (Validators('W/"weak"', None), None),
        (Validators(None, LAST_MODIFIED), LAST_MODIFIED),
        (Validators(None, None), None),
    ],
    ids=["strong-etag", "weak-etag-falls-back", "weak-etag-alone", "date", "nothing"],
)
def test_if_range_needs_a_strong_validator(validators: Validators, expected: str | None) -> None:
    assert _if_range_value(validators) == expected


@pytest.mark.parametrize(
    ("content_range", "offset", "expected"),
    [
        ("bytes 100-199/200", 100, True),
        ("bytes 100-199/*", 100, True),
        ("bytes 99-199/200", 100, False),
        ("bytes 0-199/200", 100, False),
        ("bytes */200", 100, False),
        ("items 100-199/200", 100, False),
        ("", 100, False),
        (None, 100, False),
    ],
)
def test_a_range_continues_only_at_the_bytes_kept(
    content_range: str | None, offset: int, expected: bool
) -> None:
    assert _continues(content_range, offset) is expected


@pytest.mark.parametrize(
    ("content_range", "expected"),
    [
        ("bytes 100-199/200", 200),
        ("bytes 0-0/1", 1),
        ("bytes 100-199/*", None),
        ("bytes */200", None),
        ("nonsense", None),
        (None, None),
    ],
)
def test_range_total(content_range: str | None, expected: int | None) -> None:
    assert _range_total(content_range) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1234", 1234), ("0", 0), (None, None), ("", None), ("-1", None), ("12a", None),
     ("1.5", None)],
)  # fmt: skip
def test_declared_length(value: str | None, expected: int | None) -> None:
    headers = {} if value is None else {"content_length": value}
    assert _declared_length(cast(Any, response(200, headers=headers))) == expected


def _redirected(first: str, final: str) -> FakeResponse:
    answer = response(200, content_disposition='attachment; filename="x.bin"')
    answer.url = final
    answer.history = [FakeResponse(302, url=first)] if first != final else []
    return answer


@pytest.mark.parametrize(
    ("first", "final", "expected"),
    [
        (URL, URL, 'attachment; filename="x.bin"'),
        ("https://example.org/a", "https://example.org/b", 'attachment; filename="x.bin"'),
        ("https://EXAMPLE.org/a", "https://example.org/b", 'attachment; filename="x.bin"'),
        ("https://example.org/a", "https://cdn.example.net/b", None),
        ("https://example.org/a", "https://example.org:8443/b", None),
    ],
    ids=["no-redirect", "same-host", "host-case", "other-host", "other-port"],
)
def test_disposition_is_taken_only_from_the_host_the_list_named(
    first: str, final: str, expected: str | None
) -> None:
    assert _disposition(cast(Any, _redirected(first, final))) == expected


# --------------------------------------------------------------------------- Downloader.attempt


def test_a_complete_body_is_written_to_the_temp(rig: Callable[..., Rig]) -> None:
    r = rig(response(200, b"hello world", content_length="11", etag='"v1"'))
    transfer = Transfer(URL)
    fetched = r.attempt(transfer)
    assert fetched == Received(200, Validators('"v1"', None), None)
    assert transfer.temp is not None
    assert transfer.temp.path.read_bytes() == b"hello world"
    assert r.declared == [11]
    assert transfer.validator == '"v1"'
    assert r.gate.successes == ["example.org"]


def test_an_unconditional_304_is_an_error(rig: Callable[..., Rig]) -> None:
    r = rig(response(304))
    with pytest.raises(ItemError) as raised:
        r.attempt(Transfer(URL))
    assert raised.value.kind is ErrorType.HTTP_STATUS
    assert not raised.value.retryable


def test_a_conditional_304_is_unchanged_and_writes_nothing(
    tmp_path: Path, rig: Callable[..., Rig]
) -> None:
    r = rig(response(304, etag='"v1"'))
    transfer = Transfer(URL)
    fetched = r.attempt(transfer, conditional=Validators(etag='"v1"'))
    assert fetched.unchanged
    assert fetched.http_status == 304
    assert r.transport.requests == [{"If-None-Match": '"v1"'}]
    assert transfer.temp is None
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "content_range",
    ["bytes 5-19/20", "bytes 0-19/20", "bytes */20", None],
    ids=["earlier-offset", "from-start", "unsatisfied-form", "missing"],
)
def test_a_206_that_does_not_continue_the_bytes_kept_is_a_range_error(
    rig: Callable[..., Rig], content_range: str | None
) -> None:
    headers = {} if content_range is None else {"content_range": content_range}
    r = rig(response(206, b"0123456789", headers=headers))
    transfer = r.kept_bytes(b"abcdefghij")
    with pytest.raises(ItemError) as raised:
        r.attempt(transfer)
    assert raised.value.kind is ErrorType.RANGE
    assert raised.value.retryable
    assert transfer.temp is not None
    assert transfer.temp.size == 10  # nothing appended


def test_a_206_to_a_request_without_a_range_is_a_range_error(rig: Callable[..., Rig]) -> None:
    r = rig(response(206, b"0123456789", content_range="bytes 0-9/10"))
    with pytest.raises(ItemError) as raised:
        r.attempt(Transfer(URL))
    assert raised.value.kind is ErrorType.RANGE


def test_a_206_that_continues_appends_and_reports_200(rig: Callable[..., Rig]) -> None:
    r = rig(response(206, b"klmnopqrst", content_range="bytes 10-19/20", etag='"v1"'))
    transfer = r.kept_bytes(b"abcdefghij")
    fetched = r.attempt(transfer)
    assert r.transport.requests == [{"Range": "bytes=10-", "If-Range": '"v1"'}]
    assert fetched.http_status == 200
    assert transfer.http_status == 206
    assert transfer.temp is not None
    assert transfer.temp.path.read_bytes() == b"abcdefghijklmnopqrst"


def test_a_200_to_a_range_request_starts_the_temp_over(rig: Callable[..., Rig]) -> None:
    r = rig(response(200, b"the whole new body", content_length="18"))
    transfer = r.kept_bytes(b"old bytes from before")
    r.attempt(transfer)
    assert transfer.temp is not None
    assert transfer.temp.path.read_bytes() == b"the whole new body"
    assert transfer.temp.size == 18


@pytest.mark.parametrize("broken", [False, True], ids=["ends-early", "connection-broken"])
def test_a_short_body_is_truncated_and_retryable(rig: Callable[..., Rig], broken: bool) -> None:
    r = rig(response(200, b"only half", content_length="100", broken=broken))
    transfer = Transfer(URL)
    with pytest.raises(ItemError) as raised:
        r.attempt(transfer)
    assert raised.value.kind is ErrorType.TRUNCATED
    assert raised.value.retryable
    assert transfer.http_status == 200
    assert transfer.temp is not None
    assert transfer.temp.size == 9  # kept for the next attempt to continue


def test_a_416_when_the_whole_body_is_kept_is_complete(rig: Callable[..., Rig]) -> None:
    r = rig(response(416, content_range="bytes */10"))
    transfer = r.kept_bytes(b"abcdefghij")
    fetched = r.attempt(transfer)
    assert fetched.http_status == 200
    assert transfer.temp is not None
    assert transfer.temp.path.read_bytes() == b"abcdefghij"


@pytest.mark.parametrize("content_range", ["bytes */50", None], ids=["other-size", "missing"])
def test_a_416_for_other_bytes_starts_over_with_a_range_error(
    rig: Callable[..., Rig], content_range: str | None
) -> None:
    headers = {} if content_range is None else {"content_range": content_range}
    r = rig(response(416, headers=headers))
    transfer = r.kept_bytes(b"abcdefghij")
    with pytest.raises(ItemError) as raised:
        r.attempt(transfer)
    assert raised.value.kind is ErrorType.RANGE
    assert raised.value.retryable
    assert transfer.temp is not None
    assert transfer.temp.size == 0
    assert transfer.validator is None


@pytest.mark.parametrize(
    ("length", "etag", "registered"),
    [
        (RESUME_MIN_BYTES, '"v1"', True),
        (None, '"v1"', True),
        (RESUME_MIN_BYTES - 1, '"v1"', False),
        (RESUME_MIN_BYTES, None, False),
        (RESUME_MIN_BYTES, 'W/"weak"', False),
    ],
    ids=["large", "unknown-length", "small", "no-validator", "weak-etag-only"],
)
def test_only_large_or_unsized_bodies_with_a_validator_are_kept_for_resuming(
    rig: Callable[..., Rig], length: int | None, etag: str | None, registered: bool
) -> None:
    """Registered as the body starts, so a transfer cut short can be continued later."""
    headers = {} if length is None else {"content_length": str(length)}
    if etag is not None:
        headers["etag"] = etag
    r = rig(response(200, b"start of the body", broken=True, headers=headers))
    transfer = Transfer(URL)
    with pytest.raises(ItemError):
        r.attempt(transfer)
    assert transfer.temp is not None
    expected = {"item.part": (URL, '"v1"')} if registered else {}
    assert r.partials.kept == expected
    assert transfer.temp.resumable is registered


def test_without_a_store_nothing_is_kept_for_resuming(rig: Callable[..., Rig]) -> None:
    r = rig(response(200, b"x", broken=True, etag='"v1"'))
    downloader = Downloader(cast(Any, r.transport), cast(Any, r.gate), None, r.stop)
    transfer = Transfer(URL)
    with pytest.raises(ItemError):
        downloader.attempt(URL, transfer, r.make_output, None)
    assert transfer.temp is not None
    assert not transfer.temp.resumable


def test_forget_partial_drops_the_registration(rig: Callable[..., Rig]) -> None:
    r = rig()
    r.partials.keep_partial("item.part", URL, '"v1"')
    r.downloader.forget_partial("item.part")
    assert r.partials.kept == {}


@pytest.mark.parametrize(
    ("status", "retry_after", "slowed"),
    [(503, 2.0, True), (429, None, True), (500, None, False), (404, None, False)],
)
def test_an_error_status_is_kept_and_an_overloaded_host_slowed(
    rig: Callable[..., Rig], status: int, retry_after: float | None, slowed: bool
) -> None:
    error = ItemError(
        ErrorType.HTTP_STATUS, f"HTTP {status}", http_status=status, retry_after=retry_after
    )
    r = rig(error)
    transfer = Transfer(URL)
    with pytest.raises(ItemError):
        r.attempt(transfer)
    assert transfer.http_status == status
    assert r.gate.slow_downs == ([("example.org", retry_after)] if slowed else [])
    assert r.gate.successes == []


def test_an_error_without_a_status_keeps_the_last_status(rig: Callable[..., Rig]) -> None:
    r = rig(ItemError(ErrorType.CONNECTION, "refused", retryable=True))
    transfer = Transfer(URL, http_status=200)
    with pytest.raises(ItemError):
        r.attempt(transfer)
    assert transfer.http_status == 200


def test_a_stop_while_the_body_streams_interrupts(rig: Callable[..., Rig]) -> None:
    r = rig(response(200, b"a body of several blocks", content_length="24"))
    r.stop.set()
    with pytest.raises(Interrupted):
        r.attempt(Transfer(URL))


def test_the_temp_carries_the_servers_last_modified(rig: Callable[..., Rig]) -> None:
    r = rig(response(200, b"abc", content_length="3", last_modified=LAST_MODIFIED))
    transfer = Transfer(URL)
    r.attempt(transfer)
    assert transfer.temp is not None
    expected = email.utils.parsedate_to_datetime(LAST_MODIFIED).timestamp()
    assert transfer.temp.path.stat().st_mtime == expected


def test_the_response_is_closed(rig: Callable[..., Rig]) -> None:
    answer = response(200, b"abc", content_length="3")
    rig(answer).attempt(Transfer(URL))
    assert answer.closed
