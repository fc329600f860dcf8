"""What every check evaluates against: decoded signals, raw frames per message, step windows.

All of it works on whole columns (DESIGN.md principle 3): the as-of join is one
``np.searchsorted`` per signal, step windows are sorted interval arrays, debounce works on runs of
violating samples found with ``np.diff``. Nothing here loops over frames in Python.

Semantics shared by all checks (the README's plan reference repeats them):

* A *sample* of ``Message.Signal`` is a row of its message's decoded table where the signal is
  present (multiplexed signals are absent, null, in rows of other multiplexer values).
* As-of join: at time ``t`` a signal has the value of its latest sample at or before ``t``
  (``side="right"``: a frame at exactly ``t`` counts); before its first sample it is NaN, which
  no comparison satisfies.
* A sample's value *holds* until the signal's next sample; the last one holds until the end of the
  log (its last frame), clipped to the end of the ``during:`` window it lies in.
* ``during:`` windows are half-open ``[step_start, step_end)``; a step that never ended (the run
  stopped inside it) lasts until the end of the log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from cantools.database.can import Message

from ..dbc import DbcSet
from ..diag.catalog import Ecu, virtual_vehicle_ecus
from ..diag.log import DiagLog, diagnostic_ids, read_exchanges
from ..plan.conditions import Condition
from ..rundir.events import Event, parse_events  # the one Event (the run directory owns it)
from .limits import slack  # noqa: F401  (re-exported: older imports)
from .spec import Anchor, select_steps, step_matches

_STD_ID_LIMIT = 0x800


class NotJudgeable(Exception):
    """Raised inside a check when the log holds nothing to judge: the verdict is inconclusive."""


class CheckError(Exception):
    """Raised inside a check when it cannot be evaluated as written: the verdict is ``error``."""


# -- time windows ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Windows:
    """Sorted, non-overlapping half-open intervals ``[starts[i], ends[i])``."""

    starts: np.ndarray
    ends: np.ndarray

    @classmethod
    def of(cls, intervals: Iterable[tuple[float, float]]) -> Windows:
        """Merge overlapping or touching intervals, so lookups can use one searchsorted."""
        pairs = sorted((float(a), float(b)) for a, b in intervals if b >= a)
        merged: list[list[float]] = []
        for start, end in pairs:  # a handful of steps, not frames
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        array = np.array(merged, dtype=np.float64).reshape(-1, 2)
        return cls(array[:, 0].copy(), array[:, 1].copy())

    def __len__(self) -> int:
        return int(self.starts.size)

    def index(self, times: np.ndarray) -> np.ndarray:
        """Index of the window holding each time, -1 outside every window."""
        i = np.searchsorted(self.starts, times, side="right") - 1
        inside = (i >= 0) & (times < self.ends[np.maximum(i, 0)])
        return np.where(inside, i, -1)

    def contains(self, times: np.ndarray) -> np.ndarray:
        return self.index(times) >= 0

    def end_of(self, times: np.ndarray) -> np.ndarray:
        """End of the window holding each time (+inf outside every window)."""
        i = self.index(times)
        return np.where(i >= 0, self.ends[np.maximum(i, 0)], np.inf)

    def as_list(self) -> list[tuple[float, float]]:
        return list(zip(self.starts.tolist(), self.ends.tolist(), strict=True))


@dataclass(frozen=True)
class StepWindow:
    name: str
    start: float
    end: float | None
    status: str = "done"


def step_windows(events: Sequence[Event]) -> list[StepWindow]:
    """Pair every ``step_start`` with the next ``step_end`` of the same name."""
    steps: list[StepWindow] = []
    open_steps: dict[str, tuple[float, int]] = {}
    for event in events:
        if event.kind == "step_start":
            open_steps[event.name] = (event.time, len(steps))
            steps.append(StepWindow(event.name, event.time, None, "running"))
        elif event.kind == "step_end" and event.name in open_steps:
            start, index = open_steps.pop(event.name)
            status = str(event.detail.get("status", "done"))
            steps[index] = StepWindow(event.name, start, event.time, status)
    aborted = any(e.kind == "abort" for e in events)
    unfinished = "aborted" if aborted else "incomplete"
    return [s if s.end is not None else StepWindow(s.name, s.start, None, unfinished)
            for s in steps]  # fmt: skip


# -- debounce --------------------------------------------------------------------------------------


def runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, last) indices of every run of consecutive True values in ``mask``."""
    if mask.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    edges = np.diff(np.concatenate(([0], mask.view(np.int8), [0])).astype(np.int8))
    first = np.flatnonzero(edges == 1)
    last = np.flatnonzero(edges == -1) - 1
    return first, last


