"""Command-line option types, and the typed object that carries the options `fetch`,
`retry` and `tune` share into `FetchOptions`: a renamed parameter fails in mypy, not at
run time."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from fetcher.options import (
    FetchOptions,
    merge_headers,
    parse_chunksize,
    parse_cluster,
    parse_headers,
    parse_processes,
    parse_rate,
    parse_size,
    parse_statuses,
    tls_verify,
)

RECORDED = "as the run recorded"
_T = TypeVar("_T")


@dataclass(frozen=True)
class SharedArgs:
    """Options as typed on the command line; None (or empty) means not given: for `fetch`
    the default, for `retry` what the first run recorded."""

    workers: int | None = None
    processes: str | None = None
    chunksize: str | None = None
    retries: int | None = None
    retry_wait: float | None = None
    retry_max_wait: float | None = None
    retry_on: str | None = None
    timeout: float | None = None
    deadline: float | None = None
    headers: tuple[str, ...] = ()
    max_size: str | None = None
    per_host: int | None = None
    rate: str | None = None
    insecure: bool = False
    ca_bundle: Path | None = None
    cluster: str | None = None
    limit_rate: str | None = None
    compressed: bool = False
    cookies: Path | None = None

    def apply(self, options: FetchOptions) -> FetchOptions:
        """`options` with what was given applied (checked: a bad value is a UsageError).
        A header given again replaces the one of that name in `options`."""
        retry = options.retry
        policy = replace(
            retry,
            retries=_given(self.retries, retry.retries),
            backoff_s=_given(self.retry_wait, retry.backoff_s),
            max_wait_s=_given(self.retry_max_wait, retry.max_wait_s),
            statuses=retry.statuses if self.retry_on is None else parse_statuses(self.retry_on),
        )
        tls = self.insecure or self.ca_bundle is not None
        return replace(
            options,
            workers=_given(self.workers, options.workers),
            processes=options.processes
            if self.processes is None
            else parse_processes(self.processes),
            chunksize=options.chunksize
            if self.chunksize is None
            else parse_chunksize(self.chunksize),
            retry=policy,
            timeout_s=_given(self.timeout, options.timeout_s),
            deadline_s=_given(self.deadline, options.deadline_s),
            headers=merge_headers(options.headers, parse_headers(self.headers)),
            max_size=options.max_size if self.max_size is None else parse_size(self.max_size),
            per_host=_given(self.per_host, options.per_host),
            rate=options.rate if self.rate is None else parse_rate(self.rate),
            verify=tls_verify(self.insecure, self.ca_bundle) if tls else options.verify,
            cluster=options.cluster if self.cluster is None else parse_cluster(self.cluster),
            limit_rate=options.limit_rate
            if self.limit_rate is None
            else parse_size(self.limit_rate),
            compressed=self.compressed or options.compressed,
            cookies=self.cookies or options.cookies,
        )


def _given(value: _T | None, default: _T) -> _T:
    return default if value is None else value


# Defaults come from the option objects, so the command line and the API cannot drift apart.
DEFAULTS = FetchOptions()

OutputDir = Annotated[
    Path | None,
    typer.Option(
        "-o",
        "--output-dir",
        metavar="DIR",
        help="Where outputs go (created if missing) [default: .]",
    ),
]
Workers = Annotated[
    int | None, typer.Option("-j", "--workers", metavar="N", help="Worker threads.")
]
Processes = Annotated[
    str | None,
    typer.Option(
        "--processes",
        metavar="auto|N",
        help="Processes sharing the workers; auto brings them in when the run is CPU-bound.",
    ),
]
Chunksize = Annotated[
    str | None, typer.Option("--chunksize", metavar="auto|N", help="Items per pool task.")
]
Retries = Annotated[
    int | None, typer.Option("--retries", metavar="N", help="Extra attempts per item.")
]
RetryWait = Annotated[
    float | None,
    typer.Option("--retry-wait", metavar="SECONDS", help="Base of the exponential backoff."),
]
RetryMaxWait = Annotated[
    float | None,
    typer.Option(
        "--retry-max-wait",
        metavar="SECONDS",
        help="Longest wait between attempts (caps Retry-After).",
    ),
]
RetryOn = Annotated[
    str | None,
    typer.Option("--retry-on", metavar="CODES", help="HTTP statuses to retry, comma-separated."),
]
Timeout = Annotated[
    float | None,
    typer.Option("--timeout", metavar="SECONDS", help="To connect, and of silence while reading."),
]
Deadline = Annotated[
    float | None,
    typer.Option(
        "--deadline", metavar="SECONDS", help="Total time for one item, retries included."
    ),
]
Headers = Annotated[
    list[str] | None,
    typer.Option(
        "-H", "--header", metavar="'NAME: VALUE'", help="Extra request header (repeatable)."
    ),
]
MaxSize = Annotated[
    str | None,
    typer.Option("--max-size", metavar="BYTES", help="Fail items larger than this (K, M, G)."),
]
PerHost = Annotated[
    int | None, typer.Option("--per-host", metavar="N", help="Concurrent requests to one host.")
]
Rate = Annotated[
    str | None, typer.Option("--rate", metavar="N/s", help="Request starts per second, e.g. 10/s.")
]
Cluster = Annotated[
    str | None,
    typer.Option(
        "--cluster",
        metavar="ADDRESS|local:N",
        help="Run on a Dask cluster: a scheduler's address, or local:N worker processes.",
    ),
]
LimitRate = Annotated[
    str | None,
    typer.Option(
        "--limit-rate",
        metavar="BYTES",
        help="Bandwidth for the whole run, bytes per second (K, M, G), e.g. 2M.",
    ),
]
Compressed = Annotated[
    bool,
    typer.Option(
        "--compressed", help="Ask for gzip/deflate (br if installed) and save bodies decoded."
    ),
]
Cookies = Annotated[
    Path | None,
    typer.Option(
        "--cookies",
        metavar="FILE",
        help="Netscape cookie file: loaded at the start (if it exists), saved at the end.",
    ),
]
Insecure = Annotated[bool, typer.Option("--insecure", help="Do not verify TLS certificates.")]
CaBundle = Annotated[
    Path | None, typer.Option("--ca-bundle", metavar="PATH", help="Trust these CA certificates.")
]
NoProgress = Annotated[
    bool,
    typer.Option("--no-progress", help="No progress bar (also off when stderr is not a terminal)."),
]
Verbose = Annotated[
    int,
    typer.Option(
        "-v",
        "--verbose",
        count=True,
        show_default=False,
        help="Decisions per item on stderr (-vv: more).",
    ),
]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="Only errors on stderr.")]
