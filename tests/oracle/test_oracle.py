"""Vectorized checks == the plain-Python oracle (tests/oracle/reference.py) on random logs.

Random signals (a small value grid with NaN and absent samples), duplicate timestamps, single
samples, random step layouts (unfinished steps, ``repeat:``-style names and globs), ``when:``
conditions across messages, ``for:``, and logs that end inside a violation. Each kind is compared
on verdict, observed value, margin and evidence windows.

Examples per kind: ``BENCH_ORACLE_EXAMPLES`` (default 2,000; a nightly can raise it).
"""

from __future__ import annotations

import math
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from bench.checks import EvalContext, evaluate_check
from bench.checks.results import MAX_EVIDENCE
from bench.e2e import crc_byte_index
from bench.plan.checks import AnyCheck
from bench.plan.conditions import parse_condition
from tests.oracle import reference as ref
from tests.test_checks_context import events, frames, table

EXAMPLES = int(os.environ.get("BENCH_ORACLE_EXAMPLES", "2000"))
ORACLE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

NAN = math.nan
GRID = [-20.0, -10.0, -5.0, 0.0, 5.0, 10.0, 55.0, 58.0, 60.0, 61.0, NAN]
STEP_NAMES = ["soak", "wot[0]", "wot[1]", "wot3", "key_on"]
DURING = [None, ["soak"], ["wot[0]"], ["wot*"], ["wot[0]", "key_on"], ["nope"]]
WHEN = [None, "VCU_Command.TorqueRequest < 0", "BMS_Temps.MinCellTemp > 0"]


# -- random logs -----------------------------------------------------------------------------------


@st.composite
def ticks(draw, max_size: int = 12) -> list[float]:
    """Sorted times in 0.1 s ticks; duplicates allowed (equal timestamps happen)."""
    raw = draw(st.lists(st.integers(0, 40), min_size=1, max_size=max_size))
    return [k / 10 for k in sorted(raw)]


@st.composite
def step_layouts(draw) -> list[tuple[str, float, float | None]]:
    count = draw(st.integers(0, 3))
    names = draw(st.permutations(STEP_NAMES))[:count]
    edges = sorted(draw(st.lists(st.integers(0, 45), min_size=2 * count, max_size=2 * count)))
    layout: list[tuple[str, float, float | None]] = []
    for i, name in enumerate(names):
        start, end = edges[2 * i] / 10, edges[2 * i + 1] / 10
        unfinished = i == count - 1 and draw(st.booleans())
        layout.append((name, start, None if unfinished else end))
    return layout


@st.composite
def signal_logs(draw) -> dict[str, Any]:
    temps_t = draw(ticks())
    n = len(temps_t)
    maxes = draw(st.lists(st.sampled_from([*GRID, None]), min_size=n, max_size=n))
    if draw(st.booleans()):  # often: the log ends inside a violation
        maxes[-1] = 61.0
    mins = draw(st.lists(st.sampled_from([-5.0, 5.0]), min_size=n, max_size=n))
    command_t = draw(ticks(max_size=6))
    torque = draw(
        st.lists(
            st.sampled_from([-50.0, 0.0, 50.0]), min_size=len(command_t), max_size=len(command_t)
        )
    )
    return {
        "temps": (temps_t, maxes, mins),
        "command": (command_t, torque),
        "steps": draw(step_layouts()),
        "abort": draw(st.one_of(st.none(), st.integers(0, 40).map(lambda k: k / 10))),
    }


