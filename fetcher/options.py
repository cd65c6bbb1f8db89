"""Frozen option objects: what a run is asked to do, validated once, shared by every thread."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from fetcher.errors import UsageError

DEFAULT_PER_HOST = 16
"""At `-j 64` one server still sees at most 16 connections (aria2c's own ceiling per server),
while the default pool (16 threads) never parks threads waiting for a host."""
DEFAULT_WORKERS = 16
"""I/O-bound work: threads wait on sockets, not CPU. 16 hides typical WAN latency for small
files while staying polite to a single server; the GIL caps useful threads on 2 cores anyway."""

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_Choice = TypeVar("_Choice", bound=Enum)


class Layout(str, Enum):
    """How output names are derived; see `fetcher.naming`."""

    FLAT = "flat"
    MIRROR = "mirror"
    INDEXED = "indexed"


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before another attempt at one item."""

    retries: int = 2
    """Extra attempts after the first; 0 disables retrying."""
    backoff_s: float = 0.5
    """Base of the exponential backoff: attempt n waits up to backoff_s * 2**(n-1)."""
    max_wait_s: float = 30.0
    """Cap on any single wait, `Retry-After` included."""
    statuses: frozenset[int] = RETRY_STATUSES
    """HTTP statuses worth another attempt; other non-2xx fail at once."""

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise UsageError("--retries must be 0 or more")
        if self.backoff_s < 0 or self.max_wait_s < 0:
            raise UsageError("retry waits must be 0 or more")

    def wait_s(self, attempt: int, retry_after: float | None = None) -> float:
        """Full-jitter exponential backoff, or the server's `Retry-After`, always capped."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_wait_s)
        ceiling = min(self.backoff_s * 2 ** (attempt - 1), self.max_wait_s)
        return random.uniform(0, ceiling)


@dataclass(frozen=True)
class FetchOptions:
    """Everything a run needs to know besides its sources."""

    output_dir: Path = Path(".")
    """Where outputs go; created if missing. Nothing is ever written outside it."""
    workers: int = DEFAULT_WORKERS
    """Worker threads in the pool."""
    processes: int | None = None
    """Processes sharing the work, each running `workers / processes` threads; more than
    one helps when the interpreter lock, not the network, limits throughput. None (the
    default) decides during the run: threads first, processes once the run proves
    CPU-bound with enough left to pay for them (`fetcher.adaptive`)."""
    chunksize: int | None = None
    """Items per pool task; None lets `fetcher.pool.auto_chunksize` choose."""
    layout: Layout = Layout.FLAT
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_s: float = 30.0
    """Connect timeout and longest silence while reading, per request."""
    overwrite: bool = False
    """Re-fetch items already complete instead of reporting them `skipped`."""
    update: bool = False
    """Mirror mode: ask again about items already complete (conditional GET; local files
    by size and mtime); `unchanged` when they are, re-fetched when they are not."""
    per_host: int = DEFAULT_PER_HOST
    """Concurrent requests to one host."""
    rate: float | None = None
    """Request starts per second, over all hosts; None for no limit."""
    max_redirects: int = 10
    headers: tuple[tuple[str, str], ...] = ()
    """Extra request headers, in order."""
    max_size: int | None = None
    """An item whose body exceeds this many bytes fails (decoded bytes with `compressed`)."""
    limit_rate: float | None = None
    """Bytes per second over the whole run (all items together); None for no limit."""
    compressed: bool = False
    """Ask for gzip/deflate (br when the `brotli` module is installed) and save bodies
    decoded, as `curl --compressed` does; by default bodies are saved exactly as served."""
    verify: bool | str = True
    """TLS verification: True, False, or a CA bundle path."""
    deadline_s: float | None = None
    """Total time for one item, retries included; None for no limit."""
    stream_to: BinaryIO | None = None
    """When set, bodies go here in input order and no output files are kept."""
    cookies: Path | None = None
    """A Netscape/Mozilla cookie file: loaded at the start (if it exists), saved at the end
    with every cookie the servers set. The run's one jar is shared by all its threads, so
    such a run stays on one process."""
    cluster: object | None = None
    """Run on a Dask cluster: a scheduler address ('tcp://host:8786'), 'local:N' for a local
    cluster of N worker processes, or a `distributed.Client` the caller already has. Needs
    the `fetcher[dask]` extra."""
    manifest: Path | None = None
    """Where the run writes its manifest (JSON Lines, or CSV for a `.csv` path); None for
    none. A run with a manifest and an output dir can later be retried (`retry_failed`)."""

    def __post_init__(self) -> None:
        for wrong, message in _CHECKS:
            if wrong(self):
                raise UsageError(message)

    def rules(self) -> dict[str, Any]:
        """The options that decide how each item is fetched, checked and named, as JSON:
        what `fetcher retry` applies again to the items that failed."""
        rules: dict[str, Any] = {name: getattr(self, name) for name in PLAIN_RULES}
        rules["layout"] = self.layout.value
        rules["retry"] = {
            "retries": self.retry.retries,
            "backoff_s": self.retry.backoff_s,
            "max_wait_s": self.retry.max_wait_s,
            "statuses": sorted(self.retry.statuses),
        }
        rules["headers"] = [list(pair) for pair in self.headers]
        rules["cookies"] = None if self.cookies is None else str(self.cookies.absolute())
        return rules

    def with_rules(self, rules: dict[str, Any]) -> FetchOptions:
        """These options, with the rules a run recorded (see `rules`)."""
        retry = rules["retry"]
        return replace(
            self,
            **{name: rules[name] for name in PLAIN_RULES if name in rules},
            layout=Layout(rules["layout"]),
            retry=RetryPolicy(
                retries=retry["retries"],
                backoff_s=retry["backoff_s"],
                max_wait_s=retry["max_wait_s"],
                statuses=frozenset(retry["statuses"]),
            ),
            headers=tuple((name, value) for name, value in rules["headers"]),
            cookies=None if rules.get("cookies") is None else Path(rules["cookies"]),
        )


_CHECKS: tuple[tuple[Callable[[FetchOptions], bool], str], ...] = (
    (lambda o: o.workers < 1, "--workers must be at least 1"),
    (lambda o: _below(o.processes, 1), "--processes must be 'auto' or at least 1"),
    (lambda o: _below(o.chunksize, 1), "--chunksize must be 'auto' or at least 1"),
    (lambda o: o.timeout_s <= 0, "--timeout must be more than 0 seconds"),
    (lambda o: _below(o.max_size, 0), "--max-size must be 0 or more"),
    (lambda o: _below(o.deadline_s, 1e-9), "--deadline must be more than 0 seconds"),
    (lambda o: o.per_host < 1, "--per-host must be at least 1"),
    (lambda o: _below(o.rate, 1e-9), "--rate must be more than 0 per second"),
    (lambda o: _below(o.limit_rate, 1), "--limit-rate must be at least 1 byte per second"),
    (lambda o: o.overwrite and o.update, "--overwrite and --update contradict each other"),
    (
        lambda o: o.cluster is not None and o.processes is not None,
        "--processes does not apply to --cluster runs: each Dask worker runs --workers threads",
    ),
    (
        lambda o: o.cookies is not None and ((o.processes or 1) > 1 or o.cluster is not None),
        "--cookies keeps one cookie jar for the run, on one process: drop --processes or --cluster",
    ),
)  # fmt: skip
"""What no run can do: each a usage error, found before anything starts."""


def _below(value: float | None, least: float) -> bool:
    return value is not None and value < least


PLAIN_RULES = (
    "timeout_s", "per_host", "rate", "max_redirects", "max_size", "verify", "deadline_s",
    "limit_rate", "compressed",
)  # fmt: skip
"""`FetchOptions` fields that are part of a run's rules as they are (with `layout`, `retry`
and `headers`, see `FetchOptions.rules`); the others (how many workers, where the output
goes) are how a run is carried out, not what it does."""


_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?)(i?B?)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'1500', '64K', '10M', '2G' to bytes (binary multiples, as `du` and `curl` use)."""
    match = _SIZE.match(text)
    if not match:
        raise UsageError(f"not a size: {text!r} (use a number with an optional K, M, G or T)")
    number, unit = int(match.group(1)), match.group(2).upper()
    return number * 1024 ** "_KMGT".index(unit) if unit else number


