"""Streaming evaluation == one batch: every kind, every batch border, every test log.

(a) Property: on the oracle's random logs (tests/oracle) cut into random batches (any border
    between two distinct timestamps, from one batch down to one timestamp per batch), every
    kind's reducer gives the result of the same check on the whole log: verdict, observed value,
    margin, evidence, message and details.
(b) The logs and plans of the suite (tests/data, tests/plans, the report fixtures' run
    directories, the synthetic restbus) give the same summary through ``bench evaluate`` with
    ``BENCH_EVAL_BATCH`` forcing tiny batches as in memory (:func:`bench.evaluate.evaluate_log`).
"""

from __future__ import annotations

import itertools
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.checks import CheckStream, EvalContext, evaluate_check
from bench.errors import InputError
from bench.evaluate import evaluate_log, evaluate_path
from bench.logfiles import read_frames
from bench.plan import load_plan
from bench.rundir import read_events
from bench.stream import BATCH_ENV, FrameBatches, NeedsWholeLog
from tests.oracle.test_oracle import (
    CHECK,
    DURING,
    FRAME_DURING,
    WHEN,
    build,
    frame_build,
    frame_logs,
    limits_st,
    signal_logs,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("BENCH_STREAM_EXAMPLES", "300"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


# -- (a) reducers over random batch borders --------------------------------------------------------


def _times(context: dict[str, Any]) -> np.ndarray:
    parts = [t.column("timestamp").to_numpy() for t in context["messages"].values()]
    if context.get("frames") is not None:
        parts.append(context["frames"].column("timestamp").to_numpy())
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0)


def _slice(table: pa.Table, low: float, high: float) -> pa.Table:
    ts = table.column("timestamp")
    mask = pc.and_(pc.greater_equal(ts, low), pc.less(ts, high))
    return table.filter(mask)


def batched(dbcs, spec, context: dict[str, Any], cuts: list[bool]):
    """The check through CheckStream, the log cut before every distinct time where ``cuts``
    says so (batches in time order, equal timestamps never split)."""
    whole = EvalContext(dbcs=dbcs, **context)
    start = EvalContext(
        messages={}, dbcs=dbcs, events=context.get("events"), span=(whole.log_start, whole.log_end)
    )
    check = CheckStream(spec, start)
    assert check.streams, spec.kind
    times = _times(context)
    borders = [times[0]] if times.size else []
    borders += [t for t, cut in zip(times[1:], cuts, strict=False) if cut]
    edges = [*borders, math.inf]
    for low, high in itertools.pairwise(edges):
        messages = {n: _slice(t, low, high) for n, t in context["messages"].items()}
        frames = context.get("frames")
        batch = start.with_data(messages, _slice(frames, low, high) if frames is not None else None)
        check.feed(batch)
    return check.finish(whole), evaluate_check(spec, whole), len(edges) - 1


def same(got, want) -> None:
    assert json.dumps(got.model_dump(), sort_keys=True, default=str) == json.dumps(
        want.model_dump(), sort_keys=True, default=str
    ), f"\n streamed: {got}\n one batch: {want}"


signal_specs = st.one_of(
    st.builds(
        lambda limits, for_s, during, when: {
            "signal": "BMS_Temps.MaxCellTemp",
            **limits,
            **({"for": for_s} if for_s else {}),
            **({"during": during} if during else {}),
            **({"when": when} if when else {}),
        },
        limits_st,
        st.sampled_from([None, 0.1, 0.25, 1.0]),
        st.sampled_from(DURING),
        st.sampled_from(WHEN),
    ),
    st.builds(
        lambda stat, limits, during, when: {
            "signal": "BMS_Temps.MaxCellTemp",
            **(
                {"statistic": "percentile", "percentile": 90.0}
                if stat == "p90"
                else {"statistic": stat}
            ),
            **limits,
            **({"during": during} if during else {}),
            **({"when": when} if when else {}),
        },
        st.sampled_from(["mean", "min", "max", "median", "std", "p90"]),
        st.sampled_from([{"max": 55.0}, {"min": -5.0, "max": 58.0, "marginal_max": 50.0}]),
        st.sampled_from(DURING),
        st.sampled_from(WHEN),
    ),
    st.builds(
        lambda rate, over, during, when: {
            "signal": "BMS_Temps.MaxCellTemp",
            **rate,
            **({"over": over} if over else {}),
            **({"during": during} if during else {}),
            **({"when": when} if when else {}),
        },
        st.sampled_from([{"max_rate": 100.0}, {"max_rate": 400.0, "marginal_max_rate": 100.0}]),
        st.sampled_from([None, 0.2, 0.5]),
        st.sampled_from(DURING),
        st.sampled_from(WHEN),
    ),
)

frame_specs = st.one_of(
    st.builds(
        lambda tol, allowed, during: {
            "cycle_time": "BMS_PackStatus",
            "max_violations": allowed,
            **({"tolerance": tol} if tol else {}),
            **({"during": during} if during else {}),
        },
        st.sampled_from([None, "2ms"]),
        st.sampled_from([0, 2]),
        FRAME_DURING,
    ),
    st.builds(
        lambda gap, during: {
            "timeout": "BMS_PackStatus",
            "max_gap": gap,
            **({"during": during} if during else {}),
        },
        st.sampled_from([0.009, 0.015, 0.03]),
        FRAME_DURING,
    ),
    st.builds(
        lambda allowed, during: {
            "counter": "BMS_PackStatus.AliveCounter",
            "max_errors": allowed,
            **({"during": during} if during else {}),
        },
        st.sampled_from([0, 1, 3]),
        FRAME_DURING,
    ),
    st.builds(
        lambda allowed, during: {
            "crc": "BMS_PackStatus",
            "max_errors": allowed,
            **({"during": during} if during else {}),
        },
        st.sampled_from([0, 1, 3]),
        FRAME_DURING,
    ),
    st.builds(
        lambda during, dlc: {
            "bus": {"max_dlc_mismatches": dlc},
            **({"during": during} if during else {}),
        },
        FRAME_DURING,
        st.sampled_from([0, 1]),
    ),
)


@PROPERTY
@given(data=signal_logs(), fields=signal_specs, cuts=st.lists(st.booleans(), max_size=40))
def test_signal_kinds_stream_exactly(dbcs, data, fields, cuts):
    """range, statistic, rate: any batch borders give the one-batch result."""
    _, context = build(data)
    spec = CHECK.validate_python({"name": "c", **fields})
    got, want, _ = batched(dbcs, spec, context, cuts)
    same(got, want)


@PROPERTY
@given(data=frame_logs("BMS_PackStatus"), fields=frame_specs, cuts=st.lists(st.booleans()))
def test_frame_kinds_stream_exactly(dbcs, data, fields, cuts):
    """cycle_time, timeout, counter, crc, bus: any batch borders give the one-batch result."""
    _, context = frame_build(dbcs, "BMS_PackStatus", data)
    spec = CHECK.validate_python({"name": "c", **fields})
    got, want, _ = batched(dbcs, spec, context, cuts)
    same(got, want)


def test_a_property_test_here_can_fail(dbcs):
    """The comparison sees a reducer that drops its carried state at a border."""
    data = {
        "times": [0.0, 0.01, 0.02, 0.03],
        "counters": [0, 1, 2, 3],
        "corrupt": [False] * 4,
        "short": [False] * 4,
        "steps": [],
    }
    _, context = frame_build(dbcs, "BMS_PackStatus", data)
    spec = CHECK.validate_python({"name": "c", "counter": "BMS_PackStatus.AliveCounter"})
    got, want, batches = batched(dbcs, spec, context, [True, True, True])
    assert batches == 4
    same(got, want)
    from bench.checks.counter import CounterStream

    original = CounterStream.feed

    def forgetful(self, ctx):  # a broken reducer: forgets the last count at every border
        self.last_t, self.last_raw = np.zeros(0), np.zeros(0, np.int64)
        original(self, ctx)

    CounterStream.feed = forgetful
    try:
        broken, _, _ = batched(dbcs, spec, context, [True, True, True])
    finally:
        CounterStream.feed = original
    with pytest.raises(AssertionError):
        same(broken, want)


# -- (b) the suite's logs and plans: tiny batches == in memory -------------------------------------


def in_memory(log: Path, plan_path: Path, events: pa.Table | None = None) -> dict[str, Any]:
    plan = load_plan(plan_path)
    loaded = read_frames(log)
    summary, _ = evaluate_log(
        loaded.frames, plan, events, skipped=[*loaded.skipped, *loaded.notes], dbcs=plan.dbcs
    )
    return comparable(summary)


def comparable(summary) -> dict[str, Any]:
    data = json.loads(summary.model_dump_json())
    data.pop("plan_file", None)  # evaluate_path names the copy it makes
    return data


def streamed(monkeypatch, log: Path, plan: Path, out: Path, batch: int) -> dict[str, Any]:
    monkeypatch.setenv(BATCH_ENV, str(batch))
    summary, _ = evaluate_path(log, plan, out_dir=out)
    return comparable(summary)


# the test plan of every kind, and the shipped plans (tests/data's plans are copies of two of them)
PLANS = [ROOT / "tests" / "plans" / "good.yaml", *sorted((ROOT / "test_plans").glob("*.yaml"))]
GOOD_LOGS = [
    "asc-unparseable-date.asc",
    "asc-without-triggerblock.asc",
    "channel-256.parquet",
    "sub-millisecond-start.parquet",
]
BAD_LOGS = [
    "asc-garbage-lines.asc",
    "candump-no-hash.log",
    "candump-odd-hex.log",
    "data-as-string.parquet",
    "mf4-corrupt-record-count.mf4",
    "timestamp-null.parquet",
]


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: p.name)
@pytest.mark.parametrize("name", GOOD_LOGS)
def test_test_logs_stream_as_in_memory(monkeypatch, tmp_path, plan, name):
    log = ROOT / "tests" / "data" / "logs" / name
    want = in_memory(log, plan)
    for batch in (1, 3):
        assert streamed(monkeypatch, log, plan, tmp_path / f"b{batch}", batch) == want


