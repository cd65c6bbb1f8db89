"""The plain-header fast path gives http.client the same message as its own parser, and
hands anything unusual to that parser."""

from __future__ import annotations

import http.client
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fetcher.headers import parse_headers

email_parse_headers = http.client.parse_headers


def both(block: bytes) -> tuple[http.client.HTTPMessage, http.client.HTTPMessage]:
    return parse_headers(io.BytesIO(block)), email_parse_headers(io.BytesIO(block))


def same(block: bytes) -> None:
    fast, email = both(block)
    assert list(fast.items()) == list(email.items())
    assert [type(d) for d in fast.defects] == [type(d) for d in email.defects]
    for name in ("content-length", "Transfer-Encoding", "connection", "x-missing"):
        assert fast.get(name) == email.get(name)
        assert fast.get_all(name) == email.get_all(name)


@pytest.mark.parametrize(
    "block",
    [
        b"Content-Length: 10\r\nConnection: keep-alive\r\n\r\n",
        b"\r\n",
        b"A: 1\nB:2\n\n",
        b"Empty:\r\nSpaced:   lots of   space   \r\nTab:\tx\t\r\n\r\n",
        b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n",
        b"Folded: first\r\n  second\r\n\r\n",
        b"No colon here\r\nB: 2\r\n\r\n",
        b"Bad Name: 1\r\n\r\n",
        b"Latin: caf\xe9\r\nUtf8: \xc3\xa9t\xc3\xa9\r\n\r\n",
        b"Mid: a\rb\r\n\r\n",
        b"X: 1\r\n",  # the connection ends before the blank line
    ],
)
def test_the_message_is_the_email_parsers(block: bytes) -> None:
    same(block)


@given(
    st.lists(
        st.tuples(
            st.text("abcXYZ-_0:!", min_size=0, max_size=8),
            st.binary(max_size=20).filter(lambda b: b"\n" not in b),
        ),
        max_size=6,
    )
)
def test_any_header_block_gives_the_same_message(lines: list[tuple[str, bytes]]) -> None:
    same(b"".join(name.encode() + b":" + value + b"\r\n" for name, value in lines) + b"\r\n")


def test_too_many_headers_is_still_refused() -> None:
    block = b"".join(b"X-%d: v\r\n" % i for i in range(200)) + b"\r\n"
    with pytest.raises(http.client.HTTPException):
        parse_headers(io.BytesIO(block))