def violation_intervals(
    times: np.ndarray, bad: np.ndarray, hold_end: np.ndarray, min_duration: float | None = None
) -> np.ndarray:
    """``[[t0, t1], …]`` of runs of consecutive bad samples, each held until ``hold_end`` of its
    last sample; with ``min_duration`` only runs lasting at least that long count (``for:``)."""
    first, last = runs(bad)
    intervals = np.column_stack((times[first], hold_end[last])) if first.size else np.zeros((0, 2))
    if min_duration:
        # a tiny tolerance so that "lasts exactly for:" counts despite binary fractions
        intervals = intervals[intervals[:, 1] - intervals[:, 0] >= min_duration - 1e-9]
    return intervals


# -- the context -----------------------------------------------------------------------------------


@dataclass
class SignalSamples:
    times: np.ndarray
    values: np.ndarray  # float64; a NaN here is a received NaN (IEEE float signal), not absence


@dataclass
class _FrameIndex:
    """Each frame's message as a small code (index into ``DbcSet.messages``), plus extra codes:
    ``unknown`` (an id in no DBC), ``unknown + 1`` remote frames, ``unknown + 2`` error frames,
    ``unknown + 3`` diagnostic frames (ISO-TP on an ECU's request/response id, in no DBC)."""

    codes: np.ndarray
    unknown: int
    lengths_by_code: np.ndarray  # DBC length per code (0 for the extra codes)


@dataclass(frozen=True)
class _Chunk:
    """One Arrow chunk of the ``data`` column: rows ``[first, first + len(offsets) - 1)``."""

    first: int
    values: np.ndarray  # the chunk's byte buffer
    offsets: np.ndarray  # int64, len rows + 1, into ``values``


