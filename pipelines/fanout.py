"""The Dask fan-out of a build: run one function per job on a cluster, results back in job order.

Jobs are submitted in order and consumed in that order through a bounded window of in-flight
futures, so what the caller writes is laid out the same whatever the cluster did, and memory stays
bounded whatever the number of jobs. A task costs ~75 ms of overhead: a job is one source file,
never a frame.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Callable, Iterator

log = logging.getLogger(__name__)


def dask_client(scheduler: str | None, n_workers: int):
    """(Client, LocalCluster or None): a client of ``scheduler``, or of a new LocalCluster of
    ``n_workers`` single-threaded worker processes."""
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler, timeout="30s"), None
    # ":0": the scheduler's HTTP server (started even without a dashboard) takes a free port, so two
    # builds never compete for 8787 ("Port 8787 is already in use"); no Bokeh dashboard either way.
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                           dashboard_address=":0", scheduler_kwargs={"dashboard": False},
                           silence_logs=logging.WARNING)
    return Client(cluster), cluster


def ordered_results(client, fn: Callable, jobs: list[tuple], max_in_flight: int) -> Iterator:
    """Submit ``fn(*job)`` for each job and yield results in job order, with bounded futures in flight."""
    pending: deque = deque()
    it = iter(jobs)
    for job in it:
        pending.append(client.submit(fn, *job, pure=False))
        if len(pending) >= max_in_flight:
            break
    while pending:
        fut = pending.popleft()
        result = fut.result()
        fut.release()
        nxt = next(it, None)
        if nxt is not None:
            pending.append(client.submit(fn, *nxt, pure=False))
        yield result


def fan_out(fn: Callable, jobs: list[tuple], *, scheduler: str | None, n_workers: int,
            max_in_flight: int = 0) -> Iterator:
    """Yield ``fn(*job)`` for each job, in job order, computed on Dask.

    The cluster starts on the first ``next()`` (none for no jobs) and closes when the generator ends
    or is closed. ``max_in_flight`` 0: 4 futures per worker.
    """
    if not jobs:
        return
    client, cluster = dask_client(scheduler, n_workers)
    try:
        n = max(1, len(client.scheduler_info().get("workers", {})) or n_workers)
        yield from ordered_results(client, fn, jobs, max_in_flight or 4 * n)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
