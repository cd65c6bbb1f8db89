"""Hostile input end to end: URLs, servers, redirects, TLS, endless or bloated responses, a
full disk, planted symlinks and garbage lists. Whatever they say or do, nothing is written
outside the output dir, secrets stay with their host, limits hold, and every item ends as a
result (never a traceback).

Servers: tests/server.py (the fault server) and tests/hostile_server.py (catch-all paths,
endless bodies, giant headers, gzip bombs, TLS, a second loopback address). Every test runs
in its own `tmp_path`; `Sandbox` snapshots that whole tree before the run and proves after
it that nothing outside the output dir appeared or changed, and that a per-test canary name
(which any escape would produce) exists nowhere above the output dir.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import trustme

from fetcher import FetchOptions, Layout, Result, RetryPolicy, Status, fetch_all
from tests.clirun import CliRun, read_manifest, run_fetcher, write_list
from tests.hostile_server import BODY_PREFIX, HostileServer, gzip_bomb
from tests.safe_names import assert_safe_component
from tests.server import TestServer, body_for

NO_RETRY = RetryPolicy(retries=0)
STATE_DIR = ".fetcher"
CA_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
"""Environment variables through which `requests` picks a CA bundle of its own."""


# --------------------------------------------------------------------------- helpers


def _snapshot(root: Path) -> dict[str, str]:
    """Every entry below `root` (symlinks listed, never followed): its kind and, for files,
    a digest of the content; for symlinks, where they point."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = "link -> " + os.readlink(path)
            elif path.is_dir():
                found[rel] = "dir"
            elif not path.is_file():
                found[rel] = "special"  # a FIFO or socket: never opened
            else:
                found[rel] = "file " + hashlib.sha256(path.read_bytes()).hexdigest()
    return found


