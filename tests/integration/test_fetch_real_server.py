"""The whole pipeline against a real HTTP server on 127.0.0.1 and real files on disk."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from fetcher import FetchOptions, Layout, RetryPolicy, Status, fetch_all, fetch_iter
from tests.clirun import read_manifest, run_fetcher, write_list
from tests.server import TestServer, body_for

NO_RETRY = RetryPolicy(retries=0)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def visible_files(root: Path) -> list[str]:
    """Outputs a user sees: everything but the hidden state folder."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and ".fetcher" not in p.parts
    )


def test_results_follow_input_order_whatever_the_delays(
    http_server: TestServer, tmp_path: Path
) -> None:
    rng = random.Random(7)
    urls = [
        http_server.url(f"/bytes/item{i}?size={100 + i}&delay={rng.choice([0, 0.01, 0.05, 0.2])}")
        for i in range(40)
    ]
    results = fetch_all(urls, output_dir=tmp_path, workers=8)
    assert [r.index for r in results] == list(range(40))
    assert [r.source for r in results] == urls
    for i, result in enumerate(results):
        assert result.status is Status.OK
        assert (tmp_path / str(result.path)).read_bytes() == body_for(f"item{i}", 100 + i)
        assert result.sha256 == sha256(body_for(f"item{i}", 100 + i))
        assert result.http_status == 200


def test_lazy_iterator_yields_first_result_before_the_input_ends(
    http_server: TestServer, tmp_path: Path
) -> None:
    pulled = 0

    def endless() -> object:
        nonlocal pulled
        while True:
            pulled += 1
            yield http_server.url(f"/bytes/x{pulled}?size=10")

    results = fetch_iter(endless(), output_dir=tmp_path, workers=4)  # type: ignore[arg-type]
    first = next(results)
    results.close()  # type: ignore[attr-defined]
    assert first.index == 0 and first.status is Status.OK
    assert pulled < 2000, "the input must be read lazily, with bounded look-ahead"


def test_large_body_streams_to_disk_with_flat_memory(
    http_server: TestServer, tmp_path: Path
) -> None:
    size = 100 * 1024 * 1024
    listing = write_list(tmp_path / "list.txt", [http_server.url(f"/stream?size={size}")])
    run = run_fetcher(
        "fetch", str(listing), "-o", "out", "--no-progress", cwd=tmp_path, timeout=120
    )
    assert run.returncode == 0, run.stderr
    out = tmp_path / "out" / "stream"
    assert out.stat().st_size == size
    row = read_manifest(tmp_path / "out" / ".fetcher" / "manifest.jsonl")[0]
    from tests.server import stream_sha256

    assert row["sha256"] == stream_sha256(size)
    assert run.peak_rss_mib < 80, f"peak RSS {run.peak_rss_mib:.0f} MiB for a 100 MiB body"


def test_truncated_body_fails_and_leaves_no_file(http_server: TestServer, tmp_path: Path) -> None:
    results = fetch_all(
        [
            http_server.url("/truncate?size=100000&send=5000"),
            http_server.url("/chunked-truncate?send=500"),
        ],
        output_dir=tmp_path,
        retry=RetryPolicy(retries=1, backoff_s=0),
    )
    for result in results:
        assert result.status is Status.FAILED
        assert result.error is not None and result.error.type == "truncated"
        assert result.attempts == 2
        assert result.path is None
    assert visible_files(tmp_path) == []
    assert not list(tmp_path.rglob("*.part"))


def test_slow_server_fails_with_timeout(http_server: TestServer, tmp_path: Path) -> None:
    [result] = fetch_all(
        [http_server.url("/slow?delay=5")], output_dir=tmp_path, timeout_s=0.5, retry=NO_RETRY
    )
    assert result.status is Status.FAILED
    assert result.error is not None and result.error.type == "timeout"
    assert result.elapsed_s < 3


def test_trickling_body_within_timeout_completes(http_server: TestServer, tmp_path: Path) -> None:
    [result] = fetch_all(
        [http_server.url("/trickle?size=5&interval=0.05")], output_dir=tmp_path, timeout_s=1
    )
    assert result.status is Status.OK and result.bytes == 5


