"""`fetcher tune`: trials of a sample of the user's own list, a table, a recommendation;
nothing left behind. The recommendation rule itself is unit-tested at the bottom."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from fetcher import tune as tune_module
from fetcher.options import FetchOptions, RetryPolicy
from fetcher.sources import parse_source
from fetcher.tune import (
    CHUNKSIZE_GRID,
    COUNT_LIMIT,
    MAX_PROCESSES,
    WORKERS_GRID,
    Forecast,
    Setting,
    Trial,
    TrialFolders,
    processes_to_try,
    recommend,
    run_trials,
    settings,
    table,
)
from tests.clirun import fetcher_command, stop_with, write_list
from tests.server import TestServer

TRIALS = len(WORKERS_GRID) * len(CHUNKSIZE_GRID)
"""Settings in the grid; each runs once with --repeat 1."""


def tune(*args: str, cwd: Path, tmpdir: Path) -> subprocess.CompletedProcess[str]:
    """Run `fetcher tune` as a user does, with its temporary folders under `tmpdir`."""
    tmpdir.mkdir(exist_ok=True)
    return subprocess.run(
        fetcher_command("tune", *args),
        cwd=cwd,
        env={**os.environ, "TMPDIR": str(tmpdir)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_tune_prints_a_table_and_one_recommendation(
    http_server: TestServer, tmp_path: Path
) -> None:
    urls = [http_server.url(f"/bytes/t{i}?size=2000") for i in range(10)]
    listing = write_list(tmp_path / "l.txt", urls)
    run = tune(
        str(listing), "--sample", "4", "--repeat", "1", cwd=tmp_path, tmpdir=tmp_path / "tmp"
    )
    assert run.returncode == 0, run.stderr
    assert "Sampling 4 items per trial, each setting 1 times" in run.stderr
    rows = [line for line in run.stdout.splitlines() if re.match(r"^\| \d+ \|", line)]
    assert len(rows) == TRIALS
    assert sum("← recommended" in row for row in rows) == 1
    chosen = next(row for row in rows if "← recommended" in row)
    workers = chosen.split("|")[1].strip()
    match = re.search(r"^Recommended: -j (\d+) --chunksize (\S+) ", run.stdout, re.MULTILINE)
    assert match is not None and match.group(1) == workers
    for row in rows:  # every trial fetched the whole sample without a failure
        assert row.split("|")[11].strip() == "0"
        assert row.split("|")[4].strip() == "4"  # items per trial
    # The forecast is for the whole list (10 items), not for the sample.
    assert re.search(r"^For this list \(10 to fetch\): about [\d,]+ items/s", run.stdout, re.M)


def test_tune_counts_a_long_list_only_up_to_a_limit(
    http_server: TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fetcher.cli import tune as command
    from fetcher.cli.args import SharedArgs
    from fetcher.cli.env import Environment

    listing = write_list(tmp_path / "l.txt", [http_server.url(f"/x{i}") for i in range(30)])
    env = Environment(io.BytesIO(), io.BytesIO(), io.StringIO())

    def forecast(limit: int) -> Forecast:
        monkeypatch.setattr(command, "COUNT_LIMIT", limit)
        tuner = command.TuneCommand.build(
            env, SharedArgs(), lists=(str(listing),), sample=2, repeats=1, output_dir=tmp_path
        )
        assert len(tuner.items) == 2 * command.PROCESSES_SAMPLE  # what the trials fetch
        return tuner.forecast

    assert (forecast(COUNT_LIMIT).items, forecast(COUNT_LIMIT).longer) == (30, False)
    assert (forecast(30).items, forecast(30).longer) == (30, False)
    assert (forecast(29).items, forecast(29).longer) == (29, True)
    assert forecast(30).launch_s > 0  # this process's start-up, which a real run pays too


def test_tune_fetches_only_the_sample_once_per_trial(
    http_server: TestServer, tmp_path: Path
) -> None:
    urls = [http_server.url(f"/bytes/s{i}?size=100") for i in range(8)]
    listing = write_list(tmp_path / "l.txt", urls)
    run = tune(str(listing), "--sample", "3", cwd=tmp_path, tmpdir=tmp_path / "tmp")
    assert run.returncode == 0, run.stderr
    paths = [path for _, path, _ in http_server.requests_seen]
    for i in range(3):  # three repeats of every setting by default
        assert paths.count(f"/bytes/s{i}?size=100") == 3 * TRIALS
    assert not any(path.startswith(f"/bytes/s{i}?") for path in paths for i in range(3, 8))


def test_tune_leaves_nothing_behind(http_server: TestServer, tmp_path: Path) -> None:
    listing = write_list(tmp_path / "l.txt", [http_server.url("/bytes/x?size=10")])
    work = tmp_path / "work"
    work.mkdir()
    run = tune(str(listing), "--sample", "1", "--repeat", "1", cwd=work, tmpdir=tmp_path / "tmp")
    assert run.returncode == 0, run.stderr
    assert list(work.iterdir()) == []
    assert list((tmp_path / "tmp").iterdir()) == []


def test_tune_exits_1_when_every_item_fails_in_every_trial(
    http_server: TestServer, tmp_path: Path
) -> None:
    listing = write_list(tmp_path / "l.txt", [http_server.url("/status/404")])
    run = tune(
        str(listing), "--sample", "1", "--repeat", "1", cwd=tmp_path, tmpdir=tmp_path / "tmp"
    )
    assert run.returncode == 1
    assert "every item of the sample failed in every trial" in run.stderr
    assert "Recommended" not in run.stdout
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_tune_stops_promptly_and_leaves_nothing_behind(
    http_server: TestServer, tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    urls = [http_server.url(f"/bytes/i{i}?size=100") for i in range(3)]
    write_list(tmp_path / "l.txt", [*urls, http_server.url("/slow?delay=60")])
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.Popen(
        fetcher_command("tune", "l.txt", "-o", "out"),
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 15  # the first trial waits on the slow item
    while time.monotonic() < deadline and not any(out.glob(".fetcher-tune-*/i0")):
        time.sleep(0.05)
    assert any(out.glob(".fetcher-tune-*/i0")), "the first trial never started"
    stdout, _ = stop_with(proc, sig)
    assert proc.returncode == code
    assert b"Recommended" not in stdout
    assert list(out.iterdir()) == []  # the trial's folder is gone
    assert list(tmp.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.txt"], "list not found: missing.txt"),
        (["empty.txt"], "the lists hold no items to sample"),
        (["empty.txt", "--sample", "0"], "--sample must be at least 1"),
        (["empty.txt", "--repeat", "0"], "--repeat must be at least 1"),
        (["empty.txt", "--ca-bundle", "nope.pem"], "nope.pem"),
    ],
)
def test_tune_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "empty.txt").write_text("# nothing here\n\n")
    run = tune(*args, cwd=tmp_path, tmpdir=tmp_path / "tmp")
    assert run.returncode == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr


def trial(
    workers: int,
    chunksize: int | None,
    items_per_s: float,
    failed: int = 0,
    *,
    processes: int = 1,
    start_s: float = 0.0,
    cpu_share: float = 0.5,
) -> Trial:
    """A finished trial of 101 items: the first at `start_s`, the other 100 at the rate."""
    running = 100 / items_per_s
    return Trial(
        workers, chunksize, chunksize or 1, 101, failed, 1000, start_s + running,
        processes, cpu_share * running, start_s,
    )  # fmt: skip


def test_recommend_takes_the_fastest_clear_winner() -> None:
    trials = [trial(4, 1, 100), trial(8, None, 150), trial(16, 4, 200), trial(32, 1, 120)]
    assert recommend(trials) is trials[2]


def test_recommend_never_takes_a_trial_with_more_failures() -> None:
    trials = [trial(4, 1, 100), trial(32, None, 500, failed=2)]
    assert recommend(trials) is trials[0]


def test_recommend_prefers_fewer_threads_then_auto_among_near_ties() -> None:
    trials = [trial(32, 1, 200), trial(8, 4, 195), trial(8, None, 192), trial(4, 1, 150)]
    assert recommend(trials) is trials[2]


def test_recommend_keeps_the_defaults_among_near_ties() -> None:
    trials = [trial(8, None, 200), trial(16, None, 192), trial(64, 1, 199)]
    assert recommend(trials) is trials[1]


def test_recommend_judges_near_ties_by_medians_against_the_fastests_slowest_repeat() -> None:
    """A setting whose median reaches within 10 % of the fastest setting's slowest repeat is
    a near-tie: noise must not flip the advice from one tune to the next, in either
    direction."""
    default = Setting((trial(16, None, 170), trial(16, None, 196), trial(16, None, 200)))
    fastest = Setting((trial(8, 1, 200), trial(8, 1, 205), trial(8, 1, 210)))
    assert recommend([fastest, default]) is default
    slow = Setting((trial(16, None, 150), trial(16, None, 160), trial(16, None, 170)))
    assert recommend([fastest, slow]) is fastest


def test_a_fastest_median_lifted_by_one_lucky_repeat_does_not_win() -> None:
    """Measured: -j 64 (693, 759, 856 items/s) against the defaults (584, 683, 695): the
    fastest's slowest repeat is within 10 % of the defaults' median, so the defaults stay; a
    setting whose slowest repeat clears the defaults' median by more than 10 % wins."""
    default = Setting((trial(16, None, 584), trial(16, None, 683), trial(16, None, 695)))
    lucky = Setting((trial(64, None, 693), trial(64, None, 759), trial(64, None, 856)))
    assert recommend([lucky, default]) is default
    clear = Setting((trial(64, None, 770), trial(64, None, 800), trial(64, None, 856)))
    assert recommend([clear, default]) is clear


