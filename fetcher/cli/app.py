"""The typer application: one function per command, each turning its options into a typed
command object and handing it to `runner.execute`. The library (and the runner, with its
logging and progress bar) is imported only once a command runs, so `fetcher --help` stays
fast."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fetcher.cli import args
from fetcher.cli.help import PlainCommand
from fetcher.options import Layout
from fetcher.version import __version__

app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    help="Concurrent bulk fetcher for URL and file-path lists.",
)

_D = args.DEFAULTS
_RETRY_ON = ",".join(str(code) for code in sorted(_D.retry.statuses))


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


@app.command(cls=PlainCommand)
def fetch(
    lists: Annotated[
        list[str],
        typer.Argument(
            metavar="LIST|URL...",
            help="List files (one source per line; .csv/.tsv/.jsonl by suffix), - for"
            " stdin, or http://, https:// and file:// URLs to fetch as they are.",
            show_default=False,
        ),
    ],
    output_dir: args.OutputDir = None,
    workers: args.Workers = _D.workers,
    processes: args.Processes = "auto",
    cluster: args.Cluster = None,
    chunksize: args.Chunksize = "auto",
    manifest: Annotated[
        Path | None,
        typer.Option(
            "--manifest",
            metavar="PATH",
            help="Per-item manifest (JSON Lines; .csv for CSV)"
            " [default: OUTPUT_DIR/.fetcher/manifest.jsonl]",
        ),
    ] = None,
    layout: Annotated[
        str, typer.Option("--layout", metavar="flat|mirror|indexed", help="Output naming.")
    ] = Layout.FLAT.value,
    retries: args.Retries = _D.retry.retries,
    retry_wait: args.RetryWait = _D.retry.backoff_s,
    retry_max_wait: args.RetryMaxWait = _D.retry.max_wait_s,
    retry_on: args.RetryOn = _RETRY_ON,
    timeout: args.Timeout = _D.timeout_s,
    deadline: args.Deadline = None,
    stdout: Annotated[
        bool, typer.Option("--stdout", help="Write bodies to stdout in input order; keep no files.")
    ] = False,
    no_progress: args.NoProgress = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Re-fetch items already complete.")
    ] = False,
    update: Annotated[
        bool, typer.Option("--update", help="Ask again about complete items (conditional GET).")
    ] = False,
    checksum: Annotated[
        str | None,
        typer.Option("--checksum", metavar="ALGO:HEX", help="Expected digest of a one-item list."),
    ] = None,
    input_format: Annotated[
        str,
        typer.Option(
            "--input-format",
            metavar="lines|csv|tsv|jsonl",
            help="Format of a list read from stdin.",
        ),
    ] = "lines",
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            metavar="K/N",
            help="Only shard K of N (items whose index i has i % N == K), indexes kept.",
        ),
    ] = None,
    header: args.Headers = None,
    max_size: args.MaxSize = None,
    per_host: args.PerHost = _D.per_host,
    rate: args.Rate = None,
    limit_rate: args.LimitRate = None,
    compressed: args.Compressed = False,
    cookies: args.Cookies = None,
    insecure: args.Insecure = False,
    ca_bundle: args.CaBundle = None,
    verbose: args.Verbose = 0,
    quiet: args.Quiet = False,
) -> None:
    """Fetch every item of the lists (and every URL given) into OUTPUT_DIR, one manifest
    row per item in input order."""
    from fetcher.cli.fetch import FetchCommand
    from fetcher.cli.runner import execute

    shared = args.SharedArgs(
        workers=workers, processes=processes, chunksize=chunksize, retries=retries,
        retry_wait=retry_wait, retry_max_wait=retry_max_wait, retry_on=retry_on,
        timeout=timeout, deadline=deadline, headers=tuple(header or ()), max_size=max_size,
        per_host=per_host, rate=rate, insecure=insecure, ca_bundle=ca_bundle, cluster=cluster,
        limit_rate=limit_rate, compressed=compressed, cookies=cookies,
    )  # fmt: skip
    execute(
        lambda env: FetchCommand.build(
            env,
            shared,
            lists=tuple(lists),
            output_dir=output_dir,
            manifest=manifest,
            layout=layout,
            stdout=stdout,
            overwrite=overwrite,
            update=update,
            checksum=checksum,
            input_format=input_format,
            shard=shard,
            progress=not no_progress,
        ),
        verbosity=-1 if quiet else verbose,
    )


@app.command(cls=PlainCommand)
def retry(
    manifest: Annotated[
        Path,
        typer.Argument(metavar="MANIFEST", help="Manifest of an earlier run.", show_default=False),
    ],
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output-dir",
            metavar="DIR",
            help="Output dir of the run that wrote MANIFEST"
            " [default: the folder whose .fetcher/ holds MANIFEST]",
        ),
    ] = None,
    workers: args.Workers = None,
    processes: args.Processes = None,
    cluster: args.Cluster = None,
    chunksize: args.Chunksize = None,
    retries: args.Retries = None,
    retry_wait: args.RetryWait = None,
    retry_max_wait: args.RetryMaxWait = None,
    retry_on: args.RetryOn = None,
    timeout: args.Timeout = None,
    deadline: args.Deadline = None,
    no_progress: args.NoProgress = False,
    header: args.Headers = None,
    max_size: args.MaxSize = None,
    per_host: args.PerHost = None,
    rate: args.Rate = None,
    limit_rate: args.LimitRate = None,
    compressed: args.Compressed = False,
    cookies: args.Cookies = None,
    insecure: args.Insecure = False,
    ca_bundle: args.CaBundle = None,
    verbose: args.Verbose = 0,
    quiet: args.Quiet = False,
) -> None:
    """Re-run exactly the failed rows of MANIFEST under the rules its run recorded (layout,
    checksums, headers, politeness; an option given here replaces the recorded one), and
    rewrite it: every row, in input order, each new or as it was."""
    from fetcher.cli.retry import RetryCommand
    from fetcher.cli.runner import execute

    shared = args.SharedArgs(
        workers=workers, processes=processes, chunksize=chunksize, retries=retries,
        retry_wait=retry_wait, retry_max_wait=retry_max_wait, retry_on=retry_on,
        timeout=timeout, deadline=deadline, headers=tuple(header or ()), max_size=max_size,
        per_host=per_host, rate=rate, insecure=insecure, ca_bundle=ca_bundle, cluster=cluster,
        limit_rate=limit_rate, compressed=compressed, cookies=cookies,
    )  # fmt: skip
    execute(
        lambda env: RetryCommand.build(
            env, shared, manifest=manifest, output_dir=output_dir, progress=not no_progress
        ),
        verbosity=-1 if quiet else verbose,
    )


@app.command(cls=PlainCommand)
def tune(
    lists: Annotated[
        list[str],
        typer.Argument(metavar="LIST...", help="Lists to sample.", show_default=False),
    ],
    sample: Annotated[
        int,
        typer.Option(
            "--sample",
            metavar="N",
            help="Items of the list to fetch in each trial (the processes trial: up to 3 x N).",
        ),
    ] = 1000,
    repeat: Annotated[
        int,
        typer.Option("--repeat", metavar="N", help="Trials of each setting (median and spread)."),
    ] = 3,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output-dir",
            metavar="DIR",
            help="Where the real run will write: the trials write (and delete) their files"
            " on the same disk [default: .]",
        ),
    ] = None,
    timeout: args.Timeout = _D.timeout_s,
    per_host: args.PerHost = _D.per_host,
    header: args.Headers = None,
    insecure: args.Insecure = False,
    ca_bundle: args.CaBundle = None,
    verbose: args.Verbose = 0,
    quiet: args.Quiet = False,
) -> None:
    """Fetch a sample of the lists under several -j/--chunksize settings, each a few times
    (into temporary folders on the output dir's disk, deleted when the tune ends), and
    recommend the fastest; when the CPU is the limit, try --processes too."""
    from fetcher.cli.runner import execute
    from fetcher.cli.tune import TuneCommand

    shared = args.SharedArgs(
        timeout=timeout, per_host=per_host, headers=tuple(header or ()), insecure=insecure,
        ca_bundle=ca_bundle, retries=0,
    )  # fmt: skip
    execute(
        lambda env: TuneCommand.build(
            env, shared, lists=tuple(lists), sample=sample, repeats=repeat, output_dir=output_dir
        ),
        verbosity=-1 if quiet else verbose,
    )


@app.command(cls=PlainCommand)
def merge(
    manifests: Annotated[
        list[Path],
        typer.Argument(metavar="MANIFEST...", help="Manifests of shards.", show_default=False),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "-o",
            "--output",
            metavar="PATH",
            help="The merged manifest (.csv for CSV).",
            show_default=False,
        ),
    ],
    quiet: args.Quiet = False,
) -> None:
    """Join the manifests of shards (--shard K/N) into one, in input order; exit 1 when
    indices are missing or duplicated (the merged manifest is written either way)."""
    from fetcher.cli.merge import MergeCommand
    from fetcher.cli.runner import execute

    execute(
        lambda env: MergeCommand.build(env, tuple(manifests), output),
        verbosity=-1 if quiet else 0,
    )


def main() -> None:
    """Console-script entry point."""
    app(prog_name="fetcher")
