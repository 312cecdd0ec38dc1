"""The Dask fan-out of a build: one function per job on a cluster, a bounded window of jobs in flight.

A job (one source file or a shard of them, never a frame: a task costs ~75 ms of overhead) is
computed and its result kept on the worker that computed it (:func:`held_results`): only a small
summary travels to the driver, which takes the summaries in job order, so what it lays out is the
same whatever the cluster did; the follow-up it sends back (e.g. "write your shard at these rows")
runs where the result is. Dask recomputes a result whose worker died. Memory stays bounded whatever
the number of jobs.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from contextlib import contextmanager
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


@contextmanager
def dask_cluster(scheduler: str | None, n_workers: int):
    """A client of ``scheduler`` or of a new LocalCluster (closed on exit)."""
    client, cluster = dask_client(scheduler, n_workers)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def n_workers_of(client, default: int) -> int:
    return max(1, len(client.scheduler_info().get("workers", {})) or default)


def held_results(client, compute: Callable, jobs: list[tuple], *, summarize: Callable, place: Callable,
                 follow_up: Callable, max_in_flight: int, clock: dict | None = None) -> Iterator[tuple[int, object]]:
    """For each job i: ``compute(*job)`` on a worker, kept there; ``summarize(result)`` comes to the
    driver, where ``place(i, summary)`` is called in job order and returns the arguments of
    ``follow_up(result, *args)``, which runs where the result is. Yields ``(i, follow_up's return)`` as
    follow-ups finish (any order). At most ``max_in_flight`` results are held at a time.
    ``clock["waited_s"]`` adds up the time the driver sat waiting for workers."""
    from distributed import wait

    todo = iter(enumerate(jobs))
    waiting: deque = deque()  # (i, held, summary future), job order
    running: dict = {}  # follow-up future -> (i, held)

    def submit_next() -> None:
        nxt = next(todo, None)
        if nxt is not None:
            i, job = nxt
            held = client.submit(compute, *job, pure=False)
            waiting.append((i, held, client.submit(summarize, held, pure=False)))

    for _ in range(max(1, max_in_flight)):
        submit_next()
    while waiting or running:
        watch = list(running) + ([waiting[0][2]] if waiting else [])
        t = time.perf_counter()
        wait(watch, return_when="FIRST_COMPLETED")
        if clock is not None:
            clock["waited_s"] = clock.get("waited_s", 0.0) + time.perf_counter() - t
        if waiting and waiting[0][2].done():
            i, held, summary = waiting.popleft()
            args = place(i, summary.result())
            summary.release()
            running[client.submit(follow_up, held, *args, pure=False)] = (i, held)
        for fut in [f for f in running if f.done()]:
            i, held = running.pop(fut)
            out = fut.result()
            fut.release()
            held.release()
            submit_next()
            yield i, out
