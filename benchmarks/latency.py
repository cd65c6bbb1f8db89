"""A server namespace behind a link with real round-trip latency, for the latency sweep.

Why: on loopback every request is answered in microseconds, so chunksize and worker counts
are tuned for a network nobody has. This puts the server in its own network namespace
(`fbench-srv`) reachable from the root namespace at 169.254.77.2 (link-local addresses of
the pair made here, nothing else is routed) and delays every packet the server sends by
`delay_ms`, so one round trip costs `delay_ms`:

- `tc qdisc ... netem delay` on the namespace end of a veth pair, when the kernel has netem;
- otherwise a userspace relay (this file's `relay` command): two TUN devices, one per
  namespace, and a process that copies packets between them, holding the server's for
  `delay_ms`. It uses the virtio header so whole TCP segments (GSO) pass in one read.

Everything is torn down on exit, even after errors; a namespace left by a killed run is
removed by the next one.

    with LatencyLink(20) as link:
        Nginx(root, host=link.server_ip, netns=link.netns) ...
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import fcntl
import os
import select
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

NETNS = "fbench-srv"
CLIENT_IP = "169.254.77.1"
SERVER_IP = "169.254.77.2"
VETH = ("veth-fb0", "veth-fb1")  # (root namespace end, server namespace end)
TUN = ("tun-fb0", "tun-fb1")
CMD_TIMEOUT_S = 20.0
RELAY_START_S = 10.0
# Linux ioctls and flags of /dev/net/tun (linux/if_tun.h).
TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
IFF_TUN, IFF_NO_PI, IFF_VNET_HDR = 0x0001, 0x1000, 0x4000
TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6 = 0x01, 0x02, 0x04
READ_SIZE = 1 << 17  # a GSO packet (<= 64 KiB) plus its virtio header


class LatencyError(RuntimeError):
    """The namespace or the delayed link could not be made (no privilege, no kernel support)."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `ip ARGS` (iproute2); raise LatencyError with its message on failure."""
    proc = subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=CMD_TIMEOUT_S, check=False
    )
    if check and proc.returncode != 0:
        raise LatencyError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def in_ns(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command (ip, tc) inside the server namespace."""
    return ip("netns", "exec", NETNS, *args, check=check)


def remove_namespace() -> None:
    """Delete the namespace (and the veth pair, which dies with it) if a run left them."""
    if NETNS in ip("netns", "list", check=False).stdout.split():
        # Only processes inside the benchmark's own namespace: its nginx, nothing else.
        for pid in ip("netns", "pids", NETNS, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), 9)
        ip("netns", "del", NETNS, check=False)
    ip("link", "del", VETH[0], check=False)


class LatencyLink:
    """The namespace `fbench-srv` at SERVER_IP, one round trip = `delay_ms` away."""

    def __init__(self, delay_ms: float = 20.0) -> None:
        self.delay_ms = delay_ms
        self.netns = NETNS
        self.server_ip = SERVER_IP
        self.method = ""
        self._relay: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LatencyLink:
        if os.geteuid() != 0:
            raise LatencyError("network namespaces need root")
        remove_namespace()
        try:
            ip("netns", "add", NETNS)
            in_ns("ip", "link", "set", "lo", "up")
            try:
                self._veth_netem()
            except LatencyError as exc:
                if "unknown" not in str(exc).lower():
                    raise
                ip("link", "del", VETH[0], check=False)
                self._tun_relay()
        except BaseException:
            self._teardown()
            raise
        return self

    def _veth_netem(self) -> None:
        """veth pair, /30 inside it, netem on the server's end."""
        ip("link", "add", VETH[0], "type", "veth", "peer", "name", VETH[1], "netns", NETNS)
        ip("addr", "add", f"{CLIENT_IP}/30", "dev", VETH[0])
        ip("link", "set", VETH[0], "up")
        in_ns("ip", "addr", "add", f"{SERVER_IP}/30", "dev", VETH[1])
        in_ns("ip", "link", "set", VETH[1], "up")
        in_ns("tc", "qdisc", "add", "dev", VETH[1], "root", "netem", "delay", f"{self.delay_ms}ms")
        self.method = f"veth pair, `tc netem delay {self.delay_ms:g}ms` on the server's end"

    def _tun_relay(self) -> None:
        """TUN pair joined by the userspace relay (this kernel has no netem)."""
        self._relay = subprocess.Popen(
            [sys.executable, __file__, "relay", "--delay-ms", str(self.delay_ms)],
            stdin=subprocess.PIPE,  # the relay exits when this pipe closes
            stdout=subprocess.PIPE,
        )
        assert self._relay.stdout is not None
        ready, _, _ = select.select([self._relay.stdout], [], [], RELAY_START_S)
        if not ready or self._relay.stdout.readline().strip() != b"ready":
            raise LatencyError("the TUN relay did not start (no /dev/net/tun?)")
        ip("link", "set", TUN[1], "netns", NETNS)
        ip("addr", "add", CLIENT_IP, "peer", SERVER_IP, "dev", TUN[0])
        ip("link", "set", TUN[0], "up")
        in_ns("ip", "addr", "add", SERVER_IP, "peer", CLIENT_IP, "dev", TUN[1])
        in_ns("ip", "link", "set", TUN[1], "up")
        self.method = (
            f"kernel without netem: TUN pair and a userspace relay delaying the server's "
            f"packets by {self.delay_ms:g} ms"
        )

    def measure_rtt_ms(self, port: int, samples: int = 5) -> float:
        """Median TCP connect time to the server (one SYN / SYN-ACK round trip)."""
        times = []
        for _ in range(samples):
            start = time.perf_counter()
            with socket.create_connection((SERVER_IP, port), timeout=5.0):
                times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)

    def _teardown(self) -> None:
        """Delete the namespace and links and stop the relay; safe after partial setup."""
        remove_namespace()
        relay, self._relay = self._relay, None
        if relay is not None:
            assert relay.stdin is not None
            with contextlib.suppress(OSError):
                relay.stdin.close()
            try:
                relay.wait(timeout=CMD_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                relay.kill()
                relay.wait(timeout=CMD_TIMEOUT_S)
            if relay.stdout is not None:
                relay.stdout.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._teardown()


def open_tun(name: str) -> int:
    """A TUN device (IP packets with a virtio header, GSO on) and its fd; it lives while
    the fd is open."""
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(
        fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI | IFF_VNET_HDR)
    )
    fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
    return fd