def test_settings_within_the_noise_of_a_busy_machine_leave_the_defaults() -> None:
    """Measured in one tune (2 shared cores, every thread setting CPU-bound at one core):
    the defaults' median 653 items/s is 5.5 % under the slowest repeat of the fastest
    (-j 64: 691, 758, 771), inside the spread of either; -j 8 (686-689) must not win."""
    default = Setting((trial(16, None, 634), trial(16, None, 653), trial(16, None, 737)))
    fastest = Setting((trial(64, None, 691), trial(64, None, 758), trial(64, None, 771)))
    fewer = Setting((trial(8, None, 686), trial(8, None, 687), trial(8, None, 689)))
    assert recommend([fewer, default, fastest], Forecast(20_000, launch_s=0.4)) is default


def test_one_lucky_repeat_does_not_hold_back_a_clearly_faster_setting() -> None:
    """Measured on a noisy machine: -j 8 on threads (414, 630, 715 items/s) against the
    same on two processes (787, 811, 815): one thread repeat came close, their median did
    not, and processes win for a 5,000-item list."""
    alone = Setting((trial(8, None, 414), trial(8, None, 630), trial(8, None, 715)))
    procs = Setting(tuple(trial(8, None, r, processes=2, start_s=0.47) for r in (787, 811, 815)))
    assert recommend([alone, procs], Forecast(5_000, launch_s=0.33)) is procs


