"""The worker, the one place exceptions become outcomes: retries and their count, the error
kept, deadlines, stopping, what needs no request, local copies, checksums and statuses. The
downloader is a fake that plays a script of attempts; local files are real."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest

from fetcher.context import RunContext
from fetcher.download import Received as Response
from fetcher.download import Transfer
from fetcher.errors import Interrupted, ItemError
from fetcher.localfiles import local_validator
from fetcher.options import FetchOptions, Layout, RetryPolicy
from fetcher.results import ErrorInfo, ErrorType
from fetcher.sources import Source, parse_source
from fetcher.state import Completed, Validators
from fetcher.temps import TEMP_PREFIX, TempOutput
from fetcher.work import AlreadyDone, Failed, Fetched, Outcome, Stopped, WorkItem
from fetcher.worker import Worker

URL = "https://example.org/data/file.txt"
ETAG = Validators(etag='"v1"')

Attempt = Callable[[Transfer, Callable[[int | None], TempOutput], Validators | None], Response]


class ScriptedDownloader:
    """Plays one scripted step per attempt; a step returns a response or raises."""

    def __init__(self, *steps: Attempt) -> None:
        self._steps = list(steps)
        self.calls: list[Validators | None] = []
        self.forgotten: list[str] = []

    def attempt(
        self,
        url: str,
        transfer: Transfer,
        make_output: Callable[[int | None], TempOutput],
        conditional: Validators | None,
    ) -> Response:
        self.calls.append(conditional)
        return self._steps.pop(0)(transfer, make_output, conditional)

    def forget_partial(self, temp: str) -> None:
        self.forgotten.append(temp)

    def close(self) -> None:
        pass


def body(data: bytes, *, status: int = 200, disposition: str | None = None) -> Attempt:
    def step(
        transfer: Transfer, make: Callable[[int | None], TempOutput], _: Validators | None
    ) -> Response:
        transfer.http_status = status
        transfer.temp = transfer.temp or make(len(data))
        transfer.temp.write(data)
        return Response(status, ETAG, disposition)

    return step


def fail(
    kind: ErrorType,
    message: str,
    *,
    retryable: bool = False,
    status: int | None = None,
    retry_after: float | None = None,
    after_response: int | None = None,
    partial: bytes = b"",
    resumable: bool = False,
    then: Callable[[], None] | None = None,
) -> Attempt:
    """An attempt that fails, after receiving a response (`after_response`) and some bytes
    (`partial`) if asked to."""

    def step(
        transfer: Transfer, make: Callable[[int | None], TempOutput], _: Validators | None
    ) -> Response:
        if after_response is not None:
            transfer.http_status = after_response
        if partial:
            transfer.temp = transfer.temp or make(None)
            transfer.temp.write(partial)
            transfer.temp.resumable = resumable
        if then is not None:
            then()
        raise ItemError(
            kind, message, retryable=retryable, http_status=status, retry_after=retry_after
        )

    return step


def unchanged() -> Attempt:
    def step(transfer: Transfer, _: object, conditional: Validators | None) -> Response:
        assert conditional is not None
        transfer.http_status = 304
        return Response(304, conditional, None, unchanged=True)

    return step


def interrupted(
    transfer: Transfer, make: Callable[[int | None], TempOutput], _: object
) -> Response:
    transfer.temp = transfer.temp or make(None)
    transfer.temp.write(b"half")
    raise Interrupted


def never(*_: object) -> Response:
    raise AssertionError("no request was expected")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    return out


def make_worker(
    root: Path,
    downloader: ScriptedDownloader,
    *,
    retries: int = 2,
    **options: Any,
) -> tuple[Worker, RunContext]:
    policy = RetryPolicy(retries=retries, backoff_s=0.0, max_wait_s=60.0)
    context = RunContext(FetchOptions(output_dir=root, retry=policy, **options), root, None)
    return Worker(context, cast(Any, downloader)), context


def run(
    root: Path,
    downloader: ScriptedDownloader,
    source: Source | None = None,
    *,
    completed: Completed | None = None,
    **options: Any,
) -> Outcome:
    worker, _ = make_worker(root, downloader, **options)
    return worker(WorkItem(source or parse_source(URL, 0, root), completed))


def temps_left(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith(TEMP_PREFIX))


def close(outcome: Outcome) -> None:
    if isinstance(outcome, Fetched):
        outcome.temp.discard()


# --------------------------------------------------------------------------- retries


@pytest.mark.parametrize("failures", [0, 1, 3])
def test_retryable_errors_are_retried_and_the_attempts_counted(root: Path, failures: int) -> None:
    steps = [fail(ErrorType.TIMEOUT, "slow", retryable=True) for _ in range(failures)]
    downloader = ScriptedDownloader(*steps, body(b"hello"))
    outcome = run(root, downloader, retries=3)
    assert isinstance(outcome, Fetched)
    assert outcome.attempts == failures + 1
    assert len(downloader.calls) == failures + 1
    close(outcome)


@pytest.mark.parametrize("retries", [0, 1, 2])
def test_a_retryable_error_fails_once_the_retries_are_spent(root: Path, retries: int) -> None:
    steps = [fail(ErrorType.TIMEOUT, "slow", retryable=True) for _ in range(retries + 1)]
    downloader = ScriptedDownloader(*steps, never)
    outcome = run(root, downloader, retries=retries)
    assert isinstance(outcome, Failed)
    assert outcome.attempts == retries + 1
    assert len(downloader.calls) == retries + 1


def test_a_non_retryable_error_fails_at_once(root: Path) -> None:
    downloader = ScriptedDownloader(fail(ErrorType.HTTP_STATUS, "HTTP 404", status=404), never)
    outcome = run(root, downloader, retries=5)
    assert isinstance(outcome, Failed)
    assert outcome.attempts == 1
    assert outcome.error == ErrorInfo(ErrorType.HTTP_STATUS, "HTTP 404")


def test_the_last_error_is_kept_with_the_count_in_its_message(root: Path) -> None:
    downloader = ScriptedDownloader(
        fail(ErrorType.CONNECTION, "refused", retryable=True),
        fail(ErrorType.TIMEOUT, "slow", retryable=True),
        fail(ErrorType.TRUNCATED, "cut at 10 of 20 bytes", retryable=True),
    )
    outcome = run(root, downloader, retries=2)
    assert isinstance(outcome, Failed)
    assert outcome.error == ErrorInfo(
        ErrorType.TRUNCATED, "cut at 10 of 20 bytes (after 3 attempts)"
    )


def test_an_unexpected_exception_is_an_internal_error_not_a_crash(root: Path) -> None:
    def broken(*_: object) -> Response:
        raise KeyError("surprise")

    outcome = run(root, ScriptedDownloader(broken))
    assert isinstance(outcome, Failed)
    assert outcome.error.type is ErrorType.INTERNAL


@pytest.mark.parametrize(
    ("step", "status"),
    [
        (fail(ErrorType.TRUNCATED, "cut", after_response=200, partial=b"half"), 200),
        (fail(ErrorType.HTTP_STATUS, "HTTP 404", status=404), 404),
        (fail(ErrorType.CONNECTION, "refused"), None),
    ],
    ids=["error-after-a-200", "error-status", "no-response"],
)
def test_the_last_status_is_kept_on_a_failure(
    root: Path, step: Attempt, status: int | None
) -> None:
    outcome = run(root, ScriptedDownloader(step))
    assert isinstance(outcome, Failed)
    assert outcome.http_status == status


def test_a_failed_item_leaves_no_temp(root: Path) -> None:
    downloader = ScriptedDownloader(
        fail(ErrorType.TRUNCATED, "cut", retryable=True, partial=b"some bytes"),
        fail(ErrorType.TRUNCATED, "cut", partial=b"more"),
    )
    outcome = run(root, downloader)
    assert isinstance(outcome, Failed)
    assert temps_left(root) == []
    assert downloader.forgotten == []


def test_giving_up_a_resumable_partial_forgets_it(root: Path) -> None:
    downloader = ScriptedDownloader(
        fail(ErrorType.HTTP_STATUS, "HTTP 404", partial=b"bytes", resumable=True)
    )
    outcome = run(root, downloader)
    assert isinstance(outcome, Failed)
    assert len(downloader.forgotten) == 1
    assert downloader.forgotten[0].startswith(TEMP_PREFIX)
    assert temps_left(root) == []


# --------------------------------------------------------------------------- deadline and stop


def test_a_wait_past_the_deadline_fails_as_deadline_at_once(root: Path) -> None:
    downloader = ScriptedDownloader(
        fail(ErrorType.HTTP_STATUS, "HTTP 503", retryable=True, status=503, retry_after=30),
        never,
    )
    started = time.monotonic()
    outcome = run(root, downloader, deadline_s=5.0, retries=3)
    assert time.monotonic() - started < 4.0  # it does not wait for the 30 s
    assert isinstance(outcome, Failed)
    assert outcome.error.type is ErrorType.DEADLINE
    assert "last error: HTTP 503" in outcome.error.message
    assert outcome.http_status == 503


def test_an_attempt_that_ran_past_the_deadline_is_not_followed_by_another(root: Path) -> None:
    downloader = ScriptedDownloader(
        fail(ErrorType.TIMEOUT, "slow", retryable=True, then=lambda: time.sleep(0.1)), never
    )
    outcome = run(root, downloader, deadline_s=0.05, retries=3)
    assert isinstance(outcome, Failed)
    assert outcome.error.type is ErrorType.DEADLINE
    assert len(downloader.calls) == 1


def test_a_stop_while_waiting_to_retry_gives_stopped(root: Path) -> None:
    def stop_the_run() -> None:
        context.stop.set()

    downloader = ScriptedDownloader(
        fail(ErrorType.HTTP_STATUS, "HTTP 503", retryable=True, retry_after=30, then=stop_the_run),
        never,
    )
    worker, context = make_worker(root, downloader)
    started = time.monotonic()
    outcome = worker(WorkItem(parse_source(URL, 0, root)))
    assert time.monotonic() - started < 4.0
    assert isinstance(outcome, Stopped)
    assert outcome.attempts == 1
    assert context.stats.done == 0  # a stopped item is not counted as done


def test_a_stop_during_an_attempt_gives_stopped_and_drops_the_temp(root: Path) -> None:
    outcome = run(root, ScriptedDownloader(interrupted))
    assert isinstance(outcome, Stopped)
    assert temps_left(root) == []


def test_a_stop_during_an_attempt_keeps_a_resumable_temp(root: Path) -> None:
    def resumable(transfer: Transfer, make: Callable[[int | None], TempOutput], _: object) -> Any:
        transfer.temp = make(None)
        transfer.temp.write(b"half")
        transfer.temp.resumable = True
        raise Interrupted

    outcome = run(root, ScriptedDownloader(resumable))
    assert isinstance(outcome, Stopped)
    assert len(temps_left(root)) == 1


def test_a_stopped_run_starts_no_item(root: Path) -> None:
    worker, context = make_worker(root, ScriptedDownloader(never))
    context.stop.set()
    assert isinstance(worker(WorkItem(parse_source(URL, 0, root))), Stopped)


# --------------------------------------------------------------------------- no request needed


@pytest.mark.parametrize("text", ["ftp://example.org/x", "https://", "a\x01b"])
def test_an_invalid_source_fails_without_a_request(root: Path, text: str) -> None:
    source = parse_source(text, 0, root)
    outcome = run(root, ScriptedDownloader(never), source)
    assert isinstance(outcome, Failed)
    assert outcome.error == source.error
    assert outcome.attempts == 0


def test_a_completed_item_is_already_done_without_a_request(root: Path) -> None:
    done = Completed("file.txt", 5, "a" * 64, 200, ETAG)
    outcome = run(root, ScriptedDownloader(never), completed=done)
    assert outcome == AlreadyDone(
        parse_source(URL, 0, root), done, unchanged=False, http_status=200,
        elapsed_s=outcome.elapsed_s,
    )  # fmt: skip


def test_with_update_a_completed_item_is_asked_for_conditionally(root: Path) -> None:
    done = Completed("file.txt", 5, "a" * 64, 200, ETAG)
    downloader = ScriptedDownloader(unchanged())
    outcome = run(root, downloader, completed=done, update=True)
    assert downloader.calls == [ETAG]
    assert isinstance(outcome, AlreadyDone)
    assert (outcome.unchanged, outcome.http_status, outcome.attempts) == (True, 304, 1)


def test_with_update_a_changed_item_is_fetched_again(root: Path) -> None:
    done = Completed("file.txt", 5, "a" * 64, 200, ETAG)
    outcome = run(root, ScriptedDownloader(body(b"new!")), completed=done, update=True)
    assert isinstance(outcome, Fetched)
    assert outcome.temp.path.read_bytes() == b"new!"
    close(outcome)


# --------------------------------------------------------------------------- what a fetch hands on


def test_a_fetched_item_carries_its_temp_name_and_response(root: Path) -> None:
    outcome = run(root, ScriptedDownloader(body(b"hello")), layout=Layout.MIRROR)
    assert isinstance(outcome, Fetched)
    assert (outcome.dirs, outcome.name, outcome.http_status, outcome.validators) == (
        ("example.org", "data"),
        "file.txt",
        200,
        ETAG,
    )
    assert outcome.temp.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert outcome.temp.path.parent == root
    close(outcome)


@pytest.mark.parametrize(
    ("layout", "expected"),
    [(Layout.FLAT, "report.pdf"), (Layout.INDEXED, "000000-report.pdf"),
     (Layout.MIRROR, "file.txt")],
)  # fmt: skip
def test_the_servers_name_is_used_except_in_mirror_layout(
    root: Path, layout: Layout, expected: str
) -> None:
    step = body(b"%PDF", disposition='attachment; filename="report.pdf"')
    outcome = run(root, ScriptedDownloader(step), layout=layout)
    assert isinstance(outcome, Fetched)
    assert outcome.name == expected
    close(outcome)


def test_a_declared_size_over_max_size_fails_before_writing(root: Path) -> None:
    outcome = run(root, ScriptedDownloader(body(b"x" * 100)), max_size=10)
    assert isinstance(outcome, Failed)
    assert outcome.error.type is ErrorType.TOO_LARGE
    assert temps_left(root) == []


def test_stats_count_done_and_failed_items(root: Path) -> None:
    worker, context = make_worker(
        root, ScriptedDownloader(body(b"ok"), fail(ErrorType.HTTP_STATUS, "HTTP 404"))
    )
    close(worker(WorkItem(parse_source(URL, 0, root))))
    worker(WorkItem(parse_source(URL, 1, root)))
    assert (context.stats.done, context.stats.failed) == (2, 1)


# --------------------------------------------------------------------------- checksums


def _with_checksum(source: Source, data: bytes, *, right: bool) -> Source:
    digest = hashlib.sha256(data if right else b"something else").hexdigest()
    return replace(source, checksums=(("sha256", digest),))


@pytest.mark.parametrize("right", [True, False])
def test_a_download_is_checked_against_its_checksum(root: Path, right: bool) -> None:
    source = _with_checksum(parse_source(URL, 0, root), b"hello", right=right)
    outcome = run(root, ScriptedDownloader(body(b"hello")), source)
    if right:
        assert isinstance(outcome, Fetched)
        close(outcome)
    else:
        assert isinstance(outcome, Failed)
        assert outcome.error.type is ErrorType.CHECKSUM_MISMATCH
        assert outcome.attempts == 1  # a mismatch is not retried
        assert temps_left(root) == []


def test_an_md5_checksum_is_checked_too(root: Path) -> None:
    source = replace(parse_source(URL, 0, root), checksums=(("md5", "0" * 32),))
    outcome = run(root, ScriptedDownloader(body(b"hello")), source)
    assert isinstance(outcome, Failed)
    assert outcome.error.type is ErrorType.CHECKSUM_MISMATCH


# --------------------------------------------------------------------------- local files


@pytest.fixture
def local(tmp_path: Path) -> Path:
    folder = tmp_path / "lists"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "notes.txt").write_bytes(b"local bytes")
    return folder


def test_a_local_file_is_copied_without_a_request(root: Path, local: Path) -> None:
    source = parse_source("sub/notes.txt", 0, local)
    outcome = run(root, ScriptedDownloader(never), source, layout=Layout.MIRROR)
    assert isinstance(outcome, Fetched)
    assert outcome.temp.path.read_bytes() == b"local bytes"
    assert (outcome.dirs, outcome.name, outcome.http_status) == (("sub",), "notes.txt", None)
    assert outcome.validators == Validators(etag=local_validator(str(local / "sub/notes.txt")))
    assert outcome.temp.path.stat().st_mtime_ns == (local / "sub/notes.txt").stat().st_mtime_ns
    close(outcome)


@pytest.mark.parametrize(
    ("text", "kind"),
    [("missing.txt", ErrorType.NOT_FOUND), ("sub", ErrorType.IS_DIRECTORY)],
)
def test_a_local_source_that_is_not_a_file_fails(
    root: Path, local: Path, text: str, kind: ErrorType
) -> None:
    outcome = run(root, ScriptedDownloader(never), parse_source(text, 0, local))
    assert isinstance(outcome, Failed)
    assert outcome.error.type is kind
    assert temps_left(root) == []


def test_a_fifo_is_not_read(root: Path, local: Path) -> None:
    os.mkfifo(local / "pipe")
    outcome = run(root, ScriptedDownloader(never), parse_source("pipe", 0, local))
    assert isinstance(outcome, Failed)
    assert outcome.error.type is ErrorType.NOT_REGULAR


def test_a_local_checksum_mismatch_fails_and_leaves_no_temp(root: Path, local: Path) -> None:
    source = _with_checksum(parse_source("sub/notes.txt", 0, local), b"", right=False)
    outcome = run(root, ScriptedDownloader(never), source)
    assert isinstance(outcome, Failed)
    assert outcome.error.type is ErrorType.CHECKSUM_MISMATCH
    assert temps_left(root) == []


@pytest.mark.parametrize("touched", [False, True])
def test_with_update_a_local_file_is_copied_only_when_changed(
    root: Path, local: Path, touched: bool
) -> None:
    path = local / "sub" / "notes.txt"
    done = Completed("notes.txt", 11, "a" * 64, None, Validators(etag=local_validator(str(path))))
    if touched:
        info = path.stat()
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
    source = parse_source("sub/notes.txt", 0, local)
    outcome = run(root, ScriptedDownloader(never), source, completed=done, update=True)
    if touched:
        assert isinstance(outcome, Fetched)
        close(outcome)
    else:
        assert isinstance(outcome, AlreadyDone)
        assert outcome.unchanged
