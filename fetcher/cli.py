"""The command line: `fetcher fetch LIST...` and `fetcher retry MANIFEST`. Exit codes follow
the contract: 0 all done, 1 some items failed, 2 usage error, 130 on Ctrl-C, 143 on SIGTERM."""

from __future__ import annotations

import sys
from collections.abc import Callable
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, Protocol

import typer

from fetcher.errors import UsageError
from fetcher.interrupts import Interrupts, Terminated
from fetcher.options import DEFAULT_PER_HOST, DEFAULT_WORKERS, FetchOptions, Layout
from fetcher.tables import ListFormat
from fetcher.version import __version__


class ExitStatus(IntEnum):
    OK = 0
    FAILURES = 1
    USAGE = 2
    INTERRUPTED = 130
    TERMINATED = 143


app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    help="Concurrent bulk fetcher for URL and file-path lists.",
)

# Defaults come from the option objects, so the command line and the API cannot drift apart.
_OPTIONS = FetchOptions()
_RETRY = _OPTIONS.retry
_RETRY_ON = ",".join(str(code) for code in sorted(_RETRY.statuses))

OutputDir = Annotated[
    Path | None, typer.Option("-o", "--output-dir", help="Where outputs go [default: .]")
]
Workers = Annotated[int, typer.Option("-j", "--workers", help="Worker threads.")]
Processes = Annotated[
    int, typer.Option("--processes", help="Processes sharing the workers (for CPU-bound runs).")
]
Chunksize = Annotated[str, typer.Option("--chunksize", help="Items per pool task: auto or N.")]
LayoutOpt = Annotated[Layout, typer.Option("--layout", help="Output naming.")]
Retries = Annotated[int, typer.Option("--retries", help="Extra attempts per item.")]
RetryWait = Annotated[
    float, typer.Option("--retry-wait", help="Base of the exponential backoff, seconds.")
]
RetryMaxWait = Annotated[
    float,
    typer.Option("--retry-max-wait", help="Longest wait between attempts (caps Retry-After)."),
]
RetryOn = Annotated[
    str, typer.Option("--retry-on", help="HTTP statuses to retry, comma-separated.")
]
Timeout = Annotated[
    float, typer.Option("--timeout", help="Seconds to connect, and of silence while reading.")
]
Deadline = Annotated[
    float | None, typer.Option("--deadline", help="Total seconds for one item, retries included.")
]
NoProgress = Annotated[bool, typer.Option("--no-progress", help="No progress bar.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Re-fetch items already complete.")]
Update = Annotated[
    bool, typer.Option("--update", help="Ask again about complete items (conditional GET).")
]
Headers = Annotated[
    list[str] | None, typer.Option("-H", "--header", help="Extra header 'Name: value'.")
]
MaxSize = Annotated[
    str | None, typer.Option("--max-size", help="Fail items larger than this (K, M, G).")
]
PerHost = Annotated[int, typer.Option("--per-host", help="Concurrent requests to one host.")]
Rate = Annotated[str | None, typer.Option("--rate", help="Request starts per second, e.g. 10/s.")]
Insecure = Annotated[bool, typer.Option("--insecure", help="Do not verify TLS certificates.")]
CaBundle = Annotated[Path | None, typer.Option("--ca-bundle", help="Trust these CA certificates.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fetcher {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Concurrent bulk fetcher for URL and file-path lists."""


@app.command()
def fetch(
    lists: Annotated[
        list[str],
        typer.Argument(metavar="LIST...", help="List files (one source per line); - is stdin."),
    ],
    output_dir: OutputDir = None,
    workers: Workers = DEFAULT_WORKERS,
    processes: Processes = 1,
    chunksize: Chunksize = "auto",
    manifest: Annotated[
        Path | None,
        typer.Option(
            "--manifest",
            help="Per-item manifest (JSON Lines; .csv for CSV)"
            " [default: OUTPUT_DIR/.fetcher/manifest.jsonl]",
        ),
    ] = None,
    layout: LayoutOpt = Layout.FLAT,
    retries: Retries = _RETRY.retries,
    retry_wait: RetryWait = _RETRY.backoff_s,
    retry_max_wait: RetryMaxWait = _RETRY.max_wait_s,
    retry_on: RetryOn = _RETRY_ON,
    timeout: Timeout = _OPTIONS.timeout_s,
    deadline: Deadline = None,
    stdout: Annotated[
        bool, typer.Option("--stdout", help="Write bodies to stdout in input order; keep no files.")
    ] = False,
    no_progress: NoProgress = False,
    overwrite: Overwrite = False,
    update: Update = False,
    checksum: Annotated[
        str | None, typer.Option("--checksum", help="ALGO:HEX expected for a one-item list.")
    ] = None,
    input_format: Annotated[
        ListFormat, typer.Option("--input-format", help="Format of a list read from stdin.")
    ] = ListFormat.LINES,
    header: Headers = None,
    max_size: MaxSize = None,
    per_host: PerHost = DEFAULT_PER_HOST,
    rate: Rate = None,
    insecure: Insecure = False,
    ca_bundle: CaBundle = None,
) -> None:
    """Fetch every item of the lists into OUTPUT_DIR, one manifest row per item in order."""
    given = dict(locals())
    from fetcher.run import FetchCommand, Settings

    def build() -> Command:
        settings = Settings.build(**_common(given), stdout=stdout, manifest=manifest)
        return FetchCommand.build(settings, lists, checksum, input_format)

    _execute(build)


@app.command()
def retry(
    manifest: Annotated[Path, typer.Argument(help="Manifest of an earlier run.")],
    output_dir: OutputDir = None,
    workers: Workers = DEFAULT_WORKERS,
    processes: Processes = 1,
    chunksize: Chunksize = "auto",
    layout: LayoutOpt = Layout.FLAT,
    retries: Retries = _RETRY.retries,
    retry_wait: RetryWait = _RETRY.backoff_s,
    retry_max_wait: RetryMaxWait = _RETRY.max_wait_s,
    retry_on: RetryOn = _RETRY_ON,
    timeout: Timeout = _OPTIONS.timeout_s,
    deadline: Deadline = None,
    no_progress: NoProgress = False,
    header: Headers = None,
    max_size: MaxSize = None,
    per_host: PerHost = DEFAULT_PER_HOST,
    rate: Rate = None,
    insecure: Insecure = False,
    ca_bundle: CaBundle = None,
) -> None:
    """Re-run exactly the failed rows of MANIFEST and rewrite it, still in input order.
    OUTPUT_DIR defaults to the folder holding MANIFEST's `.fetcher/`."""
    given = dict(locals())
    from fetcher.run import RetryCommand, Settings

    def build() -> Command:
        common = _common(given)
        common["output_dir"] = output_dir or RetryCommand.default_output_dir(manifest)
        settings = Settings.build(
            **common, stdout=False, manifest=manifest, overwrite=False, update=False
        )
        return RetryCommand.build(settings)

    _execute(build)


@app.command()
def tune(
    lists: Annotated[list[str], typer.Argument(metavar="LIST...", help="Lists to sample.")],
    sample: Annotated[
        int, typer.Option("--sample", help="Items of the list to fetch in each trial.")
    ] = 200,
    timeout: Timeout = _OPTIONS.timeout_s,
    per_host: PerHost = DEFAULT_PER_HOST,
    header: Headers = None,
    insecure: Insecure = False,
    ca_bundle: CaBundle = None,
) -> None:
    """Fetch a sample of the lists under several -j/--chunksize settings (into a temporary
    folder, deleted after each trial) and recommend the fastest; when the CPU is the limit,
    try --processes too."""
    given = dict(locals())
    from fetcher.run import TuneCommand

    def build() -> Command:
        return TuneCommand.build(lists, sample, given)

    _execute(build)


_COMMON = (
    "output_dir", "workers", "processes", "chunksize", "layout", "retries", "retry_wait",
    "retry_max_wait", "retry_on", "timeout", "deadline", "header", "max_size", "per_host",
    "rate", "insecure", "ca_bundle", "overwrite", "update",
)  # fmt: skip


def _common(given: dict[str, Any]) -> dict[str, Any]:
    """The options both commands share, by name, plus whether a bar may be shown."""
    common = {name: given[name] for name in _COMMON if name in given}
    common["progress"] = not given["no_progress"] and sys.stderr.isatty()
    return common


class Command(Protocol):
    def run(self, interrupts: Interrupts) -> int: ...


def _execute(build: Callable[[], Command]) -> NoReturn:
    """Validate, run, and map the outcome (or the interruption) to the exit status."""
    try:
        command = build()
    except UsageError as exc:
        _usage_error(str(exc))
    try:
        with Interrupts().installed() as interrupts:
            code = command.run(interrupts)
    except Terminated:
        code = ExitStatus.TERMINATED
    except KeyboardInterrupt:
        code = ExitStatus.INTERRUPTED
    except UsageError as exc:
        _usage_error(str(exc))
    raise typer.Exit(int(code))


def _usage_error(message: str) -> NoReturn:
    typer.echo(f"fetcher: error: {message}", err=True)
    raise typer.Exit(ExitStatus.USAGE)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="fetcher")