def test_table_marks_the_choice_and_names_auto_with_what_it_picked() -> None:
    trials = [trial(4, 1, 100), trial(8, None, 150, start_s=0.2)]
    text = table(trials, trials[1])
    chosen = next(line for line in text.splitlines() if "← recommended" in line)
    assert chosen.startswith(
        "| 8 | auto (1) | 1 | 101 | 0.20 | 150 | 150-150 | 0.19 | 0.0 | 50 % | 0 |"
    )
    assert "Recommended: -j 8 --chunksize auto --processes 1 (150 items/s once running" in text
    assert "For this list" not in text  # no forecast without the list's length


def test_the_fixed_cost_is_what_the_rate_once_running_does_not_explain() -> None:
    # 101 items: the first after 0.3 s, then 100 at 200/s (0.5 s): 0.8 s in all, and 101
    # items at 200/s explain 0.505 s of it.
    assert trial(4, 1, 200, start_s=0.3).fixed_s == pytest.approx(0.295)
    grouped = Setting((trial(4, 1, 200, start_s=0.1), trial(4, 1, 200, start_s=0.5),
                       trial(4, 1, 200, start_s=0.3)))  # fmt: skip
    assert grouped.fixed_s == pytest.approx(0.295)  # the median


@pytest.mark.parametrize(
    ("forecast", "line"),
    [
        # 0.5 s launch + 0.295 s fixed + 20,000 items at 200/s = 100.795 s.
        (Forecast(20_000, launch_s=0.5),
         "For this list (20,000 to fetch): about 198 items/s (100.8 s, of which 0.80 s"
         " to start and stop)."),
        (Forecast(200, launch_s=0.5),
         "For this list (200 to fetch): about 111 items/s (1.8 s, of which 0.80 s to"
         " start and stop)."),
        (Forecast(COUNT_LIMIT, longer=True, launch_s=0.205),
         f"For this list (over {COUNT_LIMIT:,} to fetch): about 200 items/s or a little more"
         " (0.50 s to start and stop)."),
    ],
)  # fmt: skip
def test_the_forecast_is_the_whole_runs_time(forecast: Forecast, line: str) -> None:
    chosen = trial(8, None, 200, start_s=0.3)
    assert line in table([chosen], chosen, forecast)