@dataclass
class EvalContext:
    """Everything a check reads. Build it from a decode result or from hand-made tables.

    ``messages``: one table per message (``timestamp`` + signal columns), as from
    :func:`bench.decode.decode_frames`. ``frames``: the raw frame table (optional; cycle-time and
    timeout checks fall back to decoded timestamps, the crc check needs it). ``events``: the
    events table of a run (optional). ``bus_stats``: counts for the bus check when ``frames`` is
    not given (``DecodeStats.to_dict()`` shape). ``ecus``: the ECUs diagnostic checks talk
    about (:func:`bench.diag.catalog.plan_ecus`; default: the virtual vehicle's); their ISO-TP
    frames are diagnostics, not unknown ids. ``span`` (first, last frame time) and
    ``total_frames``: those of the whole log when ``frames`` holds only the frames the checks
    read (streaming evaluation keeps only those, see :mod:`bench.checks.compact`).
    """

    messages: Mapping[str, pa.Table]
    dbcs: DbcSet
    frames: pa.Table | None = None
    events: pa.Table | None = None
    bus_stats: Mapping[str, Any] | None = None
    ecus: Mapping[str, Ecu] | None = None
    span: tuple[float, float] | None = None
    total_frames: int | None = None
    _samples: dict[str, SignalSamples] = field(default_factory=dict, init=False, repr=False)
    _times: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)
    _frame_index: _FrameIndex | None = field(default=None, init=False, repr=False)
    _frame_ts: np.ndarray | None = field(default=None, init=False, repr=False)
    _chunks: list[_Chunk] | None = field(default=None, init=False, repr=False)
    _rows: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)
    _diag: DiagLog | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.ecus is None:
            self.ecus = virtual_vehicle_ecus()
        self.event_list = parse_events(self.events)
        self.steps = step_windows(self.event_list)
        self.log_start, self.log_end = self._span()
        aborts = [e.time for e in self.event_list if e.kind == "abort" and e.time == e.time]
        self.abort_time: float | None = min(aborts) if aborts else None

    def with_data(self, messages: Mapping[str, pa.Table], frames: pa.Table | None) -> EvalContext:
        """A context of other rows of the same log: its events, span and counts (one batch)."""
        ctx = EvalContext(
            messages=messages,
            dbcs=self.dbcs,
            frames=frames,
            bus_stats=self.bus_stats,
            span=(self.log_start, self.log_end),
            total_frames=self.total_frames,
            ecus=self.ecus,
        )
        ctx.events = self.events
        ctx.event_list, ctx.steps, ctx.abort_time = self.event_list, self.steps, self.abort_time
        return ctx

    # -- time span ---------------------------------------------------------------------------

    def _span(self) -> tuple[float, float]:
        if self.span is not None:
            return self.span
        if self.frames is not None and self.frames.num_rows:
            ts = self.frame_timestamps()
            return float(np.min(ts)), float(np.max(ts))
        firsts, lasts = [], []
        for table in self.messages.values():
            if table.num_rows:
                ts = table.column("timestamp").to_numpy()
                firsts.append(float(ts.min()))
                lasts.append(float(ts.max()))
        if not firsts:
            return float("nan"), float("nan")
        return min(firsts), max(lasts)

    @property
    def data_end(self) -> float:
        """Where the test stopped: the abort if the run was aborted, else the end of the log.
        (Frames recorded after an abort — the safe state going out — are still judged; a
        violation or a wait still open at this moment was cut short.)"""
        if self.abort_time is not None and self.abort_time < self.log_end:
            return self.abort_time
        return self.log_end

    @property
    def frame_count(self) -> int | None:
        """Frames in the log (None: unknown, only decoded signals given)."""
        if self.total_frames is not None:
            return self.total_frames
        if self.frames is not None:
            return self.frames.num_rows
        return (self.bus_stats or {}).get("total_frames")

    @property
    def has_frames(self) -> bool:
        return not np.isnan(self.log_start)

    # -- signals -----------------------------------------------------------------------------

    def message(self, name: str) -> Message:
        try:
            return self.dbcs.message(name)
        except KeyError as exc:
            raise CheckError(str(exc.args[0])) from None

    def unit(self, reference: str) -> str:
        return self.dbcs.signal(reference).signal.unit or ""

    def samples(self, reference: str) -> SignalSamples:
        """Time-sorted samples of ``Message.Signal`` (rows where it is present)."""
        cached = self._samples.get(reference)
        if cached is not None:
            return cached
        try:
            self.dbcs.signal(reference)
        except KeyError as exc:
            raise CheckError(str(exc.args[0])) from None
        message, _, signal = reference.partition(".")
        table = self.messages.get(message)
        if table is None or table.num_rows == 0 or signal not in table.column_names:
            result = SignalSamples(np.zeros(0), np.zeros(0))
        else:
            column = table.column(signal)
            times = table.column("timestamp").to_numpy()
            values = np.asarray(column.to_numpy(), dtype=np.float64)
            if column.null_count:
                present = ~np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
                times, values = times[present], values[present]
            if times.size > 1 and np.any(times[1:] < times[:-1]):
                # logs merged from several channels may interleave; the join needs sorted times
                order = np.argsort(times, kind="stable")
                times, values = times[order], values[order]
            result = SignalSamples(times, values)
        self._samples[reference] = result
        return result

    def values_at(self, times: np.ndarray, references: Iterable[str]) -> dict[str, np.ndarray]:
        """As-of join: each signal's latest value at or before each time (NaN before its first)."""
        times = np.asarray(times, dtype=np.float64)
        env: dict[str, np.ndarray] = {}
        for reference in references:
            series = self.samples(reference)
            if series.times.size == 0:
                env[reference] = np.full(times.shape, np.nan)
                continue
            index = np.searchsorted(series.times, times, side="right") - 1
            values = series.values[np.maximum(index, 0)]
            env[reference] = np.where(index >= 0, values, np.nan)
        return env

    def condition_at(self, condition: Condition, times: np.ndarray) -> np.ndarray:
        """Where ``condition`` holds at each time (signals as-of joined)."""
        result = condition.evaluate(self.values_at(times, condition.signals))
        return np.broadcast_to(np.asarray(result, dtype=bool), times.shape).copy()

    # -- steps and events --------------------------------------------------------------------

    @property
    def has_step_events(self) -> bool:
        return bool(self.steps)

    def step_end_or_log_end(self, step: StepWindow) -> float:
        if step.end is not None:
            return step.end
        # just past the last frame: windows are half-open, and the frames a step that never
        # finished saw are all its own, the last one included (the live rule judges it too)
        return (
            max(float(np.nextafter(self.log_end, np.inf)), step.start)
            if self.has_frames
            else (step.start)
        )

    def during(self, names: Sequence[str] | None) -> Windows | None:
        """Windows of the steps ``names`` select (each an exact step name, else a glob such as
        ``wot*``; see :func:`~bench.checks.spec.step_matches`); None without ``during:``. Never
        guesses: no step events, or none of the named steps in them, is inconclusive."""
        if not names:
            return None
        wanted = ", ".join(names)
        if not self.has_step_events:
            raise NotJudgeable(f"no step events in the log: cannot judge during [{wanted}]")
        ran = list(dict.fromkeys(s.name for s in self.steps))
        selected = {name for pattern in names for name in select_steps(pattern, ran)}
        chosen = [s for s in self.steps if s.name in selected]
        if not chosen:
            raise NotJudgeable(
                f"step(s) {wanted} never started (steps in the log: {', '.join(ran)})"
            )
        return Windows.of((s.start, self.step_end_or_log_end(s)) for s in chosen)

    def in_steps(self, patterns: Sequence[str], name: str) -> bool:
        return any(step_matches(p, name) for p in patterns)

    def anchor_time(self, after: Anchor | str | None) -> tuple[float, str]:
        """When an ``after:`` starts the clock, and how to say it (see :class:`Anchor`).

        A step (exact name, else the first step a glob selects, in time order) gives its start —
        or with ``.end`` its end; a name no step has gives the first event of that name; a
        condition gives the first time it holds; none gives the first frame of the log. Raises
        :class:`NotJudgeable` when the log does not hold it."""
        from .spec import parse_anchor

        anchor = after if isinstance(after, Anchor) else parse_anchor(after)
        if anchor.form == "log_start":
            if not self.has_frames:
                raise NotJudgeable("the log holds no frames")
            return self.log_start, "the first frame"
        if anchor.form == "condition":
            return self._first_time(anchor)
        ran = list(dict.fromkeys(s.name for s in self.steps))
        names = set(select_steps(anchor.name, ran))
        for step in self.steps:  # in time order: the first run of the first selected step
            if step.name in names:
                if anchor.form == "step":
                    return step.start, f"the start of step {step.name!r}"
                if step.end is None:
                    raise NotJudgeable(f"step {step.name!r} never ended ({step.status})")
                return step.end, f"the end of step {step.name!r}"
        if anchor.form == "step":
            for event in self.event_list:
                if event.name == anchor.name and event.kind not in ("step_start", "step_end"):
                    return event.time, f"event {anchor.name!r}"
        if not self.event_list or not self.has_step_events:
            raise NotJudgeable(f"no step events in the log: cannot find {anchor}")
        raise NotJudgeable(f"no step or event {anchor.name!r} in the log")

    def _first_time(self, anchor: Anchor) -> tuple[float, str]:
        condition = anchor.condition
        assert condition is not None
        condition.bind(self.dbcs)
        times = np.unique(np.concatenate([self.samples(s).times for s in condition.signals]))
        holds = self.condition_at(condition, times) if times.size else np.zeros(0, dtype=bool)
        hits = np.flatnonzero(holds)
        if not hits.size:
            raise NotJudgeable(f"{condition} never held in the log")
        return float(times[hits[0]]), f"{condition} first held"

    # -- raw frames --------------------------------------------------------------------------

    def frame_timestamps(self) -> np.ndarray:
        if self._frame_ts is None:
            assert self.frames is not None
            self._frame_ts = np.asarray(self.frames.column("timestamp").to_numpy(), np.float64)
        return self._frame_ts

    def _bool_column(self, name: str) -> np.ndarray:
        assert self.frames is not None
        if name not in self.frames.column_names:
            return np.zeros(self.frames.num_rows, dtype=bool)
        column = self.frames.column(name)
        if column.null_count:
            column = column.fill_null(False)
        return np.asarray(column.to_numpy(), dtype=bool)

    def _index(self) -> _FrameIndex:
        """Classify every frame once into a message code (one table lookup for 11-bit ids, a
        search over the few extended ones). Rows per message come from it on demand, so only
        the messages a check asks for cost a pass over the codes; no sort of the whole log."""
        if self._frame_index is not None:
            return self._frame_index
        assert self.frames is not None
        messages = self.dbcs.messages
        unknown = len(messages)
        ids = np.asarray(self.frames.column("arbitration_id").to_numpy(), dtype=np.uint32)
        extended = self._bool_column("is_extended_id")
        lookup = np.full(_STD_ID_LIMIT, unknown, dtype=np.int16)
        ext_keys: dict[int, int] = {}
        for i, message in enumerate(messages):
            if message.is_extended_frame:
                ext_keys[message.frame_id] = i
            elif message.frame_id < _STD_ID_LIMIT:
                lookup[message.frame_id] = i
        codes = lookup[ids & (_STD_ID_LIMIT - 1)]
        codes[(ids >= _STD_ID_LIMIT) | extended] = unknown
        ext_rows = np.flatnonzero(extended)
        if ext_rows.size and ext_keys:
            keys = np.array(sorted(ext_keys), dtype=np.uint32)
            targets = np.array([ext_keys[k] for k in sorted(ext_keys)], dtype=np.int16)
            where = np.minimum(np.searchsorted(keys, ids[ext_rows]), keys.size - 1)
            hit = keys[where] == ids[ext_rows]
            codes[ext_rows[hit]] = targets[where[hit]]
        diag = sorted(diagnostic_ids(self.ecus or {}))
        if diag:  # ISO-TP on an ECU's ids: diagnostics, not noise (unless a DBC names the id)
            rows = np.flatnonzero(codes == unknown)  # few: only these are compared
            hit = np.zeros(rows.size, dtype=bool)
            for can_id, is_ext in diag:
                hit |= (ids[rows] == can_id) & (extended[rows] == is_ext)
            codes[rows[hit]] = unknown + 3
        error = self._bool_column("is_error_frame")
        remote = self._bool_column("is_remote_frame")
        if remote.any():
            codes[remote & ~error] = unknown + 1  # no data by design: neither known nor unknown
        if error.any():
            codes[error] = unknown + 2
        lengths = np.array([m.length for m in messages] + [0, 0, 0, 0], dtype=np.int64)
        self._frame_index = _FrameIndex(codes, unknown, lengths)
        return self._frame_index

    def _data_chunks(self) -> list[_Chunk]:
        """The ``data`` column's buffers chunk by chunk, zero-copy (no combine of 10 M rows)."""
        if self._chunks is not None:
            return self._chunks
        assert self.frames is not None
        chunks, first = [], 0
        for chunk in self.frames.column("data").chunks:
            if not (pa.types.is_binary(chunk.type) or pa.types.is_large_binary(chunk.type)):
                chunk = chunk.cast(pa.binary())
            offset_type = np.int64 if pa.types.is_large_binary(chunk.type) else np.int32
            _, offsets_buffer, values_buffer = chunk.buffers()
            offsets = np.frombuffer(offsets_buffer, dtype=offset_type)[
                chunk.offset : chunk.offset + len(chunk) + 1
            ].astype(np.int64)
            values = (
                np.frombuffer(values_buffer, dtype=np.uint8)
                if values_buffer is not None
                else np.zeros(0, np.uint8)
            )
            chunks.append(_Chunk(first, values, offsets))
            first += len(chunk)
        self._chunks = chunks
        return chunks

    def _byte_matrix(self, rows: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
        """(kept, matrix): the ascending ``rows`` holding at least ``length`` bytes and the
        first ``length`` bytes of each, as an ``(n, length)`` uint8 matrix."""
        kept_parts, parts = [], []
        chunks = self._data_chunks()
        bounds = np.searchsorted(rows, [c.first for c in chunks] + [np.iinfo(np.int64).max])
        for index, chunk in enumerate(chunks):  # tens of chunks, each done as one gather
            local = rows[bounds[index] : bounds[index + 1]] - chunk.first
            starts = chunk.offsets[local]
            enough = chunk.offsets[local + 1] - starts >= length
            if not enough.all():
                local, starts = local[enough], starts[enough]
            if local.size:
                parts.append(_gather_bytes(chunk.values, starts, length))
                kept_parts.append(local + chunk.first)
        if not parts:
            return np.zeros(0, np.int64), np.zeros((0, length), np.uint8)
        return np.concatenate(kept_parts), np.concatenate(parts)

    def frame_rows(self, message: str) -> np.ndarray:
        """Rows of the frame table holding data frames of ``message``, in time order."""
        cached = self._rows.get(message)
        if cached is not None:
            return cached
        index = self._index()
        code = next(i for i, m in enumerate(self.dbcs.messages) if m.name == message)
        rows = np.flatnonzero(index.codes == code)
        ts = self.frame_timestamps()[rows]
        if ts.size > 1 and np.any(ts[1:] < ts[:-1]):
            rows = rows[np.argsort(ts, kind="stable")]
        self._rows[message] = rows
        return rows

    def frame_times(self, message: str) -> np.ndarray:
        """Times of every data frame of ``message`` (short ones too: they were on the bus)."""
        cached = self._times.get(message)
        if cached is not None:
            return cached
        self.message(message)
        if self.frames is not None:
            times = self.frame_timestamps()[self.frame_rows(message)]
        else:
            table = self.messages.get(message)
            times = (
                np.sort(table.column("timestamp").to_numpy())
                if table is not None and table.num_rows
                else np.zeros(0)
            )
        self._times[message] = times
        return times

    def payloads(self, message: str, length: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(times, ``(n, length)`` uint8 byte matrix, frames too short) for ``message``.

        Frames shorter than ``length`` are left out (the decoder does not decode them either).
        """
        if self.frames is None:
            raise CheckError("this check needs the raw frame table, not only decoded signals")
        rows = self.frame_rows(message)
        # the chunk-wise gather wants ascending rows; frame_rows is ascending unless re-sorted
        resorted = bool(np.any(np.diff(rows) < 0))
        kept, matrix = self._byte_matrix(np.sort(rows) if resorted else rows, length)
        if resorted:
            order = np.argsort(self.frame_timestamps()[kept], kind="stable")
            kept, matrix = kept[order], matrix[order]
        return self.frame_timestamps()[kept], matrix, int(rows.size - kept.size)

    # -- diagnostics -------------------------------------------------------------------------

    def ecu(self, name: str) -> Ecu:
        """The ECU ``name`` of the plan's catalog; :class:`CheckError` naming the known ones."""
        ecus = self.ecus or {}
        if name not in ecus:
            raise CheckError(
                f"no ECU {name!r} in the diagnostics catalog (known: {', '.join(ecus) or 'none'})"
            )
        return ecus[name]

    def diag(self) -> DiagLog:
        """Every UDS exchange of the log (reassembled from the frame table once, then cached)."""
        if self._diag is None:
            if self.frames is None:
                raise NotJudgeable("diagnostic checks need the raw frame table")
            end = self.log_end if self.has_frames else None
            self._diag = read_exchanges(self.frames, self.ecus or {}, log_end=end)
        return self._diag

    # -- bus counts --------------------------------------------------------------------------

    def bus_counts(self) -> dict[str, int]:
        """Error frames, frames with unknown ids, frames shorter than their message.

        From the decoder's statistics when given (free), else counted in the frame table."""
        if self.bus_stats is not None:
            stats = dict(self.bus_stats)
            messages = (stats.get("messages") or {}).values()
            return {
                "error_frames": int(stats.get("error_frames", 0)),
                "unknown_ids": int(sum((stats.get("unknown_ids") or {}).values())),
                "dlc_mismatches": sum(int(m.get("short", 0)) for m in messages),
            }
        if self.frames is None:
            raise NotJudgeable("no frame table or decode statistics to count bus errors in")
        return {kind: int(self.bus_times(kind).size) for kind in BUS_KINDS}

    def bus_times(self, kind: str) -> np.ndarray:
        """Sorted times of the frames of one :data:`BUS_KINDS` kind (needs the frame table)."""
        if self.frames is None:
            raise NotJudgeable("the times of bus errors need the frame table")
        index = self._index()
        if kind == "error_frames":
            rows = np.flatnonzero(index.codes == index.unknown + 2)
        elif kind == "unknown_ids":
            rows = np.flatnonzero(index.codes == index.unknown)
        elif kind == "dlc_mismatches":
            lengths = np.concatenate([np.diff(c.offsets) for c in self._data_chunks()])
            rows = np.flatnonzero(lengths < index.lengths_by_code[index.codes])
        else:
            raise KeyError(kind)
        return np.sort(self.frame_timestamps()[rows])

    def unknown_ids(self) -> list[int]:
        """Arbitration ids in no DBC, from the decoder's statistics or the frame table."""
        if self.bus_stats is not None:
            return sorted(int(str(k), 0) for k in (self.bus_stats.get("unknown_ids") or {}))
        if self.frames is None:
            return []
        index = self._index()
        ids = np.asarray(self.frames.column("arbitration_id").to_numpy())
        return sorted(int(i) for i in np.unique(ids[index.codes == index.unknown]).tolist())


BUS_KINDS = ("error_frames", "unknown_ids", "dlc_mismatches")


def _gather_bytes(values: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """``values[start : start + length]`` for every start, as an ``(n, length)`` matrix.

    For whole 8-byte words (classic CAN's 8 bytes, CAN FD's 64) each row is a gather of
    unaligned little-endian uint64 words through a stride-1 view of the buffer — several times
    faster than gathering single bytes; other lengths gather rows of an overlapping byte view.
    """
    if length % 8 == 0 and values.size >= 8:
        words = np.ndarray(
            shape=(values.size - 7,), dtype="<u8", buffer=values, offset=0, strides=(1,)
        )
        picked = words[starts[:, None] + 8 * np.arange(length // 8)[None, :]]
        return picked.view(np.uint8).reshape(starts.size, length)
    windows = np.lib.stride_tricks.as_strided(
        values, shape=(values.size - length + 1, length), strides=(1, 1)
    )
    return windows[starts]


# -- samples a signal check judges -----------------------------------------------------------------


@dataclass
class Judged:
    """A signal's samples and which of them a check judges (``during:`` and ``when:`` applied)."""

    reference: str
    times: np.ndarray
    values: np.ndarray
    judged: np.ndarray  # bool per sample
    hold_end: np.ndarray  # until when each sample's value holds
    windows: Windows | None
    log_end: float = float("inf")  # the log's last frame
    abort_time: float | None = None  # the run's abort, if it was aborted

    @property
    def continuous(self) -> np.ndarray:
        """Per pair of consecutive samples: the first holds until the second (no window end
        between them). A violation never spans a gap between two ``during:`` windows."""
        return self.hold_end[:-1] >= self.times[1:]

    @property
    def count(self) -> int:
        return int(np.count_nonzero(self.judged))


def judged_samples(spec: Any, ctx: EvalContext) -> Judged:
    """Samples of ``spec.signal`` filtered by ``spec.during`` and ``spec.when``.

    Raises :class:`NotJudgeable` when nothing is left to judge, naming why.
    """
    reference = spec.signal
    windows = ctx.during(spec.during)  # before looking at data: no steps is inconclusive anyway
    series = ctx.samples(reference)
    if series.times.size == 0:
        message = reference.partition(".")[0]
        raise NotJudgeable(f"no samples of {reference} in the log (no frames of {message})")
    times, values = series.times, series.values
    judged = np.ones(times.size, dtype=bool)
    if windows is not None:
        judged &= windows.contains(times)
        if not judged.any():
            raise NotJudgeable(f"no samples of {reference} during {', '.join(spec.during)}")
    when = getattr(spec, "when", None)
    if when is not None:
        judged &= ctx.condition_at(when, times)
        if not judged.any():
            raise NotJudgeable(f"no samples of {reference} judged: when {when} never held")
    return make_judged(reference, times, values, judged, windows, ctx)


def make_judged(
    reference: str,
    times: np.ndarray,
    values: np.ndarray,
    judged: np.ndarray,
    windows: Windows | None,
    ctx: EvalContext,
) -> Judged:
    """:class:`Judged` of samples (at least one) and their judged mask: each value holds until
    the next sample, the end of its window or the end of the log."""
    hold_end = np.empty_like(times)
    hold_end[:-1] = times[1:]
    hold_end[-1] = max(ctx.log_end, times[-1])
    if windows is not None:
        hold_end = np.minimum(hold_end, windows.end_of(times))
    return Judged(reference, times, values, judged, hold_end, windows, ctx.log_end, ctx.abort_time)


def consecutive_pairs(times: np.ndarray, windows: Windows | None) -> np.ndarray:
    """Mask over ``diff(times)``: pairs of consecutive items both inside the same window."""
    if times.size < 2:
        return np.zeros(0, dtype=bool)
    if windows is None:
        return np.ones(times.size - 1, dtype=bool)
    index = windows.index(times)
    return (index[:-1] == index[1:]) & (index[:-1] >= 0)
