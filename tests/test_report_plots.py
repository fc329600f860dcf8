"""The report's figures are plain plotly-JSON dicts: prove them against plotly's graph objects.

``bench/report/plots.py`` builds figures without ``plotly.graph_objects`` (whose validation was a
fifth of a campaign's CPU). Here every kind of figure goes through ``go.Figure`` once: a misspelt
property or an invalid value fails, and the JSON the page embeds is the JSON plotly would write.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bench.checks.limits import Limits
from bench.report import plots
from bench.report.source import Series
from bench.summary import CheckResult, StepRecord


def _without_empty_lists(value: Any) -> Any:
    # plotly's graph objects leave out an empty shapes/annotations list; plotly.js reads both alike
    if isinstance(value, dict):
        return {k: _without_empty_lists(v) for k, v in value.items() if v != []}
    if isinstance(value, list):
        return [_without_empty_lists(v) for v in value]
    return value


def _as_plotly_writes_it(figure: plots.Figure) -> Any:
    validated = go.Figure(figure)  # raises ValueError on any property plotly does not know
    return _without_empty_lists(json.loads(pio.to_json(validated, remove_uids=True)))


def _series(name: str, unit: str, n: int = 500, choices: dict[int, str] | None = None) -> Series:
    t = np.linspace(100.0, 160.0, n)
    y = np.round(np.sin(t) * 3) if choices else np.sin(t) * 40.0 + 20.0
    y[7] = np.nan
    return Series(name, t, y, unit, choices or {})


STEPS = [
    StepRecord(name="soak <cold>", start=100.0, end=130.0, status="done"),
    StepRecord(name="drive", start=130.0, end=None, status="incomplete"),
]
EXCHANGES = [
    {"request_time": 131.0, "outcome": "positive", "service": "ReadDTCInformation"},
    {"request_time": 90.0, "outcome": "no_response", "service": "ReadDataByIdentifier"},
]


def _check(verdict: str = "fail") -> CheckResult:
    return CheckResult(
        name="Pack <temp>", kind="range", verdict=verdict, observed={"min": -41.0, "max": 12.5},
        limit={"min": -40.0, "max": 55.0}, evidence=[(120.0, 121.5), (140.0, 140.2)],
    )  # fmt: skip


FIGURES = {
    "check, two units on two axes, limits and reference lines": lambda: plots.check_figure(
        _check(),
        [_series("BMS.PackTemp", "degC"), _series("BMS.PackCurrent", "A")],
        STEPS,
        100.0,
        160.0,
        abort_at=150.0,
        marks=plots.Marks(
            limits=Limits(min=-40.0, max=55.0),
            hlines=((30.0, "mean limit", "#2563eb"),),
            vlines=((130.0, "anchor"),),
        ),
    ),
    "check, a signal with value labels": lambda: plots.check_figure(
        _check("pass"),
        [_series("BMS.State", "", choices={-3: "fault", 0: "idle", 3: "drive"})],
        STEPS,
        100.0,
        160.0,
    ),
    "check, evidence only (no series)": lambda: plots.check_figure(
        _check(), [], STEPS, 100.0, 160.0
    ),
    "timeline with UDS exchanges": lambda: plots.timeline_figure(
        STEPS, 100.0, 160.0, abort_at=150.0, abort_label="pack <hot>", diagnostics=EXCHANGES
    ),
    "overlay of three runs, one missing": lambda: plots.overlay_figure(
        "BMS.PackTemp",
        [
            ("run a", _series("x", "degC"), 100.0),
            ("run b", None, 0.0),
            ("run c", _series("x", "degC", n=3000), 99.0),
        ],
    ),
}


@pytest.mark.parametrize("kind", list(FIGURES))
def test_every_figure_is_what_plotly_validates_and_writes(kind: str) -> None:
    figure = FIGURES[kind]()
    page_json = json.loads(plots.figure_json(figure))
    assert _without_empty_lists(page_json) == _as_plotly_writes_it(figure)


def test_a_misspelt_property_would_fail_this_suite() -> None:
    figure = FIGURES["timeline with UDS exchanges"]()
    figure["layout"]["xaxiss"] = {}
    with pytest.raises(ValueError, match="xaxiss"):
        _as_plotly_writes_it(figure)


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(
        st.sampled_from([np.float32, np.float64, np.dtype(">f4"), np.dtype(">f8")]),
        hnp.array_shapes(max_dims=1, min_side=0, max_side=50),
        elements={"allow_nan": True, "allow_infinity": True},
    )
)
def test_typed_array_is_plotlys_own_encoding(values: np.ndarray) -> None:
    ours = plots.typed_array(values)
    theirs = json.loads(pio.to_json(go.Scatter(y=values)))["y"]
    native = values.astype(values.dtype.newbyteorder("="))
    if isinstance(theirs, dict):  # plotly writes a typed array
        assert ours == theirs
    else:  # plotly writes short or non-native arrays as lists: ours must decode to the same
        decoded = np.frombuffer(
            __import__("base64").b64decode(ours["bdata"]), dtype="<" + ours["dtype"]
        )
        assert np.array_equal(decoded, native, equal_nan=True)


def test_typed_array_refuses_what_is_not_float() -> None:
    with pytest.raises(ValueError, match="int64"):
        plots.typed_array(np.arange(3, dtype=np.int64))