@pytest.mark.parametrize("name", BAD_LOGS)
def test_a_bad_log_is_refused_and_leaves_nothing(monkeypatch, tmp_path, name):
    log = ROOT / "tests" / "data" / "logs" / name
    with pytest.raises(InputError) as caught:
        read_frames(log)
    monkeypatch.setenv(BATCH_ENV, "1")
    out = tmp_path / "out"
    with pytest.raises(InputError) as streamed_error:
        evaluate_path(log, PLANS[0], out_dir=out)
    assert str(streamed_error.value) == str(caught.value)
    assert not out.exists()


@pytest.fixture(scope="module")
def fixture_runs(tmp_path_factory):
    from tests.runfixtures import build_run

    root = tmp_path_factory.mktemp("runs")
    return [
        build_run(root / "a"),
        build_run(root / "b", scenario="turpan"),
        build_run(root / "c", abort=True),
        build_run(root / "d", zero_frames=True),
    ]


def test_report_fixture_runs_stream_as_in_memory(monkeypatch, tmp_path, fixture_runs):
    for number, run in enumerate(fixture_runs):
        events = read_events(run / "events.parquet")
        plan = load_plan(run / "plan.yaml", dbc_paths=sorted((run / "dbc").glob("*.dbc")))
        loaded = read_frames(run / "frames")
        want, _ = evaluate_log(loaded.frames, plan, events, dbcs=plan.dbcs)
        for batch in (97, 4001):
            monkeypatch.setenv(BATCH_ENV, str(batch))
            got, _ = evaluate_path(run, run / "plan.yaml", out_dir=tmp_path / f"{number}-{batch}")
            assert comparable(got) == comparable(want), run.name


