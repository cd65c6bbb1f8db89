"""The manifest both ways: JSON Lines and CSV written and read back, files that are not
manifests refused with the line that says so, and the rewrite that replaces a manifest
whole or leaves it exactly as it was."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from fetcher.errors import UsageError
from fetcher.manifest import (
    CSV_FIELDS,
    ManifestRewrite,
    ManifestSummary,
    ManifestWriter,
    check_manifest,
    read_manifest,
)
from fetcher.results import ErrorInfo, ErrorType, Result, Status
from tests.unit.builders import failed_row, ok_row

ROWS = [
    ok_row(0),
    failed_row(1),
    Result(2, "notes/b.txt", "b.txt", Status.SKIPPED, 7, "b" * 64, None, 0, 0.0),
    Result(3, "https://example.org/c", "c", Status.UNCHANGED, 9, "c" * 64, 304, 1, 0.25),
    Result(
        4,
        'https://example.org/a,b "quoted" ünïcode',
        None,
        Status.FAILED,
        error=ErrorInfo(ErrorType.CONNECTION, 'refused, "twice"\nsecond line'),
    ),
]
CARRIED = [
    ok_row(0, {"label": "first", "weight": 3, "tags": ["a", "b"], "nothing": None}),
    ok_row(1, {"status": "listed", "index": "7", "error": "none", "extra": "x", "error_type": "y"}),
]


def write(path: Path, rows: list[Result]) -> Path:
    writer = ManifestWriter(path)
    writer.write_all(rows)
    writer.close()
    return path


def rows_of(path: Path) -> list[dict[str, object]]:
    return [r.to_dict() for r in read_manifest(path)]


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", ["m.jsonl", "m.csv", "M.CSV"])
def test_results_read_back_as_written(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / name, ROWS)
    assert list(read_manifest(path)) == ROWS


@pytest.mark.parametrize("name", ["m.jsonl", "m.csv"])
def test_carried_columns_read_back_as_written(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / name, CARRIED)
    assert rows_of(path) == [r.to_dict() for r in CARRIED]


@pytest.mark.parametrize("name", ["m.jsonl", "m.csv"])
def test_carried_columns_named_like_contract_fields_do_not_replace_them(
    tmp_path: Path, name: str
) -> None:
    path = write(tmp_path / name, CARRIED[1:])
    [row] = read_manifest(path)
    assert (row.index, row.status, row.error) == (1, Status.OK, None)
    assert dict(row.extra) == {
        "input_status": "listed",
        "input_index": "7",
        "input_error": "none",
        "extra": "x",
        "error_type": "y",
    }


def test_a_jsonl_manifest_is_one_object_per_line_in_the_contracts_order(tmp_path: Path) -> None:
    path = write(tmp_path / "m.jsonl", [CARRIED[0]])
    [line] = path.read_text(encoding="utf-8").splitlines()
    assert list(json.loads(line)) == [
        "index", "source", "path", "status", "bytes", "sha256", "http_status", "attempts",
        "elapsed_s", "error", "label", "weight", "tags", "nothing",
    ]  # fmt: skip


def test_a_csv_manifest_has_the_csv_header(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", [])
    assert path.read_text(encoding="utf-8").splitlines() == [",".join(CSV_FIELDS)]
    assert list(read_manifest(path)) == []


def test_the_writer_never_writes_through_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"keep")
    (tmp_path / "m.jsonl").symlink_to(target)
    with pytest.raises(UsageError, match="cannot write the manifest"):
        ManifestWriter(tmp_path / "m.jsonl")
    assert target.read_bytes() == b"keep"


def test_check_manifest_counts_rows_and_failures(tmp_path: Path) -> None:
    assert check_manifest(write(tmp_path / "m.jsonl", ROWS)) == ManifestSummary(5, 2)


def test_blank_lines_in_a_jsonl_manifest_are_not_rows(tmp_path: Path) -> None:
    path = write(tmp_path / "m.jsonl", ROWS[:2])
    path.write_text(path.read_text().replace("\n", "\n\n"), encoding="utf-8")
    assert check_manifest(path) == ManifestSummary(2, 1)


# --------------------------------------------------------------------------- refusals


def _line(result: Result, **changes: object) -> str:
    row = result.to_dict()
    row.update(changes)
    for key in [k for k, v in changes.items() if v is _DROP]:
        del row[key]
    return json.dumps(row)


_DROP = object()
_OK = ok_row(0)
_FAILED = failed_row(0)

JSONL_REFUSALS = [
    ("https://example.org/a.txt\n", 1, "not JSON"),
    (f"{_line(_OK)}\nnot json at all\n", 2, "not JSON"),
    ("[1, 2, 3]\n", 1, "not a JSON object"),
    ('"a string"\n', 1, "not a JSON object"),
    (_line(_OK, sha256=_DROP), 1, "no 'sha256'"),
    (_line(_OK, status="done"), 1, "unknown status 'done'"),
    (_line(_FAILED, error={"type": "exploded", "message": "x"}), 1, "unknown error type"),
    (_line(_FAILED, error="boom"), 1, "error must be null"),
    (_line(_FAILED, error={"type": "timeout"}), 1, "error must be null"),
    (_line(_OK, error={"type": "timeout", "message": "x"}), 1, "only to them"),
    (_line(_FAILED, error=None), 1, "only to them"),
    (_line(_OK, index=-1), 1, "index must be a whole number"),
    (_line(_OK, index=True), 1, "index must be a whole number"),
    (_line(_OK, bytes=1.5), 1, "bytes must be a whole number"),
    (_line(_OK, elapsed_s="1"), 1, "elapsed_s must be a number"),
    (_line(_OK, source=7), 1, "source must be text"),
    (_line(_OK, http_status="200"), 1, "http_status must be int or null"),
    (_line(_OK, path=3), 1, "path must be str or null"),
    (f"{_line(ok_row(1))}\n{_line(ok_row(0))}\n", 2, "not in input order"),
    (f"{_line(ok_row(1))}\n{_line(ok_row(1))}\n", 2, "not in input order"),
]


@pytest.mark.parametrize(
    ("text", "line", "why"),
    JSONL_REFUSALS,
    ids=[
        "url-list", "garbage-line", "array", "string", "missing-field", "unknown-status",
        "unknown-error-type", "error-not-object", "error-without-message", "error-on-ok-row",
        "failed-without-error", "negative-index", "bool-index", "fractional-bytes",
        "text-elapsed", "number-source", "text-status", "number-path", "out-of-order",
        "repeated-index",
    ],
)  # fmt: skip
def test_a_jsonl_file_that_is_not_a_manifest_is_refused_at_its_line(
    tmp_path: Path, text: str, line: int, why: str
) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UsageError) as raised:
        check_manifest(path)
    message = str(raised.value)
    assert f"is not a fetcher manifest, line {line}: " in message
    assert why in message


def _csv(header: str, *lines: str) -> str:
    return "\r\n".join((header, *lines)) + "\r\n"


_HEADER = ",".join(CSV_FIELDS)
_GOOD = "0,https://example.org/0,0.bin,ok,3,sha,200,1,0.5,,,"


@pytest.mark.parametrize(
    ("text", "line", "why"),
    [
        (_csv("url,sha256", "https://example.org/a,"), 1, "header is not a fetcher manifest"),
        (_csv(_HEADER.replace(",extra", "")), 1, "header is not a fetcher manifest"),
        ("", 1, "header is not a fetcher manifest"),
        (_csv(_HEADER, _GOOD, "1,https://example.org/1,,ok,lots,,,1,0.5,,,"), 3, "lots"),
        (_csv(_HEADER, "0,s,,ok,3,,200,1,soon,,,"), 2, "soon"),
        (_csv(_HEADER, "0,s,,ok,3,,2OO,1,0.5,,,"), 2, "2OO"),
        (_csv(_HEADER, "0,s,,ok,3,,200,1"), 2, "no 'elapsed_s' column"),
        (_csv(_HEADER, "0,s,,ok,3,,200,1,0.5,,,[1]"), 2, "extra must be a JSON object"),
        (_csv(_HEADER, "0,s,,ok,3,,200,1,0.5,,,{oops"), 2, "Expecting property name"),
        (_csv(_HEADER, "0,s,,failed,0,,,1,0.5,nope,x,"), 2, "unknown error type 'nope'"),
        (_csv(_HEADER, "0,s,,failed,0,,,1,0.5,,,"), 2, "only to them"),
        (_csv(_HEADER, _GOOD, _GOOD), 3, "not in input order"),
    ],
    ids=[
        "a-csv-list", "missing-column", "empty", "bad-bytes", "bad-elapsed", "bad-status",
        "short-row", "extra-not-object", "extra-not-json", "unknown-error-type",
        "failed-without-error", "repeated-index",
    ],
)  # fmt: skip
def test_a_csv_file_that_is_not_a_manifest_is_refused_at_its_line(
    tmp_path: Path, text: str, line: int, why: str
) -> None:
    path = tmp_path / "m.csv"
    path.write_text(text, encoding="utf-8", newline="")
    with pytest.raises(UsageError) as raised:
        check_manifest(path)
    message = str(raised.value)
    assert f"is not a fetcher manifest, line {line}: " in message
    assert why in message


def test_a_csv_refusal_names_the_files_line_after_a_field_spanning_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", [ROWS[4]])  # its error message holds a line break
    with path.open("a", encoding="utf-8", newline="") as out:
        out.write("5,s,,ok,lots,,,1,0.5,,,\r\n")
    bad_line = path.read_text(encoding="utf-8").splitlines().index("5,s,,ok,lots,,,1,0.5,,,") + 1
    with pytest.raises(UsageError) as raised:
        check_manifest(path)
    assert f"line {bad_line}: " in str(raised.value)


@pytest.mark.parametrize("name", ["m.jsonl", "m.csv"])
def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(UsageError, match="is not a fetcher manifest"):
        check_manifest(path)


def test_a_missing_manifest_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read the manifest"):
        check_manifest(tmp_path / "absent.jsonl")


def test_reading_refuses_only_when_it_reaches_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(f"{_line(ok_row(0))}\nbad\n", encoding="utf-8")
    rows = read_manifest(path)
    assert next(rows).index == 0
    with pytest.raises(UsageError, match="line 2"):
        next(rows)


# --------------------------------------------------------------------------- ManifestRewrite


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("name", ["m.jsonl", "m.csv"])
def test_commit_replaces_the_manifest_keeping_its_mode(tmp_path: Path, name: str) -> None:
    manifest = write(tmp_path / name, [failed_row(0), ok_row(1)])
    os.chmod(manifest, 0o640)
    rewrite = ManifestRewrite(manifest)
    rewrite.write_all([ok_row(0), ok_row(1)])
    rewrite.commit()
    assert list(read_manifest(manifest)) == [ok_row(0), ok_row(1)]
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o640
    assert _entries(tmp_path) == [name]


def test_the_old_manifest_stays_as_it_was_until_commit(tmp_path: Path) -> None:
    manifest = write(tmp_path / "m.jsonl", [failed_row(0)])
    before = manifest.read_bytes()
    rewrite = ManifestRewrite(manifest)
    rewrite.write_all([ok_row(0)])
    rewrite.flush()
    assert manifest.read_bytes() == before
    rewrite.commit()
    assert manifest.read_bytes() != before


def test_the_rewrite_is_renamed_over_the_manifest_not_copied_into_it(tmp_path: Path) -> None:
    """Atomic: a reader holding the old file still reads it whole."""
    manifest = write(tmp_path / "m.jsonl", [failed_row(0)])
    with manifest.open("rb") as reader:
        rewrite = ManifestRewrite(manifest)
        rewrite.write_all([ok_row(0)])
        rewrite.commit()
        assert json.loads(reader.read())["status"] == "failed"
    assert json.loads(manifest.read_bytes())["status"] == "ok"


@pytest.mark.parametrize("name", ["m.jsonl", "m.csv"])
def test_abandon_leaves_the_manifest_byte_for_byte_and_no_temp(tmp_path: Path, name: str) -> None:
    manifest = write(tmp_path / name, [failed_row(0), ok_row(1)])
    os.chmod(manifest, 0o600)
    before = (manifest.read_bytes(), manifest.stat().st_mtime_ns, manifest.stat().st_ino)
    rewrite = ManifestRewrite(manifest)
    rewrite.write_all([ok_row(0)])
    rewrite.flush()
    rewrite.abandon()
    after = (manifest.read_bytes(), manifest.stat().st_mtime_ns, manifest.stat().st_ino)
    assert after == before
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o600
    assert _entries(tmp_path) == [name]


def test_a_rewrite_of_a_csv_manifest_is_written_as_csv(tmp_path: Path) -> None:
    manifest = write(tmp_path / "m.csv", [failed_row(0)])
    rewrite = ManifestRewrite(manifest)
    rewrite.write_all([ok_row(0)])
    rewrite.commit()
    assert manifest.read_text(encoding="utf-8").startswith(",".join(CSV_FIELDS))


def test_a_stale_rewrite_temp_of_the_same_process_is_replaced(tmp_path: Path) -> None:
    manifest = write(tmp_path / "m.jsonl", [failed_row(0)])
    first = ManifestRewrite(manifest)
    first.write_all([failed_row(0)])
    first.flush()  # as a killed process of the same pid would have left it
    second = ManifestRewrite(manifest)
    second.write_all([ok_row(0)])
    second.commit()
    assert list(read_manifest(manifest)) == [ok_row(0)]
    assert _entries(tmp_path) == ["m.jsonl"]
    first.abandon()


def test_a_commit_that_fails_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = write(tmp_path / "m.jsonl", [failed_row(0)])
    before = manifest.read_bytes()
    rewrite = ManifestRewrite(manifest)
    rewrite.write_all([ok_row(0)])

    def full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("fetcher.manifest.os.replace", full)
    with pytest.raises(OSError):
        rewrite.commit()
    assert _entries(tmp_path) == ["m.jsonl"]
    assert manifest.read_bytes() == before


def test_a_rewrite_may_make_a_new_manifest(tmp_path: Path) -> None:
    rewrite = ManifestRewrite(tmp_path / "new.jsonl")
    rewrite.write_all([ok_row(0)])
    rewrite.commit()
    assert _entries(tmp_path) == ["new.jsonl"]
