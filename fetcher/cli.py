"""The command line: `fetcher fetch LIST...`. Exit codes follow the contract: 0 all done,
1 some items failed, 2 usage error, 130 on Ctrl-C, 143 on SIGTERM."""

from __future__ import annotations

import signal
import sys
import threading
from enum import IntEnum
from pathlib import Path
from types import FrameType
from typing import Annotated, NoReturn

import typer

from fetcher.errors import UsageError
from fetcher.options import DEFAULT_WORKERS, Layout
from fetcher.version import __version__


class ExitStatus(IntEnum):
    OK = 0
    FAILURES = 1
    USAGE = 2
    INTERRUPTED = 130
    TERMINATED = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so it unwinds exactly like Ctrl-C."""


app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Concurrent bulk fetcher for URL and file-path lists.",
)


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
    output_dir: Annotated[
        Path | None, typer.Option("-o", "--output-dir", help="Where outputs go [default: .]")
    ] = None,
    workers: Annotated[
        int, typer.Option("-j", "--workers", help="Worker threads.")
    ] = DEFAULT_WORKERS,
    chunksize: Annotated[
        str, typer.Option("--chunksize", help="Items per pool task: auto or a number.")
    ] = "auto",
    manifest: Annotated[
        Path | None,
        typer.Option(
            "--manifest",
            help="Per-item manifest (JSON Lines; .csv for CSV)"
            " [default: OUTPUT_DIR/.fetcher/manifest.jsonl]",
        ),
    ] = None,
    layout: Annotated[Layout, typer.Option("--layout", help="Output naming.")] = Layout.FLAT,
    retries: Annotated[int, typer.Option("--retries", help="Extra attempts per item.")] = 2,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to connect, and of silence while reading.")
    ] = 30.0,
    stdout: Annotated[
        bool, typer.Option("--stdout", help="Write bodies to stdout in input order; keep no files.")
    ] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Re-fetch items already complete.")
    ] = False,
    header: Annotated[
        list[str] | None,
        typer.Option("-H", "--header", help="Extra header 'Name: value' (repeatable)."),
    ] = None,
    max_size: Annotated[
        str | None, typer.Option("--max-size", help="Fail items larger than this (K, M, G).")
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Do not verify TLS certificates.")
    ] = False,
    ca_bundle: Annotated[
        Path | None, typer.Option("--ca-bundle", help="Trust these CA certificates.")
    ] = None,
) -> None:
    """Fetch every item of the lists into OUTPUT_DIR, one manifest row per item in order."""
    from fetcher.run import Request, run

    try:
        request = Request.build(
            lists=lists,
            output_dir=output_dir,
            workers=workers,
            chunksize=chunksize,
            manifest=manifest,
            layout=layout,
            retries=retries,
            timeout=timeout,
            stdout=stdout,
            overwrite=overwrite,
            headers=header or [],
            max_size=max_size,
            insecure=insecure,
            ca_bundle=ca_bundle,
            progress=not no_progress and sys.stderr.isatty(),
        )
    except UsageError as exc:
        _usage_error(str(exc))
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        code = run(request)
    except Terminated:
        code = ExitStatus.TERMINATED
    except KeyboardInterrupt:
        code = ExitStatus.INTERRUPTED
    except UsageError as exc:
        _usage_error(str(exc))
    finally:
        signal.signal(signal.SIGTERM, previous)
    raise typer.Exit(int(code))


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    if threading.current_thread() is threading.main_thread():
        raise Terminated


def _usage_error(message: str) -> NoReturn:
    typer.echo(f"fetcher: error: {message}", err=True)
    raise typer.Exit(ExitStatus.USAGE)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="fetcher")