def build(data: dict[str, Any]) -> tuple[ref.Log, dict[str, Any]]:
    """The same log as oracle data and as EvalContext inputs."""
    temps_t, maxes, mins = data["temps"]
    command_t, torque = data["command"]
    log = ref.Log()
    log.messages["BMS_Temps"] = [
        (t, {"MaxCellTemp": v, "MinCellTemp": m})
        for t, v, m in zip(temps_t, maxes, mins, strict=True)
    ]
    log.messages["VCU_Command"] = [
        (t, {"TorqueRequest": v}) for t, v in zip(command_t, torque, strict=True)
    ]
    all_times = [*temps_t, *command_t]
    log.log_start, log.log_end = min(all_times), max(all_times)
    log.steps = sorted(data["steps"], key=lambda s: s[1])
    rows = []
    for name, start, end in log.steps:
        rows.append((start, "step_start", name))
        if end is not None:
            rows.append((end, "step_end", name))
    if data["abort"] is not None:
        rows.append((data["abort"], "abort", "abort"))
        log.abort_time = data["abort"]
    context = {
        "messages": {
            "BMS_Temps": table(timestamp=temps_t, MaxCellTemp=maxes, MinCellTemp=mins),
            "VCU_Command": table(timestamp=command_t, TorqueRequest=torque),
        },
        "events": events(*sorted(rows, key=lambda r: r[0])) if rows else None,
    }
    return log, context


CHECK = TypeAdapter(AnyCheck)  # built once: building one costs more than an example


def run(dbcs, fields: dict[str, Any], context: dict[str, Any]):
    ctx = EvalContext(dbcs=dbcs, **context)
    return evaluate_check(CHECK.validate_python({"name": "c", **fields}), ctx)


def expect(oracle, log: ref.Log, c: dict) -> ref.Verdict:
    try:
        return oracle(log, c)
    except ref.Unjudgeable:
        return ref.Verdict("inconclusive")


def clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def close(got: Any, want: Any) -> bool:
    """Equal, numbers to 1e-9 relative (sums and interpolations round differently)."""
    if isinstance(want, dict):
        return (
            isinstance(got, dict)
            and got.keys() == want.keys()
            and all(close(got[k], want[k]) for k in want)
        )
    if want is None or got is None:
        return got is want
    return got == pytest.approx(want, rel=1e-9, abs=1e-12)


def assert_same(result, want: ref.Verdict, *, approx: bool = False) -> None:
    assert result.verdict == want.verdict, result.message
    if want.verdict == "inconclusive" and want.observed is None and not want.evidence:
        return  # nothing to judge: the reason is in the message
    margin = clean(want.margin)
    if margin is not None and result.verdict in ("pass", "marginal") and margin < 0:
        margin = 0.0  # the central promise clamps a slack-sized negative margin
    if approx:
        assert close(result.observed, clean(want.observed)), (result.observed, want.observed)
        assert close(result.margin, margin), (result.margin, margin)
    else:
        assert result.observed == clean(want.observed)
        assert result.margin == margin
    windows = [(a, b) for a, b in want.evidence if math.isfinite(a) and math.isfinite(b)]
    assert result.evidence == windows[:MAX_EVIDENCE]


def assert_promise(result) -> None:
    if result.verdict in ("pass", "marginal"):
        assert result.margin is None or result.margin >= 0


# -- signal kinds ----------------------------------------------------------------------------------


limits_st = st.sampled_from(
    [
        {"max": 55.0},
        {"max": 60.0, "marginal_max": 55.0},
        {"min": -10.0},
        {"min": -10.0, "marginal_min": -5.0, "max": 60.0, "marginal_max": 58.0},
        {"min": 0.0, "max": 58.0},
    ]
)


def check_range(dbcs, log, context, limits, for_s, during, when):
    fields = {"signal": "BMS_Temps.MaxCellTemp", **limits}
    c = {**fields, "during": during, "for": for_s,
         "when": parse_condition(when).bind(dbcs) if when else None}  # fmt: skip
    fields.update({k: v for k, v in (("for", for_s), ("during", during), ("when", when)) if v})
    result = run(dbcs, fields, context)
    assert_same(result, expect(ref.range_check, log, c))
    assert_promise(result)


