"""`--cluster`: a Dask cluster gives the same manifest, names and guarantees as one machine;
a worker killed mid-run loses nothing and fetches nothing committed twice; Ctrl-C leaves an
in-order prefix that a re-run completes; bad cluster input is a usage error."""

from __future__ import annotations

import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from distributed import Client, LocalCluster

from fetcher import FetchOptions, Status, fetch_all
from fetcher import cluster as on_worker
from fetcher.cluster import block_size
from fetcher.context import RunSpec
from fetcher.errors import UsageError
from fetcher.sources import parse_source
from fetcher.work import Fetched, Outcome, Stopped, WorkItem
from tests.clirun import fetcher_command, read_manifest, run_fetcher, write_list
from tests.server import TestServer, body_for


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Client]:
    """A cluster the caller owns (two single-threaded worker processes on 127.0.0.1),
    shared by the tests that pass a Client; each leaves it with two workers."""
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        yield client


def without_timing(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in rows]


def test_local_cluster_manifest_equals_one_machine(http_server: TestServer, tmp_path: Path) -> None:
    """Several blocks, flat names that collide (decided by input order), a failed item."""
    lines = []
    for i in range(150):
        if i % 3 == 0:
            lines.append(http_server.url(f"/bytes/same.bin?size={10 + i}&v={i}"))
        else:
            lines.append(http_server.url(f"/bytes/b{i}?size={100 + i}&delay={0.01 * (i % 4)}"))
    lines[77] = http_server.url("/status/404")
    write_list(tmp_path / "l.txt", lines)
    common = ("-j", "2", "--chunksize", "1", "--no-progress")
    single = run_fetcher("fetch", "l.txt", "-o", "one", *common, cwd=tmp_path)
    assert single.returncode == 1, single.stderr
    assert block_size(1, 2) < len(lines) / 2  # so that both workers get blocks
    on_dask = run_fetcher(
        "fetch", "l.txt", "-o", "dask", "--cluster", "local:2", *common, cwd=tmp_path
    )
    assert on_dask.returncode == 1, on_dask.stderr
    one = read_manifest(tmp_path / "one" / ".fetcher" / "manifest.jsonl")
    dask = read_manifest(tmp_path / "dask" / ".fetcher" / "manifest.jsonl")
    assert without_timing(dask) == without_timing(one)
    assert [row["index"] for row in dask] == list(range(len(lines)))
    assert dask[77]["status"] == "failed" and dask[77]["http_status"] == 404
    assert dask[3]["path"] == "same.1.bin"  # the second `same.bin` in input order
    for row in dask:
        if row["status"] == "ok":
            path = tmp_path / "dask" / row["path"]
            assert path.read_bytes() == (tmp_path / "one" / row["path"]).read_bytes()
    assert not list((tmp_path / "dask").glob(".fetcher-*"))  # no temps, no probe left


def test_worker_killed_mid_run_loses_nothing_and_refetches_nothing_committed(
    http_server: TestServer, tmp_path: Path, dask_client: Client
) -> None:
    """SIGKILL the worker running a block that is partly fetched, once a block is in the
    manifest: Dask runs the block again, so its fetched items are fetched twice, and no
    item committed before the kill is fetched again."""
    size = block_size(1, 2)
    count = size * 6
    urls = [http_server.url(f"/count/k{i}?size={200 + i}&delay=0.04") for i in range(count)]
    manifest = tmp_path / "m.jsonl"
    pids_before = set(dask_client.run(os.getpid).values())
    killer = Killer(dask_client, http_server, manifest, size)
    killer.start()
    try:
        results = fetch_all(
            urls,
            output_dir=tmp_path / "out",
            workers=2,
            chunksize=1,
            cluster=dask_client,
            manifest=manifest,
        )
    finally:
        killer.done.set()
        killer.join()
    assert killer.committed, "no block was caught mid-way after a commit"
    assert [r.index for r in results] == list(range(count))
    for i, result in enumerate(results):
        assert result.status is Status.OK
        assert (tmp_path / "out" / str(result.path)).read_bytes() == body_for(f"k{i}", 200 + i)
    assert all(http_server.hits(f"k{i}") == 1 for i in killer.committed)
    rerun = range(killer.block * size, (killer.block + 1) * size)
    assert any(http_server.hits(f"k{i}") == 2 for i in rerun)  # the block did run again
    assert not list((tmp_path / "out").glob(".fetcher-*"))
    dask_client.wait_for_workers(2, timeout=30)
    assert set(dask_client.run(os.getpid).values()) != pids_before  # the nanny restarted it


