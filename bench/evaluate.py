"""Frames + events + plan + DBCs → :class:`~bench.summary.Summary` (DESIGN.md principle 1).

:func:`evaluate_log` is a pure function: everything in the summary comes from its inputs — run
metadata (start time, mode, interface, seed, software versions) from the ``run_start``/``run_end``
events the runner recorded, never from the clock of the evaluation. So re-evaluating a run
directory reproduces its ``summary.json`` byte for byte.

:func:`evaluate_path` is ``bench evaluate``: read a log (a run directory, a directory of segments,
or a Parquet/BLF/ASC/TRC/MF4/candump file), evaluate it, and write the run-directory outputs
(``signals/``, ``summary.json``, ``junit.xml``, ``report.html``). A log that is not a run directory
gets a new run directory holding copies of its frames, events, plan and DBCs, so that directory
alone re-evaluates to the same summary.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .checks import EvalContext, evaluate_check
from .dbc import DbcSet
from .decode import DecodedLog, decode_frames
from .diag.catalog import plan_ecus
from .diag.log import diagnostic_ids
from .errors import InputError
from .rundir import (
    EVENTS_FILE,
    FRAMES_DIR,
    JUNIT_FILE,
    PLAN_FILE,
    SEGMENT_PATTERN,
    SIGNALS_DIR,
    SUMMARY_FILE,
    TMP_SUFFIX,
    Event,
    RunLock,
    check_dbc_names,
    check_same_inputs,
    copy_inputs,
    lock_run_dir,
    parse_events,
    read_events,
    segment_name,
    sha256_of,
    stored_dbcs,
)
from .summary import Abort, CheckResult, StepRecord, Summary, run_verdict, write_summary

log = logging.getLogger(__name__)

SEGMENT_ROWS = 1_000_000  # frames per Parquet segment when a single-file log is copied


class Stopwatch:
    """Wall and CPU seconds per stage (``timings`` of :func:`evaluate_path`, the benchmark)."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._last = (time.perf_counter(), time.process_time())

    def lap(self, stage: str) -> None:
        now = (time.perf_counter(), time.process_time())
        self.timings[stage] = self.timings.get(stage, 0.0) + now[0] - self._last[0]
        self.timings[f"{stage}_cpu"] = (
            self.timings.get(f"{stage}_cpu", 0.0) + now[1] - self._last[1]
        )
        self._last = now


# -- the pure part ---------------------------------------------------------------------------------


def evaluate_log(
    frames: pa.Table,
    plan: Any,
    events: pa.Table | None = None,
    *,
    skipped: Iterable[str] = (),
    dbcs: DbcSet | None = None,
) -> tuple[Summary, DecodedLog]:
    """Decode ``frames`` and judge every check of ``plan``; returns the summary and the decode."""
    dbcs = dbcs if dbcs is not None else plan.dbcs
    decoded = decode_frames(frames, dbcs, diagnostic=diagnostic_ids(plan_ecus(plan)))
    return judge(frames, decoded, plan, events, skipped=skipped, dbcs=dbcs), decoded


