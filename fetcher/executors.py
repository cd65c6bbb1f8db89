"""Executors: where a run's items are fetched. Each takes the work items in input order and
gives their outcomes back in the same order, in batches; the job commits them. The choice
is made here, in one place: a new executor is a module of its own plus one line below."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from typing import Protocol

from fetcher.context import RunContext
from fetcher.options import FetchOptions
from fetcher.work import Outcome, WorkItem


class Executor(Protocol):
    def prepare(self) -> None:
        """Get what the run needs before it writes anything (a cluster's connection), so
        that a usage error here leaves no trace."""
        ...

    def close(self) -> None:
        """Release what `prepare` got, if `batches` did not."""
        ...

    def batches(
        self,
        items: Iterable[WorkItem],
        context: RunContext,
        chunksize: int,
        while_waiting: Callable[[], None] | None = None,
    ) -> Generator[list[Outcome], None, None]:
        """Outcomes in input order, a batch of every one ready at a time; closing the
        generator stops the work and releases everything it started."""
        ...


class OnThisMachine:
    """Executors that need nothing before their first batch."""

    def prepare(self) -> None:
        pass

    def close(self) -> None:
        pass


def choose_executor(options: FetchOptions) -> Executor:
    if options.cluster is not None:
        from fetcher.cluster import ClusterExecutor

        return ClusterExecutor(options.cluster)
    from fetcher.pool import ThreadExecutor

    processes = options.processes
    if processes is None:
        from fetcher.adaptive import MAX_PROCESSES, AdaptiveExecutor, usable_cpus
        from fetcher.session import requests_patched

        most = min(usable_cpus(), MAX_PROCESSES, options.workers)
        # Other processes would not see a patched requests (`responses` in a test), nor
        # share the run's cookie jar.
        one = requests_patched() or options.cookies is not None
        return AdaptiveExecutor(most) if most > 1 and not one else ThreadExecutor()
    if processes > 1:
        from fetcher.processes import ProcessExecutor

        return ProcessExecutor(processes)
    return ThreadExecutor()
