"""The Dask cluster executor (`--cluster`): the list is cut into blocks, each block is a
Dask task that runs through the usual thread-pool pipeline on a cluster worker, and the
client gets the blocks' outcomes back in input order.

The client keeps what must stay single, as with `--processes`: reading the lists, the
order, the names, the state store and the manifest. Workers only write temp files into the
output dir, which must be on a file system they share with the client at the same path
(checked at start; so must local sources and a CA bundle), and return outcomes. A block's
items are committed only once its whole result has arrived, so when a worker dies mid-block
Dask runs the block again elsewhere and nothing committed is fetched twice (a re-run
replaces the block's temp files: they are per item). Progress moves a block at a time.
"""

from __future__ import annotations

import collections
import itertools
import logging
import pickle
import secrets
import signal
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from importlib.util import find_spec
from multiprocessing.pool import ThreadPool
from pathlib import Path

from fetcher.context import RunContext, RunSpec
from fetcher.errors import FetcherError, UsageError
from fetcher.options import parse_cluster
from fetcher.pool import WAIT_POLL_S
from fetcher.processes import Handover, children_skip_main, portable, share_of
from fetcher.temps import remove_quietly
from fetcher.work import Outcome, Stopped, WorkItem
from fetcher.worker import build_worker

try:
    import dask
    import distributed
except ImportError:
    raise UsageError(
        "--cluster needs Dask's distributed package: pip install 'fetcher[dask]'"
    ) from None

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
"""How long to try reaching a scheduler: a wrong address fails fast instead of after
Dask's default of 30 s (a scheduler on a reachable network answers in milliseconds)."""
WORKERS_WAIT_S = 30.0
"""How long a scheduler without workers is given for one to join."""
CHUNKS_PER_THREAD = 8
"""A block gives each of a worker's threads this many chunks: while a block's last items
finish, its other threads wait, so the tail costs about 1/(2 * 8) of a block's time."""
MIN_BLOCK = 64
"""Items per block at least, so that the cost of a Dask task (a few milliseconds of
scheduling and transfer) stays small beside the items' own."""
BLOCKS_PER_WORKER = 3
"""Blocks submitted and not yet consumed, per worker: one running, one queued so the
worker never waits for the client, one done and waiting for its turn in the order."""
RUN_IDLE_S = 600.0
"""A run whose blocks have not come to a worker for this long has its pool closed there
(its client may be gone without saying so); another block would open it again."""
ENDED_RUNS_KEPT = 256
"""Runs a worker remembers as ended, so that a block of one that arrives late does not
start it again."""


def block_size(chunksize: int, threads: int) -> int:
    """Items per Dask task: `CHUNKS_PER_THREAD` chunks for each of a worker's threads."""
    return max(MIN_BLOCK, chunksize * threads * CHUNKS_PER_THREAD)


class ClusterExecutor:
    """Blocks of items fetched on a Dask cluster's workers, `options.workers` threads on
    each worker (`--processes` does not apply); per-host and rate limits are shared out
    among the workers present at the start."""

    def __init__(self, cluster: object) -> None:
        self.cluster = cluster
        """An address, 'local:N', or a `distributed.Client` (see `FetchOptions.cluster`)."""
        self._connected: _Cluster | None = None

    def prepare(self) -> None:
        """Connect (or start the local cluster) before the run writes anything."""
        if self._connected is None:
            self._connected = _Cluster.connect(self.cluster)

    def close(self) -> None:
        connected, self._connected = self._connected, None
        if connected is not None:
            connected.release(None, [], stopped=False)

    def batches(
        self,
        items: Iterable[WorkItem],
        context: RunContext,
        chunksize: int,
        while_waiting: Callable[[], None] | None = None,
    ) -> Generator[list[Outcome], None, None]:
        """Each block's outcomes, in input order; at most `BLOCKS_PER_WORKER` blocks per
        worker are out at once, so the items are read only as fast as the cluster takes
        them. Leaving early cancels the blocks still out, stops the run on the workers and
        removes the temp files it left."""
        self.prepare()
        cluster, self._connected = self._connected, None
        assert cluster is not None
        client = cluster.client
        token = secrets.token_hex(8)
        pending: collections.deque[distributed.Future[bytes]] = collections.deque()
        finished = False
        try:
            workers = _check_shared(client, context.root)
            link = cluster.dashboard_link()
            if link is not None:
                log.warning("Dask dashboard: %s", link)
            options = share_of(context.options, len(workers))
            spec = RunSpec(options, context.root, keeps_state=False)
            handover = Handover(context)
            blocks = _blocks(handover.send(items), block_size(chunksize, options.workers))
            numbers = itertools.count()
            limit = BLOCKS_PER_WORKER * len(workers)

            def submit() -> None:
                while len(pending) < limit and not context.stop.is_set():
                    block = next(blocks, None)
                    if block is None:
                        return
                    key = f"fetcher-block-{token}-{next(numbers)}"
                    pending.append(
                        client.submit(_run_block, token, spec, chunksize, _packed(block), key=key)
                    )

            submit()
            while pending and not context.stop.is_set():
                if not _done(pending[0], context, while_waiting):
                    break
                outcomes = _result(pending.popleft())
                submit()
                yield handover.receive(outcomes)
            # The loop ends with blocks out only when the run was stopped.
            finished = not context.stop.is_set()
        finally:
            if not finished:
                context.stop.set()
            cluster.release(token, list(pending), stopped=not finished)
            if not finished:
                context.remove_stray_temps()


