"""reaches, rate and statistic checks on hand-built columns."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.test_checks_context import events, run, spec, steps, table

TEMP = "BMS_Temps.MinCellTemp"


def warming(times, values):
    return {"BMS_Temps": table(timestamp=times, MinCellTemp=values)}


# -- reaches ---------------------------------------------------------------------------------------


def reaches(**fields):
    return spec(name="r", signal=TEMP, reaches=">= 0", **fields)


def test_reaches_within_after_step(dbcs):
    messages = warming([0.0, 10.0, 20.0, 30.0], [-30.0, -10.0, 0.5, 5.0])
    r = run(reaches(within="25s", after="key_on"), dbcs, messages=messages,
            events=steps(("key_on", 5.0, 40.0)))  # fmt: skip
    assert r.verdict == "pass"
    assert r.observed == pytest.approx(15.0) and r.margin == pytest.approx(10.0)
    assert r.evidence == [(5.0, 20.0)]
    assert "15 s" in r.message and "25 s" in r.message
    assert r.message.startswith("BMS_Temps.MinCellTemp >= 0 reached")


def test_reaches_too_late_fails(dbcs):
    messages = warming([0.0, 10.0, 20.0, 30.0], [-30.0, -10.0, 0.5, 5.0])
    r = run(reaches(within="10s", after="key_on"), dbcs, messages=messages,
            events=steps(("key_on", 5.0, 40.0)))  # fmt: skip
    assert r.verdict == "fail" and r.observed == pytest.approx(15.0)


def test_reaches_never_reached_before_deadline_fails(dbcs):
    messages = warming([0.0, 10.0, 20.0, 30.0], [-30.0, -20.0, -10.0, -5.0])
    r = run(reaches(within="10s"), dbcs, messages=messages)
    assert r.verdict == "fail" and r.observed is None and r.evidence == [(0.0, 10.0)]


def test_reaches_log_ends_before_deadline_is_inconclusive(dbcs):
    messages = warming([0.0, 10.0], [-30.0, -20.0])
    r = run(reaches(within="25min"), dbcs, messages=messages)
    assert r.verdict == "inconclusive" and "log ends" in r.message


def test_reaches_already_true_at_anchor_is_inconclusive_not_a_silent_pass(dbcs):
    # issue 10: "Motor derates on the hill climb: 0 s" because the derate was already active
    messages = warming([0.0, 10.0], [5.0, 6.0])
    r = run(reaches(within="1s", after="key_on"), dbcs, messages=messages,
            events=steps(("key_on", 3.0, 9.0)))  # fmt: skip
    assert r.verdict == "inconclusive" and "already held" in r.message
    assert r.details["already_true"] is True


def test_reaches_already_true_accepted_with_its_key(dbcs):
    messages = warming([0.0, 10.0], [5.0, 6.0])
    r = run(reaches(within="1s", after="key_on", accept_already_true=True), dbcs,
            messages=messages, events=steps(("key_on", 3.0, 9.0)))  # fmt: skip
    assert r.verdict == "pass" and r.observed == 0.0


def test_reaches_after_an_event_name(dbcs):
    messages = warming([0.0, 10.0, 20.0], [-5.0, -5.0, 1.0])
    ev = events((0.0, "step_start", "soak"), (12.0, "stimulus", "heater_on"))
    r = run(reaches(within="10s", after="heater_on"), dbcs, messages=messages, events=ev)
    assert r.verdict == "pass" and r.observed == pytest.approx(8.0)


def test_reaches_without_step_events_is_inconclusive(dbcs):
    r = run(reaches(within="10s", after="key_on"), dbcs, messages=warming([0.0], [1.0]))
    assert r.verdict == "inconclusive" and "no step events" in r.message


def test_reaches_condition_over_other_messages(dbcs):
    messages = {
        "BMS_Status": table(timestamp=[0.0, 1.0, 2.0, 3.0], HvState=[0, 1, 2, 2]),
        "BMS_PackStatus": table(timestamp=[0.0, 2.5], MainContactorsClosed=[0, 1]),
    }
    check = spec(
        name="r",
        within="5s",
        reaches='BMS_Status.HvState == "READY" and BMS_PackStatus.MainContactorsClosed',
    )
    r = run(check, dbcs, messages=messages)  # fmt: skip
    assert r.verdict == "pass" and r.observed == pytest.approx(2.5)


# -- rate ------------------------------------------------------------------------------------------


def test_rate_sample_to_sample(dbcs):
    messages = warming([0.0, 1.0, 2.0, 2.5], [0.0, 1.0, 3.0, 3.5])
    r = run(spec(name="r", signal=TEMP, max_rate=1.5), dbcs, messages=messages)
    assert r.verdict == "fail"
    assert r.observed == pytest.approx(2.0) and r.unit == "degC/s"
    assert r.evidence == [(1.0, 2.0)]
    ok = run(spec(name="r", signal=TEMP, max_rate=2.5, marginal_max_rate=1.5), dbcs,
             messages=messages)  # fmt: skip
    assert ok.verdict == "marginal"
    assert run(spec(name="r", signal=TEMP, max_rate=3), dbcs,
               messages=messages).verdict == "pass"  # fmt: skip


def test_rate_over_window_smooths_steps(dbcs):
    # a 1-degree quantisation step every 10 s: steep sample to sample, 0.1/s over 10 s
    times = np.arange(0, 60, 1.0)
    values = np.floor(times / 10.0)
    messages = warming(times, values)
    steep = run(spec(name="r", signal=TEMP, max_rate=0.5), dbcs, messages=messages)
    assert steep.verdict == "fail"
    smooth = run(spec(name="r", signal=TEMP, max_rate=0.5, over="10s"), dbcs,
                 messages=messages)  # fmt: skip
    assert smooth.verdict == "pass" and smooth.observed == pytest.approx(0.1)


def test_rate_one_sample_inconclusive_and_duplicate_times_skipped(dbcs):
    r = run(spec(name="r", signal=TEMP, max_rate=1), dbcs, messages=warming([0.0], [1.0]))
    assert r.verdict == "inconclusive"
    r = run(spec(name="r", signal=TEMP, max_rate=1), dbcs,
            messages=warming([0.0, 0.0, 1.0], [0.0, 5.0, 5.5]))  # fmt: skip
    assert r.verdict == "pass" and r.observed == pytest.approx(0.5)


def test_rate_pairs_must_both_be_judged(dbcs):
    messages = warming([0.0, 1.0, 2.0, 3.0], [0.0, 10.0, 10.0, 10.5])
    r = run(spec(name="r", signal=TEMP, max_rate=1, during=["b"]), dbcs, messages=messages,
            events=steps(("a", 0.0, 0.5), ("b", 0.9, 4.0)))  # fmt: skip
    assert r.verdict == "pass" and r.details["slopes"] == 2


# -- statistic -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statistic", "extra", "expected"),
    [
        ("mean", {}, 2.5),
        ("min", {}, 1.0),
        ("max", {}, 4.0),
        ("median", {}, 2.5),
        ("std", {}, float(np.std([1, 2, 3, 4]))),
        ("percentile", {"percentile": 50}, 2.5),
        ("percentile", {"percentile": 100}, 4.0),
    ],
)
def test_statistics(dbcs, statistic, extra, expected):
    messages = warming([0.0, 1.0, 2.0, 3.0, 4.0], [1.0, 2.0, math.nan, 3.0, 4.0])
    r = run(spec(name="s", signal=TEMP, statistic=statistic, max=100, **extra), dbcs,
            messages=messages)  # fmt: skip
    assert r.verdict == "pass"
    assert r.observed == pytest.approx(expected)
    assert r.details["nan_samples"] == 1


def test_statistic_limits_and_marginal(dbcs):
    messages = warming([0.0, 1.0], [10.0, 20.0])
    assert run(spec(name="s", signal=TEMP, statistic="mean", max=14), dbcs,
               messages=messages).verdict == "fail"  # fmt: skip
    marginal = run(spec(name="s", signal=TEMP, statistic="mean", max=20, marginal_max=14), dbcs,
                   messages=messages)  # fmt: skip
    assert marginal.verdict == "marginal" and marginal.margin == pytest.approx(5.0)
    assert run(spec(name="s", signal=TEMP, statistic="mean", min=16), dbcs,
               messages=messages).verdict == "fail"  # fmt: skip


def test_statistic_with_when_and_no_data(dbcs):
    messages = {
        **warming([0.0, 1.0, 2.0], [10.0, 20.0, 30.0]),
        "BMS_Status": table(timestamp=[0.5, 1.5], HeaterActive=[1, 0]),
    }
    r = run(spec(name="s", signal=TEMP, statistic="mean", max=100,
                 when="BMS_Status.HeaterActive"), dbcs, messages=messages)  # fmt: skip
    assert r.observed == 20.0 and r.details["samples"] == 1
    assert run(spec(name="s", signal=TEMP, statistic="mean", max=1), dbcs,
               messages={}).verdict == "inconclusive"  # fmt: skip
