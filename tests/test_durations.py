from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("100ms", 0.1),
        ("2s", 2),
        ("1.5s", 1.5),
        ("25min", 1500),
        ("2h", 7200),
        ("1h30min", 5400),
        ("3", 3),
        (4, 4),
        (0.25, 0.25),
        ("10 min", 600),
        ("1e-3s", 0.001),
        ("2.5E2ms", 0.25),
    ],
)
def test_parse(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "fast", "2 parsecs", "-1s", "1s garbage", "h", True, -3])
def test_reject(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_bare_seconds_round_trip(value):
    assert parse_duration(repr(value)) == pytest.approx(value)


def test_format():
    assert format_duration(0.1) == "100ms"
    assert format_duration(1500) == "25min"
    assert format_duration(7500) == "2h 5min"
