"""One worker thread's HTTP session (`requests.Session` is not promised thread-safe), with
two ways to send a plain GET:

- `stream_get`, requests' own path (`PreparedRequest` + `Session.send`): redirects,
  cookies, auth and proxies exactly as requests handles them;
- `direct_get`, for the common case of a GET with nothing of that to do (no proxy, no
  credentials, no cookie to send): straight to the urllib3 pool that this session's
  `HTTPAdapter` owns for the host, with the same pool, TLS settings, headers and timeouts.
  It saves requests' per-request preparation, adapter lookup and response building (about
  a third of the client's CPU per small file, measured). A redirect answered there is
  handed back to requests (`Session.resolve_redirects`), and a `Set-Cookie` goes into the
  jar the way requests puts it there, so behaviour stays requests'.
"""

from __future__ import annotations

import re
from typing import Any, Protocol
from urllib.parse import SplitResult

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.cookies import RequestsCookieJar, extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict
from requests.utils import requote_uri

from fetcher.watch import WatchedHTTPPool, WatchedHTTPSPool

HOSTS_KEPT = 64
"""Hosts whose keep-alive connections the run keeps open at once."""
_REQUESTS_ADAPTERS = HTTPAdapter.__module__
REDIRECT_STATUSES = frozenset(requests.models.REDIRECT_STATI)
_PLAIN_URL = re.compile(r"^[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]+$")
"""URLs that need no encoding work (IDNA hosts, non-ASCII paths go through requests)."""


def requests_patched() -> bool:
    """Whether something (a test library such as `responses`) has replaced requests'
    `HTTPAdapter.send` in this process: then every request must go through it."""
    return HTTPAdapter.send.__module__ != _REQUESTS_ADAPTERS


class Answer(Protocol):
    """What the downloader reads of a response, whichever path sent the request."""

    @property
    def status_code(self) -> int: ...

    @property
    def reason(self) -> str | None: ...

    @property
    def url(self) -> str: ...

    @property
    def headers(self) -> Any: ...

    @property
    def history(self) -> Any: ...

    @property
    def raw(self) -> Any: ...

    def close(self) -> None: ...

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: object) -> Any: ...


class DirectAnswer:
    """A response read straight from urllib3 (no redirect was followed)."""

    __slots__ = ("headers", "raw", "reason", "status_code", "url")
    history = ()

    def __init__(self, raw: urllib3.BaseHTTPResponse, url: str) -> None:
        self.raw = raw
        self.url = url
        self.status_code = raw.status
        self.reason = raw.reason
        self.headers = raw.headers

    def close(self) -> None:
        """As `requests.Response.close`: a body not read to its end closes the connection."""
        self.raw.close()
        self.raw.release_conn()

    def __enter__(self) -> DirectAnswer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def shared_adapter(per_host: int) -> HTTPAdapter:
    """The connection pools of a run, one per host, shared by all its threads' sessions
    (urllib3's pools are thread-safe; requests' Session, with its cookies and settings, is
    what is not): a connection is reused by whichever thread asks that host next, so a
    run opens about `per_host` connections per host, not one per thread."""
    adapter = HTTPAdapter(pool_connections=HOSTS_KEPT, pool_maxsize=per_host, max_retries=0)
    adapter.poolmanager.pool_classes_by_scheme = {
        "http": WatchedHTTPPool,
        "https": WatchedHTTPSPool,
    }
    return adapter


