"""One Limits: the meaning of min/max/marginal for the plan, every check and the live monitor."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.checks import Limits
from bench.checks.limits import slack

# -0.0 as +0.0: min 0.0 with max -0.0 is no range hypothesis can draw a band from (the test
# failed on that draw, about once in a few dozen runs)
bounds = st.one_of(st.none(), st.floats(-1e6, 1e6).map(lambda v: v + 0.0))


@st.composite
def limits(draw) -> Limits:
    low, high = draw(bounds), draw(bounds)
    if low is None and high is None:
        high = 0.0
    if low is not None and high is not None and low > high:
        low, high = high, low
    band_low = draw(st.one_of(st.none(), st.floats(low, high if high is not None else low + 10))) \
        if low is not None else None  # fmt: skip
    band_high = None
    if high is not None:
        floor = band_low if band_low is not None else (low if low is not None else high - 10)
        band_high = draw(st.one_of(st.none(), st.floats(min(floor, high), high)))
    return Limits(low, high, band_low, band_high)


@settings(max_examples=500, deadline=None)
@given(limit=limits(), value=st.one_of(st.floats(-2e6, 2e6), st.just(math.nan)))
def test_scalar_and_column_forms_agree_and_outside_means_negative_margin(limit, value):
    assert limit.outside(value) == bool(limit.outside(np.array([value]))[0])
    assert limit.holds(value) == (not limit.outside(value))
    margin = limit.margin(value)
    if math.isnan(value):
        assert limit.outside(value) and margin is None
    else:
        assert margin == pytest.approx(-limit.distance(value))
        if limit.outside(value):
            assert margin < 0
        else:
            assert margin >= -slack(max(abs(b) for b in limit.as_dict().values()))
    if limit.outside(value):
        assert limit.outside_band(value)  # outside the limits is outside the band too


@st.composite
def near_an_edge(draw, limit: Limits) -> float:
    """A value at, or one float either side of, a limit's edge with its slack; or a non-finite."""
    edges = [b + sign * slack(b) for b in limit.as_dict().values() for sign in (-1, 0, 1)]
    edge = draw(st.sampled_from(edges))
    return draw(
        st.sampled_from(
            [edge, math.nextafter(edge, math.inf), math.nextafter(edge, -math.inf), math.inf,
             -math.inf, math.nan]
        )
    )  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(data=st.data(), limit=limits())
def test_one_number_is_judged_as_a_column_of_one(data, limit):
    """The scalar short cut of ``_beyond`` (live rules) against the numpy path, at the edges."""
    value = data.draw(st.one_of(near_an_edge(limit), st.floats(allow_nan=True)))
    for judge in (limit.outside, limit.outside_band):
        one = judge(value)
        assert type(one) is bool
        assert one == bool(judge(np.array([value]))[0]) == judge(np.float64(value))


def test_one_wording():
    both = Limits(min=-10, max=60, marginal_min=-5, marginal_max=55)
    assert str(both) == "min -10, max 60 (marginal below -5, above 55)"
    assert both.format("A") == "min -10 A, max 60 A (marginal below -5 A, above 55 A)"
    assert Limits(max=4.2).format("V") == "max 4.2 V"


def test_a_value_on_the_limit_after_scaling_is_on_it():
    assert not Limits(max=40.3).outside(403 * 0.1)
    assert Limits(max=40.3).outside(40.31)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"min": 2, "max": 1}, "min (2) is greater than max (1)"),
        ({"max": 1, "marginal_max": 2}, "marginal_max (2) is above max (1)"),
        ({"marginal_min": 1}, "marginal_min needs min"),
        ({"max": math.nan}, "max is not a number"),
    ],
)
def test_impossible_limits_are_refused(kwargs, reason):
    with pytest.raises(ValueError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        Limits(**kwargs)


def test_round_trip_through_summary_limit():
    limit = Limits(min=-10, marginal_min=-5)
    assert Limits.from_dict({**limit.as_dict(), "for": 0.2}) == limit
