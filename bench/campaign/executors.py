"""Where the logs of a campaign are judged: in this process, in local processes, or on Dask.

Each executor takes the campaign's :class:`~.task.LogTask` list and yields one
:class:`~.task.LogResult` per task as each finishes (not in task order). A task that dies with its
process (killed, out of memory) or cannot start on a worker becomes an ``error`` result too:
the campaign always gets one result per log.

- ``jobs == 1``: judged one after another in this process (the serial figure of the benchmark).
- ``jobs > 1``: a :class:`concurrent.futures.ProcessPoolExecutor` of that many processes. Processes,
  not threads: decoding and the checks hold the GIL for much of their time. They start from a
  ``forkserver`` that has already imported the evaluator, so each worker costs a fork, not a fresh
  interpreter import of pyarrow/cantools, and no worker inherits the threads of the parent (the
  progress bar's refresh thread) the way a plain ``fork`` would.
- ``scheduler``: a ``dask.distributed`` cluster at ``tcp://HOST:PORT``; each task is one log, its
  result the small summary. Dask retries a task whose worker died (``distributed.scheduler.
  allowed-failures``) before reporting it lost. Workers need ``bench`` importable and must reach
  the logs, the plan, its DBCs and ``--out`` by the same paths.
"""

from __future__ import annotations

import multiprocessing
import os
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from ..errors import EXIT_ABORTED, HarnessError, InputError, one_line
from .task import LogResult, LogTask, evaluate_one

CONNECT_TIMEOUT_S = 10


def default_jobs() -> int:
    """The cores this process may use (``sched_getaffinity`` honours taskset and cgroups)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def run_tasks(
    tasks: Sequence[LogTask],
    *,
    jobs: int | None = None,
    client: Any = None,
    function: Callable[[LogTask], LogResult] = evaluate_one,
) -> Iterator[LogResult]:
    """Judge every task; yield results as they finish (see the module docstring).

    ``client`` (from :func:`connect`) sends them to a Dask cluster, else ``jobs`` local
    processes (default: one per core; 1 judges them one after another in this process).
    ``function`` is what runs per task (a module-level function, for the processes to import)."""
    if client is not None:
        return _on_dask(tasks, client, function)
    jobs = jobs or default_jobs()
    if jobs < 1:
        raise InputError(f"--jobs {jobs}: give at least 1")
    if jobs == 1 or len(tasks) <= 1:
        return (function(task) for task in tasks)
    return _in_processes(tasks, min(jobs, len(tasks)), function)


def lost(task: LogTask, reason: str) -> LogResult:
    """The result of a task whose worker never returned one."""
    from ..report.junit import error_suite

    text = f"not judged: {one_line(reason)}"
    suite = error_suite(task.label, task.log, "lost", text)
    return LogResult(
        label=task.label,
        log=task.log,
        run_dir=task.run_dir,
        status="error",
        verdict="error",
        exit_code=EXIT_ABORTED,
        error=text,
        junit=ET.tostring(suite, encoding="unicode"),
    )


def _in_processes(
    tasks: Sequence[LogTask], jobs: int, function: Callable[[LogTask], LogResult]
) -> Iterator[LogResult]:
    """A process pool; a worker's death costs only the log that caused it.

    When a worker process dies (killed, out of memory) the pool is broken and every task in
    flight fails with it, and which one killed it is unknown. Those tasks become suspects: each
    runs again alone on a fresh pool, so a task that kills its process alone is the culprit (an
    ``error`` row) and the innocent ones are judged normally. Then all processes work again."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["bench.campaign.task", "bench.evaluate"])
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context)
    pending: dict[Future[LogResult], LogTask] = {}
    queue = list(reversed(tasks))
    suspects: list[LogTask] = []
    alone = False
    try:
        while queue or pending or suspects:
            if suspects and not pending:
                task = suspects.pop(0)
                pending[pool.submit(function, task)] = task
                alone = True
            elif not suspects:
                # at most two tasks queued per process: a Ctrl-C then cancels the rest at once
                while queue and len(pending) < 2 * jobs:
                    task = queue.pop()
                    pending[pool.submit(function, task)] = task
                alone = False
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                if future.exception() is None:
                    pending.pop(future)
                    yield future.result()
                else:
                    broken = True
            if not broken:
                continue
            in_flight = list(pending.values())
            pending.clear()
            pool.shutdown(wait=False, cancel_futures=True)
            if alone:
                yield lost(in_flight[0], "its worker process died judging it (out of memory?)")
            else:
                suspects += in_flight
            pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context)
    finally:
        pool.shutdown(wait=not pending, cancel_futures=True)


def connect(scheduler: str) -> Any:
    """A ``distributed.Client`` of the scheduler at ``scheduler`` (``tcp://HOST:PORT``).

    A malformed address is an :class:`InputError` (exit 2); an unreachable scheduler a
    :class:`HarnessError` (exit 3). Either way nothing has been judged."""
    if not scheduler.startswith(("tcp://", "tls://", "ucx://")):
        raise InputError(f"--scheduler {scheduler!r}: expected tcp://HOST:PORT")
    from distributed import Client

    try:
        return Client(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise HarnessError(
            f"cannot reach the Dask scheduler at {scheduler}: {one_line(str(exc))}"
        ) from None


def _on_dask(
    tasks: Sequence[LogTask], client: Any, function: Callable[[LogTask], LogResult]
) -> Iterator[LogResult]:
    from distributed import as_completed

    campaign = uuid.uuid4().hex[:8]
    futures = [
        client.submit(function, task, key=f"bench-evaluate-{campaign}-{i}", pure=False)
        for i, task in enumerate(tasks)
    ]
    of = {future.key: task for future, task in zip(futures, tasks, strict=True)}
    try:
        for future in as_completed(futures, loop=client.loop):
            task = of[future.key]
            try:
                yield future.result()
            except Exception as exc:  # KilledWorker, a worker that cannot import bench …
                yield lost(task, f"on the Dask cluster: {type(exc).__name__}: {exc}")
    finally:
        client.cancel(futures)
