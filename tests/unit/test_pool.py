"""The ordered thread pool: chunksize rule, in-order results, bounded read-ahead, stopping."""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from fetcher.pool import (
    LOOKAHEAD_PER_WORKER,
    MAX_AUTO_CHUNKSIZE,
    TERMINATE_GRACE_S,
    auto_chunksize,
    ordered_map,
    window_size,
)

T = TypeVar("T")

HANG_LIMIT_S = 10.0


def _within(seconds: float, fn: Callable[[], T]) -> T:
    """Run fn on a daemon thread; fail (instead of hanging the suite) if it takes too long."""
    box: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            box.append(fn())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"did not finish within {seconds} s (deadlock?)"
    if errors:
        raise errors[0]
    return box[0]


class CountingFeed:
    """An endless (or bounded) input generator that records how many items were pulled."""

    def __init__(self, limit: int | None = None) -> None:
        self.pulled = 0
        self._limit = limit

    def __iter__(self) -> Iterator[int]:
        for i in itertools.count() if self._limit is None else range(self._limit):
            self.pulled += 1
            yield i


# --------------------------------------------------------------------------- auto_chunksize


@pytest.mark.parametrize(
    ("workers", "known_items", "expected"),
    [
        (16, 0, 1),
        (16, 1, 1),
        (16, 100, 1),
        (16, 255, 1),
        (16, 511, 1),
        (16, 512, 2),
        (16, 767, 2),
        (16, 768, 3),
        (16, 1024, 4),
        (16, 16 * LOOKAHEAD_PER_WORKER, MAX_AUTO_CHUNKSIZE),
        (16, 10**9, MAX_AUTO_CHUNKSIZE),
        (1, 15, 1),
        (1, 32, 2),
        (1, 64, 4),
        (1, 10**6, MAX_AUTO_CHUNKSIZE),
        (64, 1000, 1),
        (64, 64 * LOOKAHEAD_PER_WORKER, MAX_AUTO_CHUNKSIZE),
    ],
)
def test_auto_chunksize_rule(workers: int, known_items: int, expected: int) -> None:
    assert auto_chunksize(workers, known_items) == expected


@pytest.mark.parametrize("workers", [1, 2, 8, 16, 100])
def test_auto_chunksize_stays_between_one_and_cap(workers: int) -> None:
    sizes = [auto_chunksize(workers, n) for n in range(0, workers * LOOKAHEAD_PER_WORKER + 50, 7)]
    assert min(sizes) == 1
    assert max(sizes) <= MAX_AUTO_CHUNKSIZE
    assert sizes == sorted(sizes)  # longer lists never get smaller chunks


@pytest.mark.parametrize("workers", [1, 4, 16])
def test_auto_chunksize_short_list_is_one(workers: int) -> None:
    assert auto_chunksize(workers, workers) == 1


# --------------------------------------------------------------------------- window_size


@pytest.mark.parametrize(
    ("workers", "chunksize"), [(1, 1), (1, 50), (4, 1), (4, 4), (16, 4), (2, 1000)]
)
def test_window_size_is_at_least_a_chunk_and_the_workers(workers: int, chunksize: int) -> None:
    window = window_size(workers, chunksize)
    assert window >= chunksize
    assert window >= workers


# --------------------------------------------------------------------------- ordered_map


@pytest.mark.parametrize(
    ("workers", "chunksize"), [(1, 1), (2, 1), (4, 1), (4, 3), (8, 2), (3, 10), (16, 4)]
)
def test_ordered_map_returns_results_in_input_order(workers: int, chunksize: int) -> None:
    rng = random.Random(workers * 100 + chunksize)
    delays = [rng.choice((0.0, 0.0, 0.001, 0.003)) for _ in range(120)]

    def work(i: int) -> tuple[int, str]:
        time.sleep(delays[i])
        return i, threading.current_thread().name

    def run() -> list[tuple[int, str]]:
        return list(
            ordered_map(
                work,
                range(len(delays)),
                workers=workers,
                chunksize=chunksize,
                stop=threading.Event(),
            )
        )

    results = _within(HANG_LIMIT_S, run)
    assert [i for i, _ in results] == list(range(len(delays)))
    if workers > 1:
        assert len({name for _, name in results}) > 1  # really ran concurrently


def test_ordered_map_slow_first_item_does_not_reorder() -> None:
    def work(i: int) -> int:
        if i == 0:
            time.sleep(0.1)
        return i * i

    results = _within(
        HANG_LIMIT_S,
        lambda: list(ordered_map(work, range(40), workers=4, chunksize=1, stop=threading.Event())),
    )
    assert results == [i * i for i in range(40)]


def test_ordered_map_empty_input() -> None:
    results = _within(
        HANG_LIMIT_S,
        lambda: list(ordered_map(str, [], workers=4, chunksize=2, stop=threading.Event())),
    )
    assert results == []


