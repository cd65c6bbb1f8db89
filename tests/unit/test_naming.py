"""Output naming: sanitising, Content-Disposition, collision suffixes, layouts."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from fetcher.naming import (
    FALLBACK_NAME,
    MAX_NAME_BYTES,
    disposition_name,
    indexed_name,
    name_from_disposition,
    name_from_url,
    plan,
    sanitize_name,
    with_counter,
)
from fetcher.options import Layout
from fetcher.sources import Source, SourceKind, parse_source

LIST_DIR = Path("/srv/lists")


def _nbytes(text: str) -> int:
    return len(text.encode("utf-8"))


def assert_single_safe_component(name: str) -> None:
    """The invariant promised by fetcher.naming for every name it produces."""
    assert name, "empty name"
    assert "/" not in name
    assert "\\" not in name
    assert name not in (".", "..")
    assert not name.startswith("."), name
    assert not any(unicodedata.category(c) == "Cc" for c in name), repr(name)
    assert not any(c in '<>:"|?*' for c in name), repr(name)
    assert not name.endswith((".", " ")), repr(name)
    assert _nbytes(name) <= MAX_NAME_BYTES, _nbytes(name)


# --------------------------------------------------------------------------- sanitize_name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("café menu.txt", "café menu.txt"),
        ("../../etc/passwd", "_._.._etc_passwd"),
        ("/etc/passwd", "_etc_passwd"),
        ("..\\..\\x", "_._.._x"),
        ("a\x00b", "a_b"),
        ("tab\there", "tab_here"),
        ("line\nbreak\r", "line_break_"),
        ("del\x7fc1\x85", "del_c1_"),
        ('<>:"|?*', "_______"),
        ("a<b>c:d.txt", "a_b_c_d.txt"),
        ("name. . ", "name"),
        ("trailing...", "trailing"),
        ("  padded  ", "padded"),
        (".bashrc", "_bashrc"),
        ("  .hidden", "_hidden"),
        ("..x", "_.x"),
    ],
)
def test_sanitize_name_replaces_unsafe_characters(raw: str, expected: str) -> None:
    assert sanitize_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("CON", "_CON"),
        ("con", "_con"),
        ("nul.txt", "_nul.txt"),
        ("NUL.tar.gz", "_NUL.tar.gz"),
        ("COM1", "_COM1"),
        ("com9.log", "_com9.log"),
        ("LPT1", "_LPT1"),
        ("PRN", "_PRN"),
        ("AUX.c", "_AUX.c"),
        ("COM¹", "_COM¹"),
        ("con.", "_con"),
    ],
)
def test_sanitize_name_prefixes_windows_device_names(raw: str, expected: str) -> None:
    assert sanitize_name(raw) == expected


@pytest.mark.parametrize("raw", ["CONSOLE", "console.txt", "COM", "COM10", "nullable", "auxiliary"])
def test_sanitize_name_keeps_names_that_only_resemble_devices(raw: str) -> None:
    assert sanitize_name(raw) == raw


@pytest.mark.parametrize("raw", ["", ".", "..", "...", " ", " . ", ". . ."])
def test_sanitize_name_empty_or_dots_gives_fallback(raw: str) -> None:
    assert sanitize_name(raw) == FALLBACK_NAME
    assert sanitize_name(raw, fallback="_") == "_"


def test_sanitize_name_normalises_to_nfc() -> None:
    decomposed = "cafe\u0301.txt"
    assert sanitize_name(decomposed) == "caf\u00e9.txt"


def test_sanitize_name_replaces_lone_surrogates() -> None:
    name = sanitize_name("bad\udcffname")
    name.encode("utf-8")  # would raise if a surrogate survived
    assert name.startswith("bad") and name.endswith("name")


@pytest.mark.parametrize(
    ("char", "count"),
    [
        ("x", 300),
        ("é", 150),  # 2 bytes each
        ("é", 151),
        ("語", 101),  # 3 bytes each: 200 is not a multiple of 3
        ("😀", 77),  # 4 bytes each: 200 is a multiple of 4, 201 is not
    ],
)
def test_sanitize_name_limits_utf8_bytes_without_breaking_characters(char: str, count: int) -> None:
    raw = ("a" if count % 2 else "") + char * count
    name = sanitize_name(raw)
    assert _nbytes(name) <= MAX_NAME_BYTES
    assert _nbytes(name) > MAX_NAME_BYTES - 4  # truncated, not emptied
    assert "\ufffd" not in name
    assert raw.startswith(name)  # whole characters only, taken from the front


@pytest.mark.parametrize("char", ["x", "é", "語", "😀"])
def test_sanitize_name_keeps_extension_when_truncating(char: str) -> None:
    name = sanitize_name(char * 400 + ".tar")
    assert name.endswith(".tar")
    assert _nbytes(name) <= MAX_NAME_BYTES
    assert "\ufffd" not in name


def test_sanitize_name_of_exactly_max_bytes_is_unchanged() -> None:
    raw = "y" * (MAX_NAME_BYTES - 4) + ".txt"
    assert sanitize_name(raw) == raw


NASTY_STRINGS = [
    "",
    ".",
    "..",
    "...",
    "/",
    "//",
    "\\",
    "../",
    "..\\",
    "../../../../etc/passwd",
    "/etc/passwd",
    "C:\\Windows\\system32",
    "\\\\server\\share",
    ".fetcher",
    ".fetcher-1-abc.part",
    ".bashrc",
    " .bashrc",
    "\x00",
    "\x00\x00..",
    "a\x00/../b",
    "\x1b[31mred",
    "\r\n",
    "\t.",
    "\x7f\x80\x9f",
    "CON",
    "con.txt",
    "COM1.",
    "LPT9 ",
    "CONIN$",
    'a<b>c:d"e|f?g*h',
    "trailing. . .",
    "   ",
    ". .",
    "%2e%2e",
    "..%2f..%2f",
    "\u202eexe.txt",
    "\udcff\udcfe",
    "\ud800",
    "e\u0301" * 120,
    "x" * 1000,
    "é" * 1000,
    "😀" * 300 + ".txt",
    "語" * 99 + ".tar.gz",
    "." * 300,
    "a" * 199 + "😀",
    " " * 300 + "x",
    "name.verylongextension",
    "-rf",
    "~",
    "$HOME",
    "*",
    "?",
    "nul",
    "..." + "x" * 300,
]


@pytest.mark.parametrize("raw", NASTY_STRINGS)
def test_sanitize_name_always_gives_one_safe_component(raw: str) -> None:
    assert_single_safe_component(sanitize_name(raw))
    assert_single_safe_component(sanitize_name(raw, fallback="_"))


def test_sanitize_name_is_idempotent_on_nasty_strings() -> None:
    for raw in NASTY_STRINGS:
        once = sanitize_name(raw)
        assert sanitize_name(once) == once, repr(raw)


# --------------------------------------------------------------------------- name_from_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://h.test/a/b/report.pdf", "report.pdf"),
        ("http://h.test/report.pdf?x=1&y=2#frag", "report.pdf"),
        ("http://h.test/dir/", "index.html"),
        ("http://h.test/", "index.html"),
        ("http://h.test", "index.html"),
        ("http://h.test/%E2%82%AC%20rates.csv", "€ rates.csv"),
        ("http://h.test/a%2Fb", "a_b"),
        ("http://h.test/a%5Cb", "a_b"),
        ("http://h.test/..", "index.html"),
        ("http://h.test/%2e%2e", "index.html"),
        ("http://h.test/a/%2E%2E", "index.html"),
        ("http://h.test/../../etc/passwd", "passwd"),
        ("http://h.test/.bashrc", "_bashrc"),
        ("http://h.test/CON", "_CON"),
        ("http://h.test/x%00y", "x_y"),
        ("http://h.test/%ff%fe.bin", "\ufffd\ufffd.bin"),
    ],
)
def test_name_from_url_uses_last_decoded_path_segment(url: str, expected: str) -> None:
    assert name_from_url(url) == expected


# --------------------------------------------------------------------------- Content-Disposition


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('attachment; filename="report.pdf"', "report.pdf"),
        ("attachment; filename=report.pdf", "report.pdf"),
        ('inline; filename="a b.txt"', "a b.txt"),
        ("attachment; filename*=UTF-8''%E2%82%AC%20rates.txt", "€ rates.txt"),
        ("attachment; filename*=utf-8''na%C3%AFve.txt", "naïve.txt"),
        # raw UTF-8 bytes sent as latin-1 header text, as many servers do
        ('attachment; filename="caf\xc3\xa9.txt"', "café.txt"),
    ],
)
def test_disposition_plain_and_rfc5987_names(header: str, expected: str) -> None:
    assert name_from_disposition(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        # the example of RFC 6266 §5, in both orders
        "attachment; filename=\"EURO rates.txt\"; filename*=utf-8''%e2%82%ac%20rates.txt",
        "attachment; filename*=utf-8''%e2%82%ac%20rates.txt; filename=\"EURO rates.txt\"",
    ],
)
def test_disposition_extended_filename_wins_over_plain(header: str) -> None:
    # RFC 6266 §4.3: when both are present, recipients pick filename*.
    assert name_from_disposition(header) == "€ rates.txt"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('attachment; filename="../../etc/passwd"', "passwd"),
        ('attachment; filename="/etc/passwd"', "passwd"),
        ('attachment; filename="..\\\\..\\\\x.txt"', "x.txt"),
        ('attachment; filename="C:\\\\Windows\\\\evil.dll"', "evil.dll"),
        ("attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd", "passwd"),
        ('attachment; filename=".bashrc"', "_bashrc"),
        ('attachment; filename=".fetcher"', "_fetcher"),
        ('attachment; filename="CON"', "_CON"),
        ('attachment; filename="nul.txt"', "_nul.txt"),
        ('attachment; filename="a<b>:c|d?e*.txt"', "a_b__c_d_e_.txt"),
        ('attachment; filename="trailing. . "', "trailing"),
        ('attachment; filename="a\x00b.txt"', "a_b.txt"),
        ('attachment; filename="x\x1b[0m.txt"', "x_[0m.txt"),
    ],
)
def test_disposition_name_is_sanitised_base_name(header: str, expected: str) -> None:
    assert name_from_disposition(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        "attachment",
        "inline",
        "",
        'attachment; filename=""',
        'attachment; filename=".."',
        'attachment; filename="."',
        'attachment; filename="../"',
        'attachment; filename="/"',
        'attachment; filename=" . "',
        "attachment; filename*=UTF-8''..",
    ],
)
def test_disposition_without_usable_name_gives_none(header: str) -> None:
    assert name_from_disposition(header) is None


def test_disposition_long_name_is_limited_in_bytes() -> None:
    name = name_from_disposition(f'attachment; filename="{"é" * 300}.zip"')
    assert name is not None
    assert name.endswith(".zip")
    assert _nbytes(name) <= MAX_NAME_BYTES


@pytest.mark.parametrize("raw", NASTY_STRINGS)
def test_disposition_name_never_escapes_output_dir(raw: str, tmp_path: Path) -> None:
    quoted = raw.replace("\\", "\\\\").replace('"', '\\"')
    name = name_from_disposition(f'attachment; filename="{quoted}"')
    if name is None:
        return
    assert_single_safe_component(name)
    assert Path(tmp_path, name).resolve().parent == tmp_path.resolve()


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        (Layout.FLAT, "server.bin"),
        (Layout.INDEXED, "000003-server.bin"),
        (Layout.MIRROR, "planned.txt"),
    ],
)
def test_disposition_name_applies_per_layout(layout: Layout, expected: str) -> None:
    header = 'attachment; filename="server.bin"'
    assert disposition_name("planned.txt", header, 3, layout) == expected


@pytest.mark.parametrize("header", [None, "", "attachment", 'attachment; filename=".."'])
def test_disposition_name_keeps_planned_name_without_usable_header(header: str | None) -> None:
    assert disposition_name("planned.txt", header, 3, Layout.FLAT) == "planned.txt"


# --------------------------------------------------------------------------- with_counter


@pytest.mark.parametrize(
    ("name", "n", "expected"),
    [
        ("a.txt", 0, "a.txt"),
        ("a.txt", 1, "a.1.txt"),
        ("a.txt", 12, "a.12.txt"),
        ("README", 2, "README.2"),
        ("archive.tar.gz", 3, "archive.tar.3.gz"),
        ("index.html", 1, "index.1.html"),
        ("weird.ext-with-dash", 1, "weird.ext-with-dash.1"),
    ],
)
def test_with_counter_inserts_number_before_extension(name: str, n: int, expected: str) -> None:
    assert with_counter(name, n) == expected


@pytest.mark.parametrize("stem_char", ["x", "é", "😀"])
def test_with_counter_on_longest_name_stays_distinct_and_bounded(stem_char: str) -> None:
    longest = sanitize_name(stem_char * 500 + ".txt")
    seen = {longest}
    for n in (1, 2, 99, 9999):
        alt = with_counter(longest, n)
        assert alt.endswith(f".{n}.txt")
        assert _nbytes(alt) <= 255  # the file-system limit the 200-byte budget leaves room for
        assert alt not in seen
        seen.add(alt)


# --------------------------------------------------------------------------- indexed names


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        (0, "000000-a.txt"),
        (42, "000042-a.txt"),
        (999_999, "999999-a.txt"),
        (1_234_567, "1234567-a.txt"),
    ],
)
def test_indexed_name_zero_pads_position(index: int, expected: str) -> None:
    assert indexed_name(index, "a.txt") == expected


def test_indexed_names_sort_in_input_order() -> None:
    names = [indexed_name(i, "z.txt" if i % 2 else "a.txt") for i in range(0, 2000, 7)]
    assert sorted(names) == names


def test_indexed_name_of_longest_name_keeps_prefix_and_limit() -> None:
    name = indexed_name(5, sanitize_name("q" * 500 + ".csv"))
    assert name.startswith("000005-")
    assert name.endswith(".csv")
    assert _nbytes(name) <= MAX_NAME_BYTES


# --------------------------------------------------------------------------- plan(): http


def _src(text: str, index: int = 7, base_dir: Path = LIST_DIR) -> Source:
    source = parse_source(text, index, base_dir)
    assert source.error is None, source.error
    return source


@pytest.mark.parametrize(
    ("url", "layout", "expected"),
    [
        ("http://h.test/a/b/c.txt", Layout.FLAT, ((), "c.txt")),
        ("http://h.test/a/b/c.txt", Layout.MIRROR, (("h.test", "a", "b"), "c.txt")),
        ("http://h.test/a/b/c.txt", Layout.INDEXED, ((), "000007-c.txt")),
        ("http://Example.COM/x.bin", Layout.MIRROR, (("example.com",), "x.bin")),
        ("http://h.test:8080/x.bin", Layout.MIRROR, (("h.test_8080",), "x.bin")),
        ("https://h.test:8443/d/x.bin", Layout.MIRROR, (("h.test_8443", "d"), "x.bin")),
        ("http://[::1]:8080/x", Layout.MIRROR, (("__1_8080",), "x")),
        ("http://h.test/dir/", Layout.FLAT, ((), "index.html")),
        ("http://h.test/dir/", Layout.MIRROR, (("h.test", "dir"), "index.html")),
        ("http://h.test/dir/", Layout.INDEXED, ((), "000007-index.html")),
        ("http://h.test", Layout.MIRROR, (("h.test",), "index.html")),
        ("http://h.test/?q=1", Layout.FLAT, ((), "index.html")),
        ("http://h.test/a/../../../etc/passwd", Layout.MIRROR, (("h.test", "etc"), "passwd")),
        ("http://h.test/a/./b/x", Layout.MIRROR, (("h.test", "a", "b"), "x")),
        ("http://h.test/a/%2e%2e/%2e%2e/x", Layout.MIRROR, (("h.test", "a", "_", "_"), "x")),
        (
            "http://h.test/.fetcher/state.sqlite",
            Layout.MIRROR,
            (("h.test", "_fetcher"), "state.sqlite"),
        ),
        ("http://h.test/a%2F..%2F..%2Fb/x", Layout.MIRROR, (("h.test", "a_.._.._b"), "x")),
        ("http://h.test/a//b", Layout.MIRROR, (("h.test", "a", "_"), "b")),
    ],
)
def test_plan_http_source(url: str, layout: Layout, expected: tuple[tuple[str, ...], str]) -> None:
    assert plan(_src(url), layout) == expected


@pytest.mark.parametrize("host", [".fetcher", "..", "CON"])
def test_plan_mirror_host_dir_is_sanitised(host: str) -> None:
    dirs, _ = plan(Source(0, "", SourceKind.HTTP, f"http://{host}/x", LIST_DIR), Layout.MIRROR)
    assert_single_safe_component(dirs[0])


# --------------------------------------------------------------------------- plan(): local files


@pytest.mark.parametrize(
    ("text", "layout", "expected"),
    [
        ("sub/dir/f.txt", Layout.FLAT, ((), "f.txt")),
        ("sub/dir/f.txt", Layout.MIRROR, (("sub", "dir"), "f.txt")),
        ("sub/dir/f.txt", Layout.INDEXED, ((), "000007-f.txt")),
        ("f.txt", Layout.MIRROR, ((), "f.txt")),
        ("./sub/../g.txt", Layout.MIRROR, ((), "g.txt")),
        ("file:///srv/lists/q/z.bin", Layout.MIRROR, (("q",), "z.bin")),
        (".hidden/.env", Layout.MIRROR, (("_hidden",), "_env")),
        # outside the list's folder: the whole path below the root
        ("/etc/passwd", Layout.MIRROR, (("etc",), "passwd")),
        ("../other/h.txt", Layout.MIRROR, (("srv", "other"), "h.txt")),
    ],
)
def test_plan_local_source(
    text: str, layout: Layout, expected: tuple[tuple[str, ...], str]
) -> None:
    assert plan(_src(text), layout) == expected


# --------------------------------------------------------------------------- plan(): containment

NASTY_SOURCES = [
    "http://h.test/../../../../etc/passwd",
    "http://h.test/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "http://h.test/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "http://h.test/..%5C..%5Cwindows%5Cwin.ini",
    "http://h.test/a/%00/b",
    "http://h.test/%0a%0d/x",
    "http://h.test/.fetcher/",
    "http://h.test/.fetcher/state.sqlite",
    "http://h.test/.fetcher-0-abc.part",
    "http://h.test/~/x",
    "http://h.test/" + "%C3%A9" * 300,
    "http://h.test/" + "/".join(["..", "%2e%2e", "."] * 20),
    "http://h.test/CON/NUL/aux.txt",
    "http://h.test:1/x",
    "http://[::1]/x",
    "https://user:pw@h.test/x",
    "http://h.test/%ff/%fe",
    "file:///etc/passwd",
    "file:///../../etc/passwd",
    "file://localhost/srv/lists/../../x",
    "../../../../../../etc/passwd",
    "sub/../../x",
    ".fetcher/state.sqlite",
    "/",
    "//",
    "a/b/../../../c",
    " spaced dir /file ",
]


@pytest.mark.parametrize("text", NASTY_SOURCES)
@pytest.mark.parametrize("layout", list(Layout))
def test_plan_never_escapes_output_dir(text: str, layout: Layout, tmp_path: Path) -> None:
    source = parse_source(text.strip(), 0, tmp_path / "lists")
    assert source.kind is not SourceKind.INVALID, source.error
    dirs, name = plan(source, layout)
    for part in (*dirs, name):
        assert_single_safe_component(part)
    root = tmp_path / "out"
    final = Path(root, *dirs, name).resolve()
    assert final.is_relative_to(root.resolve())
    assert final != root.resolve()
    assert ".fetcher" not in final.relative_to(root.resolve()).parts
