"""--shard K/N and `fetcher merge`: N runs cover the list exactly once with global indexes,
and their merged manifests equal one unsharded run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fetcher.errors import UsageError
from fetcher.shards import Shard, parse_shard
from tests.clirun import read_manifest, run_fetcher, write_list
from tests.server import TestServer

TIMING = "elapsed_s"


def _without_timing(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{k: v for k, v in row.items() if k != TIMING} for row in rows]


def _list(server: TestServer, tmp_path: Path, items: int = 23) -> Path:
    lines = [server.url(f"/bytes/d{i % 4}/f{i}.bin?size={10 + i}") for i in range(items)]
    lines[7] = server.url("/status/404")
    return write_list(tmp_path / "l.txt", lines)


@pytest.mark.parametrize("layout", ["indexed", "mirror"])
def test_merged_shards_equal_the_unsharded_run(
    http_server: TestServer, tmp_path: Path, layout: str
) -> None:
    _list(http_server, tmp_path)
    whole = run_fetcher("fetch", "l.txt", "-o", "whole", "--layout", layout, cwd=tmp_path)
    assert whole.returncode == 1  # the 404
    for k in range(3):
        part = run_fetcher(
            "fetch", "l.txt", "-o", f"s{k}", "--layout", layout, "--shard", f"{k}/3",
            "--manifest", f"m{k}.jsonl", "--retries", "0", cwd=tmp_path,
        )  # fmt: skip
        assert part.returncode in (0, 1), part.stderr
        rows = read_manifest(tmp_path / f"m{k}.jsonl")
        assert [r["index"] for r in rows] == list(range(k, 23, 3))
    merged = run_fetcher(
        "merge", "m0.jsonl", "m1.jsonl", "m2.jsonl", "-o", "all.jsonl", cwd=tmp_path
    )
    assert merged.returncode == 0, merged.stderr
    assert "Merged 23 rows" in merged.stderr
    expected = read_manifest(tmp_path / "whole" / ".fetcher" / "manifest.jsonl")
    assert _without_timing(read_manifest(tmp_path / "all.jsonl")) == _without_timing(expected)


def test_merge_reports_a_missing_shard_and_exits_1(http_server: TestServer, tmp_path: Path) -> None:
    _list(http_server, tmp_path, items=9)
    for k in (0, 2):
        run = run_fetcher(
            "fetch", "l.txt", "-o", "out", "--shard", f"{k}/3", "--manifest", f"m{k}.csv",
            cwd=tmp_path,
        )  # fmt: skip
        assert run.returncode in (0, 1), run.stderr
    merged = run_fetcher("merge", "m2.csv", "m0.csv", "-o", "all.jsonl", cwd=tmp_path)
    assert merged.returncode == 1
    assert "missing: 3 indices (1, 4, 7)" in merged.stderr
    rows = read_manifest(tmp_path / "all.jsonl")
    assert [r["index"] for r in rows] == [0, 2, 3, 5, 6, 8]


def test_merge_reports_duplicates_and_keeps_one_row_each(tmp_path: Path) -> None:
    row = {
        "index": 0, "source": "a", "path": "a", "status": "ok", "bytes": 1, "sha256": "x",
        "http_status": None, "attempts": 1, "elapsed_s": 0.1, "error": None,
    }  # fmt: skip
    (tmp_path / "a.jsonl").write_text(json.dumps(row) + "\n")
    (tmp_path / "b.jsonl").write_text(
        json.dumps(row) + "\n" + json.dumps({**row, "index": 1}) + "\n"
    )
    merged = run_fetcher("merge", "a.jsonl", "b.jsonl", "-o", "m.jsonl", cwd=tmp_path)
    assert merged.returncode == 1
    assert "duplicated: 1 index (0)" in merged.stderr
    assert [r["index"] for r in read_manifest(tmp_path / "m.jsonl")] == [0, 1]


def test_merge_refuses_a_file_that_is_not_a_manifest(tmp_path: Path) -> None:
    write_list(tmp_path / "urls.txt", ["http://127.0.0.1:9/x"])
    merged = run_fetcher("merge", "urls.txt", "-o", "m.jsonl", cwd=tmp_path)
    assert merged.returncode == 2 and "not a fetcher manifest" in merged.stderr
    assert not (tmp_path / "m.jsonl").exists()


@pytest.mark.parametrize("text", ["3/3", "1", "a/b", "-1/2", "1/0"])
def test_a_bad_shard_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="--shard"):
        parse_shard(text)


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shards_cover_every_index_exactly_once(count: int) -> None:
    shards = [Shard(k, count) for k in range(count)]
    for index in range(100):
        assert sum(shard.holds(index) for shard in shards) == 1
    assert sum(shard.share(100) for shard in shards) == 100