def judge(
    frames: pa.Table,
    decoded: DecodedLog,
    plan: Any,
    events: pa.Table | None = None,
    *,
    skipped: Iterable[str] = (),
    dbcs: DbcSet | None = None,
) -> Summary:
    """Judge every check of ``plan`` on an already decoded log (see :func:`evaluate_log`)."""
    dbcs = dbcs if dbcs is not None else plan.dbcs
    ctx = EvalContext(
        messages=decoded.messages,
        dbcs=dbcs,
        frames=frames,
        events=events,
        bus_stats=decoded.stats.to_dict(),
        ecus=plan_ecus(plan),
    )
    results = [evaluate_check(spec, ctx) for spec in plan.checks]
    # every UDS exchange of the log, for the report's timeline (from the frames alone)
    diagnostics, skipped = _diagnostics(ctx), list(skipped)
    if isinstance(diagnostics, str):  # a bug must not cost the verdicts: said, not raised
        skipped.append(diagnostics)
        diagnostics = []
    results += _failed_steps(ctx)
    run = _run_metadata(ctx.event_list)
    aborted = _abort(ctx.event_list)
    summary = Summary(
        plan=plan.name,
        plan_file=run.get("plan_file") or _plan_file_name(plan),
        site=getattr(plan, "site", None),
        dut=dict(getattr(plan, "dut", None) or {}),
        bench=dict(getattr(plan, "bench", None) or {}),
        verdict=run_verdict(results, aborted=aborted is not None),
        mode=run.get("mode") or "evaluate",
        started_at=run.get("started_at"),
        ended_at=run.get("ended_at"),
        time_span=(ctx.log_start, ctx.log_end) if ctx.has_frames else None,
        frames=frames.num_rows,
        interface=run.get("interface"),
        channel=_text(run.get("channel")),
        seed=run.get("seed"),
        software={str(k): str(v) for k, v in (run.get("software") or {}).items()},
        dbc=[{"file": p.name, "sha256": sha256_of(p)} for p in dbcs.paths],
        skipped=list(skipped),
        aborted=aborted,
        steps=[
            StepRecord(name=s.name, start=s.start, end=s.end, status=s.status) for s in ctx.steps
        ],
        bus=_bus(decoded, run.get("bitrate")),
        checks=results,
        diagnostics=diagnostics,
    )
    return summary


def _diagnostics(ctx: EvalContext) -> list[dict[str, Any]] | str:
    """The log's UDS exchanges as summary.json holds them; a one-line reason if they could not
    be read (bench.diag.log never raises on bad data: that would be a bug)."""
    if ctx.frames is None:
        return []
    try:
        return ctx.diag().to_list()
    except Exception as exc:
        log.warning("diagnostics not reassembled: %s: %s", type(exc).__name__, exc)
        return f"diagnostics: not reassembled ({type(exc).__name__}: {exc})"


def _failed_steps(ctx: EvalContext) -> list[CheckResult]:
    """A step that ended other than ``done`` (an ``until:`` that timed out with ``on_timeout:
    fail``) fails the run; it is judged from the log's step events like any check."""
    results = []
    for step in ctx.steps:
        if step.status in ("done", "aborted"):
            continue
        end = step.end if step.end is not None else ctx.log_end
        results.append(
            CheckResult(
                name=f"Step '{step.name}' completes",
                kind="step",
                verdict="fail",
                observed=step.status,
                limit="done",
                evidence=[(step.start, end)],
                message=f"step {step.name!r} ended with {step.status} after "
                f"{end - step.start:.1f} s",
            )
        )
    return results


def _plan_file_name(plan: Any) -> str | None:
    try:
        return Path(plan.path).name
    except (AttributeError, TypeError, RuntimeError):
        return None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _run_metadata(events: Sequence[Event]) -> dict[str, Any]:
    """Detail of the first ``run_start`` merged with the ``ended_at`` of the last ``run_end``."""
    meta: dict[str, Any] = {}
    for event in events:
        if event.kind == "run_start" and not meta:
            meta.update(event.detail)
        if event.kind == "run_end" and "ended_at" in event.detail:
            meta["ended_at"] = event.detail["ended_at"]
    return meta


def _abort(events: Sequence[Event]) -> Abort | None:
    """The run's abort event; else, for a run that started and never ended (``run_start``
    without ``run_end``: killed, crashed, or its storage failed before the end could be
    written), an abort saying so. Such a log is never a pass: it stops short of the plan."""
    for event in events:
        if event.kind == "abort":
            reason = event.detail.get("reason") or event.name or "aborted"
            check = event.detail.get("check")
            return Abort(reason=str(reason), time=event.time, check=_text(check))
    kinds = {event.kind for event in events}
    if "run_start" in kinds and "run_end" not in kinds:
        return Abort(
            reason="the run did not finish: its events end without run_end (process killed "
            "or crashed, or its storage failed)",
            time=events[-1].time,
        )
    return None


