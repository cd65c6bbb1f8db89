"""The manifest's contract in one place: `Result.to_dict` / `Result.from_row` both ways,
the rows `from_row` refuses, and `ErrorType` as the closed list the README documents."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fetcher.results import MANIFEST_FIELDS, ErrorInfo, ErrorType, Result, Status
from tests.unit.builders import failed_row, ok_row

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize(
    "result",
    [
        ok_row(0),
        failed_row(1),
        ok_row(2, {"label": "x", "n": 3, "nested": {"a": [1, 2]}}),
        Result(3, "a.txt", "a.txt", Status.SKIPPED, 5, "a" * 64, None, 0, 0.0),
        Result(4, "https://e.org/", "index.html", Status.UNCHANGED, 5, "b" * 64, 304, 1, 1.5),
        Result(5, "https://e.org/x", None, Status.FAILED, error=ErrorInfo(ErrorType.TLS, "")),
    ],
    ids=["ok", "failed", "carried", "skipped", "unchanged", "empty-message"],
)
def test_a_result_reads_back_from_its_row(result: Result) -> None:
    assert Result.from_row(result.to_dict()) == result


def test_a_row_has_the_contract_fields_first_then_the_carried_columns() -> None:
    row = ok_row(0, {"label": "x"}).to_dict()
    assert list(row) == [*MANIFEST_FIELDS, "label"]


@pytest.mark.parametrize(
    ("result", "fields"),
    [
        (ok_row(0), {"status": "ok", "error": None}),
        (failed_row(0, ErrorType.DEADLINE),
         {"status": "failed",
          "error": {"type": "deadline", "message": "HTTP 500 (after 3 attempts)"}}),
        (replace(ok_row(0), elapsed_s=0.12345678), {"elapsed_s": 0.123457}),
    ],
    ids=["ok", "failed", "elapsed-rounded"],
)  # fmt: skip
def test_to_dict_writes_plain_json_values(result: Result, fields: dict[str, Any]) -> None:
    row = result.to_dict()
    assert {k: row[k] for k in fields} == fields


@pytest.mark.parametrize("name", list(MANIFEST_FIELDS))
def test_a_carried_column_named_like_a_contract_field_is_renamed(name: str) -> None:
    row = ok_row(0, {name: "from the list"}).to_dict()
    assert row["input_" + name] == "from the list"
    assert row[name] == ok_row(0).to_dict()[name]


def test_no_carried_column_is_lost_whatever_its_name() -> None:
    row = ok_row(0, {"input_status": "first", "status": "second"}).to_dict()
    assert sorted(v for k, v in row.items() if k not in MANIFEST_FIELDS) == ["first", "second"]


def _row(**changes: Any) -> dict[str, Any]:
    row = ok_row(0).to_dict()
    row.update(changes)
    return row


def _failed(**changes: Any) -> dict[str, Any]:
    row = failed_row(0).to_dict()
    row.update(changes)
    return row


@pytest.mark.parametrize(
    ("row", "check"),
    [
        (_row(elapsed_s=2), lambda r: r.elapsed_s == 2.0 and isinstance(r.elapsed_s, float)),
        (_row(http_status=None, sha256=None, path=None), lambda r: r.path is None),
        (_row(bytes=0, attempts=0), lambda r: r.bytes == 0),
        (_row(status="skipped"), lambda r: r.status is Status.SKIPPED and r.ok),
        (_row(status="unchanged"), lambda r: r.status is Status.UNCHANGED and r.ok),
        (_failed(), lambda r: not r.ok and r.error.type is ErrorType.HTTP_STATUS),
        (_row(colour="red"), lambda r: dict(r.extra) == {"colour": "red"}),
    ],
    ids=["int-elapsed", "nulls", "zeros", "skipped", "unchanged", "failed", "carried"],
)
def test_from_row_accepts_valid_rows(row: dict[str, Any], check: Any) -> None:
    assert check(Result.from_row(row))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({}, "no 'index', 'source'"),
        ({k: v for k, v in _row().items() if k != "error"}, "no 'error'"),
        (_row(status="OK"), "unknown status 'OK'"),
        (_row(status=None), "unknown status None"),
        (_failed(error={"type": "boom", "message": "x"}), "unknown error type 'boom'"),
        (_failed(error={"type": "timeout", "message": 3}), "error must be null or {type, message}"),
        (_failed(error=["timeout", "x"]), "error must be null or {type, message}"),
        (_failed(error=None), "an error belongs to failed rows"),
        (_row(error={"type": "timeout", "message": "x"}), "an error belongs to failed rows"),
        (_row(index="0"), "index must be a whole number"),
        (_row(index=-1), "index must be a whole number"),
        (_row(bytes=False), "bytes must be a whole number"),
        (_row(attempts=1.0), "attempts must be a whole number"),
        (_row(elapsed_s=None), "elapsed_s must be a number"),
        (_row(elapsed_s=True), "elapsed_s must be a number"),
        (_row(source=None), "source must be text"),
        (_row(path=["a"]), "path must be str or null"),
        (_row(sha256=1), "sha256 must be str or null"),
        (_row(http_status=200.0), "http_status must be int or null"),
        (_row(http_status=True), "http_status must be int or null"),
    ],
    ids=[
        "empty", "missing-error", "status-case", "status-null", "unknown-error-type",
        "message-not-text", "error-list", "failed-without-error", "error-on-ok",
        "text-index", "negative-index", "bool-bytes", "float-attempts", "null-elapsed",
        "bool-elapsed", "null-source", "list-path", "number-sha", "float-status", "bool-status",
    ],
)  # fmt: skip
def test_from_row_refuses_invalid_rows(row: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        Result.from_row(row)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("status", "ok"),
    [(Status.OK, True), (Status.SKIPPED, True), (Status.UNCHANGED, True), (Status.FAILED, False)],
)
def test_only_failed_results_are_not_ok(status: Status, ok: bool) -> None:
    assert replace(ok_row(0), status=status).ok is ok


def test_statuses_are_the_four_of_the_contract() -> None:
    assert sorted(s.value for s in Status) == ["failed", "ok", "skipped", "unchanged"]


def test_error_types_print_as_their_values() -> None:
    assert [str(t) for t in ErrorType] == [t.value for t in ErrorType]


# --------------------------------------------------------------------------- the README's list


_NAME = re.compile(r"`([a-z_]+)`")


def _readme_error_table() -> list[str] | None:
    """The names in the first cells of the README table that lists the error types (one
    cell may name several), if the README has such a table."""
    values = {t.value for t in ErrorType}
    tables: list[list[str]] = [[]]
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("|"):
            tables[-1].extend(_NAME.findall(line.split("|")[1]))
        elif tables[-1]:
            tables.append([])
    return next((t for t in tables if values & set(t)), None)


def test_every_error_type_is_listed_once_in_the_readme() -> None:
    table = _readme_error_table()
    if table is None:
        pytest.skip("README.md has no table of error types yet")
    assert sorted(table) == sorted(t.value for t in ErrorType)