def check_statistic(dbcs, log, context, statistic, limits, during, when):
    kind = {"statistic": "percentile", "percentile": 90.0} if statistic == "p90" else {
        "statistic": statistic}  # fmt: skip
    fields = {"signal": "BMS_Temps.MaxCellTemp", **kind, **limits}
    c = {**fields, "during": during, "when": parse_condition(when).bind(dbcs) if when else None}
    fields.update({k: v for k, v in (("during", during), ("when", when)) if v})
    result = run(dbcs, fields, context)
    assert_same(result, expect(ref.statistic_check, log, c), approx=True)
    assert_promise(result)


def check_rate(dbcs, log, context, rate, over, during, when):
    fields = {"signal": "BMS_Temps.MaxCellTemp", **rate}
    c = {**fields, "over": over, "during": during,
         "when": parse_condition(when).bind(dbcs) if when else None}  # fmt: skip
    fields.update({k: v for k, v in (("over", over), ("during", during), ("when", when)) if v})
    result = run(dbcs, fields, context)
    assert_same(result, expect(ref.rate_check, log, c), approx=True)
    assert_promise(result)


def check_reaches(dbcs, log, context, target, within, after, accept, during):
    fields = {"signal": "BMS_Temps.MaxCellTemp", "reaches": target, "within": within}
    if after:
        fields["after"] = after
    if accept:
        fields["accept_already_true"] = True
    if during:
        fields["during"] = during
    condition = parse_condition(target, subject="BMS_Temps.MaxCellTemp").bind(dbcs)
    after_condition = parse_condition(after).bind(dbcs) if after and ">" in after else None
    c = {"reaches": condition, "within": within, "after": after, "accept_already_true": accept,
         "after_condition": after_condition, "during": during}  # fmt: skip
    if after and not after_condition and not log.steps:
        want = ref.Verdict("inconclusive")
    else:
        want = expect(ref.reaches_check, log, c)
    result = run(dbcs, fields, context)
    assert_same(result, want)
    assert_promise(result)


def check_responds(dbcs, log, context, stimulus, response, within, marginal, during):
    fields = {"stimulus": stimulus, "responds": response, "within": within}
    if marginal is not None:
        fields["marginal_within"] = marginal
    if during:
        fields["during"] = during
    c = {**fields, "stimulus": parse_condition(stimulus).bind(dbcs),
         "responds": parse_condition(response).bind(dbcs)}  # fmt: skip
    result = run(dbcs, fields, context)
    assert_same(result, expect(ref.responds_check, log, c), approx=True)
    assert_promise(result)


# -- frame kinds -----------------------------------------------------------------------------------


@st.composite
def frame_logs(draw, message: str) -> dict[str, Any]:
    gaps = draw(st.lists(st.sampled_from([0, 5, 9, 10, 11, 15, 20, 30]), min_size=0, max_size=14))
    times = [0.0]
    for gap in gaps:
        times.append(round(times[-1] + gap / 1000, 6))
    counters = draw(st.lists(st.integers(0, 15), min_size=len(times), max_size=len(times)))
    corrupt = draw(st.lists(st.booleans(), min_size=len(times), max_size=len(times)))
    short = draw(st.lists(st.booleans(), min_size=len(times), max_size=len(times)))
    return {"times": times, "counters": counters, "corrupt": corrupt, "short": short,
            "steps": [(n, s / 400, e / 400 if e is not None else None)
                      for n, s, e in draw(step_layouts())]}  # fmt: skip


