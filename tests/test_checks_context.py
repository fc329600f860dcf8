"""The evaluation context: as-of join, step windows, debounce intervals, frame classification.

Also holds the small builders the other ``test_checks_*`` modules use to make hand-built columns.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from bench.checks import evaluate_check
from bench.checks.context import (
    EvalContext,
    NotJudgeable,
    Windows,
    runs,
    violation_intervals,
)
from bench.e2e import Protector
from bench.frames import FRAME_SCHEMA
from bench.plan.checks import AnyCheck
from bench.summary import CheckResult

# -- builders shared by the check tests ------------------------------------------------------------


def spec(**fields):
    return TypeAdapter(AnyCheck).validate_python(fields)


def table(**columns: Sequence) -> pa.Table:
    """A decoded message table; ``None`` in a list is a null (absent multiplexed value)."""
    arrays = {}
    for name, values in columns.items():
        kind = (
            pa.float64()
            if name == "timestamp" or any(isinstance(v, float) for v in values)
            else pa.int64()
        )
        arrays[name] = pa.array(list(values), type=kind)
    return pa.table(arrays)


def events(*rows: tuple) -> pa.Table:
    """``(t, kind, name[, detail])`` rows as an events table."""
    data: dict[str, list] = {"timestamp": [], "kind": [], "name": [], "detail": []}
    for row in rows:
        data["timestamp"].append(float(row[0]))
        data["kind"].append(row[1])
        data["name"].append(row[2])
        data["detail"].append(json.dumps(row[3]) if len(row) > 3 else "{}")
    return pa.table(
        data,
        schema=pa.schema(
            [("timestamp", pa.float64()), ("kind", pa.string()), ("name", pa.string()),
             ("detail", pa.string())]
        ),
    )  # fmt: skip


def steps(*windows: tuple[str, float, float]) -> pa.Table:
    rows = []
    for name, start, end in windows:
        rows += [(start, "step_start", name), (end, "step_end", name)]
    return events(*sorted(rows))


def frames(rows: Iterable[tuple], **flags) -> pa.Table:
    """A frame table from ``(t, arbitration_id, payload[, is_extended])`` rows."""
    rows = list(rows)
    n = len(rows)
    data = {
        "timestamp": [float(r[0]) for r in rows],
        "channel": [""] * n,
        "arbitration_id": [int(r[1]) for r in rows],
        "is_extended_id": [bool(r[3]) if len(r) > 3 else False for r in rows],
        "is_remote_frame": flags.get("remote", [False] * n),
        "is_error_frame": flags.get("error", [False] * n),
        "is_fd": [False] * n,
        "bitrate_switch": [False] * n,
        "dlc": [len(r[2]) for r in rows],
        "data": [bytes(r[2]) for r in rows],
        "direction": ["rx"] * n,
    }
    return pa.Table.from_pydict(data, schema=FRAME_SCHEMA)


def encoded(dbcs, message: str, times: Sequence[float], values=None) -> list[tuple]:
    """Frames of ``message`` at ``times`` with a correct alive counter and CRC."""
    protector = Protector(dbcs.message(message))
    frame_id = dbcs.message(message).frame_id
    return [(t, frame_id, protector.encode(values or {})) for t in times]


def run(check, dbcs, **context) -> CheckResult:
    ctx = EvalContext(messages=context.pop("messages", {}), dbcs=dbcs, **context)
    return evaluate_check(check, ctx)


# -- as-of join ------------------------------------------------------------------------------------


def test_values_at_holds_last_value_and_is_nan_before_first(dbcs):
    ctx = EvalContext(
        messages={"BMS_Status": table(timestamp=[1.0, 2.0, 3.0], HvState=[0, 2, 1])}, dbcs=dbcs
    )
    got = ctx.values_at(np.array([0.5, 1.0, 1.5, 2.0, 2.999, 3.0, 9.0]), ["BMS_Status.HvState"])
    np.testing.assert_array_equal(got["BMS_Status.HvState"], [np.nan, 0, 0, 2, 2, 1, 1])


def test_values_at_skips_absent_multiplexed_rows(dbcs):
    ctx = EvalContext(
        messages={
            "BMS_ModuleData": table(
                timestamp=[1.0, 2.0, 3.0],
                ModuleIndex=[0, 1, 0],
                CellVolt01=[3.5, None, 3.6],
            )
        },
        dbcs=dbcs,
    )
    got = ctx.values_at(np.array([2.5]), ["BMS_ModuleData.CellVolt01"])
    assert got["BMS_ModuleData.CellVolt01"][0] == 3.5


def test_values_at_of_message_without_frames_is_nan(dbcs):
    ctx = EvalContext(messages={}, dbcs=dbcs)
    assert np.isnan(
        ctx.values_at(np.array([1.0, 2.0]), ["BMS_Status.HvState"])["BMS_Status.HvState"]
    ).all()


def test_unsorted_message_times_are_sorted_before_the_join(dbcs):
    ctx = EvalContext(
        messages={"BMS_Status": table(timestamp=[2.0, 1.0], HvState=[2, 1])}, dbcs=dbcs
    )
    assert ctx.values_at(np.array([1.5, 2.5]), ["BMS_Status.HvState"])[
        "BMS_Status.HvState"
    ].tolist() == [1, 2]


@settings(max_examples=60, deadline=None)
@given(
    sample_times=st.lists(st.floats(0, 100, allow_nan=False), min_size=0, max_size=30),
    query=st.lists(st.floats(-5, 105, allow_nan=False), min_size=1, max_size=30),
)
def test_values_at_matches_naive_reference(dbcs, sample_times, query):
    sample_times = sorted(set(sample_times))
    values = list(range(len(sample_times)))
    ctx = EvalContext(
        messages={"BMS_Status": table(timestamp=sample_times, FaultCode=values)}, dbcs=dbcs
    )
    got = ctx.values_at(np.array(query), ["BMS_Status.FaultCode"])["BMS_Status.FaultCode"]
    for t, value in zip(query, got, strict=True):
        before = [v for ts, v in zip(sample_times, values, strict=True) if ts <= t]
        expected = before[-1] if before else np.nan
        np.testing.assert_equal(value, expected)


# -- windows and debounce --------------------------------------------------------------------------


def test_windows_merge_and_lookup():
    w = Windows.of([(5, 7), (0, 2), (1, 3)])
    assert w.as_list() == [(0, 3), (5, 7)]
    times = np.array([-1, 0, 2.9, 3, 4, 5, 6.99, 7])
    assert w.contains(times).tolist() == [False, True, True, False, False, True, True, False]
    assert w.end_of(np.array([1.0, 6.0])).tolist() == [3.0, 7.0]


def test_runs_of_true():
    first, last = runs(np.array([True, True, False, True, False, True]))
    assert first.tolist() == [0, 3, 5] and last.tolist() == [1, 3, 5]
    assert [a.size for a in runs(np.zeros(0, dtype=bool))] == [0, 0]


def test_violation_intervals_hold_until_next_sample_and_debounce():
    times = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    hold = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    bad = np.array([False, True, True, False, True])
    assert violation_intervals(times, bad, hold).tolist() == [[1, 3], [4, 10]]
    assert violation_intervals(times, bad, hold, 2.0).tolist() == [[1, 3], [4, 10]]
    assert violation_intervals(times, bad, hold, 2.5).tolist() == [[4, 10]]


def test_step_windows_pair_start_and_end_and_open_step_runs_to_log_end(dbcs):
    ctx = EvalContext(
        messages={"BMS_Status": table(timestamp=[0.0, 50.0], HvState=[0, 0])},
        dbcs=dbcs,
        events=events((1, "step_start", "a"), (2, "step_end", "a"), (3, "step_start", "b")),
    )
    assert [(s.name, s.start, s.end, s.status) for s in ctx.steps] == [
        ("a", 1, 2, "done"),
        ("b", 3, None, "incomplete"),
    ]
    # an open step holds the last frame too: its half-open window ends just past it
    assert ctx.during(["b"]).as_list() == [(3, math.nextafter(50.0, math.inf))]
    with pytest.raises(NotJudgeable, match="never started"):
        ctx.during(["drive"])


def test_during_without_step_events_is_not_judgeable(dbcs):
    ctx = EvalContext(messages={}, dbcs=dbcs)
    with pytest.raises(NotJudgeable, match="no step events"):
        ctx.during(["drive"])


# -- raw frames ------------------------------------------------------------------------------------


def test_frame_index_classifies_unknown_error_remote_and_short(dbcs):
    good = encoded(dbcs, "BMS_PackStatus", [0.0, 0.02])
    table_ = frames(
        [
            *good,
            (0.03, 0x100, b"\x00\x01"),  # short BMS_PackStatus
            (0.04, 0x7FF, b"\x00" * 8),  # unknown id
            (0.05, 0x100, b"\x00" * 8, True),  # extended 0x100: unknown
            (0.06, 0x0, b""),  # error frame
            (0.07, 0x100, b""),  # remote frame
        ],
        error=[False, False, False, False, False, True, False],
        remote=[False, False, False, False, False, False, True],
    )
    ctx = EvalContext(messages={}, dbcs=dbcs, frames=table_)
    counts = ctx.bus_counts()
    assert counts == {"error_frames": 1, "unknown_ids": 2, "dlc_mismatches": 1}
    assert ctx.bus_times("dlc_mismatches").tolist() == [0.03]
    assert ctx.bus_times("unknown_ids").tolist() == [0.04, 0.05]
    assert ctx.unknown_ids() == [0x100, 0x7FF]
    # the decoder counts the same things the same way (the bus check may use either)
    from bench.decode import decode_frames

    stats = decode_frames(table_, dbcs).stats.to_dict()
    assert EvalContext(messages={}, dbcs=dbcs, bus_stats=stats).bus_counts() == counts
    assert ctx.frame_times("BMS_PackStatus").tolist() == [0.0, 0.02, 0.03]
    energy = dbcs.message("BMS_Energy")
    assert energy.is_extended_frame
    ctx2 = EvalContext(
        messages={}, dbcs=dbcs, frames=frames([(1.0, energy.frame_id, b"\x00" * 8, True)])
    )
    assert ctx2.frame_times("BMS_Energy").tolist() == [1.0]
