"""`fetcher tune`: trials of a sample of the user's own list, a table, a recommendation;
nothing left behind. The recommendation rule itself is unit-tested at the bottom."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from fetcher.tune import CHUNKSIZE_GRID, WORKERS_GRID, Trial, recommend, table
from tests.clirun import fetcher_command, write_list
from tests.server import TestServer

TRIALS = len(WORKERS_GRID) * len(CHUNKSIZE_GRID)


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
    run = tune(str(listing), "--sample", "4", cwd=tmp_path, tmpdir=tmp_path / "tmp")
    assert run.returncode == 0, run.stderr
    assert "Sampling 4 items per trial" in run.stderr
    rows = [line for line in run.stdout.splitlines() if re.match(r"^\| \d+ \|", line)]
    assert len(rows) == TRIALS
    assert sum("← recommended" in row for row in rows) == 1
    chosen = next(row for row in rows if "← recommended" in row)
    workers = chosen.split("|")[1].strip()
    match = re.search(r"^Recommended: -j (\d+) --chunksize (\S+) ", run.stdout, re.MULTILINE)
    assert match is not None and match.group(1) == workers
    for row in rows:  # every trial fetched the whole sample without a failure
        assert row.split("|")[5].strip() == "0"


def test_tune_fetches_only_the_sample_once_per_trial(
    http_server: TestServer, tmp_path: Path
) -> None:
    urls = [http_server.url(f"/bytes/s{i}?size=100") for i in range(8)]
    listing = write_list(tmp_path / "l.txt", urls)
    run = tune(str(listing), "--sample", "3", cwd=tmp_path, tmpdir=tmp_path / "tmp")
    assert run.returncode == 0, run.stderr
    paths = [path for _, path, _ in http_server.requests_seen]
    for i in range(3):
        assert paths.count(f"/bytes/s{i}?size=100") == TRIALS
    assert not any(path.startswith(f"/bytes/s{i}?") for path in paths for i in range(3, 8))


def test_tune_leaves_nothing_behind(http_server: TestServer, tmp_path: Path) -> None:
    listing = write_list(tmp_path / "l.txt", [http_server.url("/bytes/x?size=10")])
    work = tmp_path / "work"
    work.mkdir()
    run = tune(str(listing), "--sample", "1", cwd=work, tmpdir=tmp_path / "tmp")
    assert run.returncode == 0, run.stderr
    assert list(work.iterdir()) == []
    assert list((tmp_path / "tmp").iterdir()) == []


def test_tune_exits_1_when_every_item_fails_in_every_trial(
    http_server: TestServer, tmp_path: Path
) -> None:
    listing = write_list(tmp_path / "l.txt", [http_server.url("/status/404")])
    run = tune(str(listing), "--sample", "1", cwd=tmp_path, tmpdir=tmp_path / "tmp")
    assert run.returncode == 1
    assert "every item of the sample failed in every trial" in run.stderr
    assert "Recommended" not in run.stdout
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.txt"], "list not found: missing.txt"),
        (["empty.txt"], "the lists hold no items to sample"),
        (["empty.txt", "--sample", "0"], "--sample must be at least 1"),
        (["empty.txt", "--ca-bundle", "nope.pem"], "nope.pem"),
    ],
)
def test_tune_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "empty.txt").write_text("# nothing here\n\n")
    run = tune(*args, cwd=tmp_path, tmpdir=tmp_path / "tmp")
    assert run.returncode == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr


def trial(workers: int, chunksize: int | None, items_per_s: float, failed: int = 0) -> Trial:
    return Trial(workers, chunksize, chunksize or 1, 100, failed, 1000, 100 / items_per_s)


def test_recommend_takes_the_fastest_clear_winner() -> None:
    trials = [trial(4, 1, 100), trial(8, None, 150), trial(16, 4, 200), trial(32, 1, 120)]
    assert recommend(trials) is trials[2]


def test_recommend_never_takes_a_trial_with_more_failures() -> None:
    trials = [trial(4, 1, 100), trial(32, None, 500, failed=2)]
    assert recommend(trials) is trials[0]


def test_recommend_prefers_fewer_threads_then_auto_among_near_ties() -> None:
    trials = [trial(32, 1, 200), trial(8, 4, 195), trial(8, None, 192), trial(4, 1, 150)]
    assert recommend(trials) is trials[2]


def test_table_marks_the_choice_and_names_auto_with_what_it_picked() -> None:
    trials = [trial(4, 1, 100), trial(8, None, 150)]
    text = table(trials, trials[1])
    chosen = next(line for line in text.splitlines() if "← recommended" in line)
    assert chosen.startswith("| 8 | auto (1) | 150 |")
    assert "Recommended: -j 8 --chunksize auto (150 items/s" in text
