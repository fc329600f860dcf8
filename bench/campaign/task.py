"""One log of a campaign, judged where it runs: a process of this machine or a Dask worker.

:func:`evaluate_one` is the whole task. It calls the same per-log evaluation as
``bench evaluate LOG`` (:func:`bench.evaluate.evaluate_path`) into the log's own run directory and
returns a :class:`LogResult`: the small summary the campaign needs (verdicts, observed values,
margins, the log's JUnit suite), a few kB whatever the length of the log, so that only this crosses
a process or network boundary. It never raises for a bad log: a log that cannot be read or judged
is a result with ``status="error"`` and the one-line reason.

Paths travel as strings and must mean the same where the task runs: on a cluster the plan, its
DBCs and ``--out`` live on a file system every worker reaches; the logs too, or in object storage
as URLs (``s3://…``), which each worker reads itself with its own credentials (:mod:`bench.remote`).
"""

from __future__ import annotations

import os
import socket
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EXIT_ABORTED, EXIT_INPUT, BenchError, InputError, one_line

CHECK_FIELDS = {"name", "kind", "verdict", "observed", "limit", "margin", "unit", "message"}


@dataclass(frozen=True)
class LogTask:
    """What a worker needs to judge one log (strings: picklable, and paths as the worker sees)."""

    log: str  # a path, or a URL (bench.remote)
    label: str
    run_dir: str
    plan: str
    dbc: tuple[str, ...] | None = None


@dataclass
class LogResult:
    """The small summary of one judged log (``campaign.json``'s ``logs[]`` entry)."""

    label: str
    log: str
    run_dir: str
    status: str  # ok | error
    verdict: str  # the run's verdict, or "error" when the log could not be judged
    exit_code: int
    frames: int | None = None
    seconds: float = 0.0  # wall
    cpu_seconds: float = 0.0  # CPU of the judging process, all its threads
    error: str | None = None
    skipped: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    worker: str = ""  # host:pid that judged it
    junit: str = ""  # this log's <testsuite> element

    def to_json(self) -> dict[str, Any]:
        """For campaign.json: everything but the JUnit text (it is in junit.xml)."""
        data = {k: v for k, v in self.__dict__.items() if k != "junit"}
        return data


def evaluate_one(task: LogTask) -> LogResult:
    """Judge ``task.log`` against ``task.plan`` into ``task.run_dir``; never raises for bad logs."""
    from ..evaluate import evaluate_path
    from ..remote import is_url
    from ..report.junit import error_suite, log_suite
    from ..summary import exit_code

    started, cpu = time.perf_counter(), time.process_time()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        summary, target = evaluate_path(
            task.log if is_url(task.log) else Path(task.log),
            Path(task.plan),
            dbc_paths=[Path(p) for p in task.dbc] if task.dbc else None,
            out_dir=Path(task.run_dir),
            replace=True,  # an earlier campaign's directory for this same log
        )
    except Exception as exc:  # any failure is this log's error row, not the campaign's end
        code = exc.exit_code if isinstance(exc, BenchError) else EXIT_ABORTED
        kind = "input" if isinstance(exc, InputError) else type(exc).__name__
        text = one_line(str(exc)) if isinstance(exc, BenchError) else f"{kind}: {one_line(exc)}"
        suite = error_suite(task.label, task.log, kind, text)
        return LogResult(
            label=task.label,
            log=task.log,
            run_dir=task.run_dir,
            status="error",
            verdict="error",
            exit_code=code if code else EXIT_INPUT,
            seconds=round(time.perf_counter() - started, 3),
            cpu_seconds=round(time.process_time() - cpu, 3),
            error=text,
            worker=worker,
            junit=ET.tostring(suite, encoding="unicode"),
        )
    checks = [check.model_dump(mode="json", include=CHECK_FIELDS) for check in summary.checks]
    suite = log_suite(summary, task.label, task.log)
    suite.set("time", f"{time.perf_counter() - started:.3f}")  # CI shows which logs were slow
    return LogResult(
        label=task.label,
        log=task.log,
        run_dir=str(target),
        status="ok",
        verdict=summary.verdict,
        exit_code=exit_code(summary.verdict),
        frames=summary.frames,
        seconds=round(time.perf_counter() - started, 3),
        cpu_seconds=round(time.process_time() - cpu, 3),
        skipped=list(summary.skipped),
        checks=checks,
        worker=worker,
        junit=ET.tostring(suite, encoding="unicode"),
    )
