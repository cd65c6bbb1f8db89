"""A small hostile HTTP(S) server for the security tests (tests/integration/test_hostile.py):
the cases tests/server.py does not do. Binds 127.0.0.1 (or 127.0.0.2) only.

Every path not under `/_/` is answered 200 with a body naming the raw request path, so URL
paths full of `..`, `%2f`, device names and the like reach the naming code as a real server
would let them. Control routes live under `/_/`:

  /_/cd?name=<raw Content-Disposition, latin-1>   200, body `cd-body`
  /_/headers                                      200, the request headers as JSON
  /_/redirect?to=<Location>&code=302              a redirect anywhere
  /_/pingpong?via=<base URL of another server>    a redirect to <via>/redirect?to=<this URL>,
                                                  an endless loop across two hosts
  /_/endless?mode=chunked|close                   a body that never ends
  /_/trickle?interval=0.2                         1 byte per interval, forever (Content-Length
                                                  claims 1 MB)
  /_/slow-headers?interval=0.2                    the header section, 1 byte per interval
  /_/big-header?size=N                            one response header line of N bytes
  /_/many-headers?n=N                             N response header lines
  /_/gzip-bomb?size=N                             N zero bytes gzip-compressed (gzip_bomb), with
                                                  Content-Encoding: gzip
  /_/overlong?length=N&send=M                     Content-Length: N, then M > N body bytes
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import ssl
import sys
import threading
import zlib
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

LOOPBACK_HOSTS = ("127.0.0.1", "127.0.0.2")
BODY_PREFIX = b"hostile-body:"


@lru_cache(maxsize=4)
def gzip_bomb(size: int) -> bytes:
    """`size` zero bytes (rounded down to whole MiB) as a gzip stream, made 1 MiB at a time:
    64 MiB become about 64 KB."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip framing
    block = bytes(1 << 20)
    parts = [packer.compress(block) for _ in range(size >> 20)]
    return b"".join([*parts, packer.flush()])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 64

    def __init__(self, host: str, tls: ssl.SSLContext | None) -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"the hostile server binds loopback only, not {host!r}")
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.conns: set[socket.socket] = set()
        self.tls = tls
        super().__init__((host, 0), _Handler)

    def server_bind(self) -> None:
        """No reverse DNS lookup of the bound address (HTTPServer would do one)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.socket.getsockname()[1])

    def finish_request(self, request: Any, client_address: Any) -> None:
        """TLS handshake in the handler thread, so a client that rejects the certificate
        never blocks the accept loop."""
        if self.tls is not None:
            request.settimeout(10)
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (OSError, ValueError):
                return  # e.g. the client refused the certificate
        with self.lock:
            self.conns.add(request)
        try:
            super().finish_request(request, client_address)
        finally:
            with self.lock:
                self.conns.discard(request)
            if self.tls is not None:  # the plain socket was detached by wrap_socket
                with contextlib.suppress(OSError):
                    request.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hang up on hostile responses on purpose: only report real bugs."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 30

    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: `requests_seen` is the log."""

    def _pause(self, seconds: float) -> None:
        if self.server.stopping.wait(seconds):
            raise ConnectionAbortedError("server stopping")

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.seen.append((self.path, dict(self.headers.items())))
        split = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(split.query, encoding="latin-1").items()}
        route = split.path[len("/_/") :] if split.path.startswith("/_/") else None
        handler = self.ROUTES.get(route or "", _Handler._any)
        handler(self, q)

    def _send(self, code: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers or []:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _any(self, _: dict[str, str]) -> None:
        self._send(200, BODY_PREFIX + self.path.encode("latin-1", "replace"))

    def _cd(self, q: dict[str, str]) -> None:
        self._send(200, b"cd-body", [("Content-Disposition", q["name"])])

    def _headers(self, _: dict[str, str]) -> None:
        self._send(200, json.dumps(dict(self.headers.items())).encode())

    def _redirect(self, q: dict[str, str]) -> None:
        self._send(int(q.get("code", "302")), b"", [("Location", q["to"])])

    def _pingpong(self, q: dict[str, str]) -> None:
        scheme = "https" if self.server.tls is not None else "http"
        here = f"{scheme}://{self.server.server_name}:{self.server.server_port}{self.path}"
        self._send(302, b"", [("Location", f"{q['via']}/redirect?to={quote(here, safe='')}")])

    def _endless(self, q: dict[str, str]) -> None:
        chunked = q.get("mode", "chunked") == "chunked"
        self.send_response(200)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        block = b"\x5a" * 65536
        piece = b"%x\r\n%s\r\n" % (len(block), block) if chunked else block
        while not self.server.stopping.is_set():
            self.wfile.write(piece)

    def _trickle(self, q: dict[str, str]) -> None:
        interval = float(q.get("interval", "0.2"))
        self.send_response(200)
        self.send_header("Content-Length", str(1 << 20))
        self.end_headers()
        while True:
            self._pause(interval)
            self.wfile.write(b"t")
            self.wfile.flush()

    def _slow_headers(self, q: dict[str, str]) -> None:
        interval = float(q.get("interval", "0.2"))
        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        self.wfile.flush()
        while True:  # one endless header line, well under any line-length limit per byte
            for byte in b"X-Slow: ":
                self._pause(interval)
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            for _ in range(60):
                self._pause(interval)
                self.wfile.write(b"z")
                self.wfile.flush()
            self.wfile.write(b"\r\n")

    def _big_header(self, q: dict[str, str]) -> None:
        size = int(q.get("size", str(1 << 20)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.send_header("X-Big", "b" * size)
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(b"ok")

    def _many_headers(self, q: dict[str, str]) -> None:
        n = int(q.get("n", "10000"))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        for i in range(n):
            self.send_header(f"X-H{i}", "v")
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(b"ok")

    def _gzip_bomb(self, q: dict[str, str]) -> None:
        body = gzip_bomb(int(q.get("size", str(10 << 20))))
        self._send(200, body, [("Content-Encoding", "gzip"), ("Content-Type", "text/plain")])

    def _overlong(self, q: dict[str, str]) -> None:
        length, send = int(q.get("length", "10")), int(q.get("send", "100"))
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        self.wfile.write(b"o" * send)

    ROUTES: dict[str, Any] = {  # noqa: RUF012 - read-only table
        "cd": _cd,
        "headers": _headers,
        "redirect": _redirect,
        "pingpong": _pingpong,
        "endless": _endless,
        "trickle": _trickle,
        "slow-headers": _slow_headers,
        "big-header": _big_header,
        "many-headers": _many_headers,
        "gzip-bomb": _gzip_bomb,
        "overlong": _overlong,
    }


class HostileServer:
    """Context manager: a hostile server on an ephemeral port of a loopback address."""

    __test__ = False

    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        self._server = _Server(host, tls)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        server = self._server
        server.stopping.set()
        server.shutdown()
        with server.lock:
            conns = list(server.conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        self._thread.join()

    @property
    def base(self) -> str:
        scheme = "https" if self._server.tls is not None else "http"
        host, port = self._server.server_address[:2]
        return f"{scheme}://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    @property
    def requests_seen(self) -> list[tuple[str, dict[str, str]]]:
        """(raw request path, headers) in arrival order."""
        with self._server.lock:
            return list(self._server.seen)