class Sandbox:
    """`tmp_path` holding the output dir `out`; `freeze()` after setting up, `check()` after
    the run."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path
        self.out = tmp_path / "out"
        self.canary = f"fetcher-canary-{uuid.uuid4().hex[:12]}"
        self.before: dict[str, str] = {}

    def freeze(self) -> None:
        self.before = _snapshot(self.root)

    def _outside(self, entries: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in entries.items() if k != "out" and not k.startswith("out/")}

    def check(self, results: list[Result] | None = None) -> None:
        after = _snapshot(self.root)
        outside = self._outside(after)
        assert outside == self._outside(self.before), "something changed outside the output dir"
        for anchor in self.out.parents:
            assert not (anchor / self.canary).exists(), f"escaped to {anchor / self.canary}"
        planted = {k for k, v in self.before.items() if v.startswith("link")}
        for rel, kind in after.items():
            if not rel.startswith("out/"):
                continue
            if kind.startswith("link"):
                assert rel in planted, f"fetcher created a symlink: {rel}"
                assert self.before[rel] == kind, f"planted symlink {rel} was changed"
                continue
            assert (self.root / rel).resolve().is_relative_to(self.out.resolve()), rel
        leftovers = [p.name for p in self.out.iterdir() if p.name.startswith(".fetcher-")]
        assert leftovers == [], "temp files left behind"
        for result in results or []:
            if result.path is None:
                continue
            for part in Path(result.path).parts:
                assert_safe_component(part)
            final = (self.out / result.path).resolve()
            assert final.is_relative_to(self.out.resolve())
            assert Path(result.path).parts[0] != STATE_DIR


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path)


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


@pytest.fixture(scope="module")
def shared_hostile() -> Iterator[HostileServer]:
    """One server for the many naming cases, whose request logs are not read."""
    with HostileServer() as server:
        yield server


@pytest.fixture
def other_host() -> Iterator[HostileServer]:
    """Another host: 127.0.0.2 (same port rules, different name)."""
    with HostileServer("127.0.0.2") as server:
        yield server


def fetch_one(url: str, out: Path, **options: object) -> Result:
    [result] = fetch_all([url], output_dir=out, retry=NO_RETRY, **options)
    return result


def assert_clean_exit(run: CliRun, *codes: int) -> None:
    assert run.returncode in codes, (run.returncode, run.stderr)
    assert "Traceback" not in run.stderr, run.stderr


def manifest_rows(path: Path) -> list[dict[str, Any]]:
    """Every line valid JSON, indexes consecutive from 0."""
    rows = read_manifest(path)
    assert [row["index"] for row in rows] == list(range(len(rows)))
    return rows


# --------------------------------------------------------------------------- confinement: URLs

URL_PATHS = [
    "/../../../../../../../../tmp/{canary}",
    "/a/../../b/../../{canary}",
    "/%2e%2e/%2e%2e/%2e%2e/{canary}",
    "/%2E%2E%2F%2E%2E%2F%2E%2E%2F{canary}",
    "/..%2f..%2f..%2f{canary}",
    "/..%5c..%5c..%5c{canary}",
    "/..\\..\\..\\{canary}",
    "/.%2e/.%2e/{canary}",
    "/%252e%252e/%252e%252e/{canary}",
    "/%c0%ae%c0%ae/%c0%ae%c0%ae/{canary}",
    "/%2e%2e",
    "/..",
    "/%2e",
    "//double//slashes//{canary}",
    "/" + "%E2%82%AC" * 300,
    "/" + "a" * 300 + ".txt",
    "/ctl%00nul%01%1f%7f%0a%0d.txt",
    "/tab%09nel%c2%85.txt",
    "/%ff%fe%fd.bin",
    "/%3C%3E%3A%22%7C%3F%2A.txt",
    "/trailing.%20.%20",
    "/...",
    "/CON",
    "/aux.txt",
    "/nul.tar.gz",
    "/com1",
    "/LPT9.log",
    "/con.",
    "/CON%20.txt",
    "/CON/aux/x.txt",
    "/COM1" + "%20" * 300 + "x",
    "/.fetcher",
    "/.fetcher/state.sqlite",
    "/.fetcher-0-abc.part",
    "/%E2%80%AEtxt.exe",
]


@pytest.mark.parametrize("layout", [Layout.FLAT, Layout.MIRROR], ids=lambda v: v.value)
@pytest.mark.parametrize("path", URL_PATHS)
def test_hostile_url_path_stays_inside_output_dir(
    shared_hostile: HostileServer, sandbox: Sandbox, path: str, layout: Layout
) -> None:
    sandbox.freeze()
    result = fetch_one(
        shared_hostile.url(path.format(canary=sandbox.canary)), sandbox.out, layout=layout
    )
    assert result.status is Status.OK, result.error
    assert result.path is not None
    assert (sandbox.out / result.path).read_bytes().startswith(BODY_PREFIX)
    sandbox.check([result])


# --------------------------------------------------------------------------- confinement: names

DISPOSITIONS = [
    'attachment; filename="/tmp/{canary}"',
    'attachment; filename="../../../../{canary}"',
    'attachment; filename="..\\..\\..\\{canary}"',
    'attachment; filename="C:\\Windows\\Temp\\{canary}"',
    'attachment; filename="\\\\server\\share\\{canary}"',
    "attachment; filename*=UTF-8''..%2F..%2F..%2F{canary}",
    "attachment; filename*=UTF-8''%2Ftmp%2F{canary}",
    "attachment; filename*=UTF-8''..%5C..%5C{canary}",
    "attachment; filename*=UTF-8''%2e%2e",
    "attachment; filename=\"x.txt\"; filename*=UTF-8''..%2F..%2F{canary}",
    'attachment; filename="evil%00.txt"',
    'attachment; filename="nul\x00byte.txt"',
    "attachment; filename*=UTF-8''nul%00byte.txt",
    'attachment; filename="tab\there\x1b[31m.txt"',
    'attachment; filename=".fetcher"',
    'attachment; filename=".fetcher-0-abc.part"',
    "attachment; filename*=UTF-8''.fetcher%2Fstate.sqlite",
    'attachment; filename=".."',
    'attachment; filename="."',
    'attachment; filename="CON"',
    'attachment; filename="aux.txt"',
    'attachment; filename="CON .txt"',
    'attachment; filename="name.txt. . "',
    'attachment; filename="<>:|?*.txt"',
    'attachment; filename="' + "€" * 300 + '.txt"',
]


@pytest.mark.parametrize("layout", [Layout.FLAT, Layout.INDEXED], ids=lambda v: v.value)
@pytest.mark.parametrize("disposition", DISPOSITIONS)
def test_hostile_content_disposition_stays_inside_output_dir(
    shared_hostile: HostileServer, sandbox: Sandbox, disposition: str, layout: Layout
) -> None:
    value = disposition.format(canary=sandbox.canary)
    url = shared_hostile.url("/_/cd?name=" + quote(value.encode("utf-8"), safe=""))
    sandbox.freeze()
    result = fetch_one(url, sandbox.out, layout=layout)
    assert result.status is Status.OK, result.error
    assert result.path is not None
    assert (sandbox.out / result.path).read_bytes() == b"cd-body"
    sandbox.check([result])
    # The state folder is still the tool's own, whatever name the server asked for.
    assert (sandbox.out / STATE_DIR / "state.sqlite").read_bytes().startswith(b"SQLite format 3")


def test_output_named_like_a_temp_file_survives_the_next_run(
    hostile: HostileServer, sandbox: Sandbox
) -> None:
    """A server naming its body like our temp files must not get it deleted as a stale temp
    by the next run (nor have it mistaken for a partial download)."""
    url = hostile.url("/_/cd?name=" + quote('attachment; filename=".fetcher-0-abc.part"'))
    first = fetch_one(url, sandbox.out)
    assert first.status is Status.OK and first.path is not None
    fetch_one(hostile.url("/other"), sandbox.out)
    assert (sandbox.out / first.path).read_bytes() == b"cd-body"


# --------------------------------------------------------------------------- planted symlinks


def _plant_outside(sandbox: Sandbox) -> Path:
    outside = sandbox.root / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_bytes(b"precious")
    sandbox.out.mkdir()
    return outside


@pytest.mark.parametrize("via", ["url", "disposition"])
def test_symlink_at_the_target_name_is_never_written_through(
    hostile: HostileServer, sandbox: Sandbox, via: str
) -> None:
    outside = _plant_outside(sandbox)
    (sandbox.out / "planted.txt").symlink_to(outside / "precious.txt")
    url = hostile.url("/planted.txt")
    if via == "disposition":
        url = hostile.url("/_/cd?name=" + quote('attachment; filename="planted.txt"'))
    sandbox.freeze()
    result = fetch_one(url, sandbox.out)
    assert result.status is Status.OK and result.path is not None
    assert result.path != "planted.txt"
    sandbox.check([result])
    assert (outside / "precious.txt").read_bytes() == b"precious"


def test_dangling_symlink_at_the_target_name_creates_nothing_outside(
    hostile: HostileServer, sandbox: Sandbox
) -> None:
    outside = _plant_outside(sandbox)
    (sandbox.out / "dangling.txt").symlink_to(outside / "created-through-link.txt")
    sandbox.freeze()
    result = fetch_one(hostile.url("/dangling.txt"), sandbox.out)
    assert result.status is Status.OK
    sandbox.check([result])
    assert not (outside / "created-through-link.txt").exists()


def test_symlink_at_the_target_name_pointing_to_a_folder(
    hostile: HostileServer, sandbox: Sandbox
) -> None:
    outside = _plant_outside(sandbox)
    (sandbox.out / "folder.txt").symlink_to(outside, target_is_directory=True)
    sandbox.freeze()
    result = fetch_one(hostile.url("/folder.txt"), sandbox.out)
    assert result.status is Status.OK
    sandbox.check([result])


def _host_dir(server: HostileServer) -> str:
    return server.base.split("://", 1)[1].replace(":", "_")


def test_symlink_at_the_mirror_host_folder_is_not_followed(
    hostile: HostileServer, sandbox: Sandbox
) -> None:
    outside = _plant_outside(sandbox)
    (sandbox.out / _host_dir(hostile)).symlink_to(outside, target_is_directory=True)
    sandbox.freeze()
    result = fetch_one(hostile.url("/a/b.txt"), sandbox.out, layout=Layout.MIRROR)
    assert result.status is Status.OK and result.path is not None
    assert result.path.startswith(_host_dir(hostile) + ".1/")
    sandbox.check([result])
    assert sorted(p.name for p in outside.iterdir()) == ["precious.txt"]


def test_symlink_deeper_in_a_mirror_path_is_not_followed(
    hostile: HostileServer, sandbox: Sandbox
) -> None:
    outside = _plant_outside(sandbox)
    (sandbox.out / _host_dir(hostile) / "a").mkdir(parents=True)
    (sandbox.out / _host_dir(hostile) / "a" / "b").symlink_to(outside, target_is_directory=True)
    sandbox.freeze()
    result = fetch_one(hostile.url("/a/b/c.txt"), sandbox.out, layout=Layout.MIRROR)
    assert result.status is Status.OK
    sandbox.check([result])
    assert sorted(p.name for p in outside.iterdir()) == ["precious.txt"]


def test_symlink_at_the_temp_file_name_is_never_written_through(
    hostile: HostileServer, sandbox: Sandbox
) -> None:
    outside = _plant_outside(sandbox)
    url = hostile.url("/t.bin")
    token = hashlib.sha256(url.encode()).hexdigest()[:12]
    (sandbox.out / f".fetcher-0-{token}.part").symlink_to(outside / "precious.txt")
    result = fetch_one(url, sandbox.out)
    assert result.status is Status.OK
    assert (outside / "precious.txt").read_bytes() == b"precious"
    assert sorted(p.name for p in outside.iterdir()) == ["precious.txt"]


def test_symlinked_state_folder_is_not_written_through(
    hostile: HostileServer, sandbox: Sandbox
) -> None:
    """`.fetcher` planted as a symlink to another folder: the state store, its lock and the
    manifest must not be created over there."""
    outside = _plant_outside(sandbox)
    (sandbox.out / STATE_DIR).symlink_to(outside, target_is_directory=True)
    write_list(sandbox.root / "l.txt", [hostile.url("/a.txt")])
    sandbox.freeze()
    run = run_fetcher("fetch", "l.txt", "-o", "out", cwd=sandbox.root)
    assert_clean_exit(run, 0, 1, 2)
    assert sorted(p.name for p in outside.iterdir()) == ["precious.txt"]


@pytest.mark.parametrize(
    ("name", "target"),
    [("manifest.jsonl", "precious.txt"), ("manifest.jsonl", "new.txt"), ("lock", "new.txt")],
)
def test_symlinked_state_file_is_not_written_through(
    hostile: HostileServer, sandbox: Sandbox, name: str, target: str
) -> None:
    """`.fetcher/manifest.jsonl` or `.fetcher/lock` planted as a symlink to a file outside:
    that file must keep its content, and a dangling link must not create one."""
    outside = _plant_outside(sandbox)
    (sandbox.out / STATE_DIR).mkdir()
    (sandbox.out / STATE_DIR / name).symlink_to(outside / target)
    write_list(sandbox.root / "l.txt", [hostile.url("/a.txt")])
    run = run_fetcher("fetch", "l.txt", "-o", "out", cwd=sandbox.root)
    assert_clean_exit(run, 0, 1, 2)
    assert (outside / "precious.txt").read_bytes() == b"precious"
    assert sorted(p.name for p in outside.iterdir()) == ["precious.txt"]


def test_garbage_state_store_is_a_clear_error_not_a_traceback(
    hostile: HostileServer, sandbox: Sandbox
) -> None:
    (sandbox.out / STATE_DIR).mkdir(parents=True)
    (sandbox.out / STATE_DIR / "state.sqlite").write_bytes(b"not a database\n" * 100)
    write_list(sandbox.root / "l.txt", [hostile.url("/a.txt")])
    run = run_fetcher("fetch", "l.txt", "-o", "out", cwd=sandbox.root)
    assert_clean_exit(run, 0, 1, 2)
    if run.returncode == 2:
        assert "fetcher: error:" in run.stderr


# --------------------------------------------------------------------------- redirects


def _cd_url(server: HostileServer, name: str) -> str:
    return server.url("/_/cd?name=" + quote(f'attachment; filename="{name}"', safe=""))


@pytest.mark.parametrize("target", ["127.0.0.2", "127.0.0.1 other port"])
def test_redirect_to_another_host_cannot_choose_the_name(
    http_server: TestServer, sandbox: Sandbox, target: str
) -> None:
    host = "127.0.0.2" if target == "127.0.0.2" else "127.0.0.1"
    with HostileServer(host) as other:
        url = http_server.url("/redirect?to=" + quote(_cd_url(other, "chosen-by-b.txt"), safe=""))
        sandbox.freeze()
        result = fetch_one(url, sandbox.out)
    assert result.status is Status.OK
    assert result.path == "redirect"  # the original URL's name
    assert (sandbox.out / "redirect").read_bytes() == b"cd-body"
    assert not (sandbox.out / "chosen-by-b.txt").exists()
    sandbox.check([result])


def test_redirect_on_the_same_host_keeps_its_disposition_name(
    hostile: HostileServer, sandbox: Sandbox
) -> None:
    """Control for the test above: the same chain within one host does use the name."""
    target = "/_/cd?name=" + quote('attachment; filename="same-host.txt"', safe="")
    url = hostile.url("/_/redirect?to=" + quote(target, safe=""))
    result = fetch_one(url, sandbox.out)
    assert result.status is Status.OK
    assert result.path == "same-host.txt"


def test_redirect_to_another_host_and_back_keeps_the_original_name(
    http_server: TestServer, other_host: HostileServer, sandbox: Sandbox
) -> None:
    back = http_server.url("/cd?name=" + quote('attachment; filename="back-home.txt"', safe=""))
    via_b = other_host.url("/_/redirect?to=" + quote(back, safe=""))
    result = fetch_one(http_server.url("/redirect?to=" + quote(via_b, safe="")), sandbox.out)
    assert result.status is Status.OK
    assert result.path is not None
    sandbox.check([result])


@pytest.mark.parametrize(
    "location",
    [
        "file:///etc/passwd",
        "file://localhost/etc/passwd",
        "file:{secret}",
        "file://{secret}",
        "ftp://127.0.0.1/x",
        "gopher://127.0.0.1:70/x",
        "data:text/plain,hello",
        "javascript:alert(1)",
        "http://[::1",
        "http://127.0.0.1:0/x",
        "",
    ],
)
def test_redirect_to_another_scheme_fails_and_reads_nothing_local(
    http_server: TestServer, sandbox: Sandbox, location: str
) -> None:
    secret = sandbox.root / "secret.txt"
    secret.write_bytes(b"TOP-SECRET-" + sandbox.canary.encode())
    sandbox.freeze()
    to = quote(location.format(secret=secret), safe="")
    [result] = fetch_all(
        [http_server.url(f"/redirect?to={to}")],
        output_dir=sandbox.out,
        retry=RetryPolicy(retries=1, backoff_s=0),
        timeout_s=2,
    )
    assert result.status is Status.FAILED, result
    assert result.path is None
    sandbox.check([result])
    passwd = Path("/etc/passwd").read_bytes() if Path("/etc/passwd").exists() else b"\0"
    for path in sandbox.out.rglob("*"):
        if path.is_file() and STATE_DIR not in path.parts:
            content = path.read_bytes()
            assert b"TOP-SECRET" not in content and passwd not in content


def test_redirect_loop_is_bounded(http_server: TestServer, sandbox: Sandbox) -> None:
    [result] = fetch_all(
        [http_server.url("/redirect-loop")],
        output_dir=sandbox.out,
        retry=RetryPolicy(retries=3, backoff_s=0),
    )
    assert result.status is Status.FAILED
    assert result.error is not None and result.error.type == "too_many_redirects"
    assert http_server.count("/redirect-loop") <= 12


def test_redirect_loop_across_two_hosts_is_bounded(
    http_server: TestServer, other_host: HostileServer, sandbox: Sandbox
) -> None:
    """A → B → A → B ...: an endless ping-pong across two hosts; only the redirect limit
    stops it, and it is not retried."""
    pingpong = other_host.url("/_/pingpong?via=" + quote(http_server.base, safe=""))
    start = http_server.url("/redirect?to=" + quote(pingpong, safe=""))
    [result] = fetch_all([start], output_dir=sandbox.out, retry=RetryPolicy(retries=2))
    assert result.status is Status.FAILED
    assert result.error is not None and result.error.type == "too_many_redirects"
    total = http_server.count("/redirect") + len(other_host.requests_seen)
    assert total <= 12, total


# --------------------------------------------------------------------------- secrets on redirect

SECRET_HEADERS = {"Authorization": "Bearer x", "Cookie": "c=1", "X-Api-Key": "k"}


def _header_args() -> list[str]:
    args: list[str] = []
    for name, value in SECRET_HEADERS.items():
        args += ["-H", f"{name}: {value}"]
    return args


def _fetch_with_secrets(url: str, tmp_path: Path) -> CliRun:
    write_list(tmp_path / "l.txt", [url])
    run = run_fetcher(
        "fetch", "l.txt", "-o", "out", "--retries", "0", *_header_args(), cwd=tmp_path
    )
    assert_clean_exit(run, 0)
    return run


def _first_request_headers(server: TestServer) -> dict[str, str]:
    return server.requests_seen[0][2]


@pytest.mark.parametrize("target", ["127.0.0.2", "127.0.0.1 other port"])
def test_secret_headers_never_follow_a_redirect_to_another_host(
    http_server: TestServer, tmp_path: Path, target: str
) -> None:
    host = "127.0.0.2" if target == "127.0.0.2" else "127.0.0.1"
    with HostileServer(host) as other:
        _fetch_with_secrets(
            http_server.url("/redirect?to=" + quote(other.url("/_/headers"), safe="")), tmp_path
        )
        [(_, received)] = other.requests_seen
    sent_first = _first_request_headers(http_server)
    for name, value in SECRET_HEADERS.items():
        assert sent_first.get(name) == value, f"{name} not sent to the first host"
    leaked = {k for k in received if k.lower() in {n.lower() for n in SECRET_HEADERS}}
    assert leaked == set(), f"sent to the other host: {leaked}"


def test_secret_headers_not_restored_when_the_chain_comes_back(
    http_server: TestServer, other_host: HostileServer, tmp_path: Path
) -> None:
    back = other_host.url("/_/redirect?to=" + quote(http_server.url("/headers"), safe=""))
    _fetch_with_secrets(http_server.url("/redirect?to=" + quote(back, safe="")), tmp_path)
    [(_, at_b)] = other_host.requests_seen
    [_, (_, _, back_home)] = http_server.requests_seen
    for name in SECRET_HEADERS:
        assert name not in at_b
        assert name not in back_home


@pytest.mark.parametrize("name", list(SECRET_HEADERS))
def test_extra_header_is_kept_on_a_same_host_redirect(
    http_server: TestServer, tmp_path: Path, name: str
) -> None:
    result = fetch_one(
        http_server.url("/redirect?to=/headers"),
        tmp_path / "out",
        headers=tuple(SECRET_HEADERS.items()),
    )
    assert result.status is Status.OK
    first, second = (headers for _, _, headers in http_server.requests_seen)
    assert first.get(name) == SECRET_HEADERS[name]
    assert second.get(name) == SECRET_HEADERS[name], f"{name} dropped on a same-host redirect"


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@contextlib.contextmanager
def https_server(cert: trustme.LeafCert) -> Iterator[HostileServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    with HostileServer(tls=context) as server:
        yield server


@pytest.fixture
def tls_server(ca: trustme.CA) -> Iterator[HostileServer]:
    with https_server(ca.issue_cert("127.0.0.1")) as server:
        yield server


@pytest.fixture
def no_env_ca(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the variables through which `requests` would choose a CA bundle itself."""
    for name in CA_ENV:
        monkeypatch.delenv(name, raising=False)


