"""HostGate: concurrent slots per host (real threads), the spacing of request starts (a fake
clock, so no test waits for the delays it checks), slowing down and recovering, forgetting
idle hosts, and stopping."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from fetcher import politeness
from fetcher.errors import Interrupted
from fetcher.politeness import MAX_DELAY_S, MIN_DELAY_S, HostGate

PATIENCE_S = 5.0
"""How long a test waits for something that should happen at once (a loaded machine)."""


class FakeClock:
    """`time.monotonic` for the gate, and a stop event whose waits move the clock on
    instead of sleeping; `waits` lists every pause the gate asked for."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []
        self.stopped = False

    def monotonic(self) -> float:
        return self.now

    def is_set(self) -> bool:
        return self.stopped

    def wait(self, seconds: float | None = None) -> bool:
        assert seconds is not None
        self.waits.append(round(seconds, 6))
        self.now += seconds
        return self.stopped


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(politeness, "time", SimpleNamespace(monotonic=fake.monotonic))
    return fake


def fake_gate(clock: FakeClock, *, rate: float | None = None, max_pause_s: float = 60) -> HostGate:
    return HostGate(per_host=4, rate=rate, stop=clock, max_pause_s=max_pause_s)  # type: ignore[arg-type]


def waits_for(gate: HostGate, clock: FakeClock, hosts: list[str]) -> list[float]:
    """The pause before each of these request starts, one after the other."""
    clock.waits.clear()
    found = []
    for host in hosts:
        before = len(clock.waits)
        with gate.slot(host):
            pass
        found.append(sum(clock.waits[before:]))
    return found


class Holder:
    """A thread holding one slot of `host` until released."""

    def __init__(self, gate: HostGate, host: str) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.error: BaseException | None = None
        self._gate = gate
        self._host = host
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with self._gate.slot(self._host):
                self.entered.set()
                self.release.wait(PATIENCE_S)
        except BaseException as exc:
            self.error = exc

    def join(self) -> None:
        self.release.set()
        self._thread.join(PATIENCE_S)
        assert not self._thread.is_alive()


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    started: list[Holder] = []
    yield started
    for holder in started:
        holder.join()


def hold(holders: list[Holder], gate: HostGate, host: str) -> Holder:
    holder = Holder(gate, host)
    holders.append(holder)
    return holder


# --------------------------------------------------------------------------- slots per host


@pytest.mark.parametrize("per_host", [1, 2, 3])
def test_at_most_per_host_slots_are_held_at_once(holders: list[Holder], per_host: int) -> None:
    gate = HostGate(per_host, None, threading.Event(), max_pause_s=30)
    first = [hold(holders, gate, "example.org") for _ in range(per_host)]
    assert all(h.entered.wait(PATIENCE_S) for h in first)
    waiting = hold(holders, gate, "example.org")
    assert not waiting.entered.wait(0.2)
    first[0].release.set()
    assert waiting.entered.wait(PATIENCE_S)


def test_a_full_host_does_not_block_other_hosts(holders: list[Holder]) -> None:
    gate = HostGate(1, None, threading.Event(), max_pause_s=30)
    assert hold(holders, gate, "busy.example").entered.wait(PATIENCE_S)
    assert hold(holders, gate, "other.example").entered.wait(PATIENCE_S)


def test_many_threads_never_exceed_the_limit() -> None:
    gate = HostGate(2, None, threading.Event(), max_pause_s=30)
    lock = threading.Lock()
    active = 0
    most = 0

    def use() -> None:
        nonlocal active, most
        with gate.slot("example.org"):
            with lock:
                active += 1
                most = max(most, active)
            time.sleep(0.01)
            with lock:
                active -= 1

    threads = [threading.Thread(target=use) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PATIENCE_S)
    assert 1 <= most <= 2


def test_an_exception_in_the_block_frees_the_slot() -> None:
    gate = HostGate(1, None, threading.Event(), max_pause_s=30)
    with pytest.raises(RuntimeError), gate.slot("example.org"):
        raise RuntimeError
    done = threading.Event()

    def again() -> None:
        with gate.slot("example.org"):
            done.set()

    threading.Thread(target=again, daemon=True).start()
    assert done.wait(PATIENCE_S)


# --------------------------------------------------------------------------- spacing of starts


def test_without_a_rate_starts_are_not_spaced(clock: FakeClock) -> None:
    assert waits_for(fake_gate(clock), clock, ["a", "a", "b", "b"]) == [0, 0, 0, 0]


def test_a_rate_spaces_the_starts_over_all_hosts(clock: FakeClock) -> None:
    gate = fake_gate(clock, rate=4)
    assert waits_for(gate, clock, ["a", "b", "c", "a"]) == [0, 0.25, 0.25, 0.25]


def test_a_rate_does_not_delay_a_start_that_comes_late_anyway(clock: FakeClock) -> None:
    gate = fake_gate(clock, rate=4)
    waits_for(gate, clock, ["a"])
    clock.now += 1.0
    assert waits_for(gate, clock, ["b"]) == [0]


def test_a_real_rate_spaces_real_starts() -> None:
    """The same rule without the fake clock; only a lower bound, so load cannot flake it."""
    gate = HostGate(4, 50, threading.Event(), max_pause_s=30)
    starts = []
    for host in ("a", "b", "c", "d", "e"):
        with gate.slot(host):
            starts.append(time.monotonic())
    assert starts[-1] - starts[0] >= 4 / 50 - 0.005


# --------------------------------------------------------------------------- slowing down