class Session(requests.Session):
    """A Session that drops the caller's -H headers once a redirect leaves the original host
    (requests itself only drops `Authorization`) and keeps them, Cookie included, while it
    stays on that host. A -H header that replaced one of fetcher's own defaults (a
    User-Agent, an Accept) gets the default back on the other host."""

    def __init__(
        self,
        *,
        defaults: dict[str, str],
        headers: CaseInsensitiveDict[str],
        private: dict[str, str],
        verify: bool | str,
        max_redirects: int,
        cookies: RequestsCookieJar,
        adapter: HTTPAdapter,
    ) -> None:
        super().__init__()
        self._defaults = CaseInsensitiveDict(defaults)
        self._private = private
        self.adapter = adapter
        self.mount("http://", self.adapter)
        self.mount("https://", self.adapter)
        self.max_redirects = max_redirects
        self.trust_env = False  # the transport applies the environment, once per host
        self.verify = verify
        self.headers = headers  # type: ignore[assignment]  # requests' own type is narrower
        self.cookies = cookies
        self._plain_headers = dict(headers)

    def rebuild_auth(self, prepared_request: Any, response: Any) -> None:
        if self.should_strip_auth(response.request.url, prepared_request.url):  # type: ignore[no-untyped-call]
            for name in self._private:
                prepared_request.headers.pop(name, None)
                if name in self._defaults:
                    prepared_request.headers[name] = self._defaults[name]
        elif "cookie" in self._private:
            # requests drops the Cookie header on every redirect and rebuilds it from its
            # jar; a -H cookie stays with its host, as the other -H headers do.
            jar = prepared_request.headers.get("Cookie")
            given = self._private["cookie"]
            prepared_request.headers["Cookie"] = f"{given}; {jar}" if jar else given
        super().rebuild_auth(prepared_request, response)  # type: ignore[no-untyped-call]

    def prepared_get(
        self, url: str, headers: dict[str, str] | None, auth: tuple[str, str] | None = None
    ) -> requests.PreparedRequest:
        """The GET `Session.request` would prepare, without its generic merging of every
        session setting (about a fifth of requests' CPU per small item)."""
        merged = CaseInsensitiveDict(self.headers)
        if headers:
            merged.update(headers)
        # A copy, as `Session.request` makes: cookies set during redirects stay with them.
        jar = self.cookies.copy() if self.cookies else None
        request = requests.PreparedRequest()
        request.prepare(method="GET", url=url, headers=merged, auth=auth, cookies=jar)
        return request

    def stream_get(
        self,
        url: str,
        headers: dict[str, str] | None,
        *,
        timeout: float,
        proxies: dict[str, str],
        auth: tuple[str, str] | None,
    ) -> requests.Response:
        """`self.get(url, stream=True, ...)`: requests' path, for everything."""
        request = self.prepared_get(url, headers, auth)
        return self.send(
            request,
            stream=True,
            timeout=(timeout, timeout),
            proxies=proxies,
            verify=self.verify,
            cert=None,
        )

    def can_go_direct(self, url: str, parts: SplitResult) -> bool:
        """Nothing in this GET needs requests' machinery: no cookie to send, no credentials
        in the URL, nothing to encode (proxies and .netrc are the transport's to check),
        and requests' adapter is requests' own: a library that patches
        `HTTPAdapter.send` (`responses`, for one) sees every request."""
        return (
            not requests_patched()
            and not self.cookies
            and parts.username is None
            and _PLAIN_URL.match(url) is not None
        )

    def direct_get(
        self,
        url: str,
        parts: SplitResult,
        headers: dict[str, str] | None,
        *,
        timeout: float,
        pool_key: tuple[Any, Any],
    ) -> Answer:
        """The GET sent on the adapter's own pool for the host (`pool_key`: the adapter's
        `build_connection_pool_key_attributes` for it, looked up once per host)."""
        sent = {**self._plain_headers, **headers} if headers else self._plain_headers
        host_params, pool_kwargs = pool_key
        pool = self.adapter.poolmanager.connection_from_host(**host_params, pool_kwargs=pool_kwargs)
        path = requote_uri(
            f"{parts.path or '/'}?{parts.query}" if parts.query else parts.path or "/"
        )
        raw = pool.urlopen(
            "GET",
            path,
            headers=sent,
            redirect=False,
            assert_same_host=False,
            preload_content=False,
            decode_content=False,
            retries=self.adapter.max_retries,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
        )
        if raw.status in REDIRECT_STATUSES and "location" in raw.headers:
            return self._follow(url, headers, raw, timeout)
        if "set-cookie" in raw.headers:
            extract_cookies_to_jar(self.cookies, self.prepared_get(url, headers), raw)  # type: ignore[no-untyped-call]
        return DirectAnswer(raw, url)

    def _follow(
        self,
        url: str,
        headers: dict[str, str] | None,
        raw: urllib3.BaseHTTPResponse,
        timeout: float,
    ) -> requests.Response:
        """A redirect answered on the direct path, followed as `Session.send` does."""
        request = self.prepared_get(url, headers)
        first = self.adapter.build_response(request, raw)
        extract_cookies_to_jar(self.cookies, request, raw)  # type: ignore[no-untyped-call]
        history = list(
            self.resolve_redirects(
                first,
                request,
                stream=True,
                timeout=(timeout, timeout),
                verify=self.verify,  # type: ignore[arg-type]  # requests takes a CA path too
                cert=None,
                proxies={},
            )
        )
        if not history:
            return first
        history.insert(0, first)
        last: requests.Response = history.pop()
        last.history = history
        return last
