"""Property tests: the column-wise checks agree with naive per-sample reference loops."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_checks_context import encoded, frames, run, spec, table

times_st = st.lists(st.integers(0, 400), min_size=1, max_size=40, unique=True).map(
    lambda xs: [x / 10 for x in sorted(xs)]
)


def naive_range_verdict(times, values, high, for_s, log_end):
    """A violation is a run of consecutive samples above ``high``, held until the next sample
    (the last one until ``log_end``); it counts when it lasts at least ``for_s``. One still open
    at the end of the log and shorter than ``for_s`` makes the verdict inconclusive.
    (tests/oracle/ holds the full reference for every kind.)"""
    start, cut = None, False
    for i, (t, v) in enumerate(zip(times, values, strict=True)):
        bad = v > high
        if bad and start is None:
            start = t
        nxt = times[i + 1] if i + 1 < len(times) else log_end
        next_bad = i + 1 < len(times) and values[i + 1] > high
        if bad and not next_bad:
            if nxt - start >= for_s - 1e-9:
                return "fail"
            # cut short: open at the end, or the whole (judged) log is shorter than for_s
            cut = cut or i + 1 == len(times) or log_end - times[0] < for_s - 1e-9
            start = None
    return "inconclusive" if cut else "pass"


@settings(max_examples=80, deadline=None)
@given(
    data=st.data(),
    times=times_st,
    for_s=st.sampled_from([0.0, 0.1, 0.5, 1.0, 2.5]),
)
def test_range_with_for_matches_reference(dbcs, data, times, for_s):
    values = data.draw(
        st.lists(st.sampled_from([10.0, 50.0, 60.0]), min_size=len(times), max_size=len(times))
    )
    messages = {"BMS_Temps": table(timestamp=times, MaxCellTemp=values)}
    fields = {"for": for_s} if for_s else {}
    result = run(spec(name="r", signal="BMS_Temps.MaxCellTemp", max=55, **fields), dbcs,
                 messages=messages)  # fmt: skip
    expected = naive_range_verdict(times, values, 55, for_s, times[-1])
    assert result.verdict == expected


@settings(max_examples=60, deadline=None)
@given(gaps=st.lists(st.integers(1, 60), min_size=1, max_size=40))
def test_cycle_time_and_counter_match_reference(dbcs, gaps):
    times = np.cumsum([0, *gaps]) / 1000.0  # BMS_PackStatus: 20 ms ± 10 %
    result = run(spec(name="c", cycle_time="BMS_PackStatus"), dbcs,
                 frames=frames(encoded(dbcs, "BMS_PackStatus", times)))  # fmt: skip
    outside = sum(1 for g in gaps if not 18 <= g <= 22)
    assert result.observed["violations"] == outside
    assert result.verdict == ("fail" if outside else "pass")
    assert len(result.evidence) == min(outside, 20) or not outside


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(0, 15), min_size=2, max_size=40))
def test_counter_errors_match_reference(dbcs, counts):
    times = [i * 0.02 for i in range(len(counts))]
    messages = {"BMS_PackStatus": table(timestamp=times, AliveCounter=counts)}
    result = run(spec(name="c", counter="BMS_PackStatus.AliveCounter"), dbcs,
                 messages=messages)  # fmt: skip
    expected = sum(1 for a, b in itertools.pairwise(counts) if (a + 1) % 16 != b)
    assert result.observed["errors"] == expected


@settings(max_examples=60, deadline=None)
@given(
    buffer=st.binary(min_size=1, max_size=200),
    length=st.sampled_from([1, 3, 8, 16, 64]),
    data=st.data(),
)
def test_gather_bytes_matches_slicing(buffer, length, data):
    from bench.checks.context import _gather_bytes

    values = np.frombuffer(buffer, dtype=np.uint8)
    if values.size < length:
        return
    starts = np.array(
        data.draw(st.lists(st.integers(0, values.size - length), min_size=1, max_size=20))
    )
    got = _gather_bytes(values, starts, length)
    assert got.shape == (starts.size, length)
    for row, start in zip(got, starts, strict=True):
        assert bytes(row) == buffer[start : start + length]
