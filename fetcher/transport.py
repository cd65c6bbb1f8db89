"""HTTP with `requests`: one Session per worker thread, streaming GETs, statuses as errors.

`requests.Session` is not promised thread-safe, so each worker thread gets its own, with a
connection pool sized for a thread that runs one request at a time. This module is the one
place where requests' and urllib3's exceptions become item errors (`classify`, and
`body_blocks` for the errors raised while a body streams).
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from fetcher.errors import ItemError
from fetcher.options import FetchOptions
from fetcher.results import ErrorType
from fetcher.temps import os_item_error
from fetcher.version import __version__

CHUNK_BYTES = 256 * 1024
"""Largest block read at once while streaming. Measured on 1 GiB + 8 x 64 MiB from a local
nginx: 128 KiB 704 MB/s, 256 KiB 859 MB/s (peak RSS 51 MiB), 512 KiB 789 MB/s, 1 MiB
627 MB/s (peak RSS 66 MiB): bigger blocks only add memory and cache misses."""
PASSED_STATUSES = frozenset({304, 416})
HOSTS_PER_THREAD = 32
ORIGINS_CACHED = 4096
"""Hosts whose keep-alive connections a thread keeps open at once."""


class _Session(requests.Session):
    """A Session that drops the caller's -H headers once a redirect leaves the original host
    (requests itself only drops `Authorization`) and keeps them, Cookie included, while it
    stays on that host."""

    def __init__(self, private_headers: dict[str, str]) -> None:
        super().__init__()
        self._private = private_headers

    def rebuild_auth(self, prepared_request: Any, response: Any) -> None:
        if self.should_strip_auth(response.request.url, prepared_request.url):  # type: ignore[no-untyped-call]
            for name in self._private:
                prepared_request.headers.pop(name, None)
        elif "cookie" in self._private:
            # requests drops the Cookie header on every redirect and rebuilds it from its
            # jar; a -H cookie stays with its host, as the other -H headers do.
            jar = prepared_request.headers.get("Cookie")
            given = self._private["cookie"]
            prepared_request.headers["Cookie"] = f"{given}; {jar}" if jar else given
        super().rebuild_auth(prepared_request, response)  # type: ignore[no-untyped-call]

    def stream_get(
        self,
        url: str,
        headers: dict[str, str] | None,
        *,
        timeout: tuple[float, float],
        proxies: dict[str, str],
        auth: tuple[str, str] | None,
    ) -> requests.Response:
        """`self.get(url, stream=True, ...)` without `Session.request`'s generic merging of
        every session setting into every request (about a fifth of requests' CPU time per small
        item, measured): the same headers, cookies, auth and redirect handling, built
        directly for a plain GET."""
        merged = CaseInsensitiveDict(self.headers)
        if headers:
            merged.update(headers)
        # A copy, as `Session.request` makes: cookies set during redirects stay with them.
        jar = self.cookies.copy() if self.cookies else None
        request = requests.PreparedRequest()
        request.prepare(method="GET", url=url, headers=merged, auth=auth, cookies=jar)
        return self.send(
            request, stream=True, timeout=timeout, proxies=proxies, verify=self.verify, cert=None
        )


_waiting = threading.local()
"""The `Watch` of the request the current thread is making, if it has a deadline."""


class Watch:
    """Cuts the connection of one request when its item's deadline passes: a socket timeout
    bounds each read, not a response whose headers trickle in a byte at a time."""

    def __init__(self, seconds: float) -> None:
        self._conn: Any = None
        self._cut = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Watch:
        _waiting.watch = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        _waiting.watch = None

    @property
    def expired(self) -> bool:
        """The connection was cut: whatever the request returned is not to be trusted."""
        return self._cut

    def attach(self, conn: Any) -> None:
        with self._lock:
            self._conn = conn
            if self._cut:
                _shutdown(conn)

    def _expire(self) -> None:
        with self._lock:
            self._cut = True
            if self._conn is not None:
                _shutdown(self._conn)


def _shutdown(conn: Any) -> None:
    sock = getattr(conn, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class _Watched:
    """Mixin for urllib3 connections: while a response is awaited, the thread's `Watch`
    (if any) holds the connection so it can cut it."""

    def getresponse(self) -> Any:
        watch = getattr(_waiting, "watch", None)
        if watch is not None:
            watch.attach(self)
        return super().getresponse()  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, urllib3.connection.HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, urllib3.connection.HTTPSConnection):
    pass


class _WatchedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class Transport:
    """Opens streaming GETs on the calling thread's own Session.

    Sessions run with `trust_env=False`: requests would otherwise read the environment's
    proxy settings and parse `~/.netrc` again for every request. The transport applies the
    same environment itself, looked up once per host: proxies (`HTTPS_PROXY`, `NO_PROXY`,
    …), `.netrc` credentials (unless an `Authorization` header was given) and the
    `REQUESTS_CA_BUNDLE`/`CURL_CA_BUNDLE` variables.
    """

    def __init__(self, options: FetchOptions) -> None:
        self._options = options
        self._local = threading.local()
        self._sessions: list[_Session] = []
        self._lock = threading.Lock()
        self._verify = _environment_verify(options.verify)
        self._own_auth = any(name.lower() == "authorization" for name, _ in options.headers)
        # Per run, per scheme://host: what requests would find in the environment.
        self._proxies = functools.lru_cache(maxsize=ORIGINS_CACHED)(
            requests.utils.get_environ_proxies
        )
        self._netrc_auth = functools.lru_cache(maxsize=ORIGINS_CACHED)(
            requests.utils.get_netrc_auth
        )

    def _session(self) -> _Session:
        session: _Session | None = getattr(self._local, "session", None)
        if session is None:
            session = _Session({name.lower(): value for name, value in self._options.headers})
            adapter = HTTPAdapter(pool_connections=HOSTS_PER_THREAD, pool_maxsize=1, max_retries=0)
            adapter.poolmanager.pool_classes_by_scheme = {
                "http": _WatchedHTTPPool,
                "https": _WatchedHTTPSPool,
            }
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.max_redirects = self._options.max_redirects
            session.trust_env = False
            session.verify = self._verify
            if self._options.verify is False:
                # The run warns once (see `fetcher.run`); not once per request.
                urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            # Bytes as served: a .gz file must not be silently unpacked on the way.
            session.headers["Accept-Encoding"] = "identity"
            session.headers["User-Agent"] = f"fetcher/{__version__}"
            session.headers.update(dict(self._options.headers))
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def open(
        self, url: str, headers: dict[str, str] | None = None, timeout_s: float | None = None
    ) -> requests.Response:
        """A response whose body is still unread: 2xx, or 304/416 (the caller asked for
        them with conditional or range headers); other statuses raise."""
        timeout = min(self._options.timeout_s, timeout_s or self._options.timeout_s)
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        response = self._session().stream_get(
            url,
            headers,
            timeout=(timeout, timeout),
            proxies=self._proxies(origin),
            auth=None if self._own_auth else self._netrc_auth(origin),
        )
        if 200 <= response.status_code < 300 or response.status_code in PASSED_STATUSES:
            return response
        code = response.status_code
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


def _environment_verify(verify: bool | str) -> bool | str:
    if verify is True:
        return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return verify


def body_blocks(response: requests.Response) -> Iterator[bytes]:
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


_REQUEST_ERRORS: tuple[tuple[type[Exception], ErrorType, str, bool], ...] = (
    # (requests' exception, error type, message prefix, worth another attempt), in the
    # order they must be tested: subclasses before the classes they derive from.
    (requests.exceptions.Timeout, ErrorType.TIMEOUT, "timed out", True),
    (requests.exceptions.SSLError, ErrorType.TLS, "TLS error", False),
    (requests.exceptions.ChunkedEncodingError, ErrorType.TRUNCATED, "body cut short", True),
    (requests.exceptions.ContentDecodingError, ErrorType.DECODE, "cannot decode body", False),
    (requests.exceptions.TooManyRedirects, ErrorType.TOO_MANY_REDIRECTS, "", False),
    (requests.exceptions.InvalidSchema, ErrorType.INVALID_URL, "", False),
    (requests.exceptions.InvalidURL, ErrorType.INVALID_URL, "", False),
    (requests.exceptions.ConnectionError, ErrorType.CONNECTION, "connection failed", True),
    (requests.exceptions.RequestException, ErrorType.HTTP, "", False),
)


def classify(exc: Exception) -> ItemError:
    """Map any exception raised while fetching to a stable error type and retryability."""
    if isinstance(exc, ItemError):
        return exc
    for kind, error_type, prefix, retryable in _REQUEST_ERRORS:
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