class Killer(threading.Thread):
    """Kills the worker process running a block that is partly fetched and not yet
    committed, once the manifest has rows; remembers which rows it had then."""

    def __init__(self, client: Client, server: TestServer, manifest: Path, size: int) -> None:
        super().__init__(daemon=True)
        self.client, self.server, self.manifest, self.size = client, server, manifest, size
        self.done = threading.Event()
        self.committed: list[int] = []
        self.block = -1

    def run(self) -> None:
        while not self.done.wait(0.02):
            rows = self.manifest.read_text().count("\n") if self.manifest.exists() else 0
            victim = self.victim(rows) if rows >= self.size else None
            if victim is not None:
                worker, self.block = victim
                pid = self.client.run(os.getpid, workers=[worker])[worker]
                self.committed = [row["index"] for row in read_manifest(self.manifest)]
                os.kill(pid, signal.SIGKILL)
                return

    def victim(self, rows: int) -> tuple[str, int] | None:
        """(worker, block number) of a block being run past the committed rows, with some
        items fetched and at least half still to come."""
        for worker, keys in self.client.processing().items():
            for key in keys:
                block = int(str(key).rsplit("-", 1)[1])
                first = block * self.size
                fetched = sum(
                    self.server.hits(f"k{i}") > 0 for i in range(first, first + self.size)
                )
                if first >= rows and 2 <= fetched <= self.size // 2:
                    return worker, block
        return None