@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        ('attachment; filename="../../etc/passwd"', "passwd"),
        ('attachment; filename="/abs/evil.sh"', "evil.sh"),
        ('attachment; filename="..\\\\..\\\\win.ini"', "win.ini"),
        ("attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf", "résumé.pdf"),
        ('attachment; filename=".."', "cd"),
        ('attachment; filename="CON"', "_CON"),
        ('attachment; filename=".fetcher"', "_fetcher"),
    ],
)
def test_hostile_content_disposition_stays_inside_output_dir(
    http_server: TestServer, tmp_path: Path, disposition: str, expected: str
) -> None:
    from urllib.parse import quote

    out = tmp_path / "out"
    [result] = fetch_all([http_server.url(f"/cd?name={quote(disposition)}")], output_dir=out)
    assert result.status is Status.OK
    assert result.path == expected
    written = (out / expected).resolve()
    assert written.is_relative_to(out.resolve())
    assert written.read_bytes() == b"cd-body"
    assert [p for p in tmp_path.iterdir() if p.name != "out"] == []


def test_flat_collisions_resolve_by_input_order_whatever_the_workers(
    http_server: TestServer, tmp_path: Path
) -> None:
    # Same file name from different folders, the first one slowest to arrive.
    urls = [
        http_server.url(f"/bytes/data.bin?size={10 + i}&delay={0.3 if i == 0 else 0}&v={i}")
        for i in range(6)
    ]
    names = {}
    for workers in (1, 3, 8):
        out = tmp_path / f"j{workers}"
        results = fetch_all(urls, output_dir=out, workers=workers)
        names[workers] = [r.path for r in results]
        for i, result in enumerate(results):
            assert (out / str(result.path)).stat().st_size == 10 + i
    assert names[1] == names[3] == names[8]
    assert names[1] == [
        "data.bin",
        "data.1.bin",
        "data.2.bin",
        "data.3.bin",
        "data.4.bin",
        "data.5.bin",
    ]


def test_mirror_layout_keeps_host_and_path(http_server: TestServer, tmp_path: Path) -> None:
    port = http_server.url("/").split(":")[2].strip("/")
    [result] = fetch_all(
        [http_server.url("/bytes/deep.bin?size=3")], output_dir=tmp_path, layout=Layout.MIRROR
    )
    assert result.path == f"127.0.0.1_{port}/bytes/deep.bin"
    assert (tmp_path / result.path).read_bytes() == body_for("deep.bin", 3)


def test_indexed_layout_lists_in_input_order(http_server: TestServer, tmp_path: Path) -> None:
    urls = [http_server.url(f"/bytes/{name}?size=4") for name in ("zz.txt", "aa.txt", "mm.txt")]
    results = fetch_all(urls, output_dir=tmp_path, layout=Layout.INDEXED)
    assert [r.path for r in results] == ["000000-zz.txt", "000001-aa.txt", "000002-mm.txt"]
    assert visible_files(tmp_path) == [r.path for r in results]


def test_redirects_followed_and_bounded(http_server: TestServer, tmp_path: Path) -> None:
    results = fetch_all(
        [http_server.url("/redirect-chain/3"), http_server.url("/redirect-loop")],
        output_dir=tmp_path,
        retry=NO_RETRY,
    )
    assert results[0].status is Status.OK
    assert (tmp_path / str(results[0].path)).read_bytes() == b"end"
    assert results[1].status is Status.FAILED
    assert results[1].error is not None and results[1].error.type == "too_many_redirects"
    assert http_server.count("/redirect-loop") <= 12


def test_http_error_statuses_recorded_and_batch_continues(
    http_server: TestServer, tmp_path: Path
) -> None:
    urls = [
        http_server.url("/status/404"),
        http_server.url("/bytes/ok?size=5"),
        http_server.url("/status/500"),
    ]
    results = fetch_all(urls, output_dir=tmp_path, retry=RetryPolicy(retries=1, backoff_s=0))
    assert [r.status for r in results] == [Status.FAILED, Status.OK, Status.FAILED]
    assert [r.http_status for r in results] == [404, 200, 500]
    assert [r.attempts for r in results] == [1, 1, 2]
    assert http_server.count("/status/404") == 1


def test_transient_503_is_retried_to_success(http_server: TestServer, tmp_path: Path) -> None:
    [result] = fetch_all(
        [http_server.url("/flaky/k1?fail=2&code=503")],
        output_dir=tmp_path,
        retry=RetryPolicy(retries=3, backoff_s=0.01),
    )
    assert result.status is Status.OK and result.attempts == 3
    assert (tmp_path / "k1").read_bytes() == body_for("k1", 1000)


