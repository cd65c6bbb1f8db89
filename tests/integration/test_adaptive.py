"""`--processes auto`: threads first, worker processes once the run is CPU-bound with enough
left; the results are the same either way, and a run that is not CPU-bound never starts
them."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from fetcher import Status, adaptive, fetch_all
from fetcher.adaptive import _Feed, _Meter
from tests.server import TestServer, body_for


@pytest.fixture
def eager(monkeypatch: pytest.MonkeyPatch) -> None:
    """Thresholds that any run meets: measure at once, call everything CPU-bound."""
    monkeypatch.setattr(adaptive, "WARM_UP_S", 0.0)
    monkeypatch.setattr(adaptive, "WINDOW_S", 0.05)
    monkeypatch.setattr(adaptive, "MIN_WINDOW_ITEMS", 1)
    monkeypatch.setattr(adaptive, "CPU_BOUND", 0.0)
    monkeypatch.setattr(adaptive, "PAYS_OFF_S", 0.01)
    monkeypatch.setattr(adaptive, "usable_cpus", lambda: 2)


def _switched(caplog: pytest.LogCaptureFixture) -> bool:
    return any("starting 2 worker processes" in r.getMessage() for r in caplog.records)


def test_a_cpu_bound_run_moves_to_processes_with_the_same_results(
    http_server: TestServer, tmp_path: Path, eager: None, caplog: pytest.LogCaptureFixture
) -> None:
    urls = [http_server.url(f"/bytes/same.bin?size={20 + i}&v={i}") for i in range(600)]
    urls[300] = http_server.url("/status/404")
    caplog.set_level(logging.INFO, logger="fetcher")
    auto = fetch_all(urls, output_dir=tmp_path / "auto", workers=4)
    assert _switched(caplog), "the run never moved to processes"
    threads = fetch_all(urls, output_dir=tmp_path / "threads", workers=4, processes=1)
    assert [r.index for r in auto] == list(range(600))
    assert [(r.path, r.status, r.sha256) for r in auto] == [
        (r.path, r.status, r.sha256) for r in threads
    ]
    assert auto[300].status is Status.FAILED
    last = auto[-1]
    assert (tmp_path / "auto" / str(last.path)).read_bytes() == body_for("same.bin", 619)
    assert not list((tmp_path / "auto").glob(".fetcher-*.part"))


def test_a_short_list_never_starts_processes(
    http_server: TestServer, tmp_path: Path, eager: None, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(adaptive, "PAYS_OFF_S", 1000.0)  # nothing left is ever enough
    caplog.set_level(logging.INFO, logger="fetcher")
    urls = [http_server.url(f"/bytes/s{i}?size=10") for i in range(200)]
    results = fetch_all(urls, output_dir=tmp_path, workers=4)
    assert all(r.ok for r in results)
    assert not _switched(caplog)


def test_a_latency_bound_run_stays_on_threads(
    http_server: TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    monkeypatch.setattr(adaptive, "WARM_UP_S", 0.0)
    monkeypatch.setattr(adaptive, "WINDOW_S", 0.2)
    monkeypatch.setattr(adaptive, "usable_cpus", lambda: 2)
    caplog.set_level(logging.INFO, logger="fetcher")
    urls = [http_server.url(f"/bytes/l{i}?size=10&delay=0.1") for i in range(80)]
    results = fetch_all(urls, output_dir=tmp_path, workers=8)
    assert all(r.ok for r in results)
    assert not _switched(caplog), "waiting on the network is not being CPU-bound"


def test_stopping_early_on_processes_leaves_no_temp_files(
    http_server: TestServer, tmp_path: Path, eager: None
) -> None:
    from fetcher import fetch_iter

    urls = [http_server.url(f"/bytes/e{i}?size=5000&delay=0.01") for i in range(2000)]
    results = fetch_iter(urls, output_dir=tmp_path, workers=4)
    taken = [next(results) for _ in range(400)]
    results.close()
    assert [r.index for r in taken] == list(range(400))
    assert not list(tmp_path.glob(".fetcher-*.part"))


def test_the_feed_hands_out_every_item_once_while_another_thread_looks_ahead() -> None:
    feed = _Feed(iter(range(10_000)))
    taken: list[int] = []

    def take() -> None:
        for item in feed:
            taken.append(item)

    reader = threading.Thread(target=take)
    reader.start()
    answers = [feed.has_at_least(n) for n in (10, 100, 1000, 50_000)]
    reader.join()
    assert taken == list(range(10_000))
    assert answers[-1] is False


def test_the_feed_answers_how_much_is_left() -> None:
    feed = _Feed(iter(range(5)))
    assert feed.has_at_least(5)
    assert not feed.has_at_least(6)
    assert list(feed) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(("cpu_used", "bound"), [(0.95, True), (0.5, False)])
def test_the_meter_judges_a_full_window_after_the_warm_up(
    monkeypatch: pytest.MonkeyPatch, cpu_used: float, bound: bool
) -> None:
    clock = iter([0.0, 0.6, 0.9, 1.7])
    cpu = iter([0.0, cpu_used, cpu_used])
    monkeypatch.setattr(adaptive.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(adaptive.time, "process_time", lambda: next(cpu))
    meter = _Meter()  # started at 0.0
    assert not meter.cpu_bound(10)  # 0.6: warm-up over, the window opens
    assert not meter.cpu_bound(40)  # 0.9: too short a window
    assert meter.cpu_bound(60) is bound  # 1.7: 1.1 s with 100 results
    assert meter.rate == pytest.approx(100 / 1.1)