def test_a_short_list_is_not_sent_to_processes_that_cannot_pay_off() -> None:
    alone = trial(16, None, 1000, start_s=0.02)
    faster = trial(16, None, 2000, processes=2, start_s=0.6)
    assert recommend([alone, faster]) is faster  # once running
    assert recommend([alone, faster], Forecast(300)) is alone  # 0.32 s against 0.73 s
    assert recommend([alone, faster], Forecast(20_000)) is faster


def test_rate_is_measured_once_running() -> None:
    """Start-up (0.3 s for processes) is a fixed cost a sample weighs far more than a long
    list: the rate counts from the first result (and the forecast adds the fixed cost back
    once, for the whole list)."""
    assert trial(4, 1, 200, start_s=0.3).items_per_s == pytest.approx(200)
    assert trial(4, 1, 200, start_s=0.3).seconds == pytest.approx(0.8)


def test_processes_are_tried_only_when_the_best_trial_was_cpu_bound() -> None:
    busy = trial(16, None, 200, cpu_share=1.3)  # 0.5 s running
    assert processes_to_try(trial(16, None, 200, cpu_share=0.3), cpus=8) is None
    assert processes_to_try(trial(16, None, 2000, cpu_share=1.3), cpus=8) is None  # too short
    assert processes_to_try(busy, cpus=1) is None
    assert processes_to_try(busy, cpus=None) is None
    assert processes_to_try(busy, cpus=2) == 2
    assert processes_to_try(busy, cpus=64) == MAX_PROCESSES
    assert processes_to_try(trial(2, None, 200, cpu_share=1.3), cpus=8) == 2  # >= 1 thread each


def test_recommend_takes_processes_only_when_clearly_faster() -> None:
    alone = trial(16, None, 1000)
    assert recommend([alone, trial(16, None, 1040, processes=2)]) is alone
    faster = trial(16, None, 1500, processes=2)
    assert recommend([alone, faster]) is faster


def test_table_with_processes_gives_the_break_even_list_length() -> None:
    alone = trial(16, None, 1000, start_s=0.02)
    chosen = trial(16, None, 2000, processes=2, start_s=0.32)
    text = table([alone, chosen], chosen)
    row = next(line for line in text.splitlines() if "← recommended" in line)
    assert row.startswith("| 16 | auto (1) | 2 | 101 | 0.32 | 2000 |")
    assert "| - |" in row  # the children's CPU is not this process's
    assert "Recommended: -j 16 --chunksize auto --processes 2 (2000 items/s" in text
    # Fixed costs 0.3195 and 0.0190 s (0.30 s more), 0.5 ms saved per item: 601 items.
    assert "take 0.30 s longer to start and stop than -j 16 alone" in text
    assert "longer than about 601 items" in text


def test_no_break_even_when_the_processes_are_no_faster_once_running() -> None:
    alone = trial(16, None, 1000, start_s=0.5)
    chosen = trial(16, None, 990, processes=2)  # chosen for starting sooner, not for speed
    text = table([alone, chosen], chosen)
    assert "-j 16 alone is as fast once running." in text
    assert "pay off" not in text


