"""Option parsing and validation: sizes, headers, retry waits, FetchOptions."""

from __future__ import annotations

from pathlib import Path

import pytest

from fetcher.errors import UsageError
from fetcher.options import (
    RETRY_STATUSES,
    FetchOptions,
    Layout,
    RetryPolicy,
    parse_header,
    parse_size,
)

# --------------------------------------------------------------------------- parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("1500", 1500),
        ("64K", 64 * 1024),
        ("64k", 64 * 1024),
        ("10M", 10 * 1024**2),
        ("10m", 10 * 1024**2),
        ("2G", 2 * 1024**3),
        ("2g", 2 * 1024**3),
        ("1T", 1024**4),
        ("10MB", 10 * 1024**2),
        ("10MiB", 10 * 1024**2),
        ("10mib", 10 * 1024**2),
        ("512B", 512),
        (" 5K ", 5 * 1024),
        ("5 K", 5 * 1024),
        ("007", 7),
    ],
)
def test_parse_size_accepts_numbers_with_binary_suffixes(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", " ", "K", "abc", "-1", "-5K", "1.5M", "1e3", "10X", "10KK", "10 MB extra", "0x10", "M10"],
)
def test_parse_size_rejects_bad_input_as_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="not a size"):
        parse_size(text)


# --------------------------------------------------------------------------- parse_header


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("X-Token: abc", ("X-Token", "abc")),
        ("Authorization: Bearer s3cret", ("Authorization", "Bearer s3cret")),
        ("Accept:text/csv", ("Accept", "text/csv")),
        ("  X-Padded  :   value  ", ("X-Padded", "value")),
        ("X-Empty:", ("X-Empty", "")),
        ("X-Colons: a:b:c", ("X-Colons", "a:b:c")),
        ("Cookie: a=1; b=2", ("Cookie", "a=1; b=2")),
    ],
)
def test_parse_header_valid(text: str, expected: tuple[str, str]) -> None:
    assert parse_header(text) == expected


@pytest.mark.parametrize(
    "text", ["X-Token", "X-Token abc", "", ": value", "   : value", "Bad Name: v", "X\tY: v"]
)
def test_parse_header_without_name_and_colon_is_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="not a header"):
        parse_header(text)


@pytest.mark.parametrize(
    "text",
    [
        "X-Token: a\r\nX-Evil: 1",
        "X-Token: a\nX-Evil: 1",
        "X-Token: a\rX-Evil: 1",
        "X-Token: a\r\n\r\nGET / HTTP/1.1",
        "X-Token: a\x00b",
        "X-Token: trailing\r\n",
    ],
)
def test_parse_header_rejects_line_break_injection(text: str) -> None:
    with pytest.raises(UsageError):
        parse_header(text)


def test_parse_header_rejects_line_break_in_name() -> None:
    with pytest.raises(UsageError):
        parse_header("X-Evil: 1\r\nX-Token: a")  # the break sits in the value here
    with pytest.raises(UsageError):
        parse_header("X\r\nEvil: 1")  # and here in the name


# --------------------------------------------------------------------------- RetryPolicy


@pytest.mark.parametrize(
    ("backoff_s", "max_wait_s", "attempt", "cap"),
    [
        (0.5, 30.0, 1, 0.5),
        (0.5, 30.0, 2, 1.0),
        (0.5, 30.0, 4, 4.0),
        (0.5, 30.0, 20, 30.0),
        (1.0, 3.0, 3, 3.0),
        (2.0, 1.0, 1, 1.0),
    ],
)
def test_retry_wait_is_full_jitter_within_cap(
    backoff_s: float, max_wait_s: float, attempt: int, cap: float
) -> None:
    policy = RetryPolicy(backoff_s=backoff_s, max_wait_s=max_wait_s)
    waits = [policy.wait_s(attempt) for _ in range(500)]
    assert all(0.0 <= w <= cap for w in waits)
    # full jitter: spread over the whole range, not a fixed delay
    assert min(waits) < cap * 0.1
    assert max(waits) > cap * 0.9
    assert len(set(waits)) > 400


def test_retry_wait_zero_backoff_never_waits() -> None:
    policy = RetryPolicy(backoff_s=0)
    assert {policy.wait_s(n) for n in range(1, 10)} == {0.0}


@pytest.mark.parametrize(
    ("retry_after", "max_wait_s", "expected"),
    [
        (5.0, 30.0, 5.0),
        (0.0, 30.0, 0.0),
        (29.5, 30.0, 29.5),
        (120.0, 30.0, 30.0),
        (3600.0, 2.0, 2.0),
        (-10.0, 30.0, 0.0),
    ],
)
def test_retry_wait_honours_retry_after_capped(
    retry_after: float, max_wait_s: float, expected: float
) -> None:
    policy = RetryPolicy(backoff_s=100.0, max_wait_s=max_wait_s)
    for attempt in (1, 2, 5):
        assert policy.wait_s(attempt, retry_after) == expected


def test_retry_policy_defaults_retry_transient_statuses_only() -> None:
    policy = RetryPolicy()
    assert policy.statuses == RETRY_STATUSES
    assert {429, 500, 502, 503, 504} <= policy.statuses
    assert not {400, 401, 403, 404, 410} & policy.statuses


@pytest.mark.parametrize(
    "kwargs",
    [{"retries": -1}, {"backoff_s": -0.1}, {"max_wait_s": -1.0}],
)
def test_retry_policy_rejects_negative_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_retry_policy_accepts_zero_retries() -> None:
    assert RetryPolicy(retries=0, backoff_s=0, max_wait_s=0).retries == 0


# --------------------------------------------------------------------------- FetchOptions


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"workers": 0}, "--workers"),
        ({"workers": -3}, "--workers"),
        ({"chunksize": 0}, "--chunksize"),
        ({"chunksize": -1}, "--chunksize"),
        ({"timeout_s": 0}, "--timeout"),
        ({"timeout_s": -1.5}, "--timeout"),
        ({"max_size": -1}, "--max-size"),
    ],
)
def test_fetch_options_validation_errors(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        FetchOptions(**kwargs)  # type: ignore[arg-type]


def test_fetch_options_accepts_boundary_values() -> None:
    options = FetchOptions(workers=1, chunksize=1, timeout_s=0.001, max_size=0)
    assert (options.workers, options.chunksize, options.max_size) == (1, 1, 0)


def test_fetch_options_defaults() -> None:
    options = FetchOptions()
    assert options.output_dir == Path(".")
    assert options.chunksize is None  # auto
    assert options.layout is Layout.FLAT
    assert options.overwrite is False
    assert options.max_size is None
    assert options.verify is True


def test_fetch_options_are_frozen() -> None:
    options = FetchOptions()
    with pytest.raises(AttributeError):
        options.workers = 3  # type: ignore[misc]


@pytest.mark.parametrize("value", ["flat", "mirror", "indexed"])
def test_layout_values_match_cli_names(value: str) -> None:
    assert Layout(value).value == value
