"""Input lists: classifying sources, bounded lazy line reading, several lists, usage errors."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest

from fetcher.errors import UsageError
from fetcher.lists import check_lists, count_items, read_lists
from fetcher.sources import (
    MAX_LINE_BYTES,
    Source,
    SourceKind,
    bounded_lines,
    parse_source,
    sources_from_lines,
)

BASE = Path("/srv/lists")


# --------------------------------------------------------------------------- parse_source


@pytest.mark.parametrize(
    "url",
    [
        "http://h.test/x",
        "https://h.test/a/b.txt?q=1#frag",
        "HTTPS://H.TEST/X",
        "http://h.test:8080/x",
        "http://127.0.0.1/x",
        "http://[::1]:8080/x",
        "https://user:pw@h.test/x",
        "http://h.test",
    ],
)
def test_parse_source_http_urls_are_http_items(url: str) -> None:
    source = parse_source(url, 4, BASE)
    assert source.kind is SourceKind.HTTP
    assert source.error is None
    assert source.target == url
    assert (source.index, source.text, source.base_dir) == (4, url, str(BASE))


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("file:///etc/hosts", "/etc/hosts"),
        ("file://localhost/etc/hosts", "/etc/hosts"),
        ("file:///tmp/a%20b.txt", "/tmp/a b.txt"),
        ("file:///tmp/x/../y.txt", "/tmp/y.txt"),
        ("FILE:///tmp/z", "/tmp/z"),
    ],
)
def test_parse_source_file_urls_become_absolute_paths(text: str, target: str) -> None:
    source = parse_source(text, 0, BASE)
    assert source.kind is SourceKind.FILE
    assert source.error is None
    assert source.target == target


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("data/a.txt", "/srv/lists/data/a.txt"),
        ("a.txt", "/srv/lists/a.txt"),
        ("./a.txt", "/srv/lists/a.txt"),
        ("../up.txt", "/srv/up.txt"),
        ("/abs/c.txt", "/abs/c.txt"),
        ("with space.txt", "/srv/lists/with space.txt"),
        ("ünïcode.txt", "/srv/lists/ünïcode.txt"),
    ],
)
def test_parse_source_local_paths_resolve_against_base_dir(text: str, target: str) -> None:
    source = parse_source(text, 0, BASE)
    assert source.kind is SourceKind.FILE
    assert source.error is None
    assert source.target == target


@pytest.mark.parametrize(
    "text",
    [
        "ftp://h.test/x",
        "javascript://alert(1)",
        "gopher://h.test/",
        "s3://bucket/key",
        "FTP://h.test/x",
        "httpx://h.test/x",
    ],
)
def test_parse_source_unsupported_scheme(text: str) -> None:
    source = parse_source(text, 2, BASE)
    assert source.kind is SourceKind.INVALID
    assert source.target == ""
    assert source.error is not None
    assert source.error.type == "unsupported_scheme"
    assert source.index == 2 and source.text == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "http://h.test:99999/",
        "http://h.test:-1/",
        "http://h.test:port/",
        "http:///x",
        "https://",
        "http://:80/x",
        "http://[::1/x",
        "http://h.test /a",
        "http://h.test/a\tb",
        "http://h.test/a\u00a0b",
        "http://h.test/a\u2028b",
        "http://h.test/\x00",
        "http://h.test/\x1b[31m",
        "a\x00b.txt",
        "a\x01b.txt",
        "a\x7fb.txt",
        "file://remote.host/etc/passwd",
        "x" * (MAX_LINE_BYTES + 1),
    ],
)
def test_parse_source_malformed_is_invalid_source(text: str) -> None:
    """Malformed lines are items that fail, with a message; never exceptions."""
    source = parse_source(text, 0, BASE)
    assert source.kind is SourceKind.INVALID
    assert source.target == ""
    assert source.error is not None
    assert source.error.type == "invalid_source"
    assert source.error.message


@pytest.mark.parametrize("text", ["file:///tmp/%ff", "file:///tmp/%C3%28.txt", "file:///%80"])
def test_parse_source_file_url_with_undecodable_escape_is_invalid_not_raised(text: str) -> None:
    # parse_source promises never to raise: a bad line must become a failed item.
    source = parse_source(text, 0, BASE)
    assert source.kind is SourceKind.INVALID
    assert source.error is not None
    assert source.error.type == "invalid_source"


def test_list_with_undecodable_file_url_keeps_going(tmp_path: Path) -> None:
    listing = tmp_path / "l.txt"
    listing.write_bytes(b"file:///tmp/%ff\nhttp://h.test/next\n")
    items = list(read_lists([str(listing)], io.BytesIO()))
    assert [(s.index, s.kind) for s in items] == [(0, SourceKind.INVALID), (1, SourceKind.HTTP)]


# --------------------------------------------------------------------------- bounded_lines


def _lines(data: bytes) -> list[bytes | None]:
    return list(bounded_lines(io.BytesIO(data)))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a\nb\n", [b"a", b"b"]),
        (b"a\r\nb\r\n", [b"a", b"b"]),
        (b"a\nb", [b"a", b"b"]),
        (b"a\r\nb", [b"a", b"b"]),
        (b"\xef\xbb\xbfa\nb\n", [b"a", b"b"]),
        (b"", []),
        (b"\n\n", [b"", b""]),
        (b"a\n\xef\xbb\xbfb\n", [b"a", b"\xef\xbb\xbfb"]),  # BOM only at the start
    ],
)
def test_bounded_lines_strips_endings_and_leading_bom(
    data: bytes, expected: list[bytes | None]
) -> None:
    assert _lines(data) == expected


def test_bounded_lines_long_line_becomes_none_and_next_line_survives() -> None:
    data = b"first\n" + b"x" * (1 << 20) + b"\nhttp://h.test/after\n"
    assert _lines(data) == [b"first", None, b"http://h.test/after"]


def test_bounded_lines_long_last_line_without_newline() -> None:
    assert _lines(b"ok\n" + b"y" * (MAX_LINE_BYTES * 3)) == [b"ok", None]


def test_bounded_lines_line_at_limit_is_kept() -> None:
    line = b"z" * MAX_LINE_BYTES
    assert _lines(line + b"\nnext\n") == [line, b"next"]


class _CountingReader(io.RawIOBase):
    """A raw stream of `total` generated lines that counts the bytes handed out."""

    def __init__(self, line: bytes, total: int) -> None:
        self._line = line
        self._left = total
        self._pending = b""
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while len(self._pending) < len(buffer) and self._left:
            self._pending += self._line
            self._left -= 1
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        self.served += count
        return count


def test_bounded_lines_skips_huge_line_in_bounded_memory() -> None:
    # 8 MB without a newline: reading it must not need more than a chunk at a time.
    raw = _CountingReader(b"q" * 1024, 8 * 1024)
    stream = io.BufferedReader(raw)
    assert list(bounded_lines(stream)) == [None]
    assert raw.served == 8 * 1024 * 1024


# --------------------------------------------------------------------------- sources_from_lines


def test_sources_from_lines_skips_blank_and_comment_lines_without_counting() -> None:
    lines: list[bytes | None] = [
        b"# header comment",
        b"http://h.test/a",
        b"",
        b"   ",
        b"\t",
        b"  # indented comment",
        b"b.txt",
        b"#http://h.test/commented",
        b"http://h.test/c",
    ]
    items = list(sources_from_lines(lines, BASE))
    assert [s.index for s in items] == [0, 1, 2]
    assert [s.text for s in items] == ["http://h.test/a", "b.txt", "http://h.test/c"]


def test_sources_from_lines_strips_surrounding_whitespace() -> None:
    (item,) = sources_from_lines([b"  http://h.test/a \t"], BASE)
    assert item.text == "http://h.test/a"
    assert item.kind is SourceKind.HTTP


def test_sources_from_lines_start_offsets_indexes() -> None:
    items = list(sources_from_lines([b"a", b"b"], BASE, start=10))
    assert [s.index for s in items] == [10, 11]


def test_sources_from_lines_non_utf8_line_is_failed_item_in_place() -> None:
    items = list(sources_from_lines([b"http://h.test/a", b"caf\xe9.txt", b"http://h.test/c"], BASE))
    assert [s.index for s in items] == [0, 1, 2]
    bad = items[1]
    assert bad.kind is SourceKind.INVALID
    assert bad.error is not None and bad.error.type == "invalid_source"
    assert "\\xe9" in bad.text  # the raw byte stays visible in the report
    assert items[2].kind is SourceKind.HTTP


def test_sources_from_lines_too_long_line_is_failed_item_in_place() -> None:
    items = list(sources_from_lines([b"a.txt", None, b"c.txt"], BASE))
    assert [s.index for s in items] == [0, 1, 2]
    assert items[1].kind is SourceKind.INVALID
    assert items[1].error is not None and items[1].error.type == "invalid_source"
    assert items[2].target == "/srv/lists/c.txt"


def test_list_with_crlf_bom_comments_and_no_final_newline(tmp_path: Path) -> None:
    listing = tmp_path / "urls.txt"
    listing.write_bytes(
        b"\xef\xbb\xbfhttp://h.test/a\r\n# comment\r\n\r\nrel/b.txt\r\nhttp://h.test/c"
    )
    items = list(read_lists([str(listing)], io.BytesIO()))
    assert [(s.index, s.kind, s.target) for s in items] == [
        (0, SourceKind.HTTP, "http://h.test/a"),
        (1, SourceKind.FILE, str(tmp_path / "rel" / "b.txt")),
        (2, SourceKind.HTTP, "http://h.test/c"),
    ]


def test_list_with_only_bom_has_no_items(tmp_path: Path) -> None:
    listing = tmp_path / "urls.txt"
    listing.write_bytes(b"\xef\xbb\xbf")
    assert list(read_lists([str(listing)], io.BytesIO())) == []
    assert count_items([str(listing)]) == 0


def test_list_with_one_megabyte_line_keeps_following_line(tmp_path: Path) -> None:
    listing = tmp_path / "urls.txt"
    listing.write_bytes(b"http://h.test/a\n" + b"h" * (1 << 20) + b"\nhttp://h.test/b\n")
    items = list(read_lists([str(listing)], io.BytesIO()))
    assert len(items) == 3
    assert items[0].kind is SourceKind.HTTP
    assert items[1].kind is SourceKind.INVALID
    assert items[1].error is not None and items[1].error.type == "invalid_source"
    assert len(items[1].text) < 100  # the megabyte is not carried into the report
    assert (items[2].index, items[2].target) == (2, "http://h.test/b")


# --------------------------------------------------------------------------- read_lists


def test_read_lists_indexes_continue_across_lists_and_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = tmp_path / "one" / "first.txt"
    second = tmp_path / "two" / "second.txt"
    first.parent.mkdir()
    second.parent.mkdir()
    first.write_bytes(b"# c\nhttp://h.test/1\nlocal1.txt\n")
    second.write_bytes(b"\nlocal2.txt\nsub/x.txt\n")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    stdin = io.BytesIO(b"from-stdin.txt\n#skip\nhttp://h.test/s\n")
    items = list(read_lists([str(first), "-", str(second)], stdin))
    assert [s.index for s in items] == list(range(6))
    assert [s.target for s in items] == [
        "http://h.test/1",
        str(first.parent / "local1.txt"),
        str(cwd / "from-stdin.txt"),
        "http://h.test/s",
        str(second.parent / "local2.txt"),
        str(second.parent / "sub" / "x.txt"),
    ]


def test_read_lists_relative_paths_use_each_lists_own_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "l.txt").write_bytes(b"same.txt\n")
    (tmp_path / "b" / "l.txt").write_bytes(b"same.txt\n")
    monkeypatch.chdir(tmp_path)
    items = list(read_lists(["a/l.txt", "b/l.txt"], io.BytesIO()))
    assert [s.target for s in items] == [
        str(tmp_path / "a" / "same.txt"),
        str(tmp_path / "b" / "same.txt"),
    ]
    assert [s.base_dir for s in items] == [str(tmp_path / "a"), str(tmp_path / "b")]


def test_read_lists_bom_is_stripped_in_every_list(tmp_path: Path) -> None:
    paths = []
    for n in range(2):
        path = tmp_path / f"l{n}.txt"
        path.write_bytes(b"\xef\xbb\xbfhttp://h.test/" + str(n).encode() + b"\n")
        paths.append(str(path))
    items = list(read_lists(paths, io.BytesIO()))
    assert [s.kind for s in items] == [SourceKind.HTTP, SourceKind.HTTP]
    assert [s.index for s in items] == [0, 1]


def test_read_lists_index_continues_after_lists_with_failures(tmp_path: Path) -> None:
    one = tmp_path / "one.txt"
    two = tmp_path / "two.txt"
    one.write_bytes(b"ftp://h.test/x\n\xff\xfe\n")
    two.write_bytes(b"http://h.test/y\n")
    items = list(read_lists([str(one), str(two)], io.BytesIO()))
    assert [(s.index, s.kind) for s in items] == [
        (0, SourceKind.INVALID),
        (1, SourceKind.INVALID),
        (2, SourceKind.HTTP),
    ]


def test_read_lists_empty_lists_yield_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"# only a comment\n\n")
    assert list(read_lists([str(empty), "-"], io.BytesIO(b""))) == []


def test_read_lists_is_lazy_on_a_long_stream() -> None:
    line = b"http://h.test/item\n"
    raw = _CountingReader(line, 1_000_000)  # 19 MB if read whole
    items = read_lists(["-"], io.BufferedReader(raw))
    first = next(items)
    assert first.target == "http://h.test/item"
    assert raw.served <= 64 * 1024
    for _ in range(999):
        next(items)
    assert raw.served <= 64 * 1024 + 1000 * len(line)


def test_read_lists_yields_items_of_a_list_still_being_written(tmp_path: Path) -> None:
    # A regular list file is opened by name, so laziness shows as "the first item arrives
    # while the rest of the file is still being appended".
    listing = tmp_path / "growing.txt"
    listing.write_bytes(b"http://h.test/0\n")
    items = read_lists([str(listing)], io.BytesIO())
    assert next(items).target == "http://h.test/0"
    with listing.open("ab") as out:
        out.write(b"http://h.test/1\n")
    assert next(items).target == "http://h.test/1"


def test_read_lists_yields_first_item_from_open_pipe_before_eof() -> None:
    read_fd, write_fd = os.pipe()
    got: list[Source] = []

    with os.fdopen(read_fd, "rb") as reader, os.fdopen(write_fd, "wb") as writer:
        writer.write(b"http://h.test/first\n")
        writer.flush()  # the pipe stays open: no EOF yet

        def consume() -> None:
            got.append(next(read_lists(["-"], reader)))

        thread = threading.Thread(target=consume, daemon=True)
        thread.start()
        thread.join(5)
        ready = not thread.is_alive()
        writer.close()  # EOF: releases the reader if it was (wrongly) waiting for more
        thread.join(5)
    assert ready, "read_lists waited for the end of the stream before yielding"
    assert [s.target for s in got] == ["http://h.test/first"]


# --------------------------------------------------------------------------- check_lists


def test_check_lists_accepts_files_and_one_stdin(tmp_path: Path) -> None:
    listing = tmp_path / "l.txt"
    listing.write_bytes(b"")
    check_lists([str(listing), "-"])  # no exception


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: [str(p / "missing.txt")], "not found"),
        (lambda p: [str(p)], "directory"),
        (lambda p: ["-", "-"], "only once"),
        (lambda p: [], "nothing to fetch"),
    ],
    ids=["missing", "directory", "two-stdin", "none"],
)
def test_check_lists_usage_errors(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        check_lists(make(tmp_path))


def test_check_lists_reports_missing_list_even_after_good_one(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_bytes(b"a\n")
    with pytest.raises(UsageError, match=r"nope\.txt"):
        check_lists([str(good), str(tmp_path / "nope.txt")])


# --------------------------------------------------------------------------- count_items


def test_count_items_counts_items_not_lines(tmp_path: Path) -> None:
    one = tmp_path / "one.txt"
    two = tmp_path / "two.txt"
    one.write_bytes(b"\xef\xbb\xbf# c\nhttp://h.test/a\n\n  \nb.txt\r\n")
    two.write_bytes(b"ftp://bad\n\xff\n" + b"x" * (MAX_LINE_BYTES + 10) + b"\nlast")
    assert count_items([str(one), str(two)]) == 6


def test_count_items_matches_read_lists(tmp_path: Path) -> None:
    listing = tmp_path / "l.txt"
    listing.write_bytes(b"# h\na\n\nb\n#c\nc\nd")
    assert count_items([str(listing)]) == len(list(read_lists([str(listing)], io.BytesIO())))


def test_count_items_unknown_for_stdin(tmp_path: Path) -> None:
    listing = tmp_path / "l.txt"
    listing.write_bytes(b"a\n")
    assert count_items([str(listing), "-"]) is None


def test_count_items_unknown_for_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert count_items([str(fifo)]) is None


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("http://h.test/a b.txt", "http://h.test/a%20b.txt"),
        ("http://h.test/dir name/x?q=a b#f g", "http://h.test/dir%20name/x?q=a%20b#f%20g"),
        ("https://u:p@h.test/a  b", "https://u:p@h.test/a%20%20b"),
    ],
)
def test_spaces_in_a_url_path_are_percent_encoded_and_the_text_kept(text: str, target: str) -> None:
    source = parse_source(text, 0, BASE)
    assert source.kind is SourceKind.HTTP and source.error is None
    assert source.target == target
    assert source.text == text