@pytest.mark.parametrize(
    ("complaints", "spacing"),
    [(1, MIN_DELAY_S), (2, 2 * MIN_DELAY_S), (3, 4 * MIN_DELAY_S), (5, 16 * MIN_DELAY_S)],
)
def test_each_complaint_doubles_the_hosts_delay(
    clock: FakeClock, complaints: int, spacing: float
) -> None:
    gate = fake_gate(clock)
    for _ in range(complaints):
        gate.slow_down("a", None)
    assert waits_for(gate, clock, ["a", "a", "a"]) == [spacing, spacing, spacing]


@pytest.mark.parametrize(("max_pause_s", "cap"), [(1.5, 1.5), (1000, MAX_DELAY_S)])
def test_the_delay_stops_doubling_at_the_cap(
    clock: FakeClock, max_pause_s: float, cap: float
) -> None:
    gate = fake_gate(clock, max_pause_s=max_pause_s)
    for _ in range(20):
        gate.slow_down("a", None)
    assert waits_for(gate, clock, ["a", "a"]) == [cap, cap]


def test_retry_after_sets_the_first_pause_and_the_delay_still_spaces_the_rest(
    clock: FakeClock,
) -> None:
    gate = fake_gate(clock)
    gate.slow_down("a", 7.0)
    assert waits_for(gate, clock, ["a", "a"]) == [7.0, MIN_DELAY_S]


def test_retry_after_is_capped(clock: FakeClock) -> None:
    gate = fake_gate(clock, max_pause_s=2.0)
    gate.slow_down("a", 3600.0)
    assert waits_for(gate, clock, ["a"]) == [2.0]


def test_a_slowed_host_does_not_slow_the_others(clock: FakeClock) -> None:
    gate = fake_gate(clock)
    gate.slow_down("a", 10.0)
    assert waits_for(gate, clock, ["b", "c"]) == [0, 0]


def test_a_success_halves_the_delay(clock: FakeClock) -> None:
    gate = fake_gate(clock)
    for _ in range(3):
        gate.slow_down("a", None)  # one start every 1.0 s
    waits_for(gate, clock, ["a"])
    gate.succeeded("a")
    # the start already planned stays; the one after it comes at the halved delay
    assert waits_for(gate, clock, ["a", "a"]) == [4 * MIN_DELAY_S, 2 * MIN_DELAY_S]


def test_a_success_at_the_least_delay_ends_the_slow_down(clock: FakeClock) -> None:
    gate = fake_gate(clock)
    gate.slow_down("a", None)
    waits_for(gate, clock, ["a"])
    gate.succeeded("a")
    assert waits_for(gate, clock, ["a", "a", "a"]) == [MIN_DELAY_S, 0, 0]


def test_a_success_of_a_host_never_slowed_changes_nothing(clock: FakeClock) -> None:
    gate = fake_gate(clock)
    gate.succeeded("a")
    assert waits_for(gate, clock, ["a", "a"]) == [0, 0]


# --------------------------------------------------------------------------- forgetting hosts


def test_idle_hosts_are_forgotten(clock: FakeClock) -> None:
    gate = fake_gate(clock)
    for n in range(1000):
        with gate.slot(f"host{n}.example"):
            pass
    assert gate._hosts == {}  # no public size; the rule is that this does not grow


def test_a_slowed_host_is_remembered_until_it_recovers(clock: FakeClock) -> None:
    gate = fake_gate(clock)
    gate.slow_down("a", None)
    waits_for(gate, clock, ["a"])
    assert set(gate._hosts) == {"a"}
    gate.succeeded("a")
    waits_for(gate, clock, ["a"])
    assert gate._hosts == {}


# --------------------------------------------------------------------------- stopping


def _interrupted_in_thread(gate: HostGate, host: str) -> tuple[threading.Event, list[str]]:
    finished = threading.Event()
    how: list[str] = []

    def run() -> None:
        try:
            with gate.slot(host):
                how.append("entered")
        except Interrupted:
            how.append("interrupted")
        finished.set()

    threading.Thread(target=run, daemon=True).start()
    return finished, how


def test_a_stopped_gate_interrupts_a_thread_waiting_for_a_slot(holders: list[Holder]) -> None:
    stop = threading.Event()
    gate = HostGate(1, None, stop, max_pause_s=30)
    assert hold(holders, gate, "a").entered.wait(PATIENCE_S)
    finished, how = _interrupted_in_thread(gate, "a")
    assert not finished.wait(0.2)
    stop.set()
    assert finished.wait(PATIENCE_S)
    assert how == ["interrupted"]


def test_a_stopped_gate_interrupts_a_thread_waiting_for_its_start() -> None:
    stop = threading.Event()
    gate = HostGate(1, None, stop, max_pause_s=30)
    gate.slow_down("a", 30.0)
    finished, how = _interrupted_in_thread(gate, "a")
    assert not finished.wait(0.2)
    stop.set()
    assert finished.wait(PATIENCE_S)
    assert how == ["interrupted"]


def test_an_interrupted_start_gives_its_slot_back(clock: FakeClock) -> None:
    gate = HostGate(1, None, clock, max_pause_s=60)  # type: ignore[arg-type]
    gate.slow_down("a", 30.0)
    clock.stopped = True
    with pytest.raises(Interrupted), gate.slot("a"):
        pass
    clock.stopped = False
    finished, how = _interrupted_in_thread(gate, "a")  # would wait forever for a lost slot
    assert finished.wait(PATIENCE_S)
    assert how == ["entered"]