def parse_rate(text: str) -> float:
    """'10', '10/s', '2.5/s' or '120/m' to request starts per second."""
    match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*([sm]))?\s*$", text)
    if not match or float(match.group(1)) <= 0:
        raise UsageError(f"not a rate: {text!r} (use e.g. 10/s or 120/m)")
    return float(match.group(1)) / (60 if match.group(2) == "m" else 1)


def parse_checksum(text: str) -> tuple[str, str]:
    """'sha256:HEX' or 'md5:HEX' as given to --checksum."""
    algorithm, _, digest = text.partition(":")
    algorithm, digest = algorithm.strip().lower(), digest.strip().lower()
    length = {"sha256": 64, "md5": 32}.get(algorithm)
    if length is None or len(digest) != length or not re.fullmatch(r"[0-9a-f]+", digest):
        raise UsageError(f"not a checksum: {text!r} (use sha256:HEX or md5:HEX)")
    return algorithm, digest


def parse_header(text: str) -> tuple[str, str]:
    """'Name: value' as given to -H."""
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not name or any(c.isspace() for c in name):
        raise UsageError(f"not a header: {text!r} (use 'Name: value')")
    if any(c in value for c in "\r\n\0"):
        raise UsageError(f"header value of {name!r} contains a line break or NUL")
    return name, value.strip()


