"""The report's source: a run directory opened for reading, what is there and what is missing.

A report is built from the run directory alone, often days later on another machine, so every
part except ``summary.json`` is optional here: a missing ``signals/`` or ``events.parquet`` gives
a report that says what is missing instead of no report. A directory without a readable summary is
not a run: :func:`open_run` raises an :class:`InputError` (exit 2) naming what is missing.

Signals are read column by column (``timestamp`` + the one signal a plot needs), so a report on a
10 M-frame run never holds a whole message table in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError
from ..rundir import (
    DBC_DIR,
    EVENTS_FILE,
    FRAMES_DIR,
    PLAN_FILE,
    SIGNALS_DIR,
    SUMMARY_FILE,
    Event,
    dbc_version,
    list_segments,
    message_table,
    parse_events,
    read_events,
    sha256_of,
)
from ..summary import StepRecord, Summary, read_summary


@dataclass
class Series:
    """One signal over time: timestamps (s) and physical values (float64, NaN where absent)."""

    name: str
    t: np.ndarray
    y: np.ndarray
    unit: str = ""
    choices: dict[int, str] = field(default_factory=dict)


@dataclass
class RunDir:
    """A run directory opened for reading; parts are loaded lazily and cached."""

    path: Path
    summary: Summary
    notes: list[str] = field(default_factory=list)  # what is missing or damaged, for the report

    # -- parts -----------------------------------------------------------------------------------

    @property
    def signals_dir(self) -> Path:
        return self.path / SIGNALS_DIR

    @property
    def frame_parts(self) -> list[Path]:
        return list_segments(self.path / FRAMES_DIR)

    @cached_property
    def plan_text(self) -> str | None:
        plan = self.path / PLAN_FILE
        try:
            return plan.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    @cached_property
    def recorded_frames(self) -> int | None:
        """Rows in ``frames/`` from the Parquet footers (no data read); None without a frames/."""
        parts = self.frame_parts
        if not parts:
            return None
        total = 0
        for part in parts:
            try:
                total += pq.ParquetFile(part).metadata.num_rows
            except (OSError, pa.ArrowException):
                self.notes.append(f"{FRAMES_DIR}/{part.name}: unreadable")
        return total

    @property
    def frame_count(self) -> int:
        """Frames of the run: the summary's count, else what ``frames/`` holds."""
        if self.summary.frames:
            return self.summary.frames
        return self.recorded_frames or 0

    @cached_property
    def dbc_files(self) -> list[dict[str, str]]:
        """The DBC copies of the run with their sha256, else the summary's record of them."""
        found = sorted((self.path / DBC_DIR).glob("*.dbc"))
        if not found:
            return [dict(d) for d in self.summary.dbc]
        return [{"file": p.name, "version": dbc_version(p), "sha256": sha256_of(p)} for p in found]

    @cached_property
    def dbcs(self) -> Any:
        """The run's :class:`~bench.dbc.DbcSet` (units, choice labels), or None if unusable."""
        from ..dbc import DbcSet

        paths = sorted((self.path / DBC_DIR).glob("*.dbc"))
        if not paths:
            self.notes.append(f"{DBC_DIR}/: missing (no units or value labels)")
            return None
        try:
            return DbcSet.load(paths)
        except InputError as exc:
            self.notes.append(f"{DBC_DIR}/: {exc}")
            return None

    @cached_property
    def events(self) -> list[Event]:
        """The run's events in time order (:func:`bench.rundir.parse_events`)."""
        path = self.path / EVENTS_FILE
        if not path.is_file():
            # a log evaluated on its own (mode "evaluate") never had events: nothing is missing
            if self.summary.mode != "evaluate":
                self.notes.append(f"{EVENTS_FILE}: missing (no stimuli or step events)")
            return []
        try:
            return parse_events(read_events(path))
        except InputError as exc:
            self.notes.append(f"{EVENTS_FILE}: unreadable ({str(exc).removeprefix(f'{path}: ')})")
            return []

    @cached_property
    def run_start(self) -> dict[str, Any]:
        """The ``run_start`` event's detail (started_at, mode, interface, seed, software …)."""
        for event in self.events:
            if event.kind == "run_start":
                return event.detail
        return {}

    @cached_property
    def steps(self) -> list[StepRecord]:
        """Steps from the summary, else paired from step_start/step_end events."""
        if self.summary.steps:
            return list(self.summary.steps)
        steps: list[StepRecord] = []
        open_steps: dict[str, StepRecord] = {}
        for event in self.events:
            if event.kind == "step_start":
                record = StepRecord(name=event.name, start=event.time, end=None, status="running")
                open_steps[event.name] = record
                steps.append(record)
            elif event.kind == "step_end" and event.name in open_steps:
                record = open_steps.pop(event.name)
                record.end = event.time
                record.status = str(event.detail.get("status", "done"))
        for record in open_steps.values():
            record.status = "aborted" if self.summary.aborted else "unfinished"
        return steps

    @cached_property
    def t0(self) -> float:
        """Origin of every time axis in the report: the first frame, else the first event."""
        if self.summary.time_span:
            return float(self.summary.time_span[0])
        starts = [e.time for e in self.events if np.isfinite(e.time)]
        starts += [s.start for s in self.steps]
        return min(starts) if starts else 0.0

    @cached_property
    def t_end(self) -> float:
        if self.summary.time_span:
            return float(self.summary.time_span[1])
        ends = [e.time for e in self.events if np.isfinite(e.time)]
        ends += [s.end if s.end is not None else s.start for s in self.steps]
        return max(ends) if ends else self.t0

    # -- signals ---------------------------------------------------------------------------------

    def message_file(self, message: str) -> Path:
        return message_table(self.path, message)

    def timestamps(self, message: str) -> np.ndarray | None:
        """Frame times of a decoded message, or None where the run has no table for it."""
        table = self._read_columns(message, ["timestamp"])
        if table is None:
            return None
        return _float_column(table, "timestamp")

    def signal(self, reference: str) -> Series | None:
        """``Message.Signal`` as a :class:`Series`, or None if the run has no such column."""
        message, dot, name = reference.partition(".")
        if not dot:
            return None
        table = self._read_columns(message, ["timestamp", name])
        if table is None or name not in table.column_names:
            return None
        unit, choices = "", {}
        if self.dbcs is not None:
            try:
                ref = self.dbcs.signal(reference)
                unit = ref.signal.unit or ""
                choices = {int(k): str(v) for k, v in (ref.signal.choices or {}).items()}
            except KeyError:
                pass
        t = _float_column(table, "timestamp")
        y = _float_column(table, name)
        return Series(reference, t, y, unit, choices)

    def rows(self, message: str) -> int:
        """Rows of a message's signal table (0 where the run has none), from its metadata."""
        path = self.message_file(message)
        try:
            return pq.read_metadata(path).num_rows if path.is_file() else 0
        except (OSError, pa.ArrowException):
            return 0

    def chunks(self, name: str, rows: int) -> Iterator[Series] | None:
        """``Message.Signal`` (or a bare message name: its timestamps, as ``t`` and ``y``),
        ``rows`` at a time, so a plot of a 100 M-frame run never holds a whole column. None
        where the run has no such column."""
        message, dot, signal = name.partition(".")
        columns = ["timestamp", signal] if dot else ["timestamp"]
        path = self.message_file(message)
        if not path.is_file():
            return None
        try:
            file = pq.ParquetFile(path)
            if any(c not in file.schema_arrow.names for c in columns):
                return None
        except (OSError, pa.ArrowException):
            return self._whole(name)
        first = self.signal(name) if dot and file.metadata.num_rows == 0 else None
        if first is not None:
            return iter([first])
        unit, choices = "", {}
        if dot and self.dbcs is not None:
            try:
                ref = self.dbcs.signal(name)
                unit = ref.signal.unit or ""
                choices = {int(k): str(v) for k, v in (ref.signal.choices or {}).items()}
            except KeyError:
                pass

        def read() -> Iterator[Series]:
            for batch in file.iter_batches(batch_size=rows, columns=columns):
                table = pa.Table.from_batches([batch])
                t = _float_column(table, "timestamp")
                y = _float_column(table, signal) if dot else t
                yield Series(name, t, y, unit, choices)

        return read()

    def _whole(self, name: str) -> Iterator[Series] | None:
        series = self.signal(name)
        return iter([series]) if series is not None else None

    def _read_columns(self, message: str, columns: list[str]) -> pa.Table | None:
        path = self.message_file(message)
        if not path.is_file():
            return None
        try:
            schema = pq.read_schema(path)
            wanted = [c for c in columns if c in schema.names]
            if "timestamp" not in wanted:
                return None
            return pq.read_table(path, columns=wanted)
        except (OSError, pa.ArrowException) as exc:
            note = f"{SIGNALS_DIR}/{path.name}: unreadable ({exc})"
            if note not in self.notes:
                self.notes.append(note)
            return None


def open_run(path: Path) -> RunDir:
    """Open a run directory; InputError (exit 2) naming what is missing if it is not one."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such directory")
    if not path.is_dir():
        raise InputError(f"{path}: not a run directory (a file, not a directory)")
    summary_path = path / SUMMARY_FILE
    if not summary_path.exists():
        raise InputError(
            f"{path}: not a run directory: {SUMMARY_FILE} missing "
            "(a run writes it; `bench evaluate` makes one from a log)"
        )
    return RunDir(path=path, summary=read_summary(summary_path))


def _float_column(table: pa.Table, name: str) -> np.ndarray:
    column = table.column(name)
    if pa.types.is_dictionary(column.type) or not (
        pa.types.is_integer(column.type)
        or pa.types.is_floating(column.type)
        or pa.types.is_boolean(column.type)
    ):
        return np.full(table.num_rows, np.nan)
    # nulls (multiplexed signals absent from a frame) become NaN: not plotted, not aggregated
    return column.cast(pa.float64()).to_numpy(zero_copy_only=False)
