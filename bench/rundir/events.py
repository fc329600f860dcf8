"""The events of a run (``events.parquet``): their schema, reading, and the one :class:`Event`.

One row per event: ``timestamp`` float64 seconds (the run's clock: simulated in lockstep, epoch
seconds in real time) · ``kind`` string (``run_start``, ``step_start``, ``step_end``,
``stimulus``, ``safe_state``, ``abort``, ``note``, ``bus_error``, ``instrument``, ``run_end``) ·
``name`` string (the step, message or check) · ``detail`` string (a JSON object).

The writer is :class:`bench.record.EventLog`; everything that reads events (evaluation, checks,
reports) goes through :func:`read_events` and :func:`parse_events`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError
from .layout import EVENTS_FILE

EVENT_SCHEMA = pa.schema(
    [
        ("timestamp", pa.float64()),
        ("kind", pa.string()),
        ("name", pa.string()),
        ("detail", pa.string()),  # JSON object
    ]
)


@dataclass(frozen=True)
class Event:
    """One recorded event; ``time`` is NaN where the file had none."""

    time: float
    kind: str
    name: str
    detail: dict[str, Any]


def read_events(path: Path) -> pa.Table:
    """The events of ``events.parquet`` (or of a run directory), sorted by time (stable).

    A missing file is an empty table: logs from elsewhere have no step events. A damaged file or
    one with the wrong columns raises :class:`~bench.errors.InputError` naming it.
    """
    path = Path(path)
    if path.is_dir():
        path = path / EVENTS_FILE
    if not path.exists():
        return EVENT_SCHEMA.empty_table()
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{path}: not a readable events file ({_reason(exc)})") from None
    missing = [n for n in ("timestamp", "kind", "name") if n not in table.column_names]
    if missing:
        raise InputError(f"{path}: not an events file, missing column(s) {', '.join(missing)}")
    if "detail" not in table.column_names:
        table = table.append_column("detail", pa.array(["{}"] * table.num_rows, pa.string()))
    try:
        table = table.select(EVENT_SCHEMA.names).cast(EVENT_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InputError(f"{path}: events columns have the wrong types ({_reason(exc)})") from None
    return table.sort_by([("timestamp", "ascending")]) if table.num_rows else table


def parse_events(events: pa.Table | None) -> list[Event]:
    """Events in time order (stable: equal times keep their recorded order; no time goes last).

    A ``detail`` that is not JSON is kept as ``{"raw": text}``, one that is JSON but not an
    object as ``{"value": …}``.
    """
    if events is None or events.num_rows == 0:
        return []
    columns = events.to_pydict()
    rows = events.num_rows
    times = columns.get("timestamp") or [None] * rows
    kinds = columns.get("kind") or [""] * rows
    names = columns.get("name") or [""] * rows
    details = columns.get("detail") or [None] * rows
    out = [
        Event(
            time=float(times[i]) if times[i] is not None else math.nan,
            kind=str(kinds[i] or ""),
            name=str(names[i] or ""),
            detail=_detail(details[i]),
        )
        for i in range(rows)  # a run has tens of events, not millions
    ]
    out.sort(key=lambda e: (math.isnan(e.time), 0.0 if math.isnan(e.time) else e.time))
    return out


def _detail(raw: Any) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return {"raw": raw}
    return value if isinstance(value, dict) else {"value": value}


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]