def _tls_run(server: HostileServer, tmp_path: Path, ca: trustme.CA, *args: str) -> CliRun:
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    write_list(tmp_path / "l.txt", [server.url(f"/item{i}.txt") for i in range(4)])
    return run_fetcher(
        "fetch", "l.txt", "-o", "out", "--retries", "0", "-j", "4", *args, cwd=tmp_path
    )


def _statuses(tmp_path: Path) -> list[tuple[str, str | None]]:
    rows = manifest_rows(tmp_path / "out" / STATE_DIR / "manifest.jsonl")
    return [(r["status"], (r["error"] or {}).get("type")) for r in rows]


@pytest.mark.usefixtures("no_env_ca")
def test_tls_is_verified_by_default(
    tls_server: HostileServer, tmp_path: Path, ca: trustme.CA
) -> None:
    run = _tls_run(tls_server, tmp_path, ca)
    assert_clean_exit(run, 1)
    assert _statuses(tmp_path) == [("failed", "tls")] * 4
    assert tls_server.requests_seen == []


@pytest.mark.usefixtures("no_env_ca")
def test_tls_with_ca_bundle_succeeds(
    tls_server: HostileServer, tmp_path: Path, ca: trustme.CA
) -> None:
    run = _tls_run(tls_server, tmp_path, ca, "--ca-bundle", "ca.pem")
    assert_clean_exit(run, 0)
    assert _statuses(tmp_path) == [("ok", None)] * 4