def parse_headers(headers: Iterable[str]) -> tuple[tuple[str, str], ...]:
    return tuple(parse_header(h) for h in headers)


def merge_headers(
    kept: tuple[tuple[str, str], ...], given: tuple[tuple[str, str], ...]
) -> tuple[tuple[str, str], ...]:
    """`kept`, except the headers `given` names again, then `given`."""
    names = {name.lower() for name, _ in given}
    return tuple(h for h in kept if h[0].lower() not in names) + given


def parse_statuses(text: str) -> frozenset[int]:
    """'429,503' as given to --retry-on."""
    try:
        codes = frozenset(int(code) for code in text.split(",") if code.strip())
    except ValueError:
        raise UsageError(f"--retry-on takes HTTP status codes like 429,503, not {text!r}") from None
    if any(not 100 <= code <= 599 for code in codes):
        raise UsageError(f"--retry-on: status codes run from 100 to 599: {text!r}")
    return codes


def parse_layout(text: str) -> Layout:
    """'flat', 'mirror' or 'indexed', as given to --layout."""
    return parse_choice(Layout, "--layout", text)


def parse_choice(kind: type[_Choice], option: str, text: str) -> _Choice:
    """One of an enumeration's values, as given to `option`, whatever its case."""
    try:
        return kind(text.strip().lower())
    except ValueError:
        choices = ", ".join(choice.value for choice in kind)
        raise UsageError(f"{option} takes one of {choices}, not {text!r}") from None


def parse_processes(text: str) -> int | None:
    """'auto' (None: decided during the run) or a number, as given to --processes."""
    return _auto_or_number("--processes", text)


def parse_chunksize(text: str) -> int | None:
    """'auto' (None: the program decides) or a number, as given to --chunksize."""
    return _auto_or_number("--chunksize", text)


def _auto_or_number(option: str, text: str) -> int | None:
    if text == "auto":
        return None
    if not text.isdigit():
        raise UsageError(f"{option} must be 'auto' or a number, not {text!r}")
    return int(text)


def tls_verify(insecure: bool, ca_bundle: Path | None) -> bool | str:
    """`FetchOptions.verify` from --insecure / --ca-bundle, checked."""
    if insecure and ca_bundle is not None:
        raise UsageError("--insecure and --ca-bundle contradict each other")
    if ca_bundle is not None and not ca_bundle.is_file():
        raise UsageError(f"CA bundle not found: {ca_bundle}")
    return False if insecure else (str(ca_bundle.absolute()) if ca_bundle else True)


_CLUSTER = re.compile(r"^(local:[1-9]\d*|([a-z][a-z0-9+.-]*://)?[^\s/:]+(:\d+)?)$")


def parse_cluster(text: str) -> str:
    """'local:N' or a scheduler address ('tcp://host:8786', 'host:8786'), as given to
    --cluster; which of them answers is found out when the run starts."""
    if not _CLUSTER.match(text.strip()):
        raise UsageError(
            f"--cluster takes a scheduler address (tcp://host:8786) or local:N, not {text!r}"
        )
    return text.strip()
