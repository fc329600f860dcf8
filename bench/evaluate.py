"""Frames + events + plan + DBCs → :class:`~bench.summary.Summary` (DESIGN.md principle 1).

:func:`evaluate_log` is a pure function: everything in the summary comes from its inputs — run
metadata (start time, mode, interface, seed, software versions) from the ``run_start``/``run_end``
events the runner recorded, never from the clock of the evaluation. So re-evaluating a run
directory reproduces its ``summary.json`` byte for byte.

:func:`judge_batches` judges a log given as batches of frames in time order, holding only what
the checks carry across batches (see the README's design notes, "Evaluation streams");
:func:`evaluate_log` and :func:`judge` are the same code with one batch.

:func:`evaluate_path` is ``bench evaluate``: read a log (a run directory, a directory of segments,
or a Parquet/BLF/ASC/TRC/MF4/candump file), evaluate it, and write the run-directory outputs
(``signals/``, ``summary.json``, ``junit.xml``, ``report.html``). A log that is not a run directory
gets a new run directory holding copies of its frames, events, plan and DBCs, so that directory
alone re-evaluates to the same summary.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .channels import (
    FrameSelection,
    StreamMix,
    bus_entries,
    mixed_reason,
    selection_note,
    timing_messages,
    unmatched_channels,
)
from .checks import CheckStream, EvalContext, evaluate_check, replace_result
from .checks.compact import CompactLog, Needs
from .dbc import DbcSet
from .decode import (
    BackgroundWriter,
    DecodedLog,
    DecodeStats,
    SignalTableWriter,
    decode_frames,
)
from .diag.catalog import Ecu, plan_ecus, with_addressing
from .diag.log import diagnostic_ids
from .errors import InputError
from .frames import FRAME_SCHEMA
from .remote import RemoteFile, evaluate_url, is_url
from .rundir import (
    EVENTS_FILE,
    FRAMES_DIR,
    JUNIT_FILE,
    PLAN_FILE,
    SEGMENT_PATTERN,
    SELECTION_FILE,
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
    plan_run_dbcs,
    read_events,
    segment_name,
    sha256_of,
    stored_dbcs,
)
from .stream import FrameBatches, NeedsWholeLog, batch_rows
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
    selection: FrameSelection | None = None,
) -> tuple[Summary, DecodedLog]:
    """Decode ``frames`` and judge every check of ``plan``; returns the summary and the decode
    (of the frames judged: those inside ``selection``, default the plan's ``judge:``).

    The in-memory case of :func:`judge_batches`: the same code with one batch."""
    kept: list[DecodedLog] = []
    summary = judge_batches(
        [frames],
        plan,
        events,
        span=None,
        skipped=skipped,
        dbcs=dbcs,
        each=lambda _, decoded: kept.append(decoded),
        selection=selection,
    )
    return summary, kept[0]


def judge(
    frames: pa.Table,
    decoded: DecodedLog,
    plan: Any,
    events: pa.Table | None = None,
    *,
    skipped: Iterable[str] = (),
    dbcs: DbcSet | None = None,
    selection: FrameSelection | None = None,
) -> Summary:
    """Judge every check of ``plan`` on an already decoded log (one batch of
    :func:`judge_batches`); where ``selection`` (default: the plan's) leaves frames out, the
    frames it keeps are decoded again."""
    dbcs = dbcs if dbcs is not None else plan.dbcs
    judging = _Judging(plan, dbcs, events, _span_of(frames), selection)
    chosen = judging.select(frames)
    if chosen.num_rows != frames.num_rows:
        diagnostic = diagnostic_ids(log_ecus(plan, events))
        decoded = decode_frames(chosen, dbcs, diagnostic=diagnostic)
    judging.add(chosen, decoded, frames)
    return judging.summary(skipped)


def judge_batches(
    batches: Iterable[pa.Table],
    plan: Any,
    events: pa.Table | None = None,
    *,
    span: tuple[float, float] | None,
    skipped: Iterable[str] | Callable[[], Iterable[str]] = (),
    dbcs: DbcSet | None = None,
    each: Callable[[pa.Table, DecodedLog], None] | None = None,
    watch: Stopwatch | None = None,
    selection: FrameSelection | None = None,
) -> Summary:
    """Decode and judge a log given as frame tables in time order (``batches``), one at a time.

    ``selection``: the frames judged (default: the plan's ``judge:``, :mod:`bench.channels`);
    the others are counted and dropped here, before decoding, so every consumer of a batch —
    reducers, kept rows, ``signals/`` — sees the same frames whatever the batch size. The span
    stays the whole log's (a message that stops on the judged channel while the logger goes on
    recording is a timeout, not a shorter log). Every judged frame is also counted per id,
    channel and direction, so a message that comes as two streams is never judged as one.

    ``span``: the log's first and last frame time, known before the first batch (from Parquet
    statistics: :meth:`bench.stream.FrameBatches.span`); the batches are checked against it
    (:class:`~bench.stream.NeedsWholeLog` if it was wrong). Each check is a reducer carrying its
    state across batches (:class:`~bench.checks.CheckStream`); a kind without one is judged at
    the end on the rows it reads, kept batch by batch (:class:`~bench.checks.compact.CompactLog`).
    ``each(frames, decoded)`` sees every batch as read and the decode of its judged frames
    (``signals/`` and the frame copy are written there). The summary is the one of the whole
    log in one batch, to the bit.
    ``skipped`` may be a function, called after the last batch (what reading had to skip is
    known only then)."""
    dbcs = dbcs if dbcs is not None else plan.dbcs
    diagnostic = diagnostic_ids(log_ecus(plan, events))
    judging: _Judging | None = None
    for whole in batches:
        if judging is None:
            start = span if span is not None else _span_of(whole)
            judging = _Judging(plan, dbcs, events, start, selection)
        frames = judging.select(whole)
        decoded = decode_frames(frames, dbcs, diagnostic=diagnostic)
        if each is not None:
            each(whole, decoded)
        judging.add(frames, decoded, whole)
        del decoded, frames
    if judging is None:  # no frames: the decode of an empty table still says what it cannot
        empty = FRAME_SCHEMA.empty_table()
        judging = _Judging(plan, dbcs, events, _span_of(empty), selection)
        decoded = decode_frames(empty, dbcs, diagnostic=diagnostic)
        if each is not None:
            each(empty, decoded)
        judging.add(empty, decoded, empty)
    if not judging.span_holds():
        raise NeedsWholeLog("the Parquet statistics gave another first or last frame time")
    notes = list(skipped() if callable(skipped) else skipped)
    if watch is not None:
        watch.lap("decode")
    return judging.summary(notes)


def log_ecus(plan: Any, events: pa.Table | None) -> dict[str, Ecu]:
    """The diagnostic ECUs whose ISO-TP frames the log holds: the plan's (catalog < plan
    ``diagnostics:``), with the addressing the run itself recorded in its ``run_start`` event on
    top. A run made with a bench profile's ``[diagnostics.*]`` ids is judged on those ids, so
    re-evaluating it on another machine without the profile finds the same exchanges."""
    ecus = plan_ecus(plan)
    for event in parse_events(events):
        if event.kind == "run_start":
            recorded = (event.detail or {}).get("diagnostics")
            if isinstance(recorded, dict):
                # a damaged record: the plan's addressing, as for a run without one
                with suppress(ValueError, TypeError):
                    ecus = with_addressing(ecus, recorded)
            break
    return ecus


def _span_of(frames: pa.Table) -> tuple[float, float]:
    if not frames.num_rows:
        return (float("nan"), float("nan"))
    ts = frames.column("timestamp").to_numpy()
    return float(np.min(ts)), float(np.max(ts))


class _Judging:
    """The checks of a plan over the batches of one log: reducers, and the rows kept for the
    kinds without one."""

    def __init__(
        self,
        plan: Any,
        dbcs: DbcSet,
        events: pa.Table | None,
        span: tuple[float, float],
        selection: FrameSelection | None = None,
    ) -> None:
        self.plan, self.dbcs, self.events, self.span = plan, dbcs, events, span
        self.selection = selection if selection is not None else FrameSelection.of_plan(plan)
        self.mix = StreamMix()
        ecus = log_ecus(plan, events)
        self.start = EvalContext(messages={}, dbcs=dbcs, events=events, span=span, ecus=ecus)
        self.checks = [CheckStream(spec, self.start) for spec in plan.checks]
        rest = [c.spec for c in self.checks if not c.streams]
        self.compact = CompactLog(dbcs, Needs.of(rest, dbcs), ecus=ecus)

    def select(self, whole: pa.Table) -> pa.Table:
        """The batch's judged frames (the selection's), its channels counted as read."""
        self.mix.add_seen(whole)
        return self.selection.apply(whole)

    def add(self, frames: pa.Table, decoded: DecodedLog, whole: pa.Table) -> None:
        """One batch: ``frames`` judged (decoded as ``decoded``) out of ``whole`` as read."""
        self.compact.add(frames, decoded, whole=whole)
        self.mix.add(frames)
        if frames.num_rows:
            batch = self.start.with_data(decoded.messages, frames)
            for check in self.checks:
                if check.streams:
                    check.feed(batch)

    def span_holds(self) -> bool:
        seen = (self.compact.first, self.compact.last)  # NaN without frames
        pairs = zip(seen, self.span, strict=True)
        return all(a == b or (np.isnan(a) and np.isnan(b)) for a, b in pairs)

    def summary(self, skipped: Iterable[str]) -> Summary:
        notes = [*selection_note(self.selection, self.mix, self.compact.frames), *skipped]
        summary = _summary(self.compact, self.checks, self.plan, self.events, notes, self.dbcs)
        summary.frames = self.mix.seen
        summary.bus.update(bus_entries(self.selection, self.mix, self.compact.frames, self.dbcs))
        summary.checks = self._streams_judged(summary.checks)
        summary.verdict = run_verdict(summary.checks, aborted=summary.aborted is not None)
        return summary

    def _streams_judged(self, results: list[CheckResult]) -> list[CheckResult]:
        """Results of checks that read a mixed message's frame stream → inconclusive, with the
        reason; every check → inconclusive when the selection matched no frame of the log."""
        mixed = self.mix.mixed(self.dbcs)
        empty = self.selection.active and not self.compact.frames and self.mix.seen
        specs = {spec.name: spec for spec in self.plan.checks}
        out = []
        for result in results:
            spec = specs.get(result.name)
            reason = None
            if spec is not None and empty:
                missing = unmatched_channels(self.selection, self.mix) or self.selection.channels
                seen = ", ".join(sorted(self.mix.seen_channels)) or "none"
                reason = (
                    f"judge: {self.selection.describe()} matches none of the log's "
                    f"{self.mix.seen} frames (channel(s) {', '.join(missing) or '-'} absent; "
                    f"the log's channels: {seen})"
                )
            elif spec is not None:
                for message in timing_messages(spec):
                    if message in mixed:
                        reason = mixed_reason(message, mixed[message])
                        break
            if reason is None:
                out.append(result)
            else:
                out.append(replace_result(spec, "inconclusive", reason))
        return out


def _summary(
    compact: CompactLog,
    checks: Sequence[CheckStream],
    plan: Any,
    events: pa.Table | None,
    skipped: Iterable[str],
    dbcs: DbcSet,
) -> Summary:
    ctx = compact.context(events, log_ecus(plan, events))
    results = [c.finish(ctx) if c.streams else evaluate_check(c.spec, ctx) for c in checks]
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
        started_at=run.get("started_at") or _wall_clock(ctx.log_start if ctx.has_frames else None),
        ended_at=run.get("ended_at") or _wall_clock(ctx.log_end if ctx.has_frames else None),
        time_span=(ctx.log_start, ctx.log_end) if ctx.has_frames else None,
        frames=compact.frames,
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
        bus=_bus(compact.stats, run.get("bitrate")),
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


# 2001-09-09 in seconds since 1970: timestamps from here on are a wall clock, not a log's own
# relative time (seconds since its start, as a lockstep run's or an undated ASC's)
_WALL_CLOCK_FROM = 1e9


def _wall_clock(t: float | None) -> str | None:
    """A log from elsewhere (no ``run_start`` event) is dated by its frames: ISO 8601 UTC of
    ``t`` when the timestamps are a wall clock (BLF, MF4, dated ASC, candump, bench's Parquet),
    else None. From the frames alone, so a re-evaluation of its run directory dates it alike,
    and ``bench runs`` can order a campaign of road-test logs by when they were driven."""
    if t is None or not np.isfinite(t) or t < _WALL_CLOCK_FROM:
        return None
    import datetime as dt

    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="milliseconds")


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


def _bus(stats: DecodeStats, bitrate: Any = None) -> dict[str, Any]:
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
    log: Path | str | RemoteFile,
    plan_path: Path | None = None,
    *,
    dbc_paths: Sequence[Path] | None = None,
    out_dir: Path | None = None,
    timings: dict[str, float] | None = None,
    replace: bool = False,
    selection: FrameSelection | None = None,
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

    ``selection`` (``--channel/--direction``) replaces the plan's ``judge:`` for this evaluation
    and is written to the output directory's ``selection.json``, which a later evaluation of
    that directory without a selection of its own reads: re-evaluating reproduces the summary.
    """
    if is_url(log):  # s3://, https:// … through fsspec (bench.remote)
        return evaluate_url(str(log), plan_path, dbc_paths=dbc_paths, out_dir=out_dir,
                            timings=timings, replace=replace, selection=selection)  # fmt: skip
    with ExitStack() as held:
        return _evaluate_path(log, plan_path, dbc_paths, out_dir, timings, held, replace, selection)


def _evaluate_path(
    log: Path,
    plan_path: Path | None,
    dbc_paths: Sequence[Path] | None,
    out_dir: Path | None,
    timings: dict[str, float] | None,
    held: ExitStack,
    replace: bool = False,
    selection: FrameSelection | None = None,
) -> tuple[Summary, Path]:
    from .plan import load_plan

    watch = Stopwatch()
    log = log if isinstance(log, RemoteFile) else Path(log)
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
    elif given_dbcs is None:
        given_dbcs = plan_run_dbcs(plan_path)  # another log judged against a run's plan
    plan = load_plan(plan_path, dbc_paths=given_dbcs)
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
    if not source.frames.exists():
        raise InputError(f"{source.frames}: no such log file or directory")
    watch.lap("read")

    made = emptied = False
    if in_place:
        assert source.run_dir is not None
        target = source.run_dir
    else:
        made = out_dir is None or not Path(out_dir).exists()
        emptied = not made and not any(Path(out_dir).iterdir())  # type: ignore[arg-type]
        target = held.enter_context(_hold_target(out_dir, plan_path.stem)).path
    if selection is None and source.run_dir is not None:
        # what an earlier evaluation of this run directory chose: re-evaluating reproduces it
        selection = read_selection(source.run_dir)
    try:
        summary = _judge_into(target, source, events, plan, plan_path, in_place, watch, selection)
    except BaseException:
        # nothing of a log that could not be judged is left behind (bad input stays exit 2
        # with nothing written, as when the whole log was read before anything was made)
        if made:
            shutil.rmtree(target, ignore_errors=True)
        elif emptied:
            _empty(target)
        raise
    if not _run_metadata(parse_events(events)).get("plan_file"):
        summary.plan_file = PLAN_FILE  # the copy in the output directory, same on re-evaluation
    watch.lap("checks")
    write_selection(target, selection)
    write_outputs(target, summary, None, watch)
    if timings is not None:
        timings.update(watch.timings)
    return summary, target


def _judge_into(
    target: Path,
    source: _Source,
    events: pa.Table | None,
    plan: Any,
    plan_path: Path,
    in_place: bool,
    watch: Stopwatch,
    selection: FrameSelection | None = None,
) -> Summary:
    """Stream the log through the checks, writing ``signals/`` (and, for a log that is one
    file, its frames as segments) on the way. A log whose frames come too far out of order to
    be put in order batch by batch is judged again in one batch (:class:`NeedsWholeLog`).

    A BLF, ASC, TRC, candump or MF4 file has no statistics that give its first and last frame
    time before it is read, and the checks need them from the first batch (``for:`` windows
    and steps that end with the log): its frames are first written, in time order and batch
    by batch, as the run directory's segments (the copy that makes the directory re-evaluable,
    kept anyway), and those segments are judged. Reading them again costs little beside
    parsing the file, and no frame is held twice."""
    if not in_place:
        _materialise(target, source, events, plan_path, plan.dbc_paths)
    copy = not in_place and not source.frames.is_dir()
    read: list[str] = []
    if copy and source.frames.suffix not in (".parquet", ".pq"):
        read = _copy_frames(source.frames, target / FRAMES_DIR)
        source, copy = _Source(target / FRAMES_DIR, source.events, None), False
        watch.lap("read")
    for rows in (batch_rows(), None):
        try:
            return _judge_once(target, source, events, plan, rows, copy, watch, read, selection)
        except NeedsWholeLog as exc:
            log.info("%s: %s; judged again in one batch", source.frames, exc)
    raise AssertionError("one batch never needs the whole log again")  # pragma: no cover


def _copy_frames(log_file: Path, frames_dir: Path) -> list[str]:
    """``log_file``'s frames written to ``frames_dir`` as segments in time order, batch by
    batch (frames later than the reordering horizon: read whole and sorted, as
    :class:`FrameBatches` says); returns what reading skipped and noted, for the summary."""
    for rows in (batch_rows(), None):
        batches = FrameBatches(log_file, rows)
        segments = _SegmentCopy(frames_dir)
        try:
            for frames in batches:
                segments.add(frames)
        except NeedsWholeLog as exc:
            segments.discard()
            log.info("%s: %s; read again whole", log_file, exc)
            continue
        except BaseException:
            segments.discard()
            raise
        segments.close()
        return [*batches.skipped, *batches.notes]
    raise AssertionError("one batch never needs the whole log again")  # pragma: no cover


def _judge_once(
    target: Path,
    source: _Source,
    events: pa.Table | None,
    plan: Any,
    rows: int | None,
    copy: bool,
    watch: Stopwatch,
    read: Sequence[str] = (),
    selection: FrameSelection | None = None,
) -> Summary:
    batches = FrameBatches(source.frames, rows)
    span = batches.span()
    if rows is not None and span is None:
        batches = FrameBatches(source.frames, None)  # no statistics: one batch
    # signals/ is only written, never read back: written in a thread, beside the judging
    signals = BackgroundWriter(SignalTableWriter(target / SIGNALS_DIR))
    segments = _SegmentCopy(target / FRAMES_DIR) if copy else None
    stats = DecodeStats()

    def each(frames: pa.Table, decoded: DecodedLog) -> None:
        stats.merge(decoded.stats)
        signals.write(decoded)
        if segments is not None:
            segments.add(frames)

    def notes() -> list[str]:
        found = [*read, *batches.skipped, *batches.notes]
        if source.events is not None and source.events.parent == source.frames:
            # events.parquet next to the segments is the events, not a damaged segment
            found = [x for x in found if not x.startswith(f"{EVENTS_FILE}:")]
        return found

    try:
        summary = judge_batches(
            batches,
            plan,
            events,
            span=span,
            skipped=notes,
            dbcs=plan.dbcs,
            each=each,
            watch=watch,
            selection=selection,
        )
        signals.close(stats)  # inside: a full disk at the end leaves no open writer behind
        if segments is not None:
            segments.close()
    except BaseException:
        signals.discard()
        if segments is not None:
            segments.discard()
        raise
    return summary


def read_selection(run_dir: Path) -> FrameSelection | None:
    """The selection an earlier ``bench evaluate --channel/--direction`` stored in ``run_dir``
    (None: none stored); a damaged file is bad input naming it (exit 2)."""
    path = run_dir / SELECTION_FILE
    if not path.is_file():
        return None
    try:
        return FrameSelection.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise InputError(f"{path}: not a frame selection ({exc})") from None


def write_selection(target: Path, selection: FrameSelection | None) -> None:
    """Store an evaluation's own selection in its output directory (none: remove an old one)."""
    path = target / SELECTION_FILE
    if selection is None or selection.origin == "plan":
        path.unlink(missing_ok=True)
        return
    path.write_text(json.dumps(selection.to_dict(), indent=2) + "\n", encoding="utf-8")


class _SegmentCopy:
    """A single-file log's frames written as run-directory segments of :data:`SEGMENT_ROWS`
    frames, batch by batch through a Parquet writer (in time order: the copy re-evaluates to
    the same summary). A segment appears under its name once complete."""

    def __init__(self, frames_dir: Path) -> None:
        self.directory = frames_dir
        self._writer: pq.ParquetWriter | None = None
        self._rows = 0  # in the open segment
        self._written: list[Path] = []

    def add(self, frames: pa.Table) -> None:
        while frames.num_rows:
            if self._writer is None:
                self._open()
            assert self._writer is not None
            part = frames.slice(0, SEGMENT_ROWS - self._rows)
            frames = frames.slice(part.num_rows)
            if not part.schema.equals(self._writer.schema):
                part = part.cast(self._writer.schema)
            self._writer.write_table(part)
            self._rows += part.num_rows
            if self._rows >= SEGMENT_ROWS:
                self._finish()

    def _open(self, schema: pa.Schema = FRAME_SCHEMA) -> None:
        path = self.directory / segment_name(len(self._written))
        self._written.append(path)
        self._writer = pq.ParquetWriter(path.with_name(path.name + TMP_SUFFIX), schema)

    def _finish(self) -> None:
        assert self._writer is not None
        self._writer.close()
        path = self._written[-1]
        path.with_name(path.name + TMP_SUFFIX).replace(path)
        self._writer, self._rows = None, 0

    def close(self) -> None:
        if self._writer is None and not self._written:
            self._open()  # a log without frames: one empty segment, as the recorder writes
        if self._writer is not None:
            self._finish()

    def discard(self) -> None:
        if self._writer is not None:
            with suppress(OSError):
                self._writer.close()
        self._writer = None
        for path in self._written:
            path.unlink(missing_ok=True)
            path.with_name(path.name + TMP_SUFFIX).unlink(missing_ok=True)
        self._rows, self._written = 0, []


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
    events: pa.Table | None,
    plan_path: Path,
    dbc_paths: Sequence[Path],
) -> None:
    """Make ``target`` a run directory that re-evaluates on its own: segments of a directory
    copied as files (disk speed), events, plan and DBCs; a single-file log's frames are written
    as segments while it is judged (:class:`_SegmentCopy`).

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


def _empty(directory: Path) -> None:
    """Remove what this evaluation wrote into a directory that was empty (``--out``)."""
    for path in directory.iterdir():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _clear(directory: Path, patterns: Sequence[str]) -> None:
    """Remove files matching ``patterns`` in ``directory`` (only those: it may be the user's)."""
    if not directory.is_dir():
        return
    for pattern in patterns:
        for path in directory.glob(pattern):
            if path.is_file():
                path.unlink()


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


__all__ = [
    "Stopwatch",
    "evaluate_log",
    "evaluate_path",
    "judge",
    "judge_batches",
    "write_outputs",
]