def test_ctrl_c_exits_130_with_a_prefix_and_a_rerun_finishes(
    http_server: TestServer, tmp_path: Path
) -> None:
    """Ctrl-C as a terminal sends it, to the whole process group (the cluster's worker
    processes included): exit 130, an in-order prefix, no temp left; the re-run skips
    what was done and fetches the rest."""
    size = block_size(1, 8)
    lines = [http_server.url(f"/count/c{i}?size=300") for i in range(size)]
    lines += [http_server.url(f"/count/c{i}?size=300&delay=0.2") for i in range(size, 3 * size)]
    write_list(tmp_path / "l.txt", lines)
    args = ("fetch", "l.txt", "-o", "out", "-j", "8", "--chunksize", "1", "--cluster", "local:2")
    proc = subprocess.Popen(
        fetcher_command(*args), cwd=tmp_path, stderr=subprocess.PIPE, start_new_session=True
    )
    manifest = tmp_path / "out" / ".fetcher" / "manifest.jsonl"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (
        manifest.exists() and manifest.read_text().count("\n") >= size
    ):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err and b"leaked" not in err  # workers ended, none killed
    rows = read_manifest(manifest)
    assert size <= len(rows) < len(lines)
    assert [row["index"] for row in rows] == list(range(len(rows)))
    assert not list((tmp_path / "out").glob(".fetcher-*"))
    again = run_fetcher(*args, "--no-progress", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    final = read_manifest(manifest)
    assert [row["index"] for row in final] == list(range(len(lines)))
    assert {row["status"] for row in final[: len(rows)]} == {"skipped"}
    assert {row["status"] for row in final[len(rows) :]} == {"ok"}
    assert all(http_server.hits(f"c{i}") == 1 for i in range(len(rows)))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_scheduler_is_a_usage_error_within_seconds(tmp_path: Path) -> None:
    write_list(tmp_path / "l.txt", ["http://127.0.0.1:9/x"])
    address = f"tcp://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    run = run_fetcher("fetch", "l.txt", "-o", "out", "--cluster", address, cwd=tmp_path)
    assert time.monotonic() - started < 15
    assert run.returncode == 2, run.stderr
    assert f"no Dask scheduler answers at {address}" in run.stderr
    assert "Traceback" not in run.stderr and "Done:" not in run.stderr
    assert not (tmp_path / "out").exists(), "a usage error writes nothing"


def test_without_the_extra_the_message_names_it(tmp_path: Path) -> None:
    fake = tmp_path / "site" / "distributed"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('distributed is not installed')\n")
    write_list(tmp_path / "l.txt", ["http://127.0.0.1:9/x"])
    run = subprocess.run(
        fetcher_command("fetch", "l.txt", "-o", "out", "--cluster", "local:2"),
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "site")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2, run.stderr
    assert "pip install 'fetcher[dask]'" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists(), "a usage error writes nothing"


def test_api_with_a_local_cluster(http_server: TestServer, tmp_path: Path) -> None:
    urls = [http_server.url(f"/bytes/a{i}?size={40 + i}") for i in range(30)]
    urls.append(http_server.url("/status/404"))
    results = fetch_all(urls, output_dir=tmp_path, cluster="local:2", workers=4)
    assert [r.index for r in results] == list(range(31))
    for i, result in enumerate(results[:30]):
        assert result.status is Status.OK
        assert (tmp_path / str(result.path)).read_bytes() == body_for(f"a{i}", 40 + i)
    assert results[30].status is Status.FAILED and results[30].http_status == 404


def test_api_with_the_callers_client_leaves_it_usable(
    http_server: TestServer,
    tmp_path: Path,
    dask_client: Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    urls = [http_server.url(f"/bytes/c{i}?size={60 + i}") for i in range(20)]
    with caplog.at_level(logging.WARNING, logger="fetcher.cluster"):
        results = fetch_all(urls, output_dir=tmp_path, cluster=dask_client, workers=3)
    assert [r.status for r in results] == [Status.OK] * 20
    assert [(tmp_path / str(r.path)).read_bytes() for r in results] == [
        body_for(f"c{i}", 60 + i) for i in range(20)
    ]
    assert f"Dask dashboard: {dask_client.dashboard_link}" in caplog.messages
    assert dask_client.status == "running"
    assert dask_client.submit(sum, [1, 2], pure=False).result() == 3
    again = fetch_all(urls, output_dir=tmp_path, cluster=dask_client, workers=3)
    assert [r.status for r in again] == [Status.SKIPPED] * 20


def test_a_cluster_of_the_wrong_type_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"distributed\.Client"):
        fetch_all(["http://127.0.0.1:9/x"], output_dir=tmp_path, cluster=42)


def test_worker_side_runs_end_once_and_late_blocks_do_nothing(
    http_server: TestServer, tmp_path: Path
) -> None:
    """On a worker, a run's pool is built by its first block and closed when the run
    ends; a block that arrives after the end (cancelled too late) fetches nothing."""
    spec = RunSpec(FetchOptions(workers=2), tmp_path, keeps_state=False)
    items = [WorkItem(parse_source(http_server.url(f"/count/w{i}"), i, tmp_path)) for i in range(4)]
    outcomes = pickle.loads(on_worker._run_block("t1", spec, 1, pickle.dumps(items)))
    assert [type(o) for o in outcomes] == [Fetched] * 4
    run = on_worker._runs["t1"]
    on_worker._end_run("t1", False)
    assert "t1" not in on_worker._runs
    with pytest.raises(ValueError, match="Pool not running"):
        run.pool.map(len, [[1]])
    late = pickle.loads(on_worker._run_block("t1", spec, 1, pickle.dumps(items)))
    assert [type(o) for o in late] == [Stopped] * 4
    assert [http_server.hits(f"w{i}") for i in range(4)] == [1] * 4


def test_a_run_left_idle_on_a_worker_is_closed_when_another_comes(
    http_server: TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that vanished never ends its run: the worker closes its pool later."""
    monkeypatch.setattr(on_worker, "RUN_IDLE_S", 0.0)
    spec = RunSpec(FetchOptions(workers=1), tmp_path, keeps_state=False)
    items = [WorkItem(parse_source(http_server.url(f"/bytes/i{i}"), i, tmp_path)) for i in range(2)]
    on_worker._run_block("t3", spec, 1, pickle.dumps(items[:1]))
    idle = on_worker._runs["t3"]
    on_worker._run_block("t4", spec, 1, pickle.dumps(items[1:]))
    assert "t3" not in on_worker._runs and "t4" in on_worker._runs
    with pytest.raises(ValueError, match="Pool not running"):
        idle.pool.map(len, [[1]])
    on_worker._end_run("t4", False)


def test_a_stopped_run_ends_its_blocks_on_the_worker_at_once(
    http_server: TestServer, tmp_path: Path
) -> None:
    """The client stopping (Ctrl-C) ends the run's blocks on the workers without waiting
    for items stuck on a slow server, so that the Dask task (and a worker closing) is free."""
    spec = RunSpec(FetchOptions(workers=2), tmp_path, keeps_state=False)
    slow = [
        WorkItem(parse_source(http_server.url(f"/slow?delay=30&i={i}"), i, tmp_path))
        for i in range(3)
    ]
    returned: list[list[Outcome]] = []
    block = threading.Thread(
        target=lambda: returned.append(
            pickle.loads(on_worker._run_block("t2", spec, 1, pickle.dumps(slow)))
        ),
        daemon=True,
    )
    block.start()
    deadline = time.monotonic() + 10
    while http_server.count("/slow") < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    on_worker._end_run("t2", True)
    block.join(timeout=5)
    assert time.monotonic() - started < 2
    assert [[type(o) for o in outcomes] for outcomes in returned] == [[Stopped] * 3]
    assert not list(tmp_path.glob(".fetcher-*"))


def can_unshare_mounts() -> bool:
    if os.geteuid() != 0:
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "sh", "-c", "mount -t tmpfs tmpfs /mnt"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


@pytest.mark.skipif(not can_unshare_mounts(), reason="needs root and mount namespaces")
def test_a_worker_that_cannot_see_the_output_dir_is_a_usage_error(tmp_path: Path) -> None:
    """A worker in a mount namespace of its own, where the output dir is hidden under an
    empty file system: the check at start names it and the path."""
    hidden = tmp_path / "hidden"
    out = hidden / "out"
    out.mkdir(parents=True)
    with (
        LocalCluster(
            n_workers=0,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        ) as scheduler,
        Client(scheduler, set_as_default=False) as client,
    ):
        command = [
            "unshare", "--mount", "sh", "-c", 'mount -t tmpfs tmpfs "$0" && exec "$@"',
            str(hidden), sys.executable, "-m", "distributed.cli.dask_worker",
            scheduler.scheduler_address, "--no-nanny", "--nthreads", "1",
            "--host", "127.0.0.1", "--no-dashboard",
        ]  # fmt: skip
        worker = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            client.wait_for_workers(1, timeout=30)
            (address,) = client.nthreads()
            with pytest.raises(UsageError) as error:
                fetch_all(["http://127.0.0.1:9/x"], output_dir=out, cluster=client)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    message = str(error.value)
    assert f"Dask worker {address} cannot use the output dir {out}" in message
    assert "No such file or directory" in message
    assert not list(out.glob(".fetcher-probe-*"))


def test_processes_with_a_cluster_is_a_usage_error(tmp_path: Path) -> None:
    run = run_fetcher(
        "fetch", "-", "--cluster", "local:2", "--processes", "2", cwd=tmp_path, stdin=b""
    )
    assert run.returncode == 2 and "--processes does not apply" in run.stderr


def test_a_script_without_a_main_guard_starts_a_local_cluster_once(
    http_server: TestServer, tmp_path: Path
) -> None:
    """The local cluster's processes do not import the caller's script either."""
    urls = [http_server.url(f"/count/m{i}") for i in range(4)]
    script = tmp_path / "script.py"
    script.write_text(
        "from fetcher import fetch_all\n"
        f"results = fetch_all({urls!r}, output_dir='out', workers=2, cluster='local:1')\n"
        "print('fetched', sum(r.ok for r in results))\n"
    )
    run = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout == "fetched 4\n"
    assert [http_server.hits(f"m{i}") for i in range(4)] == [1] * 4


def test_local_workers_run_without_dasks_profiler() -> None:
    """Its sampling can deadlock a worker on CPython before 3.11.9 (gh-106883)."""
    from fetcher.cluster import _local_cluster
    from fetcher.processes import children_skip_main

    with children_skip_main():
        cluster = _local_cluster(1)
    try:
        with Client(cluster, set_as_default=False) as client:
            enabled = client.run(
                lambda: __import__("dask").config.get("distributed.worker.profile.enabled")
            )
        assert list(enabled.values()) == [False]
    finally:
        cluster.close()