def _restbus_run(root: Path, frames: pa.Table, shuffle: int = 0) -> Path:
    """A run directory of the synthetic restbus (tests/test_evaluate.py's plan), its segments
    written in arrival order with ``shuffle`` rows swapped between neighbouring segments."""
    from bench.dbc import default_dbc_paths
    from benchmarks.bench_evaluate import PLAN, events_table

    run = root / "run"
    (run / "dbc").mkdir(parents=True)
    for path in default_dbc_paths():
        (run / "dbc" / path.name).write_bytes(path.read_bytes())
    (run / "plan.yaml").write_text(PLAN)
    ts = frames.column("timestamp").to_numpy()
    pq.write_table(events_table(float(ts[0]), float(ts[-1])), run / "events.parquet")
    (run / "frames").mkdir()
    order = np.arange(frames.num_rows)
    if shuffle:  # the recorder writes several sources in arrival order: late rows
        rng = np.random.default_rng(3)
        picks = rng.choice(frames.num_rows - shuffle, 40, replace=False)
        for i in picks:
            order[[i, i + shuffle]] = order[[i + shuffle, i]]
    table = frames.take(pa.array(order))
    for index, start in enumerate(range(0, table.num_rows, 5000)):
        pq.write_table(table.slice(start, 5000), run / "frames" / f"part-{index:05d}.parquet")
    return run


