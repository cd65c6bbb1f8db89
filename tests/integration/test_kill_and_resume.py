"""A run killed with SIGKILL at an arbitrary moment, then run again: nothing incomplete under
a final name, the manifest a valid in-order prefix, every file right after the re-run, no
complete item fetched twice, and partial large bodies continued with a range request."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import time
from pathlib import Path

import pytest

from tests.clirun import fetcher_command, run_fetcher, write_list
from tests.server import TestServer, body_for, file_body

SMALL = 24
BIG = 3
BIG_SIZE = 3_000_000
BIG_BPS = 2_000_000  # 1.5 s per big body: a kill lands mid-transfer


def expected_items(server: TestServer) -> list[tuple[str, str, bytes]]:
    """(url, output name, content) per item; big bodies sit among the small ones."""
    items = []
    for i in range(SMALL):
        items.append(
            (server.url(f"/count/s{i}?size={20_000 + i}"), f"s{i}", body_for(f"s{i}", 20_000 + i))
        )
        if i % 8 == 3:
            name = f"big{i}.bin"
            url = server.url(f"/file/{name}?size={BIG_SIZE}&bps={BIG_BPS}")
            items.append((url, name, file_body(name, BIG_SIZE)))
    return items


def manifest_rows(out: Path) -> list[dict[str, object]]:
    path = out / ".fetcher" / "manifest.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]  # every line valid JSON


def outputs(out: Path) -> dict[str, bytes]:
    """Files under final names; none when the kill came before the output dir existed."""
    if not out.exists():
        return {}
    return {
        p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and not p.name.startswith(".")
    }


# Fixed moments that land before, during and after the large transfers, plus random ones
# (printed, so a failure can be replayed): the invariants must hold at any moment.
KILL_MOMENTS = [0.5, 0.9, 1.3, 1.7] + [round(random.uniform(0.2, 2.0), 3) for _ in range(3)]


@pytest.mark.parametrize("kill_after_s", KILL_MOMENTS)
def test_sigkill_then_rerun_completes_everything_without_refetching(
    http_server: TestServer, tmp_path: Path, kill_after_s: float
) -> None:
    items = expected_items(http_server)
    contents = {name: content for _, name, content in items}
    write_list(tmp_path / "list.txt", [url for url, _, _ in items])
    out = tmp_path / "out"
    args = ("fetch", "list.txt", "-o", "out", "-j", "4", "--no-progress")
    first = subprocess.Popen(fetcher_command(*args), cwd=tmp_path, stderr=subprocess.DEVNULL)
    time.sleep(kill_after_s)
    first.kill()
    first.wait()

    # Right after the kill: complete files only, and a valid in-order manifest prefix.
    rows = manifest_rows(out)
    assert [r["index"] for r in rows] == list(range(len(rows)))
    done_at_kill = outputs(out)
    for name, data in done_at_kill.items():
        assert data == contents[name], f"{name} is incomplete or corrupt under its final name"
    # Temp names are .fetcher-<index>-<hash>.part: which item each partial belongs to.
    names = [name for _, name, _ in items]
    partial = {
        names[int(p.name.split("-")[1])]: p.stat().st_size for p in out.glob(".fetcher-*.part")
    }
    served_before = {name: sum(int(e["bytes_sent"] or 0) for e in http_server.file_log(name))
                     for name in names if name.startswith("big")}  # fmt: skip

    second = run_fetcher(*args, cwd=tmp_path, timeout=60)
    assert second.returncode == 0, second.stderr

    rows = manifest_rows(out)
    assert [r["index"] for r in rows] == list(range(len(items)))
    assert all(r["status"] in ("ok", "skipped") for r in rows)
    final = outputs(out)
    assert final == contents, "every file complete and correct after the re-run"
    assert not list(out.glob(".fetcher-*.part")), "no temp files left"
    for name in done_at_kill:
        if name.startswith("s"):
            assert http_server.hits(name) == 1, f"{name} was complete and fetched again"
    refetched_total = 0
    for name, kept in partial.items():
        if not name.startswith("big") or kept == 0:
            continue
        log = http_server.file_log(name)
        refetched = sum(int(e["bytes_sent"] or 0) for e in log) - served_before[name]
        assert log[-1]["range"] == f"bytes={kept}-", "continued exactly where the kill left it"
        assert log[-1]["status"] == 206
        assert refetched == BIG_SIZE - kept, "only the missing part was fetched again"
        refetched_total += refetched - (BIG_SIZE - kept)
    resumed = {name: kept for name, kept in partial.items() if name.startswith("big") and kept}
    print(
        f"\nkill at {kill_after_s}s: {len(items)} items, {len(done_at_kill)} complete at kill,"
        f" {len(partial) - len(resumed)} temps dropped, large partials resumed: {resumed},"
        f" bytes of partials fetched twice: {refetched_total}, corrupt outputs: 0"
    )
    digest = hashlib.sha256(b"".join(final[name] for _, name, _ in items)).hexdigest()
    assert digest == hashlib.sha256(b"".join(c for _, _, c in items)).hexdigest()