def _bus(decoded: DecodedLog, bitrate: Any = None) -> dict[str, Any]:
    stats = decoded.stats
    bus: dict[str, Any] = {"bitrate": bitrate} if bitrate is not None else {}
    return bus | {
        "total_frames": stats.total_frames,
        "error_frames": stats.error_frames,
        "remote_frames": stats.remote_frames,
        "unknown_frames": stats.unknown_frames,
        "short_frames": stats.short_frames,
        "unknown_ids": stats.to_dict()["unknown_ids"],
        "diagnostic_frames": stats.diagnostic_frames,
        "messages": {
            name: {"frames": m.frames, "short": m.short, "long": m.long}
            for name, m in sorted(stats.messages.items())
        },
        # DBC messages bench cannot decode (e.g. an 8-bit IEEE float): their frames, and why
        "undecoded_messages": {
            name: {"frames": stats.messages[name].undecodable, "reason": reason}
            for name, reason in sorted(stats.undecoded.items())
        },
    }


# -- bench evaluate --------------------------------------------------------------------------------


@dataclass
class _Source:
    """Where a log's parts are: frames, events and (for a run directory) plan and DBCs."""

    frames: Path
    events: Path | None
    run_dir: Path | None


def _locate(log: Path) -> _Source:
    if not log.exists():
        raise InputError(f"{log}: no such log file or directory")
    if log.is_dir() and (log / FRAMES_DIR).is_dir():
        events = log / EVENTS_FILE
        return _Source(log / FRAMES_DIR, events if events.exists() else None, log)
    if log.is_dir() and log.name == FRAMES_DIR and (log.parent / PLAN_FILE).exists():
        return _locate(log.parent)  # the frames/ of a run directory: the run directory
    events = log / EVENTS_FILE if log.is_dir() else None
    return _Source(log, events if events is not None and events.exists() else None, None)


def evaluate_path(
    log: Path,
    plan_path: Path | None = None,
    *,
    dbc_paths: Sequence[Path] | None = None,
    out_dir: Path | None = None,
    timings: dict[str, float] | None = None,
    replace: bool = False,
) -> tuple[Summary, Path]:
    """``bench evaluate``: evaluate ``log`` against the plan and write the outputs.

    Output goes into ``out_dir``; without it into ``log`` itself when that is a run directory,
    else into a new ``reports/<YYYYmmdd-HHMMSS>-<plan-stem>/``. A run directory is held
    (:func:`~bench.rundir.lock_run_dir`) while it is read and written, and what a killed run
    left in it is recovered first (:func:`~bench.record.recover_run`). Bad input raises
    :class:`InputError` (exit 2) before anything is written; so does a run directory another
    process still holds (:class:`~bench.rundir.RunDirBusy`). ``timings``, if given, receives
    the seconds per stage (read, decode, checks, write).

    ``out_dir`` must be new or empty (or ``log``'s own run directory): another run's directory
    is never overwritten, since it may be the only copy of a recording (InputError, exit 2).
    ``replace=True`` lets a campaign re-judge into the run directory an earlier campaign made
    for the same log.
    """
    with ExitStack() as held:
        return _evaluate_path(log, plan_path, dbc_paths, out_dir, timings, held, replace)


