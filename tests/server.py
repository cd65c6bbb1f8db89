"""Fault-injecting HTTP/1.1 server on 127.0.0.1: each route reproduces one failure a bulk
fetcher must survive (truncation, stalls, redirect loops, hostile headers, transient errors).
Query values are decoded as latin-1, so percent-encoded bytes reach headers/bodies unchanged.
/file and /mutable act like a real static server (validators, ranges, 304s; logic in
tests/server_resources.py); absolute-URI request lines are answered as a stand-in proxy.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import re
import socket
import socketserver
import sys
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from email.utils import formatdate
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from tests.server_resources import (
    Conditions,
    LogEntry,
    Reply,
    Representation,
    ResourceBook,
    basic_credentials,
    evaluate,
    quote_etag,
    shift_http_date,
)

HOST = "127.0.0.1"
_BLOCK = 4096
_PIECE = 1 << 20  # /stream write size: large bodies are never held whole in memory
_ABSOLUTE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")  # request line sent to a proxy
FILE_LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"  # /file default; etag_after adds a day

Query = dict[str, list[str]]
RequestRecord = tuple[str, str, dict[str, str]]
HeaderList = Sequence[tuple[str, str]]


@lru_cache(maxsize=256)
def _block(name: str) -> bytes:
    seed = name.encode()
    return b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(128))


def body_for(name: str, size: int) -> bytes:
    """Deterministic bytes served by /bytes/<name>, so tests can predict content cheaply."""
    return (_block(name) * (size // _BLOCK + 1))[:size]


@lru_cache(maxsize=1)
def stream_block() -> bytes:
    """The 1 MiB unit of /stream content; bodies are this block repeated and truncated."""
    return body_for("stream", _PIECE)


def _stream_pieces(size: int) -> Iterator[memoryview]:
    block = memoryview(stream_block())
    for start in range(0, size, _PIECE):
        yield block[: min(_PIECE, size - start)]


def stream_sha256(size: int) -> str:
    """Expected sha256 hex digest of /stream?size=<size>, computed without a big buffer."""
    digest = hashlib.sha256()
    for piece in _stream_pieces(size):
        digest.update(piece)
    return digest.hexdigest()


def file_body(name: str, size: int, version: int = 1) -> bytes:
    """Content of /file/<name>?size=<size>; version 2 is what etag_after switches to."""
    if version not in (1, 2):
        raise ValueError("version must be 1 or 2")
    return body_for(name if version == 1 else f"{name}-v2", size)


def file_etag(name: str, size: int) -> str:
    """Default (quoted) ETag of /file/<name>?size=<size>: stable across runs and servers."""
    return f'"{hashlib.sha1(f"{name}:{size}".encode()).hexdigest()[:16]}"'


def _param(q: Query, key: str, default: str | None = None) -> str:
    values = q.get(key)
    if values:
        return values[0]
    if default is None:
        raise ValueError(f"missing query parameter {key!r}")
    return default


def _int(q: Query, key: str, default: int | None = None) -> int:
    value = int(_param(q, key, None if default is None else str(default)))
    if value < 0:
        raise ValueError(f"{key} must be >= 0")
    return value


def _flag(q: Query, key: str, default: bool) -> bool:
    value = _param(q, key, "1" if default else "0")
    if value not in ("0", "1"):
        raise ValueError(f"{key} must be 0 or 1")
    return value == "1"


def _seconds(q: Query, key: str, default: float) -> float:
    value = float(_param(q, key, str(default)))
    if not 0 <= value <= 3600:  # also rejects nan and inf, which Event.wait cannot take
        raise ValueError(f"{key} must be between 0 and 3600")
    return value


class _Server(ThreadingHTTPServer):
    """Holds the shared bookkeeping and tracks open connections so stop() can cut them."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # the default backlog of 5 drops SYNs under parallel fetches

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.stopping = threading.Event()
        self.seen: list[RequestRecord] = []
        self.in_flight = 0
        self.peak = 0
        self.flaky: dict[str, int] = {}
        self.book = ResourceBook()  # /file, /mutable and /count state
        self.conns: set[socket.socket] = set()
        super().__init__((HOST, 0), _Handler)

    def server_bind(self) -> None:
        """Skip HTTPServer's socket.getfqdn(), a reverse lookup that may query DNS."""
        socketserver.TCPServer.server_bind(self)
        self.server_name = HOST
        self.server_port = int(self.socket.getsockname()[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.lock:
            self.conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        with self.lock:
            self.conns.discard(request)
            self.lock.notify_all()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Fault tests hang up mid-response on purpose; only report non-network errors."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def close_connections(self, timeout: float) -> None:
        """Wake handlers blocked on idle keep-alive reads, then wait briefly for them."""
        with self.lock:
            for conn in self.conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self.lock.wait_for(lambda: not self.conns, timeout)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # tiny writes (trickle, headers) must not wait on ACKs
    timeout = 60  # idle keep-alive connections eventually go away on their own

    server: _Server  # narrowed: handlers read the shared bookkeeping

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: requests_seen is the log, and stderr noise hides real failures."""

    def do_GET(self) -> None:
        split, srv = urlsplit(self.path), self.server
        with srv.lock:
            srv.seen.append((self.command, self.path, dict(self.headers.items())))
            srv.in_flight += 1
            srv.peak = max(srv.peak, srv.in_flight)
        try:
            if _ABSOLUTE_URI.match(self.path):  # never routed: the test only checks proxy use
                self._send(200, b"via-proxy " + self.path.encode("latin-1"))
                return
            head, _, arg = split.path.lstrip("/").partition("/")
            route = self.ROUTES.get(head)
            if route is None or route[0] != bool(arg):
                self._send(404, b"not found\n")
            else:
                query = parse_qs(split.query, keep_blank_values=True, encoding="latin-1")
                route[1](self, unquote(arg), query)
        except ValueError as exc:  # routes validate parameters before sending anything
            self._send(400, f"bad request: {exc}\n".encode())
        finally:
            with srv.lock:
                srv.in_flight -= 1

    do_HEAD = do_GET

    def _sleep(self, seconds: float) -> None:
        """Interruptible by stop(); the abort drops the connection (handle_error ignores it)."""
        if self.server.stopping.wait(seconds):
            raise ConnectionAbortedError("server stopping")

    def _start(self, code: int, length: int | None, headers: HeaderList = ()) -> bool:
        """Send status and headers; return whether a body should follow (not for HEAD)."""
        self.send_response(code)
        if length is not None:
            self.send_header("Content-Length", str(length))
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        return self.command != "HEAD"

    def _send(self, code: int, body: bytes, headers: HeaderList = ()) -> None:
        if self._start(code, len(body), headers):
            self.wfile.write(body)

    def _hang_up(self) -> None:
        """Close mid-body so the client sees a premature EOF rather than a clean end."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _bytes(self, name: str, q: Query) -> None:
        body = body_for(name, _int(q, "size", 1024))
        self._sleep(_seconds(q, "delay", 0.0))
        self._send(200, body)

    def _stream(self, _: str, q: Query) -> None:
        size = _int(q, "size")
        if self._start(200, size):
            for piece in _stream_pieces(size):
                self.wfile.write(piece)

    def _truncate(self, _: str, q: Query) -> None:
        size = _int(q, "size")
        send = min(size, _int(q, "send", size // 2))
        if self._start(200, size):
            self.wfile.write(body_for("truncate", send))
            self._hang_up()

    def _chunked_truncate(self, _: str, q: Query) -> None:
        send = max(1, _int(q, "send", 100))  # a 0-size chunk would end the body cleanly
        if self._start(200, None, [("Transfer-Encoding", "chunked")]):
            self.wfile.write(b"%x\r\n%s\r\n" % (send, body_for("chunked", send)))
            self._hang_up()

    def _slow(self, _: str, q: Query) -> None:
        self._sleep(_seconds(q, "delay", 1.0))
        self._send(200, b"slow\n")

    def _trickle(self, _: str, q: Query) -> None:
        size, interval = _int(q, "size", 10), _seconds(q, "interval", 0.1)
        body = body_for("trickle", size)
        if self._start(200, size):
            for i in range(size):
                self._sleep(interval)
                self.wfile.write(body[i : i + 1])

    def _status(self, code_text: str, _: Query) -> None:
        code = int(code_text)
        if not 200 <= code <= 599:
            raise ValueError("status must be 200-599")
        if code in (204, 304):  # these must not carry a body
            self._start(code, None)
        else:
            self._send(code, f"status {code}\n".encode())

    def _redirect(self, _: str, q: Query) -> None:
        self._send(_int(q, "code", 302), b"", [("Location", _param(q, "to"))])

    def _redirect_chain(self, n_text: str, _: Query) -> None:
        n = int(n_text)
        if n <= 0:
            self._send(200, b"end")
        else:
            self._send(302, b"", [("Location", f"/redirect-chain/{n - 1}")])

    def _redirect_loop(self, _: str, __: Query) -> None:
        self._send(302, b"", [("Location", "/redirect-loop")])

    def _cd(self, _: str, q: Query) -> None:
        body = _param(q, "body", "cd-body").encode("latin-1")
        self._send(200, body, [("Content-Disposition", _param(q, "name"))])

    def _flaky(self, key: str, q: Query) -> None:
        fail, code, retry_after = _int(q, "fail", 1), _int(q, "code", 503), q.get("retry_after")
        with self.server.lock:
            self.server.flaky[key] = hits = self.server.flaky.get(key, 0) + 1
        if hits > fail:
            self._send(200, body_for(key, 1000))
        else:
            headers = [("Retry-After", retry_after[0])] if retry_after else []
            self._send(code, b"flaky failure\n", headers)

    def _headers(self, _: str, __: Query) -> None:
        body = json.dumps(dict(self.headers.items())).encode()
        self._send(200, body, [("Content-Type", "application/json")])

    def _conditions(self) -> Conditions:
        get = self.headers.get
        return Conditions(
            get("Range"), get("If-Range"), get("If-None-Match"), get("If-Modified-Since")
        )

    def _deliver(
        self, name: str, cond: Conditions, reply: Reply, cut: int | None = None, bps: int = 0
    ) -> None:
        """Log, then send `reply`; a body reaching absolute offset `cut` stops there and the
        connection drops. Logging first means a client holding the response sees its entry.
        `bps` throttles the body (bytes per second) so a test can catch a transfer mid-way."""
        body = reply.body if self.command == "GET" else b""
        if cut is not None:
            body = body[: max(0, cut - reply.start)]
        self.server.book.record(name, cond, reply.status, len(body))
        if self._start(reply.status, reply.length, reply.headers):
            piece = max(bps // 10, 1) if bps else len(body) or 1
            for start in range(0, len(body), piece):
                self.wfile.write(body[start : start + piece])
                if bps:
                    self._sleep(piece / bps)
            if cut is not None:
                self._hang_up()

    def _file(self, name: str, q: Query) -> None:
        size, ranges = _int(q, "size", 1024), _flag(q, "ranges", True)
        cut_at, cut_times = _int(q, "cut") if "cut" in q else None, _int(q, "cut_times", 1)
        tag = _param(q, "etag", "")
        etag = None if tag == "none" else quote_etag(tag) if tag else file_etag(name, size)
        if "lm" in q and "mtime" in q:
            raise ValueError("give lm or mtime, not both")
        modified = _param(q, "lm", "") or FILE_LAST_MODIFIED
        if "mtime" in q:
            modified = formatdate(_int(q, "mtime"), usegmt=True)
        last_modified = None if modified == "none" else modified
        rep = Representation(file_body(name, size), etag, last_modified)
        if "etag_after" in q:  # validated before next_turn, so a 400 never uses up a turn
            later = None if last_modified is None else shift_http_date(last_modified, 1)
            changed = Representation(
                file_body(name, size, 2), quote_etag(_param(q, "etag_after")), later
            )
            rep = changed if self.server.book.next_turn(name) else rep
        cond = self._conditions()
        reply = evaluate(rep, cond, method=self.command, ranges=ranges)
        sends_past_cut = cut_at is not None and reply.start + len(reply.body) > cut_at
        breaks = (
            sends_past_cut
            and self.command == "GET"
            and reply.status in (200, 206)
            and self.server.book.claim_cut(name, cut_times)
        )
        self._deliver(name, cond, reply, cut_at if breaks else None, _int(q, "bps", 0))

    def _mutable(self, name: str, _: Query) -> None:
        cond, rep = self._conditions(), self.server.book.mutable(name)
        if rep is None:
            missing = b"not found\n"
            self._deliver(name, cond, Reply(404, [], len(missing), 0, missing))
        else:
            self._deliver(name, cond, evaluate(rep, cond, method=self.command, ranges=False))

    def _count(self, key: str, q: Query) -> None:
        body = body_for(key, _int(q, "size", 1024))
        self._sleep(_seconds(q, "delay", 0.0))
        if self.command == "GET":  # counted before sending, so a client that has it sees it
            self.server.book.hit(key)
        self._send(200, body)

    def _cookies(self, action: str, q: Query) -> None:
        """/cookies/set?name=value[&path=...] sets cookies; /cookies/show echoes the Cookie
        header the client sent (JSON: {"cookie": ...})."""
        if action == "set":
            extra = f"; Path={_param(q, 'path')}" if "path" in q else "; Path=/"
            headers = [
                ("Set-Cookie", f"{name}={values[0]}{extra}")
                for name, values in q.items()
                if name != "path"
            ]
            self._send(200, b"set\n", headers)
        elif action == "show":
            sent = json.dumps({"cookie": self.headers.get("Cookie")}).encode()
            self._send(200, sent, [("Content-Type", "application/json")])
        else:
            raise ValueError("use /cookies/set or /cookies/show")

    def _encoded(self, name: str, q: Query) -> None:
        """/encoded/<name>?size=N&coding=gzip|deflate|br: body_for(name, N) sent with that
        Content-Encoding when the client accepts it, as is otherwise."""
        body, coding = body_for(name, _int(q, "size", 1024)), _param(q, "coding", "gzip")
        if coding not in (self.headers.get("Accept-Encoding") or ""):
            self._send(200, body)
            return
        packed = {"gzip": gzip.compress, "deflate": zlib.compress}.get(coding)
        if packed is None:
            import brotli  # type: ignore[import-not-found]  # only when a test asks for br

            packed = brotli.compress
        self._send(200, packed(body), [("Content-Encoding", coding)])

    def _auth(self, _: str, q: Query) -> None:
        expected = f"{_param(q, 'user')}:{_param(q, 'password')}".encode("latin-1")
        if basic_credentials(self.headers.get("Authorization")) == expected:
            self._send(200, b"authorized")
        else:
            self._send(401, b"unauthorized\n", [("WWW-Authenticate", 'Basic realm="t"')])

    # first path segment -> (takes a second segment, handler)
    ROUTES: ClassVar[dict[str, tuple[bool, Callable[[_Handler, str, Query], None]]]] = {
        "bytes": (True, _bytes),
        "stream": (False, _stream),
        "truncate": (False, _truncate),
        "chunked-truncate": (False, _chunked_truncate),
        "slow": (False, _slow),
        "trickle": (False, _trickle),
        "status": (True, _status),
        "redirect": (False, _redirect),
        "redirect-chain": (True, _redirect_chain),
        "redirect-loop": (False, _redirect_loop),
        "cd": (False, _cd),
        "flaky": (True, _flaky),
        "headers": (False, _headers),
        "file": (True, _file),
        "mutable": (True, _mutable),
        "count": (True, _count),
        "auth": (False, _auth),
        "cookies": (True, _cookies),
        "encoded": (True, _encoded),
    }


class TestServer:
    """Runs the fault server on an ephemeral 127.0.0.1 port with thread-safe bookkeeping."""

    __test__ = False  # the name matches pytest's Test* pattern; it is not a test class

    def __init__(self) -> None:
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def _srv(self) -> _Server:
        if self._server is None:
            raise RuntimeError("TestServer is not started")
        return self._server

    def start(self) -> TestServer:
        if self._server is not None:
            raise RuntimeError("TestServer can only be started once")
        self._server = _Server()
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Idempotent; returns promptly because sleeps and idle connections are cut."""
        server, thread = self._server, self._thread
        if server is None or thread is None or server.stopping.is_set():
            return
        server.stopping.set()
        server.shutdown()
        server.close_connections(timeout=1.0)
        server.server_close()
        thread.join()

    def __enter__(self) -> TestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self._srv.server_port}"

    def url(self, path: str) -> str:
        return self.base + ("" if path.startswith("/") else "/") + path

    @property
    def requests_seen(self) -> list[RequestRecord]:
        """Snapshot of (method, path-with-query, headers) in arrival order."""
        with self._srv.lock:
            return list(self._srv.seen)

    def count(self, path_prefix: str) -> int:
        with self._srv.lock:
            return sum(path.startswith(path_prefix) for _, path, _ in self._srv.seen)

    @property
    def max_concurrent(self) -> int:
        """Peak number of requests being handled at once (idle keep-alives don't count)."""
        with self._srv.lock:
            return self._srv.peak

    def file_log(self, name: str) -> list[LogEntry]:
        """Per request of /file/<name> or /mutable/<name>, in order: the range and conditional
        headers received (None if absent), the status sent and the body bytes written."""
        return self._srv.book.log(name)

    def set_mutable(
        self, name: str, body: bytes, etag: str | None = None, last_modified: str | None = None
    ) -> None:
        """Create or change /mutable/<name>; `etag` gets quotes unless it has them already."""
        quoted = None if etag is None else quote_etag(etag)
        for value in (quoted, last_modified):  # fail here, not inside a handler's send_header
            if value is not None:
                value.encode("latin-1")
        self._srv.book.set_mutable(name, Representation(bytes(body), quoted, last_modified))

    def hits(self, key: str) -> int:
        """Number of GETs /count/<key> answered, to prove an item was not fetched twice."""
        return self._srv.book.hits(key)

    def reset(self) -> None:
        """Forget requests, peak concurrency, flaky/hit counters and /file logs, and re-arm
        cut/etag_after (in-flight requests still count); /mutable content is kept."""
        with self._srv.lock:
            self._srv.seen.clear()
            self._srv.flaky.clear()
            self._srv.peak = self._srv.in_flight
        self._srv.book.reset()
