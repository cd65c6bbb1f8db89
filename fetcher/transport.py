"""HTTP with `requests`: one Session per worker thread, streaming GETs, statuses as errors.

`requests.Session` is not promised thread-safe, so each worker thread gets its own, with a
connection pool sized for a thread that runs one request at a time. This module is the one
place where requests' and urllib3's exceptions become item errors (`classify`, and
`body_blocks` for the errors raised while a body streams).
"""

from __future__ import annotations

import email.utils
import functools
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.structures import CaseInsensitiveDict

from fetcher.cookies import SharedJar
from fetcher.decoding import accepted_encodings
from fetcher.errors import ItemError
from fetcher.options import FetchOptions
from fetcher.results import ErrorType
from fetcher.session import Answer, Session, shared_adapter
from fetcher.temps import os_item_error
from fetcher.version import __version__

CHUNK_BYTES = 256 * 1024
"""Largest block read at once while streaming. Measured on 1 GiB + 8 x 64 MiB from a local
nginx: 128 KiB 704 MB/s, 256 KiB 859 MB/s (peak RSS 51 MiB), 512 KiB 789 MB/s, 1 MiB
627 MB/s (peak RSS 66 MiB): bigger blocks only add memory and cache misses."""
PASSED_STATUSES = frozenset({304, 416})
ORIGINS_CACHED = 4096
"""Origins whose environment (proxies, .netrc) and pool key are remembered per run."""


@dataclass(frozen=True)
class _Route:
    """How requests to one origin (scheme://[userinfo@]host[:port]) go out."""

    proxies: dict[str, str]
    auth: tuple[str, str] | None
    pool_key: tuple[Any, Any] | None
    """The adapter's pool key for the host, when its GETs can take the direct path."""


class Transport:
    """Opens streaming GETs on the calling thread's own Session.

    Sessions run with `trust_env=False`: requests would otherwise read the environment's
    proxy settings and parse `~/.netrc` again for every request. The transport applies the
    same environment itself, looked up once per origin: proxies (`HTTPS_PROXY`, `NO_PROXY`,
    …), `.netrc` credentials (unless an `Authorization` header was given) and the
    `REQUESTS_CA_BUNDLE`/`CURL_CA_BUNDLE` variables. An origin with neither proxy nor
    credentials gets the direct path (`Session.direct_get`).
    """

    def __init__(self, options: FetchOptions, cookies: SharedJar) -> None:
        self._options = options
        self._local = threading.local()
        self._sessions: list[Session] = []
        self._lock = threading.Lock()
        self._verify = _environment_verify(options.verify)
        self._cookies = cookies
        self._own_auth = any(name.lower() == "authorization" for name, _ in options.headers)
        self._defaults = {
            "User-Agent": f"fetcher/{__version__}",
            # Bytes as served: a .gz file must not be silently unpacked on the way
            # (unless asked to, with --compressed).
            "Accept-Encoding": accepted_encodings() if options.compressed else "identity",
            "Accept": "*/*",
            "Connection": "keep-alive",
        }
        headers = CaseInsensitiveDict(self._defaults)
        headers.update(dict(options.headers))
        self._headers = headers
        self._private = {name.lower(): value for name, value in options.headers}
        self._route = functools.lru_cache(maxsize=ORIGINS_CACHED)(self._route_to)
        self._adapter = shared_adapter(options.per_host)
        if options.verify is False:
            # The run warns once (see `fetcher.job`); not once per request.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    def _session(self) -> Session:
        session: Session | None = getattr(self._local, "session", None)
        if session is None:
            session = Session(
                defaults=self._defaults,
                headers=CaseInsensitiveDict(self._headers),
                private=self._private,
                verify=self._verify,
                max_redirects=self._options.max_redirects,
                cookies=self._cookies,
                adapter=self._adapter,
            )
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def _route_to(self, origin: str) -> _Route:
        """What requests would find in the environment for `origin`, and the pool key of
        the direct path when neither a proxy nor credentials are involved."""
        proxies = requests.utils.get_environ_proxies(origin)
        auth = None if self._own_auth else requests.utils.get_netrc_auth(origin)
        pool_key = None
        if not proxies and auth is None:
            probe = requests.PreparedRequest()
            probe.url = origin + "/"
            pool_key = self._session().adapter.build_connection_pool_key_attributes(
                probe, self._verify, None
            )
        return _Route(proxies, auth, pool_key)

    def open(
        self, url: str, headers: dict[str, str] | None = None, timeout_s: float | None = None
    ) -> Answer:
        """A response whose body is still unread: 2xx, or 304/416 (the caller asked for
        them with conditional or range headers); other statuses raise."""
        timeout = min(self._options.timeout_s, timeout_s or self._options.timeout_s)
        parts = urlsplit(url)
        route = self._route(f"{parts.scheme}://{parts.netloc}")
        session = self._session()
        response: Answer
        if route.pool_key is not None and session.can_go_direct(url, parts):
            response = session.direct_get(
                url, parts, headers, timeout=timeout, pool_key=route.pool_key
            )
        else:
            response = session.stream_get(
                url, headers, timeout=timeout, proxies=route.proxies, auth=route.auth
            )
        code = response.status_code
        if 200 <= code < 300 or code in PASSED_STATUSES:
            return response
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        response.close()
        raise ItemError(
            ErrorType.HTTP_STATUS,
            f"HTTP {code} {response.reason or ''}".rstrip(),
            retryable=code in self._options.retry.statuses,
            http_status=code,
            retry_after=retry_after,
        )

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        self._adapter.close()


