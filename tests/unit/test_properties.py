"""Property tests (hypothesis) for everything that turns hostile text into names or items:
sanitising, collision counters, Content-Disposition, layout plans, list and table parsing.

Runs are derandomized (a fixed seed, no example database) so the suite never flakes; the
`@example`s pin the nastiest known inputs so they are tried on every run.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from fetcher.naming import name_from_disposition, plan, sanitize_name, with_counter
from fetcher.options import Layout
from fetcher.sources import (
    MAX_LINE_BYTES,
    Source,
    SourceKind,
    bounded_lines,
    parse_source,
    sources_from_lines,
)
from fetcher.tables import ListFormat, table_sources
from tests.safe_names import WINDOWS_DEVICES, assert_safe_component, is_windows_device

# When a property fails, hypothesis' pytest plugin imports libcst to suggest an @example
# patch, and libcst's import warns (DeprecationWarning from mypy_extensions); with
# `filterwarnings = error` that would hide the real failure behind an INTERNALERROR.
pytestmark = pytest.mark.filterwarnings(
    "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"
)

PROPERTY_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ROOT = Path("/srv/out")
LIST_DIR = Path("/srv/lists")
DEVICE_NAMES = [*sorted(WINDOWS_DEVICES), "con", "Aux", "nUl", "com1", "lpt9", "CoM²"]


# --------------------------------------------------------------------------- strategies

SPECIAL_CHARS = list('/\\.: \t\r\n\x00\x01\x1f\x7f\x85\x9f<>"|?*%€語😀\u200b\u202e\ufeff')
any_char = st.one_of(
    st.characters(exclude_categories=()),
    st.characters(categories=["Cs"]),  # lone surrogates
    st.sampled_from(SPECIAL_CHARS),
)
any_text = st.text(any_char, max_size=80)
filler = st.text(st.sampled_from([" ", ".", "€", "x", "/", "\\"]), max_size=260)


@st.composite
def crafted_names(draw: st.DrawFn) -> str:
    """Device names, dots and separators around long runs of spaces, dots and wide chars."""
    head = draw(st.sampled_from([*DEVICE_NAMES, ".", "..", ".fetcher", "", "a", " "]))
    middle = draw(st.one_of(filler, st.just(" " * draw(st.integers(190, 300)))))
    tail = draw(st.sampled_from(["", "x", ".txt", " .txt", ".tar.gz", ".", " ", "..", ".part"]))
    return head + middle + tail


names_in = st.one_of(any_text, crafted_names(), st.sampled_from(DEVICE_NAMES))

DEVICE_EXAMPLES = [
    "CON",
    "aux.txt",
    "nul.tar.gz",
    "COM1 .txt",  # Windows ignores spaces before the extension: still COM1
    "CON .",
    "lpt9  .log",
    "COM1" + " " * 300 + "x",  # truncation to 200 bytes leaves "COM1"
    "CON" + " " * 300 + ".txt",  # ... or "CON.txt"
    "aux " + "." * 250 + "z",  # ... or "aux.z"
]


# --------------------------------------------------------------------------- sanitize_name


@PROPERTY_SETTINGS
@given(names_in)
@example("..")
@example("." * 300)
@example("€" * 300)
@example("\ud800/\udfff")
@example("a\x00b")
@example(".fetcher-0-abc.part")
def test_sanitize_name_always_gives_one_safe_component(raw: str) -> None:
    assert_safe_component(sanitize_name(raw))
    assert_safe_component(sanitize_name(raw, fallback="_"))


def test_sanitize_name_never_gives_a_windows_device_name() -> None:
    """Pinned counterexamples: a device name with spaces before its extension, and device
    names that only appear once a long name is cut to 200 bytes."""
    bad = {raw: sanitize_name(raw) for raw in DEVICE_EXAMPLES}
    assert {raw: out for raw, out in bad.items() if is_windows_device(out)} == {}


# --------------------------------------------------------------------------- with_counter


@PROPERTY_SETTINGS
@given(names_in, st.integers(0, 10_000))
def test_with_counter_keeps_names_safe_and_bounded(raw: str, n: int) -> None:
    name = sanitize_name(raw)
    assume(not is_windows_device(name))  # sanitize_name's own failure, tested above
    counted = with_counter(name, n)
    assert_safe_component(counted, max_bytes=255)
    if n == 0:
        assert counted == name
    else:
        assert counted != name


@PROPERTY_SETTINGS
@given(names_in, st.integers(1, 9_999))
def test_with_counter_names_are_distinct(raw: str, n: int) -> None:
    name = sanitize_name(raw)
    assert with_counter(name, n) != with_counter(name, n + 1)


# --------------------------------------------------------------------------- Content-Disposition


@st.composite
def dispositions(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["attachment", "inline", "", "form-data", "ATTACHMENT"]))
    name = draw(st.one_of(any_text, crafted_names()))
    form = draw(st.sampled_from(["quoted", "bare", "ext", "ext-bad", "both", "junk"]))
    encoded = quote(name.encode("utf-8", "surrogatepass"), safe="")
    if form == "quoted":
        param = f'filename="{name}"'
    elif form == "bare":
        param = f"filename={name}"
    elif form == "ext":
        charset = draw(st.sampled_from(["UTF-8", "utf-8", "iso-8859-1", "", "x-unknown"]))
        param = f"filename*={charset}''{encoded}"
    elif form == "ext-bad":
        charset = draw(st.sampled_from(["idna", "base64", "undefined", "utf-16", "punycode"]))
        param = f"filename*={charset}'{name[:3]}'{encoded}"
    elif form == "both":
        param = f"filename=\"{name[::-1]}\"; filename*=UTF-8''{encoded}"
    else:
        param = name
    return f"{kind}; {param}" if kind else param


@PROPERTY_SETTINGS
@given(st.one_of(any_text, dispositions()))
@example('attachment; filename="../../etc/passwd"')
@example('attachment; filename="..\\..\\x"')
@example("attachment; filename*=UTF-8''..%2F..%2Fescape")
@example("attachment; filename*=UTF-8''%2e%2e")
@example('attachment; filename="C:\\Windows\\system32\\x.dll"')
@example('attachment; filename="a%00b.txt"')
@example('attachment; filename=".fetcher"')
@example('attachment; filename=".fetcher-0-abc.part"')
@example("attachment; filename*=undefined''abc")
@example("attachment; filename*=utf-16''%ff")
@example('attachment; filename="\udcff"')
def test_name_from_disposition_never_raises_and_gives_a_safe_name(value: str) -> None:
    name = name_from_disposition(value)
    assert name is None or isinstance(name, str)
    if name is not None:
        assert_safe_component(name)


# --------------------------------------------------------------------------- plan

SEGMENTS = [
    "..", ".", "%2e%2e", "%2E%2e", ".%2e", "%2e", "%2f", "..%2f..", "%2F..%2F..", "\\",
    "..\\..", "%5c", "%5C..%5C..", "", "CON", "aux.txt", ".fetcher", ".fetcher-0-abc.part",
    "%00", "%01", "%0a", "%7f", "%ff", "%c0%ae%c0%ae", "%E2%82%AC" * 100, "a" * 300,
    "%20", "x.", "x%20", ";", "@", ":", "~", "%3F", "%23",
]  # fmt: skip
segment = st.one_of(
    st.sampled_from(SEGMENTS),
    st.text(st.sampled_from(list("abc.%25/\\:;@!$&'()*+,=~-_")), max_size=12),
    st.builds(lambda t: quote(t.encode("utf-8", "surrogatepass"), safe=""), any_text),
)
hosts = st.sampled_from(
    ["h.test", "127.0.0.1:8080", "[::1]:99", "xn--e1afmkfd.test", "H.TEST.", "a-b.c", "con"]
)


@st.composite
def hostile_urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https", "HTTP"]))
    path = "/".join(draw(st.lists(segment, max_size=8)))
    query = draw(st.sampled_from(["", "?a=../../x", "?", "#frag/../.."]))
    return f"{scheme}://{draw(hosts)}/{path}{query}"


def assert_confined(dirs: tuple[str, ...], name: str, root: Path = ROOT) -> None:
    for part in (*dirs, name):
        assert_safe_component(part)
    final = Path(root, *dirs, name).resolve()
    assert final.is_relative_to(root), final
    assert final != root
    assert final.relative_to(root).parts[0] != ".fetcher"


@PROPERTY_SETTINGS
@given(hostile_urls(), st.sampled_from(list(Layout)), st.integers(0, 10**7))
@example("http://h.test/../../../../etc/passwd", Layout.MIRROR, 0)
@example("http://h.test/%2e%2e/%2e%2e/x", Layout.MIRROR, 0)
@example("http://h.test/..%2f..%2fx", Layout.FLAT, 0)
@example("http://h.test/a\\..\\..\\x", Layout.MIRROR, 0)
@example("http://h.test/.fetcher/state.sqlite", Layout.MIRROR, 0)
@example("http://h.test/" + "%E2%82%AC" * 300, Layout.INDEXED, 10**7)
def test_plan_of_any_url_stays_inside_output_dir(url: str, layout: Layout, index: int) -> None:
    source = parse_source(url, index, LIST_DIR)
    if source.kind is SourceKind.INVALID:
        return  # a failed item: nothing is planned for it
    assert source.kind is SourceKind.HTTP
    assert_confined(*plan(source, layout))


local_paths = st.lists(st.one_of(st.sampled_from(SEGMENTS), any_text), min_size=1, max_size=6)


@PROPERTY_SETTINGS
@given(local_paths, st.sampled_from(list(Layout)), st.booleans())
@example(["..", "..", "..", "etc", "passwd"], Layout.MIRROR, False)
@example(["", "etc", "passwd"], Layout.MIRROR, False)
def test_plan_of_any_local_path_stays_inside_output_dir(
    parts: list[str], layout: Layout, as_file_url: bool
) -> None:
    text = "/".join(parts).strip()
    if as_file_url:
        text = "file://" + quote(("/" + text).encode("utf-8", "surrogatepass"))
    source = parse_source(text, 0, LIST_DIR)
    if source.kind is SourceKind.INVALID:
        return
    assert_confined(*plan(source, layout))


@PROPERTY_SETTINGS
@given(st.one_of(local_paths.map("/".join), any_text), st.sampled_from(list(Layout)))
@example("../../../etc/passwd", Layout.FLAT)
@example("/abs/../../x", Layout.MIRROR)
@example("a\\..\\..\\b", Layout.INDEXED)
@example(".fetcher/state.sqlite", Layout.FLAT)
@example("..", Layout.FLAT)
def test_plan_of_any_path_column_stays_inside_output_dir(name: str, layout: Layout) -> None:
    source = dataclasses.replace(parse_source("http://h.test/x", 0, LIST_DIR), name=name)
    assert_confined(*plan(source, layout))


# --------------------------------------------------------------------------- lists


def assert_well_formed(sources: list[Source], start: int = 0) -> None:
    assert [s.index for s in sources] == list(range(start, start + len(sources)))
    for source in sources:
        assert (source.error is not None) == (source.kind is SourceKind.INVALID), source
        json.dumps(source.text)
        if source.kind is not SourceKind.INVALID:
            # What the state store and a CSV manifest must be able to write as UTF-8.
            source.text.encode("utf-8")
            source.target.encode("utf-8")
            json.dumps(dict(source.extra)).encode("utf-8")


line_pieces = st.sampled_from(
    [
        b"\x00", b"\r\n", b"\n", b"\r", b"\xef\xbb\xbf", b"\xff", b"\xfe", b"\xc3", b" ", b"\t",
        b"#", b"# comment\n", b"http://h.test/x", b"https://[::1", b"file:///etc/passwd",
        b"ftp://h/x", b"../../x", b"\xe2\x82\xac", b"http://h/\x7f", b"a" * 1000,
    ]
)  # fmt: skip
hostile_bytes = st.one_of(
    st.binary(max_size=2000),
    st.lists(st.one_of(line_pieces, st.binary(max_size=20)), max_size=40).map(b"".join),
)


@PROPERTY_SETTINGS
@given(hostile_bytes)
@example(b"\xef\xbb\xbfhttp://h.test/a\r\n\xff\xfe\n\x00\nok.txt")
@example(b"a" * (MAX_LINE_BYTES + 10) + b"\nnext\n")
@example(b"x" * (MAX_LINE_BYTES * 2))
@example(b"\r\r\r\n\n#\n \n\t\n")
def test_list_parser_never_raises_and_numbers_items_consecutively(data: bytes) -> None:
    sources = list(sources_from_lines(bounded_lines(io.BytesIO(data)), LIST_DIR, 0))
    assert_well_formed(sources)


@PROPERTY_SETTINGS
@given(hostile_bytes, st.integers(0, 10**6))
def test_list_parser_indexes_continue_from_start(data: bytes, start: int) -> None:
    sources = list(sources_from_lines(bounded_lines(io.BytesIO(data)), LIST_DIR, start))
    assert_well_formed(sources, start)


@PROPERTY_SETTINGS
@given(st.one_of(any_text, hostile_urls(), any_text.map(lambda t: "http://" + t)))
@example("http://[::1")
@example("http://h.test:99999/x")
@example("http://h.test:-1/x")
@example("file://remote/x")
@example("file:///%ff")
@example("http://\ud800/")
@example("\x00")
@example("a" * (MAX_LINE_BYTES + 1))
def test_parse_source_never_raises(text: str) -> None:
    source = parse_source(text, 7, LIST_DIR)
    assert source.index == 7
    assert (source.error is not None) == (source.kind is SourceKind.INVALID)


# --------------------------------------------------------------------------- tables

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=8,
)
json_rows = st.dictionaries(
    st.one_of(st.sampled_from(["url", "path", "sha256", "md5", "index", "status"]), any_text),
    st.one_of(json_values, hostile_urls()),
    max_size=5,
)


@st.composite
def jsonl_bytes(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.one_of(json_rows.map(json.dumps), json_values.map(json.dumps))))
    return "\n".join(lines).encode("utf-8", "surrogatepass")


@st.composite
def csv_bytes(draw: st.DrawFn) -> bytes:
    header = draw(st.sampled_from([b"url,path,sha256,md5,extra\n", b"URL\n", b"a,b\n", b""]))
    return header + draw(hostile_bytes)


@PROPERTY_SETTINGS
@given(
    st.one_of(
        st.tuples(st.just(ListFormat.JSONL), st.one_of(jsonl_bytes(), hostile_bytes)),
        st.tuples(st.sampled_from([ListFormat.CSV, ListFormat.TSV]), csv_bytes()),
    )
)
@example((ListFormat.JSONL, b'{"url": "caf\\udce9.txt"}\n[1]\n"s"\nnull\n{bad\n'))
@example((ListFormat.CSV, b'url,path\n"http://h/x\nmore",a\n"unterminated\n'))
@example((ListFormat.CSV, b"url\n\xff\xfe\n" + b"x" * (MAX_LINE_BYTES + 5) + b"\nok\n"))
@example((ListFormat.TSV, b"url\tsha256\nhttp://h/x\tnothex\n"))
def test_table_parser_never_raises_and_keeps_items_writable(
    case: tuple[ListFormat, bytes],
) -> None:
    fmt, data = case
    sources = list(table_sources(io.BytesIO(data), fmt, LIST_DIR, 0))
    assert_well_formed(sources)


@pytest.mark.parametrize(
    "data",
    [
        b'{"url": "http://h.test/a\\ud800b"}\n',  # a JSON escape for a lone surrogate
        b'{"url": "https://h.test/\\udfff"}\n',
        b'{"url": "local\\udbff.txt"}\n',
        b'{"url": "http://h.test/ok", "x\\udfff": "\\ud800"}\n',  # carried column
    ],
)
def test_jsonl_lone_surrogates_never_reach_the_state_store(data: bytes) -> None:
    """A source the state store (SQLite, UTF-8) or a CSV manifest cannot write must be a
    failed item in its place, not an exception in a worker that ends the whole run."""
    [source] = table_sources(io.BytesIO(data), ListFormat.JSONL, LIST_DIR, 0)
    assert_well_formed([source])


def test_deeply_nested_json_line_is_a_failed_item() -> None:
    """A JSONL line well under the line limit can still nest deeper than the JSON decoder's
    recursion limit: that line is a failed item, the next line still an item."""
    deep = b'{"url": "a.txt", "x": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    assert len(deep) < MAX_LINE_BYTES
    data = io.BytesIO(deep + b'\n{"url": "b.txt"}\n')
    sources = list(table_sources(data, ListFormat.JSONL, LIST_DIR, 0))
    assert_well_formed(sources)
    assert [s.kind for s in sources] == [SourceKind.INVALID, SourceKind.FILE]