@pytest.mark.parametrize("shuffle", [0, 50, 20_000], ids=["sorted", "late-rows", "far-late"])
def test_restbus_run_streams_as_in_memory(monkeypatch, tmp_path, dbcs, shuffle):
    """Rows late by less than the horizon are put in place batch by batch; rows later than
    that make the log be judged again in one batch. Both give the in-memory summary."""
    from benchmarks._synthetic import restbus_frames

    run = _restbus_run(tmp_path, restbus_frames(40_000, dbcs, seed=2), shuffle)
    events = read_events(run / "events.parquet")
    plan = load_plan(run / "plan.yaml", dbc_paths=sorted((run / "dbc").glob("*.dbc")))
    want, _ = evaluate_log(read_frames(run / "frames").frames, plan, events, dbcs=plan.dbcs)
    batches = FrameBatches(run / "frames", 997)
    if shuffle > 10_000:  # about 50 s of log time: beyond the 30 s horizon
        with pytest.raises(NeedsWholeLog):
            for _ in batches:
                pass
    else:
        assert sum(b.num_rows for b in batches) == 40_000
    monkeypatch.setenv(BATCH_ENV, "997")
    got, _ = evaluate_path(run, run / "plan.yaml", out_dir=tmp_path / "out")
    assert comparable(got) == comparable(want)
    assert [c.verdict for c in got.checks].count("pass") > 10  # a log with real verdicts


def test_single_parquet_file_out_of_order_streams_with_its_note(monkeypatch, tmp_path, dbcs):
    """A single Parquet file read row group by row group: the note about frames going back in
    time is the in-memory one, the copy in the run directory is sorted, in 1 M-frame segments."""
    from benchmarks._synthetic import restbus_frames

    frames = restbus_frames(6_000, dbcs, seed=4)
    order = np.arange(frames.num_rows)
    order[[100, 3000]] = order[[3000, 100]]
    log = tmp_path / "log.parquet"
    pq.write_table(frames.take(pa.array(order)), log, row_group_size=1000)
    plan = ROOT / "tests" / "plans" / "good.yaml"
    want = in_memory(log, plan)
    assert any("frames sorted by timestamp" in line for line in want["skipped"])
    got = streamed(monkeypatch, log, plan, tmp_path / "out", 250)
    assert got == want
    copy = read_frames(tmp_path / "out" / "frames").frames
    assert copy.column("timestamp").equals(read_frames(log).frames.column("timestamp"))


def test_a_virtual_vehicle_run_with_uds_streams_as_in_memory(monkeypatch, tmp_path):
    """A real `bench run` of a shipped plan (UDS DTC and DID reads, reaches, range, crc,
    counter): judged in batches of 300 frames it gives the in-memory summary, diagnostics too."""
    import subprocess
    import sys

    run = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "bench.cli", "run", str(ROOT / "test_plans" / "vcu_comm_loss.yaml"),
         "--out", str(run)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    plan = load_plan(run / "plan.yaml", dbc_paths=sorted((run / "dbc").glob("*.dbc")))
    events = read_events(run / "events.parquet")
    want, _ = evaluate_log(read_frames(run / "frames").frames, plan, events, dbcs=plan.dbcs)
    assert want.diagnostics and {"dtc", "did"} <= {c.kind for c in want.checks}
    monkeypatch.setenv(BATCH_ENV, "300")
    got, _ = evaluate_path(run, run / "plan.yaml", out_dir=tmp_path / "out")
    assert comparable(got) == comparable(want)