def frame_build(dbcs, message: str, data: dict[str, Any]):
    from bench.e2e import Protector

    definition = dbcs.message(message)
    protector = Protector(definition)
    rows, log = [], ref.Log()
    payloads = []
    for t, count, bad, cut in zip(data["times"], data["counters"], data["corrupt"], data["short"],
                                  strict=True):  # fmt: skip
        payload = bytearray(protector.encode({}))
        payload[6] = (payload[6] & 0xF0) | count  # AliveCounter: bits 48..51
        index = crc_byte_index(definition)
        from bench.e2e import crc8_j1850

        payload[index] = crc8_j1850(bytes(payload[:index]))
        if bad:
            payload[index] ^= 0x5A
        data_bytes = bytes(payload[:3]) if cut and t > 0 else bytes(payload)
        payloads.append((t, data_bytes))
        rows.append((t, definition.frame_id, data_bytes))
    log.frames[message] = payloads
    log.log_start, log.log_end = data["times"][0], data["times"][-1]
    log.steps = sorted(data["steps"], key=lambda s: s[1])
    step_rows = []
    for name, start, end in log.steps:
        step_rows.append((start, "step_start", name))
        if end is not None:
            step_rows.append((end, "step_end", name))
    table_ = frames(rows)
    from bench.decode import decode_frames

    decoded = decode_frames(table_, dbcs)
    step_events = events(*sorted(step_rows, key=lambda r: r[0])) if step_rows else None
    context = {"messages": decoded.messages, "frames": table_, "events": step_events}
    counter_rows = decoded.messages.get(message)
    if counter_rows is not None and counter_rows.num_rows:
        ts = counter_rows.column("timestamp").to_pylist()
        cs = counter_rows.column("AliveCounter").to_pylist()
        log.messages[message] = [(t, {"AliveCounter": v}) for t, v in zip(ts, cs, strict=True)]
    return log, context


def check_cycle_time(dbcs, log, context, tolerance, allowed, during):
    fields: dict[str, Any] = {"cycle_time": "BMS_PackStatus", "max_violations": allowed}
    c: dict[str, Any] = {
        "cycle_time": "BMS_PackStatus",
        "max_violations": allowed,
        "during": during,
    }
    if tolerance:
        fields["tolerance"] = tolerance
        c["tolerance_s"] = 0.002
    if during:
        fields["during"] = during
    result = run(dbcs, fields, context)
    want = expect(lambda lg, cc: ref.cycle_time_check(lg, cc, 0.020), log, c)
    assert result.verdict == want.verdict, result.message
    if want.evidence:
        assert result.observed["violations"] == want.observed
        assert result.margin == pytest.approx(
            clean(want.margin)
            if want.verdict in ("fail", "inconclusive") or (want.margin or 0) >= 0
            else 0.0,
            abs=1e-12,
        )
        assert result.evidence == want.evidence[:MAX_EVIDENCE]
    assert_promise(result)


def check_timeout(dbcs, log, context, max_gap, during):
    fields: dict[str, Any] = {"timeout": "BMS_PackStatus", "max_gap": max_gap}
    if during:
        fields["during"] = during
    result = run(dbcs, fields, context)
    assert_same(result, expect(ref.timeout_check, log, {**fields, "during": during}), approx=True)
    assert_promise(result)


def check_counter(dbcs, log, context, allowed, during):
    fields: dict[str, Any] = {"counter": "BMS_PackStatus.AliveCounter", "max_errors": allowed}
    if during:
        fields["during"] = during
    result = run(dbcs, fields, context)
    want = expect(lambda lg, cc: ref.counter_check(lg, cc, 1.0, 0.0, 4), log,
                  {**fields, "during": during})  # fmt: skip
    assert result.verdict == want.verdict, result.message
    if want.evidence:
        assert result.observed["errors"] == want.observed
        assert result.margin == want.margin
        assert result.evidence == want.evidence[:MAX_EVIDENCE]
    assert_promise(result)


def check_crc(dbcs, log, context, allowed, during):
    fields: dict[str, Any] = {"crc": "BMS_PackStatus", "max_errors": allowed}
    if during:
        fields["during"] = during
    result = run(dbcs, fields, context)
    want = expect(lambda lg, cc: ref.crc_check(lg, cc, 8, 7), log, {**fields, "during": during})
    assert result.verdict == want.verdict, result.message
    if want.evidence:
        assert result.observed["errors"] == want.observed
        assert result.margin == want.margin
        assert result.evidence == want.evidence[:MAX_EVIDENCE]
    assert_promise(result)


# -- the property tests: every kind on each random log ---------------------------------------------

