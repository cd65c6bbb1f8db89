"""Running a command: usage errors, signals and the exit status in one place, and the loop
that turns a run's batches of results into progress, a summary and an exit status."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable
from typing import NoReturn, Protocol

import typer

from fetcher.cli import logs
from fetcher.cli.env import Environment
from fetcher.cli.exit import ExitStatus
from fetcher.cli.interrupts import Interrupts, Terminated
from fetcher.cli.progress import ProgressBar
from fetcher.cli.summary import Tally
from fetcher.errors import FetcherError, OutputClosed, UsageError
from fetcher.results import Result
from fetcher.stats import Stats

log = logging.getLogger("fetcher.cli")


class Command(Protocol):
    def run(self, interrupts: Interrupts) -> ExitStatus: ...


def execute(build: Callable[[Environment], Command], *, verbosity: int) -> NoReturn:
    """Check the options (a usage error is found before anything is written), run, and map
    the outcome or the interruption to the exit status."""
    env = Environment.from_sys()
    logs.install(env.stderr, verbosity)
    from fetcher import headers  # here, not at import: `--help` stays quick

    headers.install()  # this process is fetcher's own
    try:
        command = build(env)
        with Interrupts().installed() as interrupts:
            code = command.run(interrupts)
    except UsageError as exc:
        code = _error(env, exc, ExitStatus.USAGE)
    except OutputClosed as exc:
        _detach_stdout()
        code = _error(env, exc, ExitStatus.BROKEN_PIPE)
    except FetcherError as exc:
        code = _error(env, exc, ExitStatus.FAILURES)
    except Terminated:
        code = ExitStatus.TERMINATED
    except KeyboardInterrupt:
        code = ExitStatus.INTERRUPTED
    except Exception as exc:  # a bug: one line to report (the traceback under -vv)
        log.debug("internal error", exc_info=True)
        code = _error(env, f"internal error: {type(exc).__name__}: {exc}", ExitStatus.FAILURES)
    raise typer.Exit(int(code))


def _detach_stdout() -> None:
    """Its reader is gone: point stdout at /dev/null, so that the interpreter's last flush
    at exit does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _error(env: Environment, exc: Exception | str, code: ExitStatus) -> ExitStatus:
    env.stderr.write(f"fetcher: error: {exc}\n")
    env.stderr.flush()
    return code


def drive(
    batches: Iterable[list[Result]],
    env: Environment,
    stats: Stats,
    *,
    progress: bool,
    workers: int,
    manifest: str | None,
    count: Callable[[], int | None] | None = None,
) -> ExitStatus:
    """Consume the results, with a progress bar (when stderr is a terminal and one is
    wanted) and the summary at the end, also when interrupted; neither under -q. `count`
    gives the number of items for the bar's total; it runs on a thread of its own."""
    tally = Tally()
    shown = logging.getLogger("fetcher").isEnabledFor(logging.WARNING)
    progress = progress and shown and env.stderr_is_terminal
    bar = ProgressBar(stats, env.stderr, workers) if progress else None
    logs.show_above(bar)
    if bar is not None and count is not None:
        threading.Thread(
            target=lambda: bar.set_total(count()), name="fetcher-count", daemon=True
        ).start()
    interrupted = False
    try:
        for batch in batches:
            tally.add(batch)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        if bar is not None:
            bar.close(tally.total)
            logs.show_above(None)
        if shown:
            env.stderr.write(tally.summary(stats, manifest, interrupted) + "\n")
            env.stderr.flush()
    return ExitStatus.FAILURES if tally.failed else ExitStatus.OK