def _evaluate_path(
    log: Path,
    plan_path: Path | None,
    dbc_paths: Sequence[Path] | None,
    out_dir: Path | None,
    timings: dict[str, float] | None,
    held: ExitStack,
    replace: bool = False,
) -> tuple[Summary, Path]:
    from .logfiles import read_frames
    from .plan import load_plan

    watch = Stopwatch()
    log = Path(log)
    source = _locate(log)
    if source.run_dir is not None:
        held.enter_context(lock_run_dir(source.run_dir))
        _recover(source.run_dir)
        source = _locate(log)  # recovery may have written events.parquet
    events = read_events(source.events) if source.events is not None else None
    if plan_path is None:
        if source.run_dir is None or not (source.run_dir / PLAN_FILE).is_file():
            raise InputError(f"{log}: not a run directory with a plan.yaml; give --plan PLAN")
        plan_path = source.run_dir / PLAN_FILE
    plan_path = Path(plan_path)
    given_dbcs = [Path(p) for p in dbc_paths] if dbc_paths else None
    if given_dbcs is None and source.run_dir is not None:
        # a run's plan names DBCs relative to where it ran from; the copies are what ran
        given_dbcs = stored_dbcs(source.run_dir, parse_events(events))
    plan = load_plan(plan_path, dbc_paths=given_dbcs)
    loaded = read_frames(source.frames)
    if source.events is not None and source.events.parent == source.frames:
        # events.parquet next to the segments is the events, not a damaged segment
        loaded.skipped = [x for x in loaded.skipped if not x.startswith(f"{EVENTS_FILE}:")]
    in_place = source.run_dir is not None and (
        out_dir is None or Path(out_dir).resolve() == source.run_dir.resolve()
    )
    if in_place:
        assert source.run_dir is not None
        check_same_inputs(source.run_dir, plan_path, plan.dbc_paths)
    else:
        check_dbc_names(plan.dbc_paths)  # before a directory is made for the copies
        if out_dir is not None:
            _check_out_dir(Path(out_dir), replace=replace)
    watch.lap("read")

    decoded = decode_frames(loaded.frames, plan.dbcs, diagnostic=diagnostic_ids(plan_ecus(plan)))
    watch.lap("decode")

    if in_place:
        assert source.run_dir is not None
        target = source.run_dir
    else:
        target = held.enter_context(_hold_target(out_dir, plan_path.stem)).path
        _materialise(target, source, loaded.frames, events, plan_path, plan.dbc_paths)
    # signals/ is only written, never read back: write it while the checks run (Arrow's Parquet
    # writer releases the GIL), so the two overlap on a second core
    writer = _Background(decoded.write_signal_tables, target / SIGNALS_DIR)
    # what reading the log had to say (start date unknown, frames sorted) stays with the verdict
    notes = [*loaded.skipped, *loaded.notes]
    summary = judge(loaded.frames, decoded, plan, events, skipped=notes, dbcs=plan.dbcs)
    if not _run_metadata(parse_events(events)).get("plan_file"):
        summary.plan_file = PLAN_FILE  # the copy in the output directory, same on re-evaluation
    watch.lap("checks")
    writer.join()
    write_outputs(target, summary, None, watch)
    if timings is not None:
        timings.update(watch.timings)
    return summary, target


def _recover(run_dir: Path) -> None:
    """What a killed run left (a journal, no run_end) made whole; said on the console."""
    from .record import RecordError, recover_run

    try:
        done = recover_run(run_dir)
    except RecordError as exc:  # read-only archive: evaluate what is there, say what is not
        log.warning("%s: not recovered: %s", run_dir, exc)
        return
    for line in done:
        log.warning("%s: recovered: %s", run_dir, line)


def _hold_target(out_dir: Path | None, plan_stem: str) -> RunLock:
    """The directory an evaluation writes a new run directory into, held while it does."""
    from .rundir import DEFAULT_ROOT, claim_run_dir, new_run_dir

    if out_dir is None:
        return new_run_dir(DEFAULT_ROOT, plan_stem)
    target = Path(out_dir)
    if target.is_dir() and any(target.iterdir()):
        return lock_run_dir(target)  # a run directory (checked): replaced, never mixed
    return claim_run_dir(target)