@pytest.mark.usefixtures("no_env_ca")
def test_tls_insecure_succeeds_and_warns_exactly_once(
    tls_server: HostileServer, tmp_path: Path, ca: trustme.CA
) -> None:
    run = _tls_run(tls_server, tmp_path, ca, "--insecure")
    assert_clean_exit(run, 0)
    assert _statuses(tmp_path) == [("ok", None)] * 4
    warnings = [line for line in run.stderr.splitlines() if "verif" in line.lower()]
    assert len(warnings) == 1, run.stderr
    assert "InsecureRequestWarning" not in run.stderr


def test_tls_insecure_with_ca_bundle_is_a_usage_error(
    tls_server: HostileServer, tmp_path: Path, ca: trustme.CA
) -> None:
    run = _tls_run(tls_server, tmp_path, ca, "--insecure", "--ca-bundle", "ca.pem")
    assert_clean_exit(run, 2)
    assert "fetcher: error:" in run.stderr
    assert tls_server.requests_seen == []


@pytest.mark.parametrize("option", [["--ca-bundle", "ca.pem"], ["--insecure"]], ids=str)
def test_tls_options_win_over_a_ca_bundle_from_the_environment(
    tls_server: HostileServer,
    tmp_path: Path,
    ca: trustme.CA,
    monkeypatch: pytest.MonkeyPatch,
    option: list[str],
) -> None:
    """REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE are set on many systems (Debian images, conda,
    corporate proxies). `requests` lets them override `Session.verify`, so an option that
    only sets the session's `verify` is silently ignored there."""
    other_ca = trustme.CA()
    other_ca.cert_pem.write_to_path(str(tmp_path / "env-ca.pem"))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "env-ca.pem"))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(tmp_path / "env-ca.pem"))
    run = _tls_run(tls_server, tmp_path, ca, *option)
    assert_clean_exit(run, 0)
    assert _statuses(tmp_path) == [("ok", None)] * 4