def test_stdout_mode_concatenates_bodies_in_input_order(
    http_server: TestServer, tmp_path: Path
) -> None:
    urls = [
        http_server.url(f"/bytes/s{i}?size={50 + i}&delay={0.1 if i % 3 == 0 else 0}")
        for i in range(12)
    ]
    listing = write_list(tmp_path / "list.txt", urls)
    run = run_fetcher("fetch", str(listing), "--stdout", "-j", "6", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout == b"".join(body_for(f"s{i}", 50 + i) for i in range(12))
    assert list(tmp_path.iterdir()) == [listing], "--stdout keeps no files"


def test_local_paths_and_file_urls_are_copied(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_bytes(b"alpha")
    (data / "b b.txt").write_bytes(b"beta")
    listing = write_list(
        tmp_path / "list.txt", ["data/a.txt", (data / "b b.txt").as_uri(), "data/none.txt", "data"]
    )
    run = run_fetcher("fetch", str(listing), "-o", "out", "--layout", "mirror", cwd=tmp_path)
    assert run.returncode == 1
    rows = read_manifest(tmp_path / "out" / ".fetcher" / "manifest.jsonl")
    assert [r["status"] for r in rows] == ["ok", "ok", "failed", "failed"]
    assert rows[0]["path"] == "data/a.txt" and rows[0]["http_status"] is None
    assert (tmp_path / "out" / "data" / "a.txt").read_bytes() == b"alpha"
    assert (tmp_path / "out" / str(rows[1]["path"])).read_bytes() == b"beta"
    assert [rows[2]["error"]["type"], rows[3]["error"]["type"]] == ["not_found", "is_directory"]


def test_stdin_list_resolves_paths_against_current_folder(tmp_path: Path) -> None:
    (tmp_path / "here.txt").write_bytes(b"from stdin")
    run = run_fetcher("fetch", "-", "-o", "out", stdin=b"# comment\n\nhere.txt\n", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out" / "here.txt").read_bytes() == b"from stdin"


def test_rerun_skips_complete_items_and_refetches_changed_ones(
    http_server: TestServer, tmp_path: Path
) -> None:
    urls = [http_server.url(f"/bytes/r{i}?size=20") for i in range(3)]
    first = fetch_all(urls, output_dir=tmp_path)
    (tmp_path / "r1").write_bytes(b"tampered")
    http_server.reset()
    second = fetch_all(urls, output_dir=tmp_path)
    assert [r.status for r in second] == [Status.SKIPPED, Status.OK, Status.SKIPPED]
    assert [r.path for r in second] == [r.path for r in first]
    assert http_server.count("/bytes/r") == 1
    assert (tmp_path / "r1").read_bytes() == body_for("r1", 20)
    third = fetch_all(urls, FetchOptions(output_dir=tmp_path, overwrite=True))
    assert [r.status for r in third] == [Status.OK] * 3
    assert [r.path for r in third] == [r.path for r in first]


def test_foreign_file_at_target_name_is_never_overwritten(
    http_server: TestServer, tmp_path: Path
) -> None:
    (tmp_path / "mine.txt").write_bytes(b"user data")
    [result] = fetch_all([http_server.url("/bytes/mine.txt?size=9")], output_dir=tmp_path)
    assert result.path == "mine.1.txt"
    assert (tmp_path / "mine.txt").read_bytes() == b"user data"


def test_planted_symlink_is_not_written_through(http_server: TestServer, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"keep")
    out = tmp_path / "out"
    out.mkdir()
    (out / "target.txt").symlink_to(outside)
    [result] = fetch_all([http_server.url("/bytes/target.txt?size=4")], output_dir=out)
    assert result.status is Status.OK and result.path == "target.1.txt"
    assert outside.read_bytes() == b"keep"
    assert (out / "target.txt").is_symlink()


def test_planted_symlink_folder_is_not_followed_in_mirror_layout(
    http_server: TestServer, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    host = http_server.base.removeprefix("http://").replace(":", "_")
    (out / host).symlink_to(elsewhere)
    [result] = fetch_all(
        [http_server.url("/bytes/x.bin?size=4")], output_dir=out, layout=Layout.MIRROR
    )
    assert result.status is Status.OK
    assert result.path == f"{host}.1/bytes/x.bin"
    assert list(elsewhere.iterdir()) == []


def test_failed_items_leave_no_empty_folders_in_mirror_layout(
    http_server: TestServer, tmp_path: Path
) -> None:
    [result] = fetch_all(
        [http_server.url("/status/404/deep/er/x.bin")], output_dir=tmp_path, layout=Layout.MIRROR
    )
    assert result.status is Status.FAILED
    assert [p.name for p in tmp_path.iterdir()] == [".fetcher"]