@pytest.mark.parametrize(("workers", "chunksize"), [(1, 5), (2, 10), (2, 64), (3, 7)])
def test_ordered_map_chunksize_larger_than_workers_does_not_deadlock(
    workers: int, chunksize: int
) -> None:
    results = _within(
        HANG_LIMIT_S,
        lambda: list(
            ordered_map(
                lambda i: -i,
                range(1000),
                workers=workers,
                chunksize=chunksize,
                stop=threading.Event(),
            )
        ),
    )
    assert results == [-i for i in range(1000)]


@pytest.mark.parametrize(("workers", "chunksize"), [(1, 1), (2, 1), (4, 2), (2, 8)])
def test_ordered_map_read_ahead_is_bounded_with_slow_consumer(workers: int, chunksize: int) -> None:
    feed = CountingFeed()  # endless: an unbounded feeder would run away
    window = window_size(workers, chunksize)
    bound_violations: list[tuple[int, int]] = []

    def run() -> None:
        stop = threading.Event()
        results = ordered_map(lambda i: i, feed, workers=workers, chunksize=chunksize, stop=stop)
        consumed = 0
        try:
            for _ in results:
                consumed += 1
                time.sleep(0.0005 if consumed % 10 else 0.02)  # let the feeder run ahead
                if feed.pulled > consumed + window + chunksize:
                    bound_violations.append((consumed, feed.pulled))
                if consumed >= 3 * window:
                    break
        finally:
            results.close()

    _within(HANG_LIMIT_S, run)
    assert bound_violations == []
    assert feed.pulled >= 3 * window


def test_ordered_map_reads_ahead_to_keep_workers_busy() -> None:
    feed = CountingFeed()

    def run() -> int:
        results = ordered_map(lambda i: i, feed, workers=4, chunksize=1, stop=threading.Event())
        try:
            next(results)
            time.sleep(0.2)  # slow consumer: the feed should fill its window meanwhile
            return feed.pulled
        finally:
            results.close()

    pulled = _within(HANG_LIMIT_S, run)
    assert pulled >= window_size(4, 1) // 2


def test_ordered_map_stop_ends_iteration_with_prefix() -> None:
    feed = CountingFeed()  # endless: only `stop` can end this
    stop = threading.Event()

    def run() -> list[int]:
        out: list[int] = []
        for result in ordered_map(lambda i: i * 10, feed, workers=4, chunksize=2, stop=stop):
            out.append(result)
            if len(out) == 25:
                stop.set()
        return out

    results = _within(HANG_LIMIT_S, run)
    assert len(results) >= 25
    assert results == [i * 10 for i in range(len(results))]
    assert len(results) <= 25 + window_size(4, 2) + 2


def test_ordered_map_stop_set_before_start_yields_nothing_new() -> None:
    feed = CountingFeed(limit=1000)
    stop = threading.Event()
    stop.set()
    results = _within(
        HANG_LIMIT_S,
        lambda: list(ordered_map(lambda i: i, feed, workers=2, chunksize=1, stop=stop)),
    )
    assert results == []
    assert feed.pulled <= 1


def test_ordered_map_close_returns_promptly_and_stops_feed() -> None:
    feed = CountingFeed()
    stop = threading.Event()

    def run() -> tuple[float, int, int]:
        results = ordered_map(lambda i: i, feed, workers=4, chunksize=1, stop=stop)
        for _ in itertools.islice(results, 10):
            pass
        started = time.monotonic()
        results.close()
        took = time.monotonic() - started
        pulled_at_close = feed.pulled
        time.sleep(0.3)
        return took, pulled_at_close, feed.pulled

    took, pulled_at_close, pulled_later = _within(HANG_LIMIT_S, run)
    assert took < 1.0
    assert stop.is_set()
    assert pulled_later <= pulled_at_close + 1  # the feed stopped pulling


def test_ordered_map_close_does_not_hang_on_blocked_input() -> None:
    release = threading.Event()
    stop = threading.Event()

    def blocking_feed() -> Iterator[int]:
        yield 1
        yield 2
        release.wait(30)  # like a read from stdin that never returns

    def run() -> tuple[list[int], float]:
        results = ordered_map(lambda i: i, blocking_feed(), workers=2, chunksize=1, stop=stop)
        got = [next(results), next(results)]
        started = time.monotonic()
        results.close()
        return got, time.monotonic() - started

    try:
        got, took = _within(HANG_LIMIT_S, run)
    finally:
        release.set()
    assert got == [1, 2]
    assert took < TERMINATE_GRACE_S + 1.0


def test_ordered_map_exception_in_fn_reaches_consumer_after_earlier_results() -> None:
    def work(i: int) -> int:
        if i == 5:
            raise ValueError("boom")
        return i

    def run() -> tuple[list[int], BaseException | None]:
        out: list[int] = []
        try:
            for result in ordered_map(work, range(20), workers=3, chunksize=1, stop=stop):
                out.append(result)
        except ValueError as exc:
            return out, exc
        return out, None

    stop = threading.Event()
    out, error = _within(HANG_LIMIT_S, run)
    assert out == [0, 1, 2, 3, 4]
    assert isinstance(error, ValueError)
    assert stop.is_set()