def _materialise(
    target: Path,
    source: _Source,
    frames: pa.Table,
    events: pa.Table | None,
    plan_path: Path,
    dbc_paths: Sequence[Path],
) -> None:
    """Make ``target`` a run directory that re-evaluates on its own.

    What an earlier evaluation left in ``target`` (frames, events, signals) is replaced, so the
    directory never mixes two logs."""
    target.mkdir(parents=True, exist_ok=True)
    frames_dir = target / FRAMES_DIR
    if source.frames.resolve() != frames_dir.resolve():  # never clear the log being read
        _clear(frames_dir, ("*.parquet", "*" + TMP_SUFFIX))
        frames_dir.mkdir(exist_ok=True)
        if source.frames.is_dir():
            # copy segments as they are — corrupt ones too, so re-evaluating skips the same ones
            for path in sorted(source.frames.iterdir()):
                name = path.name.removesuffix(TMP_SUFFIX)
                is_segment = path.suffix == ".parquet" or SEGMENT_PATTERN.match(name)
                if path.is_file() and is_segment and path.name != EVENTS_FILE:
                    shutil.copyfile(path, frames_dir / path.name)
        else:
            for index, start in enumerate(range(0, max(frames.num_rows, 1), SEGMENT_ROWS)):
                path = frames_dir / segment_name(index)
                tmp = path.with_name(path.name + TMP_SUFFIX)
                pq.write_table(frames.slice(start, SEGMENT_ROWS), tmp)
                tmp.replace(path)
    _clear(target / SIGNALS_DIR, ("*.parquet",))
    events_copy = target / EVENTS_FILE
    if events is not None and source.events is not None:
        if source.events.resolve() != events_copy.resolve():
            shutil.copyfile(source.events, events_copy)
    elif events_copy.exists():
        events_copy.unlink()
    copy_inputs(target, plan_path, dbc_paths)


def _check_out_dir(target: Path, *, replace: bool = False) -> None:
    """``--out`` of another log: a new or empty directory; with ``replace``, also a run directory
    (a campaign re-judging into the directory it made before)."""
    if target.exists() and not target.is_dir():
        raise InputError(f"{target}: --out must be a directory")
    if not target.is_dir() or not any(target.iterdir()):
        return
    is_run = (target / FRAMES_DIR).is_dir() or (target / SUMMARY_FILE).is_file()
    if replace and is_run:
        return
    what = "a run directory" if is_run else "not empty"
    raise InputError(
        f"{target}: --out is {what}; give a new or empty directory "
        "(a run directory is never overwritten by another log's evaluation)"
    )


def _clear(directory: Path, patterns: Sequence[str]) -> None:
    """Remove files matching ``patterns`` in ``directory`` (only those: it may be the user's)."""
    if not directory.is_dir():
        return
    for pattern in patterns:
        for path in directory.glob(pattern):
            if path.is_file():
                path.unlink()


class _Background:
    """Run ``function(*args)`` in a thread; :meth:`join` re-raises what it raised."""

    def __init__(self, function: Any, *args: Any) -> None:
        self._error: BaseException | None = None

        def run() -> None:
            try:
                function(*args)
            except BaseException as exc:  # handed to the caller in join()
                self._error = exc

        self._thread = threading.Thread(target=run, name="bench-write-signals", daemon=True)
        self._thread.start()

    def join(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


def write_outputs(
    target: Path,
    summary: Summary,
    decoded: DecodedLog | None,
    watch: Stopwatch | None = None,
) -> None:
    """``signals/`` (unless ``decoded`` is None: already written), ``summary.json``,
    ``junit.xml`` and, once it exists, ``report.html``."""
    from .report.junit import write_junit

    watch = watch or Stopwatch()
    if decoded is not None:
        decoded.write_signal_tables(target / SIGNALS_DIR)
    write_summary(summary, target / SUMMARY_FILE)
    write_junit(summary, target / JUNIT_FILE)
    watch.lap("write")
    try:
        from .report.html import write_report
    except ImportError:  # the HTML report is optional (its package may not be installed)
        return
    try:
        write_report(target)
    except Exception as exc:  # the verdicts stand without their rendering; say so, keep going
        log.warning("%s: report.html not written: %s: %s", target, type(exc).__name__, exc)
    watch.lap("report")


__all__ = ["Stopwatch", "evaluate_log", "evaluate_path", "judge", "write_outputs"]
