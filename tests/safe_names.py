"""What a safe output name is, checked independently of `fetcher.naming`: shared by the
property tests and the hostile end-to-end tests."""

from __future__ import annotations

import unicodedata

from fetcher.naming import MAX_NAME_BYTES

WINDOWS_RESERVED_CHARS = '<>:"|?*'
WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{port}{digit}" for port in ("COM", "LPT") for digit in "123456789¹²³"}
)


def is_windows_device(name: str) -> bool:
    """Windows' own rule (as CPython's `PureWindowsPath.is_reserved` implements it): the
    part before the first dot, and before any ':', with trailing spaces removed, compared
    case-insensitively. So `aux.txt`, `nul.tar.gz` and `COM1 .log` are all devices."""
    base = name.partition(".")[0].partition(":")[0].rstrip(" ")
    return base.upper() in WINDOWS_DEVICES


def assert_safe_component(name: str, max_bytes: int = MAX_NAME_BYTES) -> None:
    """Everything `fetcher.naming` promises about one name it produces."""
    assert isinstance(name, str) and name, repr(name)
    assert "/" not in name and "\\" not in name and "\x00" not in name, repr(name)
    assert not any(unicodedata.category(c) == "Cc" for c in name), repr(name)
    assert name not in (".", ".."), repr(name)
    assert not name.startswith("."), repr(name)
    assert not name.endswith((".", " ")), repr(name)
    encoded = name.encode("utf-8")  # raises on a lone surrogate
    assert len(encoded) <= max_bytes, (len(encoded), name)
    assert not any(c in WINDOWS_RESERVED_CHARS for c in name), repr(name)
    assert not is_windows_device(name), repr(name)