@pytest.mark.usefixtures("no_env_ca")
@pytest.mark.parametrize("problem", ["wrong host", "expired", "not yet valid", "other CA"])
def test_bad_certificates_fail_even_with_ca_bundle(
    ca: trustme.CA, tmp_path: Path, problem: str
) -> None:
    now = datetime.now(timezone.utc)
    if problem == "wrong host":
        cert = ca.issue_cert("fetcher.invalid")
    elif problem == "expired":
        cert = ca.issue_cert("127.0.0.1", not_after=now - timedelta(days=1))
    elif problem == "not yet valid":
        cert = ca.issue_cert("127.0.0.1", not_before=now + timedelta(days=1))
    else:
        cert = trustme.CA().issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    with https_server(cert) as server:
        result = fetch_one(server.url("/x.txt"), tmp_path / "out", verify=str(tmp_path / "ca.pem"))
        assert server.requests_seen == []
    assert result.status is Status.FAILED
    assert result.error is not None and result.error.type == "tls"


# --------------------------------------------------------------------------- resource bounds


@pytest.mark.parametrize("mode", ["chunked", "close"])
def test_endless_body_stops_at_max_size_with_flat_memory(
    hostile: HostileServer, sandbox: Sandbox, mode: str
) -> None:
    write_list(sandbox.root / "l.txt", [hostile.url(f"/_/endless?mode={mode}")])
    sandbox.freeze()
    run = run_fetcher(
        "fetch", "l.txt", "-o", "out", "--max-size", "1M", "--retries", "0", cwd=sandbox.root,
        timeout=10,
    )  # fmt: skip
    assert_clean_exit(run, 1)
    [row] = manifest_rows(sandbox.out / STATE_DIR / "manifest.jsonl")
    assert row["error"]["type"] == "too_large"
    assert 0 < run.peak_rss_mib < 100, run.peak_rss_mib
    sandbox.check()
    assert [p.name for p in sandbox.out.iterdir()] == [STATE_DIR]