def relay(delay_s: float) -> None:
    """Copy packets between the two TUN devices until stdin closes; the server's
    (from TUN[1]) wait `delay_s` first. A write to a device not yet up is dropped, as a
    wire would."""
    client, server = open_tun(TUN[0]), open_tun(TUN[1])
    print("ready", flush=True)
    held: collections.deque[tuple[float, bytes]] = collections.deque()  # FIFO: same delay
    control = sys.stdin.fileno()

    def send(fd: int, packet: bytes) -> None:
        with contextlib.suppress(OSError):
            os.write(fd, packet)

    while True:
        timeout = max(0.0, held[0][0] - time.monotonic()) if held else None
        readable, _, _ = select.select([client, server, control], [], [], timeout)
        if control in readable and not os.read(control, 1):
            return
        try:
            if client in readable:
                send(server, os.read(client, READ_SIZE))
            if server in readable:
                held.append((time.monotonic() + delay_s, os.read(server, READ_SIZE)))
        except OSError:  # a device went away: the namespace is being torn down
            return
        now = time.monotonic()
        while held and held[0][0] <= now:
            send(client, held.popleft()[1])


def main(argv: list[str] | None = None) -> int:
    """`relay` (used by LatencyLink), or `check`: build the link, print its RTT, tear down."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["relay", "check"])
    parser.add_argument("--delay-ms", type=float, default=20.0)
    args = parser.parse_args(argv)
    if args.command == "relay":
        relay(args.delay_ms / 1000)
        return 0
    from nginx import Nginx

    here = Path(__file__).parent
    with (
        LatencyLink(args.delay_ms) as link,
        Nginx(here, host=link.server_ip, netns=link.netns) as srv,
    ):
        print(f"{link.method}; nginx at {srv.base}; RTT {link.measure_rtt_ms(srv.port):.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