SIGNAL_KINDS = {
    "range": (
        check_range,
        {
            "limits": limits_st,
            "for_s": st.sampled_from([None, 0.1, 0.25, 0.5, 1.0]),
            "during": st.sampled_from(DURING),
            "when": st.sampled_from(WHEN),
        },
    ),
    "statistic": (
        check_statistic,
        {
            "statistic": st.sampled_from(["mean", "min", "max", "median", "std", "p90"]),
            "limits": st.sampled_from(
                [{"max": 55.0}, {"min": -5.0, "max": 58.0, "marginal_max": 50.0}]
            ),
            "during": st.sampled_from(DURING),
            "when": st.sampled_from(WHEN),
        },
    ),
    "rate": (
        check_rate,
        {
            "rate": st.sampled_from(
                [{"max_rate": 100.0}, {"max_rate": 400.0, "marginal_max_rate": 100.0}]
            ),
            "over": st.sampled_from([None, 0.2, 0.5]),
            "during": st.sampled_from(DURING),
            "when": st.sampled_from(WHEN),
        },
    ),
    "reaches": (
        check_reaches,
        {
            "target": st.sampled_from([">= 58", "< 0", "== 61"]),
            "within": st.sampled_from([0.3, 1.0, 3.0]),
            "after": st.sampled_from(
                [None, "soak", "wot*", "wot[0].end", "key_on", "VCU_Command.TorqueRequest > 0"]
            ),
            "accept": st.booleans(),
            "during": st.sampled_from([None, ["wot*"]]),
        },
    ),
    "responds": (
        check_responds,
        {
            "stimulus": st.sampled_from(
                ["VCU_Command.TorqueRequest < 0", "VCU_Command.TorqueRequest != 0"]
            ),
            "response": st.sampled_from(
                ["BMS_Temps.MaxCellTemp >= 58", "BMS_Temps.MinCellTemp > 0"]
            ),
            "within": st.sampled_from([0.2, 0.5, 1.5]),
            "marginal": st.sampled_from([None, 0.1]),
            "during": st.sampled_from([None, ["wot*"]]),
        },
    ),
}

FRAME_DURING = st.sampled_from([None, ["wot*"], ["soak"]])
FRAME_KINDS = {
    "cycle_time": (
        check_cycle_time,
        {
            "tolerance": st.sampled_from([None, "2ms"]),
            "allowed": st.sampled_from([0, 2]),
            "during": FRAME_DURING,
        },
    ),
    "timeout": (
        check_timeout,
        {"max_gap": st.sampled_from([0.009, 0.015, 0.03]), "during": FRAME_DURING},
    ),
    "counter": (check_counter, {"allowed": st.sampled_from([0, 1, 3]), "during": FRAME_DURING}),
    "crc": (check_crc, {"allowed": st.sampled_from([0, 1, 3]), "during": FRAME_DURING}),
}


def _parameters(kinds):
    return st.fixed_dictionaries({k: st.fixed_dictionaries(p) for k, (_, p) in kinds.items()})


@ORACLE
@given(data=signal_logs(), parameters=_parameters(SIGNAL_KINDS))
def test_signal_kinds_match_the_oracle(dbcs, data, parameters):
    """range, statistic, rate, reaches, responds: each judged on the same random log."""
    log, context = build(data)
    for kind, (check, _) in SIGNAL_KINDS.items():
        try:
            check(dbcs, log, context, **parameters[kind])
        except AssertionError as exc:
            raise AssertionError(f"{kind}: {exc}") from exc


@ORACLE
@given(data=frame_logs("BMS_PackStatus"), parameters=_parameters(FRAME_KINDS))
def test_frame_kinds_match_the_oracle(dbcs, data, parameters):
    """cycle_time, timeout, counter, crc: each judged on the same random frames."""
    log, context = frame_build(dbcs, "BMS_PackStatus", data)
    for kind, (check, _) in FRAME_KINDS.items():
        try:
            check(dbcs, log, context, **parameters[kind])
        except AssertionError as exc:
            raise AssertionError(f"{kind}: {exc}") from exc
