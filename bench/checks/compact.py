"""What the checks without a reducer read from a log, kept batch by batch: the rest is dropped.

Streaming evaluation (:func:`bench.evaluate.judge_batches`) decodes a log in batches. Most kinds
judge batch by batch (:mod:`bench.checks.streaming`); the others (``reaches``, ``responds``) are
judged at the end on what a :class:`CompactLog` kept of every batch — the columns of the signals
they name (their conditions', ``after:`` too), the raw frames of messages whose frames they judge
(none of today's kinds without a reducer), plus the decoder's counts, the number of frames and the
log's first and last time. At the end it is one :class:`~bench.checks.context.EvalContext` over
those rows, on which such a check runs exactly as on the whole log: the rows kept are the log's
rows in the log's order, so it sees the same samples and gives the same verdict, observed value,
margin and evidence. The final context also serves every reducer's ``finish`` (span, counts).

Memory: 16 bytes per kept sample (timestamp and value) of the signals those checks read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from ..dbc import DbcSet
from ..decode import DECODE_COLUMNS, DecodedLog, DecodeStats, MessageStats
from .context import EvalContext
from .spec import CheckSpec

# Columns of the frame table the context reads (EvalContext: index, payloads, bus counts):
# the ones decoding reads.
FRAME_COLUMNS = DECODE_COLUMNS
_FRAME_KINDS = ("cycle_time", "timeout", "crc")


@dataclass(frozen=True)
class Needs:
    """What a plan's checks read: signal columns per message, messages whose raw frames they
    judge, and whether a bus check may cite offending frames."""

    signals: dict[str, frozenset[str]]
    frame_messages: frozenset[str]
    bus_frames: bool

    @classmethod
    def of(cls, checks: Iterable[CheckSpec], dbcs: DbcSet) -> Needs:
        signals: dict[str, set[str]] = {}
        frames: set[str] = set()
        bus = False
        for spec in checks:
            names = [name for _, kind, name in spec.references() if kind == "signal"]
            names += [s for _, condition in spec.conditions() for s in condition.signals]
            for reference in names:
                message, _, signal = reference.partition(".")
                signals.setdefault(message, set()).add(signal)
            if spec.kind in _FRAME_KINDS:
                frames.update(name for _, kind, name in spec.references() if kind == "message")
            bus = bus or spec.kind == "bus"
        known = {m.name for m in dbcs.messages}
        return cls(
            {m: frozenset(s) for m, s in signals.items() if m in known},
            frozenset(frames & known),
            bus,
        )


@dataclass
class CompactLog:
    """The rows the checks read, gathered batch by batch (:meth:`add`); :meth:`context` at the
    end. ``stats``: the decoder's counts over every batch; ``frames``: frames seen."""

    dbcs: DbcSet
    needs: Needs
    ecus: Mapping[str, Any] | None = None  # diagnostic ECUs: their ISO-TP frames are kept
    stats: DecodeStats = field(default_factory=DecodeStats)
    frames: int = 0
    first: float = float("nan")
    last: float = float("nan")
    _signals: dict[str, list[pa.Table]] = field(default_factory=dict)
    _raw: list[pa.Table] = field(default_factory=list)
    _codes: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.stats = DecodeStats(
            messages={m.name: MessageStats() for m in self.dbcs.messages},
        )
        names = self.needs.frame_messages
        wanted = [i for i, m in enumerate(self.dbcs.messages) if m.name in names]
        self._codes = np.array(wanted, dtype=np.int64)

    def add(self, frames: pa.Table, decoded: DecodedLog, *, whole: pa.Table | None = None) -> None:
        """Keep what the checks read of one batch (frames in log order, and their decode).
        ``whole``: the batch as read, when ``frames`` is the part of it that is judged (a
        channel selection, :mod:`bench.channels`): the log's span is the whole batch's."""
        self.stats.merge(decoded.stats)
        self.frames += frames.num_rows
        timed = frames if whole is None else whole
        if timed.num_rows:
            ts = timed.column("timestamp").to_numpy()
            first, last = float(np.min(ts)), float(np.max(ts))
            seen = not np.isnan(self.first)
            self.first = min(self.first, first) if seen else first
            self.last = max(self.last, last) if seen else last
        if frames.num_rows:
            batch = EvalContext(messages={}, dbcs=self.dbcs, frames=frames, ecus=self.ecus)
            keep = self._frame_rows(batch)
            if keep is not None and keep.any():
                selected = frames.select([c for c in FRAME_COLUMNS if c in frames.column_names])
                self._raw.append(selected.filter(pa.array(keep)))
        for message, names in self.needs.signals.items():
            table = decoded.messages.get(message)
            if table is None:
                continue
            columns = ["timestamp", *sorted(n for n in names if n in table.column_names)]
            self._signals.setdefault(message, []).append(table.select(columns))

    def _frame_rows(self, batch: EvalContext) -> np.ndarray | None:
        """Rows of the batch the frame checks read (None: none)."""
        if not self.needs.frame_messages and not self.needs.bus_frames and not self.ecus:
            return None
        index = batch._index()
        keep = np.isin(index.codes, self._codes) if self._codes is not None else None
        if self.ecus:  # UDS exchanges (summary's diagnostics, dtc/did checks): a few frames
            diagnostic = index.codes == index.unknown + 3
            keep = diagnostic if keep is None else keep | diagnostic
        if self.needs.bus_frames:
            lengths = np.concatenate([np.diff(c.offsets) for c in batch._data_chunks()])
            cited = (index.codes == index.unknown) | (index.codes == index.unknown + 2)
            cited |= lengths < index.lengths_by_code[index.codes]
            keep = cited if keep is None else keep | cited
        return keep

    def context(
        self, events: pa.Table | None, ecus: Mapping[str, Any] | None = None
    ) -> EvalContext:
        """One context over the kept rows, with the whole log's span and counts."""
        messages = {
            name: pa.concat_tables(parts) if len(parts) > 1 else parts[0]
            for name, parts in self._signals.items()
            if parts
        }
        raw: pa.Table | None = None
        if self._raw:
            raw = pa.concat_tables(self._raw) if len(self._raw) > 1 else self._raw[0]
        elif self.needs.frame_messages or self.needs.bus_frames or self.ecus:
            raw = _empty_frames()
        return EvalContext(
            messages=messages,
            dbcs=self.dbcs,
            frames=raw,
            events=events,
            bus_stats=self.stats.to_dict(),
            span=(self.first, self.last),  # NaN without frames; the whole log's, judged or not
            total_frames=self.frames,
            ecus=ecus if ecus is not None else self.ecus,
        )


def _empty_frames() -> pa.Table:
    from ..frames import FRAME_SCHEMA

    return FRAME_SCHEMA.empty_table().select(list(FRAME_COLUMNS))


__all__ = ["FRAME_COLUMNS", "CompactLog", "Needs"]