def test_a_processes_trial_fetches_the_whole_sample(
    http_server: TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample = [
        parse_source(http_server.url(f"/bytes/p{i}?size=500"), i, tmp_path) for i in range(12)
    ]
    base = FetchOptions(output_dir=tmp_path, retry=RetryPolicy(retries=0))
    with TrialFolders(tmp_path) as folders:
        (result,) = run_trials(
            sample, base, folders, workers_grid=[4], chunksize_grid=[None], processes_grid=[2]
        )
    assert (result.processes, result.items, result.failed) == (2, 12, 0)
    assert result.bytes == 12 * 500
    assert 0 < result.start_s <= result.seconds
    assert list(tmp_path.iterdir()) == []


def test_each_trial_starts_on_a_disk_at_rest_and_no_trial_deletes_before_the_last(
    http_server: TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last trial's writes are flushed (untimed) before the next starts, as a real run
    does not start on a disk busy with them; and its files are emptied, not deleted, until
    all trials are done (on an ext4 without a journal, deleted inodes slow the creates
    after them)."""
    seen: list[dict[str, int]] = []

    def sync() -> None:  # what the earlier trials left: every file, and its size
        files = (f for f in tmp_path.rglob("*") if f.is_file())
        seen.append({str(f.relative_to(tmp_path)): f.stat().st_size for f in files})

    monkeypatch.setattr(tune_module.os, "sync", sync)
    sample = [parse_source(http_server.url(f"/bytes/d{i}?size=50"), i, tmp_path) for i in range(5)]
    base = FetchOptions(output_dir=tmp_path, retry=RetryPolicy(retries=0))
    with TrialFolders(tmp_path) as folders:
        trials = list(run_trials(sample, base, folders, workers_grid=[2, 4], chunksize_grid=[None]))
        first, second = sorted(tmp_path.iterdir())  # both trials' folders, until the end
    assert len(trials) == 2
    assert len(seen) == 2 and seen[0] == {}  # once per trial, before it
    outputs = {name for name in seen[1] if "/.fetcher/" not in name}
    assert len(outputs) == 5 and all(name.startswith(".fetcher-tune-") for name in outputs)
    assert set(seen[1].values()) == {0}  # kept, but empty: their space given back
    assert not first.exists() and not second.exists()
    assert list(tmp_path.iterdir()) == []


def test_repeats_run_round_robin_and_report_median_and_spread(
    http_server: TestServer, tmp_path: Path
) -> None:
    sample = [parse_source(http_server.url(f"/bytes/r{i}?size=50"), i, tmp_path) for i in range(30)]
    base = FetchOptions(output_dir=tmp_path, retry=RetryPolicy(retries=0))
    with TrialFolders(tmp_path) as folders:
        trials = list(
            run_trials(sample, base, folders, workers_grid=[2, 4], chunksize_grid=[None], repeats=3)
        )
    assert [t.workers for t in trials] == [2, 4, 2, 4, 2, 4]  # interleaved
    assert all(t.steady_rate is not None for t in trials)  # 30 results: a steady state
    grouped = settings(trials)
    assert [(s.workers, len(s.trials)) for s in grouped] == [(2, 3), (4, 3)]
    low, high = grouped[0].spread
    assert low <= grouped[0].items_per_s <= high
    text = table(grouped, recommend(grouped))
    assert f"| {low:.0f}-{high:.0f} |" in text
    assert list(tmp_path.iterdir()) == []


def test_the_steady_rate_leaves_out_start_up_and_stragglers() -> None:
    # 2 s of start-up, then 100 items/s, then one straggler for 7 s.
    samples = [(0.0, 0), (2.0, 0)] + [(2.0 + 0.01 * i, i) for i in range(1, 100)] + [(9.0, 100)]
    assert tune_module.steady_rate(samples, 100) == pytest.approx(100.0, rel=0.05)
    assert tune_module.steady_rate(samples[:5], 100) is None  # never got to 90 %
    assert tune_module.steady_rate(samples, 5) is None  # too few items to tell


def test_the_processes_trial_runs_the_winning_setting(
    http_server: TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fetcher.cli import tune as command
    from fetcher.cli.args import SharedArgs
    from fetcher.cli.env import Environment
    from fetcher.cli.interrupts import Interrupts

    urls = [http_server.url(f"/bytes/w{i}?size=100") for i in range(20)]
    listing = write_list(tmp_path / "l.txt", urls)
    calls: list[tuple[dict[str, object], list[Trial]]] = []

    def recorded(*args: object, **kwargs: object) -> list[Trial]:
        trials = list(run_trials(*args, **kwargs))  # type: ignore[arg-type]
        calls.append((kwargs, trials))
        return trials

    monkeypatch.setattr(command, "run_trials", recorded)
    monkeypatch.setattr(command, "processes_to_try", lambda best, cpus: 2)
    out = io.BytesIO()
    env = Environment(io.BytesIO(), out, io.StringIO())
    tuner = command.TuneCommand.build(
        env, SharedArgs(retries=0), lists=(str(listing),), sample=4, repeats=1,
        output_dir=tmp_path / "o",
    )  # fmt: skip
    assert tuner.run(Interrupts()) == 0
    (_, grid), (extra_args, extra) = calls
    best = recommend(settings(grid), tuner.forecast)
    assert extra_args["processes_grid"] == [1, 2]
    assert (extra_args["workers_grid"], extra_args["chunksize_grid"]) == (
        [best.workers],
        [best.chunksize],
    )
    # The thread trials fetch the sample; the processes trial, and the same setting on one
    # process beside it, up to three times as much, interleaved.
    assert {t.items for t in grid} == {4}
    assert [(t.processes, t.items) for t in extra] == [(1, 12), (2, 12)]
    # Only those two decide: the recommendation is one of them.
    text = out.getvalue().decode()
    chosen = next(line for line in text.splitlines() if "← recommended" in line)
    assert chosen.startswith(f"| {best.workers} |") and "| 12 |" in chosen


@pytest.mark.parametrize("unjournaled", [True, False])
def test_the_advice_warns_of_an_ext4_without_a_journal(
    http_server: TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unjournaled: bool
) -> None:
    """There a run right after deletions (this tune's own included) creates files slower
    than any trial foresaw: the forecast says so, for the output dir it was asked about."""
    from fetcher.cli import tune as command
    from fetcher.cli.args import SharedArgs
    from fetcher.cli.env import Environment
    from fetcher.cli.interrupts import Interrupts

    asked: list[Path] = []

    def detector(folder: Path) -> bool:
        asked.append(folder)
        return unjournaled

    monkeypatch.setattr(command, "ext4_without_journal", detector)
    listing = write_list(
        tmp_path / "l.txt", [http_server.url(f"/bytes/e{i}?size=10") for i in range(3)]
    )
    out = io.BytesIO()
    tuner = command.TuneCommand.build(
        Environment(io.BytesIO(), out, io.StringIO()), SharedArgs(retries=0),
        lists=(str(listing),), sample=3, repeats=1, output_dir=tmp_path / "o",
    )  # fmt: skip
    assert tuner.run(Interrupts()) == 0
    assert asked == [tmp_path / "o"]
    last = out.getvalue().decode().rstrip().splitlines()[-1]
    warned = f"The output dir ({tmp_path / 'o'}) is on an ext4 file system without a" in last
    assert warned is unjournaled


def test_emptying_a_trial_folder_shortens_nothing_outside_it(tmp_path: Path) -> None:
    outside = tmp_path / "precious.txt"
    outside.write_bytes(b"keep me")
    with TrialFolders(tmp_path / "o") as folders:
        folder = folders.new()
        (folder / "sub").mkdir()
        (folder / "sub" / "body.bin").write_bytes(b"x" * 1000)
        (folder / "link").symlink_to(outside)
        os.link(outside, folder / "hard")
        folders.empty(folder)
        assert (folder / "sub" / "body.bin").stat().st_size == 0
        assert outside.read_bytes() == b"keep me"
    assert not folder.exists()
    assert outside.read_bytes() == b"keep me"