@pytest.mark.parametrize(
    "route",
    ["/_/endless?mode=chunked", "/_/endless?mode=close", "/_/trickle?interval=0.2"],
    ids=["endless-chunked", "endless-close", "trickle"],
)
def test_deadline_stops_an_endless_or_trickling_body(
    hostile: HostileServer, sandbox: Sandbox, route: str
) -> None:
    started = time.monotonic()
    result = fetch_one(hostile.url(route), sandbox.out, deadline_s=1)
    assert time.monotonic() - started < 3
    assert result.status is Status.FAILED
    assert result.error is not None and result.error.type == "deadline"
    sandbox.check([result])


def test_deadline_holds_while_headers_trickle_in(hostile: HostileServer, tmp_path: Path) -> None:
    """A server that sends its header section one byte every 0.2 s never trips the read
    timeout; --deadline is a limit on the whole item, so it must still end it."""
    write_list(tmp_path / "l.txt", [hostile.url("/_/slow-headers?interval=0.2")])
    started = time.monotonic()
    run = run_fetcher(
        "fetch", "l.txt", "-o", "out", "--deadline", "1", "--retries", "0", cwd=tmp_path,
        timeout=4,
    )  # fmt: skip
    assert time.monotonic() - started < 4
    assert_clean_exit(run, 1)
    [row] = manifest_rows(tmp_path / "out" / STATE_DIR / "manifest.jsonl")
    assert row["error"]["type"] == "deadline"


@pytest.mark.parametrize(
    "route",
    ["/_/big-header?size=1048576", "/_/many-headers?n=10000", "/_/big-header?size=70000"],
    ids=["one-1MB-header", "10000-headers", "header-just-over-64KiB"],
)
def test_gigantic_response_headers_fail_the_item_cleanly(
    hostile: HostileServer, sandbox: Sandbox, route: str
) -> None:
    write_list(sandbox.root / "l.txt", [hostile.url(route), hostile.url("/fine.txt")])
    sandbox.freeze()
    run = run_fetcher(
        "fetch", "l.txt", "-o", "out", "--retries", "1", "--retry-wait", "0", cwd=sandbox.root
    )
    assert_clean_exit(run, 1)
    bad, good = manifest_rows(sandbox.out / STATE_DIR / "manifest.jsonl")
    assert bad["status"] == "failed"
    assert bad["error"]["type"] in {"connection", "http", "truncated"}
    assert good["status"] == "ok"
    assert 0 < run.peak_rss_mib < 100, run.peak_rss_mib
    sandbox.check()


def test_gzip_bomb_is_saved_as_served_never_inflated(
    hostile: HostileServer, sandbox: Sandbox
) -> None:
    size = 64 << 20
    write_list(sandbox.root / "l.txt", [hostile.url(f"/_/gzip-bomb?size={size}")])
    run = run_fetcher("fetch", "l.txt", "-o", "out", cwd=sandbox.root)
    assert_clean_exit(run, 0)
    [row] = manifest_rows(sandbox.out / STATE_DIR / "manifest.jsonl")
    served = gzip_bomb(size)
    saved = (sandbox.out / str(row["path"])).read_bytes()
    assert saved == served
    assert row["bytes"] == len(served) < 200_000
    assert 0 < run.peak_rss_mib < 100, run.peak_rss_mib


def test_body_longer_than_content_length_never_saves_more(
    hostile: HostileServer, sandbox: Sandbox
) -> None:
    """10 bytes declared, 100 sent: the item is either failed or exactly the 10 declared
    bytes, and the extra bytes never leak into the next response on the same host."""
    results = fetch_all(
        [hostile.url("/_/overlong?length=10&send=100"), hostile.url("/next.txt")],
        output_dir=sandbox.out,
        workers=1,
        retry=NO_RETRY,
    )
    first, second = results
    if first.status is Status.OK:
        assert first.bytes == 10
        assert (sandbox.out / str(first.path)).read_bytes() == b"o" * 10
    assert second.status is Status.OK
    assert (sandbox.out / str(second.path)).read_bytes() == BODY_PREFIX + b"/next.txt"
    sandbox.check(results)


