"""A private, throwaway nginx on 127.0.0.1 that serves a corpus directory.

The benchmarks need a real, fast HTTP server so that fetcher (not the server) is what
gets measured. Everything nginx writes (pid, logs, temp dirs) lives in a private run
dir, so no system directory or system nginx config is touched, and it only ever
listens on the loopback address, or, with `netns`, on the address the benchmark gave
its own network namespace (see latency.py).

    with Nginx(corpus_dir) as srv:
        print(srv.base)  # http://127.0.0.1:PORT

`access_log=PATH` logs every request as `$msec $request_time $request_method $request_uri
$status` (its start is `$msec - $request_time`), for measuring when a client's first
request arrived (skip the HEAD that start() sends); it is off by default because it costs
the server time.

`extra_hosts=("127.0.0.2", ...)` listens on more loopback addresses (same port), so one
server stands for many hosts. `delay_ms=D` answers every request D ms late: the echo module
(Debian's libnginx-mod-http-echo) sleeps on a timer, without holding the worker, then
redirects internally to the static file, which is served as usual (Content-Length,
sendfile). On keep-alive connections that is one round trip of D ms per request, whatever
the number of connections, which a userspace packet relay cannot promise. `connections()`
reads the server's count of accepted connections (stub_status), to see how many
connections a client opened.

CLI: ``python benchmarks/nginx.py ROOT [--port N] [--duration S] [--delay-ms D]`` serves
ROOT until Ctrl-C or until the duration is over.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
# Auto-chosen ports can be taken between probing and nginx's bind; retry a few times.
PORT_ATTEMPTS = 5
# Temp-path directives, emitted only for modules the binary has (unknown ones abort).
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
ECHO_MODULE = "ngx_http_echo_module.so"
DEFAULT_MODULES = "/usr/lib/nginx/modules"
STATUS_PATH = "/.nginx-status"  # stub_status, never delayed; not a corpus path


class NginxError(RuntimeError):
    """nginx could not be found, configured or started."""


def find_nginx() -> str:
    """Path of the nginx binary (it lives in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise NginxError("nginx not found: run benchmarks/setup.sh")
    return found


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (nginx cannot listen on port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _build_info(binary: str) -> tuple[tuple[int, ...], str]:
    """nginx's version and its `-V` configure line, to emit only directives it knows."""
    out = subprocess.run(
        [binary, "-V"], capture_output=True, text=True, timeout=10, check=True
    ).stderr
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out)
    version = tuple(int(part) for part in match.groups()) if match else (0, 0, 0)
    return version, out


def echo_module(configure_line: str) -> Path:
    """Path of the echo module for this nginx (from its `--modules-path`), or NginxError."""
    match = re.search(r"--modules-path=(\S+)", configure_line)
    path = Path(match.group(1) if match else DEFAULT_MODULES) / ECHO_MODULE
    if not path.is_file():
        raise NginxError(f"{path} missing: install libnginx-mod-http-echo (benchmarks/setup.sh)")
    return path


def render_config(
    root: Path,
    port: int,
    run_dir: Path,
    configure_line: str,
    *,
    host: str = HOST,
    access_log: Path | None = None,
    extra_hosts: Sequence[str] = (),
    delay_ms: float = 0.0,
) -> str:
    """The nginx.conf text: one worker, the listen addresses, every writable path in run_dir
    (paths quoted, so a space in a temp dir cannot break the config); with `delay_ms`, every
    request but the status page waits that long before the file is served."""
    temp_paths = "".join(
        f'    {name}_temp_path "{run_dir / name}";\n'
        for name in TEMP_PATHS
        if f"--http-{name.replace('_', '-')}-temp-path" in configure_line
    )
    user = "user root;\n" if os.geteuid() == 0 else ""
    log_lines = (
        "    log_format timing '$msec $request_time $request_method $request_uri $status';\n"
        f'    access_log "{access_log}" timing;\n'
        if access_log is not None
        else "    access_log off;\n"
    )
    listens = "".join(f"        listen {h}:{port};\n" for h in (host, *extra_hosts))
    module = f'load_module "{echo_module(configure_line)}";\n' if delay_ms > 0 else ""
    status = f"        location = {STATUS_PATH} {{ stub_status; access_log off; }}\n"
    delayed = (
        "        location / {\n"
        f"            echo_sleep {delay_ms / 1000:.3f};\n"  # whole ms: the most it parses
        "            echo_exec @file;\n"
        "        }\n"
        "        location @file { }\n"
    )
    locations = status + (delayed if delay_ms > 0 else "")
    return (
        f"{module}"
        f"{user}"
        "daemon off;\n"
        "worker_processes 1;\n"
        f'pid "{run_dir / "nginx.pid"}";\n'
        f'lock_file "{run_dir / "nginx.lock"}";\n'
        f'error_log "{run_dir / "error.log"}" warn;\n'
        "worker_rlimit_nofile 16384;\n"
        "events { worker_connections 8192; }\n"
        "http {\n"
        f"{log_lines}"
        f"{temp_paths}"
        "    default_type application/octet-stream;\n"
        "    sendfile on;\n"
        "    tcp_nopush on;\n"
        "    keepalive_requests 100000;\n"
        "    keepalive_timeout 65s;\n"
        "    server {\n"
        f"{listens}"
        "        server_name localhost;\n"
        f'        root "{root}";\n'
        f"{locations}"
        "    }\n"
        "}\n"
    )


class Nginx:
    """A private nginx serving `root` at `base`; start()/stop() or use as a context manager.

    `netns` runs it inside that network namespace (made by the caller), listening on
    `host`, an address of that namespace.
    """

    def __init__(
        self,
        root: str | Path,
        port: int = 0,
        run_dir: str | Path | None = None,
        *,
        host: str = HOST,
        netns: str | None = None,
        access_log: str | Path | None = None,
        extra_hosts: Sequence[str] = (),
        delay_ms: float = 0.0,
    ):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise NginxError(f"corpus root is not a directory: {self.root}")
        self.host = host
        self.extra_hosts = tuple(extra_hosts)
        self.delay_ms = delay_ms
        self.netns = netns
        self.access_log = Path(access_log).resolve() if access_log is not None else None
        self.requested_port = port
        self.port = port
        self._given_run_dir = Path(run_dir).resolve() if run_dir is not None else None
        self.run_dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        """Base URL without a trailing slash, e.g. http://127.0.0.1:8123."""
        return f"http://{self.host}:{self.port}"

    @property
    def bases(self) -> list[str]:
        """Base URL of every listen address, `base` first."""
        return [f"http://{h}:{self.port}" for h in (self.host, *self.extra_hosts)]

    def connections(self) -> int:
        """Connections the server has accepted so far, this request's own included."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10.0)
        try:
            conn.request("GET", STATUS_PATH)
            text = conn.getresponse().read().decode()
        finally:
            conn.close()
        # "Active connections: N\nserver accepts handled requests\n A H R\n..."
        return int(text.splitlines()[2].split()[0])

    def start(self) -> Nginx:
        """Write the config, start nginx and wait until it answers HTTP."""
        if self.proc is not None:
            raise NginxError("already started")
        binary = find_nginx()
        version, configure_line = _build_info(binary)
        if self._given_run_dir is not None:
            self.run_dir = self._given_run_dir
            self.run_dir.mkdir(parents=True, exist_ok=True)
        else:
            self.run_dir = Path(tempfile.mkdtemp(prefix="fetcher-nginx-"))
        attempts = 1 if self.requested_port else PORT_ATTEMPTS
        last_error = ""
        for _ in range(attempts):
            self.port = self.requested_port or free_port()
            conf = self.run_dir / "nginx.conf"
            conf.write_text(
                render_config(
                    self.root,
                    self.port,
                    self.run_dir,
                    configure_line,
                    host=self.host,
                    access_log=self.access_log,
                    extra_hosts=self.extra_hosts,
                    delay_ms=self.delay_ms,
                )
            )
            cmd = [binary, "-p", str(self.run_dir), "-c", str(conf)]
            if self.netns is not None:  # `ip netns exec` execs nginx: same pid, same group
                cmd = ["ip", "netns", "exec", self.netns, *cmd]
            if version >= (1, 19, 5):  # -e: no early write to the compiled-in error log
                cmd += ["-e", str(self.run_dir / "error.log")]
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # own group: stop() can reach the worker too
            )
            if self._wait_ready():
                return self
            last_error = self._error_log_tail()
            self._kill()
        self._remove_run_dir()
        raise NginxError(f"nginx did not start on {self.host}:{self.port}:\n{last_error}")

    def _wait_ready(self) -> bool:
        """Poll until nginx answers an HTTP request; False if it exits or times out."""
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            conn = http.client.HTTPConnection(self.host, self.port, timeout=1.0)
            try:
                conn.request("HEAD", STATUS_PATH)  # never delayed, never logged
                server = conn.getresponse().getheader("Server", "")
                # Someone else on the port would answer too: make sure it is nginx.
                return server.startswith("nginx") and self.proc.poll() is None
            except OSError:
                time.sleep(0.05)
            finally:
                conn.close()
        return False

    def _error_log_tail(self) -> str:
        """Last lines of the private error log, to explain a failed start."""
        assert self.run_dir is not None
        log = self.run_dir / "error.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-10:]) if log.exists() else ""

    def _kill(self) -> None:
        """Stop the nginx process group: TERM (fast shutdown), then KILL on overrun."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_TIMEOUT_S)
            except ProcessLookupError:
                proc.wait(timeout=STOP_TIMEOUT_S)

    def _remove_run_dir(self) -> None:
        """Delete the run dir if this instance created it."""
        if self.run_dir is not None and self._given_run_dir is None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        self.run_dir = None

    def stop(self) -> None:
        """Stop nginx and remove its private run dir; safe to call more than once."""
        self._kill()
        self._remove_run_dir()

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Serve a directory on 127.0.0.1 until Ctrl-C or --duration seconds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="directory to serve")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument(
        "--duration", type=float, default=3600.0, help="stop after this many seconds"
    )
    parser.add_argument("--delay-ms", type=float, default=0.0, help="answer each request late")
    args = parser.parse_args(argv)
    with Nginx(args.root, port=args.port, delay_ms=args.delay_ms) as srv:
        print(f"serving {srv.root} at {srv.base}/ (pid {srv.proc.pid if srv.proc else '?'})")
        print("Ctrl-C to stop", flush=True)
        deadline = time.monotonic() + args.duration
        try:
            while time.monotonic() < deadline and srv.proc is not None and srv.proc.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