def _environment_verify(verify: bool | str) -> bool | str:
    if verify is True:
        return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return verify


def body_blocks(response: Answer) -> Iterator[bytes]:
    """The body exactly as served, in large blocks: a gzip-encoded `.gz` file is saved as the
    `.gz` it is, and nothing is ever decompressed in memory. urllib3's errors while the body
    streams are translated here; they are the ones its own retries never see."""
    raw = response.raw
    try:
        # read1: whatever has arrived, up to a block, so a slow body still returns control
        # (for Ctrl-C, the deadline, the progress bar) instead of waiting for a full block.
        while block := raw.read1(CHUNK_BYTES, decode_content=False):
            yield block
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise ItemError(
            ErrorType.TIMEOUT, f"timed out reading the body: {exc}", retryable=True
        ) from exc
    except urllib3.exceptions.SSLError as exc:
        raise ItemError(ErrorType.TLS, f"TLS error while reading the body: {exc}") from exc
    except urllib3.exceptions.ProtocolError as exc:
        raise ItemError(ErrorType.TRUNCATED, f"body cut short: {exc}", retryable=True) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise ItemError(ErrorType.CONNECTION, f"connection failed: {exc}", retryable=True) from exc


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


_U3 = urllib3.exceptions
_ERRORS: tuple[tuple[type[Exception], ErrorType, str, bool], ...] = (
    # (exception, error type, message prefix, worth another attempt), tested in this order:
    # subclasses before the classes they derive from. requests' exceptions come from its
    # path; urllib3's, unwrapped from MaxRetryError, from the direct path, mapped as
    # requests' adapter maps them.
    (requests.exceptions.Timeout, ErrorType.TIMEOUT, "timed out", True),
    (requests.exceptions.SSLError, ErrorType.TLS, "TLS error", False),
    (requests.exceptions.ChunkedEncodingError, ErrorType.TRUNCATED, "body cut short", True),
    (requests.exceptions.ContentDecodingError, ErrorType.DECODE, "cannot decode body", False),
    (requests.exceptions.TooManyRedirects, ErrorType.TOO_MANY_REDIRECTS, "", False),
    (requests.exceptions.InvalidSchema, ErrorType.INVALID_URL, "", False),
    (requests.exceptions.InvalidURL, ErrorType.INVALID_URL, "", False),
    (requests.exceptions.ConnectionError, ErrorType.CONNECTION, "connection failed", True),
    (requests.exceptions.RequestException, ErrorType.HTTP, "", False),
    (_U3.NewConnectionError, ErrorType.CONNECTION, "connection failed", True),
    (_U3.TimeoutError, ErrorType.TIMEOUT, "timed out", True),
    (_U3.SSLError, ErrorType.TLS, "TLS error", False),
    (_U3.LocationValueError, ErrorType.INVALID_URL, "", False),
    (_U3.HTTPError, ErrorType.CONNECTION, "connection failed", True),
)


def classify(exc: Exception) -> ItemError:
    """Map any exception raised while fetching to a stable error type and retryability."""
    if isinstance(exc, ItemError):
        return exc
    if isinstance(exc, _U3.MaxRetryError) and isinstance(exc.reason, Exception):
        exc = exc.reason
    for kind, error_type, prefix, retryable in _ERRORS:
        if isinstance(exc, kind):
            message = f"{prefix}: {_reason(exc)}" if prefix else str(exc)
            return ItemError(error_type, message, retryable=retryable)
    if isinstance(exc, OSError):
        return os_item_error(exc, "I/O error")
    return ItemError(ErrorType.INTERNAL, f"{type(exc).__name__}: {exc}")


def _reason(exc: BaseException) -> str:
    """The innermost useful message: urllib3 wraps its errors several layers deep."""
    inner: BaseException = exc
    while inner.args and isinstance(inner.args[0], BaseException):
        inner = inner.args[0]
    reason = getattr(inner, "reason", None)
    text = str(reason if isinstance(reason, BaseException) else inner)
    # urllib3 prefixes the connection's repr: "HTTPConnection(host=..., port=...): ..."
    return re.sub(r"^\w+\(host=[^)]*\): ", "", text)