class _Cluster:
    """The client of a run, and the local cluster fetcher started for it, if it did."""

    def __init__(
        self,
        client: distributed.Client,
        *,
        owns_client: bool,
        local: distributed.LocalCluster | None = None,
    ) -> None:
        self.client = client
        self.owns_client = owns_client
        self.local = local

    @classmethod
    def connect(cls, given: object) -> _Cluster:
        """A Client given is used as it is (and never closed here); 'local:N' starts a
        cluster of N single-threaded worker processes on 127.0.0.1 (the pool on each
        does the concurrency); an address must answer within `CONNECT_TIMEOUT_S`."""
        if isinstance(given, distributed.Client):
            return cls(given, owns_client=False)
        if not isinstance(given, str):
            raise UsageError(
                "cluster must be a scheduler address, 'local:N' or a distributed.Client,"
                f" not {type(given).__name__}"
            )
        address = parse_cluster(given)
        if address.startswith("local:"):
            with children_skip_main():
                local = _local_cluster(int(address.removeprefix("local:")))
            try:
                client = distributed.Client(local, set_as_default=False)
            except BaseException:
                local.close()
                raise
            return cls(client, owns_client=True, local=local)
        try:
            client = distributed.Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except OSError as exc:
            raise UsageError(f"no Dask scheduler answers at {address}: {exc}") from None
        cluster = cls(client, owns_client=True)
        try:
            client.wait_for_workers(1, timeout=WORKERS_WAIT_S)
        except distributed.TimeoutError:
            cluster.release(None, [], stopped=False)
            raise UsageError(
                f"the Dask scheduler at {address} has no workers"
                f" (none joined within {WORKERS_WAIT_S:.0f} s)"
            ) from None
        except BaseException:
            cluster.release(None, [], stopped=False)
            raise
        return cluster

    def dashboard_link(self) -> str | None:
        """Dask's dashboard, if there is one: a local cluster has it only with bokeh; of
        another, the scheduler knows."""
        if self.local is not None and find_spec("bokeh") is None:
            return None
        link: str | None = self.client.dashboard_link
        return link

    def release(
        self, token: str | None, pending: list[distributed.Future[bytes]], *, stopped: bool
    ) -> None:
        """Cancel the blocks still out, end the run on the workers (stopping its items if
        `stopped`), and close what this run started."""
        try:
            # Best effort: the scheduler may be gone already.
            try:
                if pending:
                    self.client.cancel(pending)
                if token is not None:
                    self.client.run(_end_run, token, stopped, on_error="ignore")
            except (OSError, distributed.TimeoutError) as exc:
                log.debug("could not end the run on the cluster: %s", exc)
        finally:
            if self.owns_client:
                self.client.close()
            if self.local is not None:
                self.local.close()


def _local_cluster(workers: int) -> distributed.LocalCluster:
    """Dask's statistical profiler is off in these workers: on CPython before 3.11.9 its
    `sys._current_frames()` can deadlock a worker when a collection frees a
    `threading.local` meanwhile (CPython gh-106883), which a worker's threads do."""
    with dask.config.set({"distributed.worker.profile.enabled": False}):
        return distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            # Dask serves HTTP whatever this says; a free port never clashes with another
            # cluster's (the dashboard itself needs bokeh).
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
            preload=[__name__],
        )


def _check_shared(client: distributed.Client, root: Path) -> list[str]:
    """The workers (their addresses): each must see the output dir and write in it, since
    the client renames the temp files they write there."""
    probe = root / f".fetcher-probe-{secrets.token_hex(8)}"
    probe.write_text(probe.name, encoding="utf-8")
    try:
        answers: dict[str, object] = client.run(_sees_probe, str(probe), on_error="return")
    finally:
        remove_quietly(probe)
    for worker, answer in sorted(answers.items()):
        if answer is not True:
            raise UsageError(
                f"Dask worker {worker} cannot use the output dir {root} ({answer}):"
                " the client and every worker must share it, at the same path"
            )
    return sorted(answers)