@pytest.mark.parametrize("value", ["-1", "abc", "10, 20", "99999999999999999999999"])
def test_garbage_content_length_fails_or_saves_what_was_sent(sandbox: Sandbox, value: str) -> None:
    """A raw server: `Content-Length: <value>`, then 10 bytes and close."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, contextlib.suppress(OSError):  # the client may hang up first
            conn.recv(65536)
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {value}\r\n\r\n".encode())
            conn.sendall(b"0123456789")
            conn.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        result = fetch_one(f"http://127.0.0.1:{port}/len.bin", sandbox.out, timeout_s=2)
    finally:
        thread.join(5)
        listener.close()
    if result.status is Status.OK:
        assert (sandbox.out / str(result.path)).read_bytes() == b"0123456789"
    else:
        assert result.error is not None and result.error.type != "internal"
    sandbox.check([result])


# --------------------------------------------------------------------------- disk full


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted at tmp_path/out (needs root; skipped where mount fails)."""
    mount_point = tmp_path / "out"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_disk_full_fails_only_the_items_that_do_not_fit(
    http_server: TestServer, small_disk: Path, tmp_path: Path
) -> None:
    mib = 1 << 20
    # Each large body starts after a short delay, so the committer has placed the previous
    # item before the disk fills up; -j 1 keeps the order of events fixed.
    lines = [http_server.url(f"/bytes/big{i}?size={mib}&delay=0.2") for i in range(3)]
    lines += [http_server.url(f"/bytes/small{i}?size=20000") for i in range(3)]
    write_list(tmp_path / "l.txt", lines)
    run = run_fetcher("fetch", "l.txt", "-o", "out", "-j", "1", "--retries", "0", cwd=tmp_path)
    assert_clean_exit(run, 1)
    rows = manifest_rows(small_disk / STATE_DIR / "manifest.jsonl")
    assert [r["status"] for r in rows] == ["ok", "failed", "failed", "ok", "ok", "ok"]
    assert [r["error"]["type"] for r in rows[1:3]] == ["disk_full", "disk_full"]
    assert (small_disk / "big0").read_bytes() == body_for("big0", mib)
    for i in range(3):
        assert (small_disk / f"small{i}").read_bytes() == body_for(f"small{i}", 20000)
    assert sorted(p.name for p in small_disk.iterdir()) == [
        STATE_DIR, "big0", "small0", "small1", "small2",
    ]  # fmt: skip


def test_disk_filling_up_exactly_at_commit_time_is_an_item_error(
    http_server: TestServer, small_disk: Path
) -> None:
    """The body fits, but then nothing is left for the state store's own write when the
    committer records the output. Sweeps the free space around the body's size (one page at
    a time) so that the exact moment is hit whatever SQLite needs: every sweep step must end
    as results (`ok` or `disk_full`), never as an exception out of the run."""
    size = 256 * 1024
    page = os.statvfs(small_disk).f_frsize
    outcomes: dict[int, str] = {}
    for spare_pages in range(32):
        for entry in small_disk.iterdir():
            if entry.is_dir():
                subprocess.run(["rm", "-rf", str(entry)], check=True)
            else:
                entry.unlink()
        out = small_disk / "o"
        fetch_all([http_server.url("/bytes/warm?size=10")], output_dir=out)
        info = os.statvfs(small_disk)
        filler = info.f_bavail * info.f_frsize - size - spare_pages * page
        (small_disk / "filler").write_bytes(bytes(filler))
        try:
            results = fetch_all(
                [http_server.url(f"/bytes/fit?size={size}"), http_server.url("/bytes/s?size=9")],
                output_dir=out,
                workers=1,
                retry=NO_RETRY,
            )
        except Exception as exc:  # the bug this test is about
            outcomes[spare_pages] = f"raised {type(exc).__name__}: {exc}"
            continue
        kinds = [r.error.type if r.error else r.status.value for r in results]
        assert all(kind in ("ok", "disk_full") for kind in kinds), kinds
        leftovers = [p.name for p in out.iterdir() if p.name.startswith(".fetcher-")]
        assert leftovers == []
    assert {k: v for k, v in outcomes.items() if v.startswith("raised")} == {}


# --------------------------------------------------------------------------- hostile lists

_rng = random.Random(1234)
RANDOM_BYTES = bytes(_rng.randrange(256) for _ in range(20000)) + b"\0" * 100

BAD_LISTS: dict[str, bytes] = {
    "random-binary": RANDOM_BYTES,
    "nul-only-no-newline": b"\0" * 100_000,
    "non-utf8-lines": b"\xff\xfe\xfd\n\xc3\x28\n\xed\xa0\x80\nlatin-\xe9.txt\n",
    "one-megabyte-line": b"http://127.0.0.1:9/" + b"a" * (1 << 20) + b"\nok.txt\n",
    "crlf-endings": b"ok.txt\r\nmissing.txt\r\n\r\n#c\r\n",
    "bom": b"\xef\xbb\xbfok.txt\n",
    "utf16-with-bom": "ok.txt\nmissing.txt\n".encode("utf-16"),
    "empty": b"",
    "control-chars": b"ok\x01.txt\nok\x1b[31m.txt\n\x7f\n",
}