def _sees_probe(probe: str) -> bool:
    """On a worker: the client's probe is there, and a file can be written beside it."""
    path = Path(probe)
    if path.read_text(encoding="utf-8") != path.name:
        raise OSError(f"{probe} is not the file the client wrote")
    beside = path.with_name(f"{path.name}-{secrets.token_hex(4)}")
    beside.write_bytes(b"")
    beside.unlink()
    return True


def _blocks(items: Iterable[WorkItem], size: int) -> Iterator[list[WorkItem]]:
    feed = iter(items)
    while block := list(itertools.islice(feed, size)):
        yield block


def _done(
    future: distributed.Future[bytes],
    context: RunContext,
    while_waiting: Callable[[], None] | None,
) -> bool:
    """Wait for a block, calling `while_waiting` every `WAIT_POLL_S`; False if the run
    was stopped first."""
    ready = threading.Event()
    future.add_done_callback(lambda _: ready.set())
    while not ready.wait(WAIT_POLL_S):
        if context.stop.is_set():
            return False
        if while_waiting is not None:
            while_waiting()
    return True


def _result(future: distributed.Future[bytes]) -> list[Outcome]:
    """A block's outcomes; a block the cluster gave up on ends the run."""
    try:
        outcomes: list[Outcome] = pickle.loads(future.result())
    except distributed.KilledWorker as exc:
        raise FetcherError(f"a block of items kept killing Dask workers: {exc}") from None
    except distributed.CancelledError:
        raise FetcherError("the Dask cluster dropped a block of items (scheduler lost?)") from None
    return outcomes


def _packed(value: list[WorkItem] | list[Outcome]) -> bytes:
    """A block's items, or its outcomes, as they travel: pickled as one, since Dask would
    look into every item of a list (for futures, and to serialize it on its own), which
    costs the client about a third more CPU per item."""
    return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)


# On the worker: each run's worker and pool, built by its first block there.


def dask_setup(worker: object) -> None:
    """Preload of the workers of `local:N`: they ignore Ctrl-C, which a terminal sends to
    the whole process group; the client decides when the run stops."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _Run:
    """One run on this worker process: one worker and one pool, shared by its blocks."""

    def __init__(self, spec: RunSpec) -> None:
        self.context = spec.open()
        self.worker = build_worker(self.context)
        self.pool = ThreadPool(spec.options.workers)
        self.users = 0
        """Blocks running now."""
        self.ended = False
        self.idle_since = time.monotonic()

    def fetch(self, items: list[WorkItem], chunksize: int) -> list[Outcome]:
        """The block's outcomes. Once the run is stopped the task returns at once (the
        client has left: no one reads it), so that a worker closing waits for nothing;
        a thread still in an item ends it at the next safe point, removing its temp."""
        done = self.pool.map_async(self.worker, items, chunksize)
        while not self.context.stop.is_set():
            done.wait(WAIT_POLL_S)
            if done.ready():
                return portable(done.get())
        return _stopped(items)

    def close(self) -> None:
        """Without waiting: the threads end on their own once their item is done."""
        self.pool.close()
        self.worker.close()


_runs: dict[str, _Run] = {}
_ended: collections.deque[str] = collections.deque(maxlen=ENDED_RUNS_KEPT)
_runs_lock = threading.Lock()


def _run_block(token: str, spec: RunSpec, chunksize: int, block: bytes) -> bytes:
    """The Dask task: one block of items through this worker's pool of the run `token`,
    its outcomes in the same order (both `_packed`). Safe to run twice (Dask does, when a
    worker dies): it only writes temp files, one per item, replaced when made again."""
    items: list[WorkItem] = pickle.loads(block)
    run = _join(token, spec)
    if run is None:
        return _packed(_stopped(items))
    try:
        return _packed(run.fetch(items, chunksize))
    finally:
        with _runs_lock:
            run.users -= 1
            run.idle_since = time.monotonic()
            last = run.ended and run.users == 0
        if last:
            run.close()


def _join(token: str, spec: RunSpec) -> _Run | None:
    """The run's state on this worker (None if the run has ended); closes runs left idle."""
    with _runs_lock:
        if token in _ended:
            return None
        now = time.monotonic()
        idle = [t for t, r in _runs.items() if r.users == 0 and now - r.idle_since > RUN_IDLE_S]
        stale = [_runs.pop(t) for t in idle]
        run = _runs.get(token)
        if run is None:
            run = _runs[token] = _Run(spec)
        run.users += 1
    for old in stale:
        old.close()
    return run


def _end_run(token: str, stopped: bool) -> None:
    """Run on every worker (`Client.run`) when the run ends: its pool is closed once its
    last block is done; `stopped` makes the items still running stop."""
    with _runs_lock:
        _ended.append(token)
        run = _runs.pop(token, None)
        if run is None:
            return
        run.ended = True
        idle = run.users == 0
    if stopped:
        run.context.stop.set()
    if idle:
        run.close()


def _stopped(items: list[WorkItem]) -> list[Outcome]:
    return [Stopped(item.source) for item in items]