@pytest.mark.parametrize("name", list(BAD_LISTS))
def test_hostile_list_file_never_crashes(tmp_path: Path, name: str) -> None:
    (tmp_path / "ok.txt").write_bytes(b"fine")
    (tmp_path / "l.txt").write_bytes(BAD_LISTS[name])
    run = run_fetcher("fetch", "l.txt", "-o", "out", cwd=tmp_path)
    assert_clean_exit(run, 0, 1, 2)
    if run.returncode == 2:
        assert "fetcher: error:" in run.stderr
        return
    rows = manifest_rows(tmp_path / "out" / STATE_DIR / "manifest.jsonl")
    for row in rows:
        assert row["status"] in ("ok", "failed")
        assert (row["status"] == "failed") == (row["error"] is not None)
    assert run.returncode == (1 if any(r["status"] == "failed" for r in rows) else 0)


BAD_TABLES: dict[str, bytes] = {
    "jsonl-lone-surrogate-url": b'{"url": "http://127.0.0.1:9/a\\ud800b"}\n{"url": "ok.txt"}\n',
    "jsonl-surrogate-local-path": b'{"url": "ok\\udfff.txt"}\n{"url": "ok.txt"}\n',
    "jsonl-binary": RANDOM_BYTES[:5000],
    "jsonl-deep-nesting": b'{"url": "ok.txt", "x": ' + b"[" * 20_000 + b"]" * 20_000 + b"}\n",
    "csv-binary-rows": b"url,path\n" + RANDOM_BYTES[:5000],
    "csv-hostile-path-column": (
        b"url,path\nok.txt,../../../fetcher-table-escape.txt\n"
        b"ok.txt,/tmp/fetcher-table-escape.txt\nok.txt,..\\..\\fetcher-table-escape.txt\n"
    ),
}


TABLE_CASES = [
    *((name, "m.jsonl") for name in BAD_TABLES if not name.startswith("csv")),
    ("jsonl-lone-surrogate-url", "m.csv"),  # a CSV manifest is written as strict UTF-8
    ("jsonl-surrogate-local-path", "m.csv"),
    *((name, "m.csv") for name in BAD_TABLES if name.startswith("csv")),
]


@pytest.mark.parametrize(("name", "manifest"), TABLE_CASES)
def test_hostile_table_list_never_crashes(tmp_path: Path, name: str, manifest: str) -> None:
    (tmp_path / "ok.txt").write_bytes(b"fine")
    suffix = ".jsonl" if name.startswith("jsonl") else ".csv"
    (tmp_path / f"l{suffix}").write_bytes(BAD_TABLES[name])
    before = set(os.listdir(tmp_path))
    run = run_fetcher(
        "fetch", f"l{suffix}", "-o", "out", "--manifest", manifest, "--retries", "0",
        cwd=tmp_path,
    )  # fmt: skip
    assert_clean_exit(run, 0, 1, 2)
    assert set(os.listdir(tmp_path)) - before <= {"out", manifest}
    for anchor in tmp_path.parents:
        assert not (anchor / "fetcher-table-escape.txt").exists()
    if run.returncode != 2 and manifest.endswith(".jsonl"):
        rows = manifest_rows(tmp_path / manifest)
        assert all(r["path"] is None or ".." not in str(r["path"]) for r in rows)


def test_list_that_is_a_directory_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "dir.txt").mkdir()
    run = run_fetcher("fetch", "dir.txt", "-o", "out", cwd=tmp_path)
    assert_clean_exit(run, 2)
    assert "fetcher: error:" in run.stderr


def test_list_given_as_dev_null_is_an_empty_run(tmp_path: Path) -> None:
    run = run_fetcher("fetch", "/dev/null", "-o", "out", cwd=tmp_path)
    assert_clean_exit(run, 0)
    assert manifest_rows(tmp_path / "out" / STATE_DIR / "manifest.jsonl") == []


def test_binary_list_on_stdin_never_crashes(tmp_path: Path) -> None:
    run = run_fetcher("fetch", "-", "-o", "out", cwd=tmp_path, stdin=RANDOM_BYTES)
    assert_clean_exit(run, 0, 1)
    for row in manifest_rows(tmp_path / "out" / STATE_DIR / "manifest.jsonl"):
        assert row["status"] == "failed"


def test_non_utf8_local_file_name_is_fetched_or_failed_not_raised(sandbox: Sandbox) -> None:
    """The Python API takes file names as Python spells them: undecodable bytes arrive as
    surrogate escapes (os.fsdecode). That is an item, not a reason to end the run."""
    sandbox.root.joinpath("src").mkdir()
    raw = os.fsencode(sandbox.root / "src") + b"/caf\xe9.txt"
    with open(raw, "wb") as handle:
        handle.write(b"latin-1 name")
    name = os.fsdecode(raw)
    sandbox.freeze()
    results = fetch_all(
        [name, str(sandbox.root / "src")],
        FetchOptions(output_dir=sandbox.out, retry=NO_RETRY),
    )
    assert [r.index for r in results] == [0, 1]
    assert results[1].status is Status.FAILED
    sandbox.check(results)


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "/dev/urandom"])
def test_endless_local_sources_fail_at_once(sandbox: Sandbox, kind: str) -> None:
    """A list item naming a FIFO or an endless device must not block or fill the disk."""
    source = kind
    if kind == "fifo":
        source = str(sandbox.root / "pipe")
        os.mkfifo(source)
    sandbox.freeze()
    started = time.monotonic()
    result = fetch_one(source, sandbox.out)
    assert time.monotonic() - started < 3
    assert result.status is Status.FAILED
    assert result.error is not None and result.error.type == "not_regular"
    sandbox.check([result])
