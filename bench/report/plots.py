"""Plotly figures for reports: one per check, the step timeline, and overlays for ``bench compare``.

Figures are plotly's JSON figure format (``{"data": [traces], "layout": {…}}``, the schema
plotly.js draws) built as plain dicts and serialised here; the page embeds plotly.js once and draws
every figure from that JSON (see ``html.py``). Plain dicts, not ``plotly.graph_objects``: the graph
objects validate every property on construction and deep-copy it again on serialisation, which
was a fifth of the CPU of judging a log in a campaign, for the same JSON. The test suite passes
every kind of figure through ``plotly.graph_objects.Figure`` once, so a misspelt property still
fails there.

Why min/max decimation: a 10 M-frame run has millions of samples per signal, far more than pixels.
Averaging or striding would hide exactly what a reviewer looks for (a 20 ms spike above a limit).
Keeping the minimum and the maximum of each bucket, in time order, draws the same envelope as the
full series at screen resolution, with at most ``MAX_POINTS`` points per trace.

Text from plans and DBCs reaches plotly as pseudo-HTML (plotly renders ``<b>``, ``<br>``, entities),
so every such string is HTML-escaped first (:func:`esc`): a check called ``<script>`` is drawn as
those characters.
"""

from __future__ import annotations

import base64
import html
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.io as pio

from ..summary import CheckResult, StepRecord
from .source import Series

if TYPE_CHECKING:
    from ..checks.limits import Limits

Trace = dict[str, Any]  # one plotly trace: {"type": "scatter", "x": …, "y": …, …}
Figure = dict[str, Any]  # a plotly figure: {"data": [Trace, …], "layout": {…}}

MAX_POINTS = 2000  # per trace, after decimation
MIN_POINTS = 600  # per trace, however many traces a page has
PAGE_POINTS = 200_000  # per page (~2 MB of data next to plotly.js' 4.8 MB): keeps it ≤ 10 MB


# One look for every time and value axis of the report.
_AXIS_STYLE = {
    "showgrid": True,
    "gridcolor": "#eef0f3",
    "zeroline": False,
    "showline": True,
    "linecolor": "#cbd5e1",
    "ticks": "outside",
    "tickcolor": "#cbd5e1",
    "exponentformat": "none",  # 12000, not plotly's "12k" (k = kilo next to a unit misleads)
}


def points_per_trace(traces: int) -> int:
    """Each trace's share of the page's point budget, within MIN_POINTS … MAX_POINTS.

    A plan with a hundred multi-signal checks would otherwise pass the 10 MB goal; at 600 points
    (300 buckets) a trace still draws every excursion wider than a third of a percent of the run.
    """
    if traces <= 0:
        return MAX_POINTS
    return max(MIN_POINTS, min(MAX_POINTS, PAGE_POINTS // traces))


MAX_GAPS = 200  # gaps (message silent) drawn as breaks in the line; the largest ones win
MAX_WINDOWS = 200  # evidence windows shaded per plot; nearer ones are merged beyond that

VERDICT_COLORS = {
    "pass": "#15803d",
    "marginal": "#b45309",
    "inconclusive": "#6b7280",
    "error": "#7c3aed",
    "fail": "#b91c1c",
    "aborted": "#b91c1c",
}
STEP_COLORS = {
    "done": "#94a3b8",
    "running": "#94a3b8",
    "failed": "#dc2626",
    "timeout": "#d97706",
    "aborted": "#dc2626",
    "unfinished": "#d97706",
    "skipped": "#e5e7eb",
}
TRACE_COLORS = ["#1d4ed8", "#0f766e", "#9333ea", "#c2410c", "#0369a1", "#4d7c0f"]
FAIL_FILL = "rgba(220,38,38,0.10)"
MARGINAL_FILL = "rgba(245,158,11,0.14)"
WINDOW_FILL = {
    "fail": "rgba(220,38,38,0.22)",
    "error": "rgba(124,58,237,0.15)",
    "marginal": "rgba(245,158,11,0.25)",
}
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif"


def esc(text: Any) -> str:
    """Plotly text is pseudo-HTML: escape what came from a plan or a DBC."""
    return html.escape(str(text), quote=False)


# -- decimation ------------------------------------------------------------------------------------


def decimate(t: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, ...]:
    """Min/max-per-bucket decimation; silent stretches become NaN breaks.

    Returns ``(t, y)`` with at most ``max_points`` samples plus one NaN per gap. Samples with a
    NaN value (a multiplexed signal absent from a frame) are dropped first.
    """
    t = np.asarray(t, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    keep = np.isfinite(y) & np.isfinite(t)
    if not keep.all():
        t, y = t[keep], y[keep]
    n = len(t)
    if n == 0:
        return t, y
    segments = _segments(t)
    pieces_t: list[np.ndarray] = []
    pieces_y: list[np.ndarray] = []
    for number, (start, stop) in enumerate(segments):
        if number:
            # a NaN between segments breaks the line where the message went silent
            pieces_t.append(np.array([(t[start - 1] + t[start]) / 2]))
            pieces_y.append(np.array([np.nan]))
        budget = max(2, (max_points * (stop - start)) // n)
        index = _minmax_index(y[start:stop], budget) + start
        pieces_t.append(t[index])
        pieces_y.append(y[index])
    return np.concatenate(pieces_t), np.concatenate(pieces_y)


def _segments(t: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) runs of samples without a long silence between neighbours."""
    if len(t) < 3:
        return [(0, len(t))]
    dt = np.diff(t)
    # the median spacing over a sample of the gaps is plenty to know the message's period
    stride = max(1, len(dt) // 100_000)
    typical = float(np.median(dt[::stride]))
    threshold = max(10 * typical, 1e-3)
    gaps = np.flatnonzero(dt > threshold)
    if len(gaps) > MAX_GAPS:
        gaps = np.sort(gaps[np.argsort(dt[gaps])[-MAX_GAPS:]])
    bounds = [0, *(int(g) + 1 for g in gaps), len(t)]
    return list(itertools.pairwise(bounds))


def _minmax_index(y: np.ndarray, budget: int) -> np.ndarray:
    """Indices of the min and max of each bucket, in time order (≤ budget indices)."""
    n = len(y)
    if n <= budget:
        return np.arange(n)
    buckets = max(1, budget // 2)
    size = math.ceil(n / buckets)
    full = n // size
    parts = []
    if full:
        block = y[: full * size].reshape(full, size)
        base = np.arange(full) * size
        lo = base + np.argmin(block, axis=1)
        hi = base + np.argmax(block, axis=1)
        parts.append(np.stack([np.minimum(lo, hi), np.maximum(lo, hi)], axis=1).ravel())
    if full * size < n:
        rest = y[full * size :]
        lo, hi = int(np.argmin(rest)), int(np.argmax(rest))
        parts.append(full * size + np.array(sorted({lo, hi})))
    index = np.concatenate(parts)
    # a flat bucket has min and max at one sample: keep it once
    return index[np.r_[True, np.diff(index) != 0]]


# -- limits ----------------------------------------------------------------------------------------


def limits_of(limit: Any, scale: float = 1.0) -> Limits:
    """The one :class:`bench.checks.limits.Limits` of a summary's ``limit`` (numbers only,
    times ``scale``, unchecked: :meth:`~bench.checks.limits.Limits.of`), so a plot's bands mean
    what the check meant. Imported here, not at the top: ``bench.checks`` loads the plan
    models, which a report of a finished run does not otherwise need."""
    from ..checks.limits import Limits

    return Limits.of(limit, scale)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def merge_windows(windows: Iterable[Sequence[float]], span: float) -> list[tuple[float, float]]:
    """Evidence windows sorted, overlaps merged, and at most MAX_WINDOWS (nearest merged)."""
    cleaned = sorted(
        (float(a), float(b)) for a, b, *_ in windows if math.isfinite(a) and math.isfinite(b)
    )
    merged: list[list[float]] = []
    for a, b in cleaned:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    # too many to shade one by one: join neighbours closer than a growing fraction of the span
    tolerance = span / 2000 if span > 0 else 0.0
    while len(merged) > MAX_WINDOWS and tolerance > 0:
        joined: list[list[float]] = []
        for a, b in merged:
            if joined and a - joined[-1][1] <= tolerance:
                joined[-1][1] = max(joined[-1][1], b)
            else:
                joined.append([a, b])
        merged = joined
        tolerance *= 2
    return [(a, b) for a, b in merged]


# -- figures ---------------------------------------------------------------------------------------


# plotly.py's "none" template as plotly.js takes it (plotly.js knows no template names)
_NO_TEMPLATE = pio.templates["none"].to_plotly_json()


def _base_layout(height: int) -> dict[str, Any]:
    return {
        # the page styles the plots; plotly's templates add ~10 kB each
        "template": _NO_TEMPLATE,
        "height": height,
        "margin": {"l": 64, "r": 24, "t": 30, "b": 44},
        "font": {"family": FONT, "size": 12, "color": "#1f2937"},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "hovermode": "x unified",
        "hoverlabel": {"namelength": -1},
        "showlegend": True,
        "legend": {
            "orientation": "h",
            "x": 0,
            "y": 1.02,
            "yanchor": "bottom",
            "font": {"size": 11},
        },
        "xaxis": {
            **_AXIS_STYLE,
            "title": {"text": "time since log start (s)", "font": {"size": 11}},
            "hoverformat": ".3f",
        },
        "yaxis": {
            **_AXIS_STYLE,
            "automargin": True,
        },
    }


LABEL_ROWS = 3  # step names stack in up to this many rows before one is left out
CHAR_FRACTION = 1 / 160  # a label character's width as a share of the x axis (~1100 px plot)


def _step_shapes(
    steps: Sequence[StepRecord], t0: float, t_end: float, show_names: bool = True
) -> tuple[list[dict], list[dict]]:
    """Alternating shading per step with its name on top: where in the plan a sample was.

    Short steps next to each other (key_on, cooling_on) would print their names on top of each
    other: each name takes the first of LABEL_ROWS rows where it fits, or is left out (the step
    is still shaded, and named in the timeline).
    """
    shapes, notes = [], []
    span = max(t_end - t0, 1e-9)
    row_ends = [-math.inf] * LABEL_ROWS
    for i, step in enumerate(steps):
        start = step.start - t0
        end = (step.end if step.end is not None else t_end) - t0
        if end < start:
            continue
        shapes.append(
            {
                "type": "rect",
                "xref": "x",
                "yref": "paper",
                "x0": start,
                "x1": end,
                "y0": 0,
                "y1": 1,
                "fillcolor": "rgba(100,116,139,0.07)" if i % 2 == 0 else "rgba(100,116,139,0.0)",
                "line": {"width": 0},
                "layer": "below",
            }
        )
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": start,
                "x1": start,
                "y0": 0,
                "y1": 1,
                "line": {"color": "rgba(100,116,139,0.35)", "width": 1, "dash": "dot"},
                "layer": "below",
            }
        )
        width = (len(step.name) + 3) * CHAR_FRACTION * span
        # a name that would run off the right edge ends at its step's start instead
        right = start + width > t_end - t0
        left_edge = start - width if right else start
        row = next((r for r, end in enumerate(row_ends) if end <= left_edge), None)
        if show_names and row is not None:
            row_ends[row] = start if right else start + width
            notes.append(
                {
                    "x": start,
                    "xref": "x",
                    "y": 1.0 - 0.07 * row,
                    "yref": "paper",
                    "text": esc(step.name),
                    "showarrow": False,
                    "xanchor": "right" if right else "left",
                    "yanchor": "top",
                    "font": {"size": 10, "color": "#64748b"},
                }
            )
    return shapes, notes


def _abort_marks(abort_at: float | None, t0: float) -> tuple[list[dict], list[dict]]:
    if abort_at is None or not math.isfinite(abort_at):
        return [], []
    x = abort_at - t0
    shape = {
        "type": "line",
        "xref": "x",
        "yref": "paper",
        "x0": x,
        "x1": x,
        "y0": 0,
        "y1": 1,
        "line": {"color": "#b91c1c", "width": 2},
    }
    note = {
        "x": x,
        "xref": "x",
        "y": 0.5,
        "yref": "paper",
        "text": "<b>ABORT</b>",
        "showarrow": False,
        "xanchor": "left",
        "textangle": -90,
        "font": {"size": 11, "color": "#b91c1c"},
    }
    return [shape], [note]


def _band_shapes(limits: Limits, y_lo: float, y_hi: float) -> list[dict]:
    """Failing zones red, marginal zones amber, limits as lines (y range given explicitly)."""

    def band(a: float, b: float, fill: str) -> dict:
        return {
            "type": "rect",
            "xref": "paper",
            "yref": "y",
            "x0": 0,
            "x1": 1,
            "y0": a,
            "y1": b,
            "fillcolor": fill,
            "line": {"width": 0},
            "layer": "below",
        }

    def line(y: float, color: str, dash: str) -> dict:
        return {
            "type": "line",
            "xref": "paper",
            "yref": "y",
            "x0": 0,
            "x1": 1,
            "y0": y,
            "y1": y,
            "line": {"color": color, "width": 1.5, "dash": dash},
        }

    shapes = []
    if limits.max is not None:
        shapes.append(band(limits.max, max(y_hi, limits.max), FAIL_FILL))
        shapes.append(line(limits.max, "#b91c1c", "dash"))
        if limits.marginal_max is not None:
            shapes.append(band(limits.marginal_max, limits.max, MARGINAL_FILL))
            shapes.append(line(limits.marginal_max, "#b45309", "dot"))
    if limits.min is not None:
        shapes.append(band(min(y_lo, limits.min), limits.min, FAIL_FILL))
        shapes.append(line(limits.min, "#b91c1c", "dash"))
        if limits.marginal_min is not None:
            shapes.append(band(limits.min, limits.marginal_min, MARGINAL_FILL))
            shapes.append(line(limits.marginal_min, "#b45309", "dot"))
    return shapes


def _window_shapes(
    windows: Sequence[tuple[float, float]], t0: float, verdict: str, span: float
) -> list[dict]:
    fill = WINDOW_FILL.get(verdict, "rgba(37,99,235,0.12)")
    # a window of one sample still needs a visible width
    minimum = span / 800 if span > 0 else 0.01
    shapes = []
    for a, b in windows:
        x0, x1 = a - t0, b - t0
        if x1 - x0 < minimum:
            middle = (x0 + x1) / 2
            x0, x1 = middle - minimum / 2, middle + minimum / 2
        shapes.append(
            {
                "type": "rect",
                "xref": "x",
                "yref": "paper",
                "x0": x0,
                "x1": x1,
                "y0": 0,
                "y1": 1,
                "fillcolor": fill,
                "line": {"width": 0},
                "layer": "below",
            }
        )
    return shapes


def series_trace(
    series: Series,
    t0: float,
    color: str,
    yaxis: str = "y",
    name: str | None = None,
    max_points: int = MAX_POINTS,
) -> Trace:
    """A decimated line trace; choice-valued signals step and show their labels on hover."""
    t, y = decimate(series.t, series.y, max_points)
    label = name or series.name
    unit = f" {esc(series.unit)}" if series.unit else ""
    # float32 halves the embedded size; far below what a screen can resolve
    x = (t - t0).astype(np.float32)
    values = y.astype(np.float32)
    trace: dict[str, Any] = {
        "x": x,
        "y": values,
        "name": esc(label),
        "mode": "lines",
        "yaxis": yaxis,
        "line": {"color": color, "width": 1.4},
        "hovertemplate": f"%{{y:.6g}}{unit}<extra>%{{fullData.name}}</extra>",
    }
    if series.choices:
        labels = np.array(
            [esc(series.choices.get(int(v), f"{v:g}")) if np.isfinite(v) else "" for v in y],
            dtype=object,
        )
        trace["customdata"] = labels
        trace["hovertemplate"] = "%{customdata} (%{y:.0f})<extra>%{fullData.name}</extra>"
        trace["line"]["shape"] = "hv"
    return {"type": "scatter", **trace}


def gap_series(name: str, times: np.ndarray | None) -> Series | None:
    """Time between consecutive frames of a message in ms, for cycle-time and timeout checks."""
    if times is None or len(times) < 2:
        return None
    return Series(f"{name} frame gap", times[1:], np.diff(times) * 1000.0, unit="ms")


@dataclass(frozen=True)
class Marks:
    """What a check's plot draws besides its series.

    ``limits`` shade failing and marginal zones (only where the limit applies to every plotted
    sample: a range check, frame gaps); ``hlines`` are reference values (a statistic and its
    limits); ``vlines`` are moments (a reaches check's anchor and deadline), in log time.
    """

    limits: Limits | None = None
    hlines: tuple[tuple[float, str, str], ...] = ()  # (y, label, colour)
    vlines: tuple[tuple[float, str], ...] = ()  # (t, label)


def _hline_marks(hlines: Sequence[tuple[float, str, str]]) -> tuple[list[dict], list[dict]]:
    shapes, notes = [], []
    for y, label, color in hlines:
        shapes.append(
            {
                "type": "line",
                "xref": "paper",
                "yref": "y",
                "x0": 0,
                "x1": 1,
                "y0": y,
                "y1": y,
                "line": {"color": color, "width": 1.5, "dash": "dash"},
            }
        )
        notes.append(
            {
                # outside the plot area, right of it: never on the data or a step's name
                "x": 1,
                "xref": "paper",
                "xshift": 4,
                "y": y,
                "yref": "y",
                "text": esc(label),
                "showarrow": False,
                "xanchor": "left",
                "yanchor": "middle",
                "font": {"size": 10, "color": color},
            }
        )
    return shapes, notes


def _vline_marks(vlines: Sequence[tuple[float, str]], t0: float) -> tuple[list[dict], list[dict]]:
    shapes, notes = [], []
    # an anchor and a deadline 2 s apart on a 40 min axis share a pixel: their labels stack
    for i, (t, label) in enumerate(vlines):
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": t - t0,
                "x1": t - t0,
                "y0": 0,
                "y1": 1,
                "line": {"color": "#1e3a8a", "width": 1.5, "dash": "dash"},
            }
        )
        notes.append(
            {
                "x": t - t0,
                "xref": "x",
                "y": 0.02 + 0.1 * i,
                "yref": "paper",
                "text": esc(label),
                "showarrow": False,
                "xanchor": "left",
                "yanchor": "bottom",
                "font": {"size": 10, "color": "#1e3a8a"},
            }
        )
    return shapes, notes


def check_figure(
    check: CheckResult,
    series: Sequence[Series],
    steps: Sequence[StepRecord],
    t0: float,
    t_end: float,
    abort_at: float | None = None,
    marks: Marks | None = None,
    height: int = 300,
    max_points: int = MAX_POINTS,
) -> Figure:
    """A check's signals over time with its limits, marginal bands, evidence and steps.

    The value axis always holds every limit, marginal limit and reference line of ``marks``
    (however far from the data: a target the data never reached is the point of the plot) and
    is cut at round ticks (:func:`nice_axis`)."""
    marks = marks or Marks()
    layout = _base_layout(height)
    traces = []
    units = []
    for i, s in enumerate(series):
        if s.unit not in units:
            units.append(s.unit)
        axis = "y" if s.unit == units[0] or len(units) > 2 else "y2"
        color = TRACE_COLORS[i % len(TRACE_COLORS)]
        traces.append(series_trace(s, t0, color, axis, max_points=max_points))
    limits = marks.limits or limits_of(None)
    # the y range is set explicitly so limit bands can run to the edge without inflating it
    y_data = [_finite(tr["y"]) for tr in traces if tr.get("yaxis") in (None, "y")]
    y_values = [float(a.min()) for a in y_data if a.size] + [
        float(a.max()) for a in y_data if a.size
    ]
    # every limit and target line is on the axis, however far from the data (a "reaches -15"
    # plot of a pack sitting at -30.8 shows -15), and the axis is cut at round ticks
    axis = nice_axis(y_values + limits.values() + [y for y, _, _ in marks.hlines])
    y_lo, y_hi = axis["range"]
    shapes = _band_shapes(limits, y_lo, y_hi)
    span = max(t_end - t0, 0.0)
    windows = merge_windows(check.evidence, span)
    shapes += _window_shapes(windows, t0, check.verdict, span)
    step_shapes, notes = _step_shapes(steps, t0, t_end)
    abort_shapes, abort_notes = _abort_marks(abort_at, t0)
    h_shapes, h_notes = _hline_marks(marks.hlines)
    v_shapes, v_notes = _vline_marks(marks.vlines, t0)
    layout["shapes"] = step_shapes + shapes + h_shapes + v_shapes + abort_shapes
    layout["annotations"] = notes + h_notes + v_notes + abort_notes
    layout["yaxis"].update(axis)
    # the axis carries the plotted signal's unit (a reaches check's unit "s" is its observation's)
    layout["yaxis"]["title"] = {"text": esc(units[0] if units else ""), "font": {"size": 11}}
    if series and series[0].choices and len(series) == 1:
        codes = sorted(series[0].choices)
        layout["yaxis"]["tickvals"] = codes
        layout["yaxis"]["ticktext"] = [esc(series[0].choices[c]) for c in codes]
        del layout["yaxis"]["dtick"], layout["yaxis"]["tick0"]
    if "y2" in [tr.get("yaxis") for tr in traces]:
        y2 = [_finite(tr["y"]) for tr in traces if tr.get("yaxis") == "y2"]
        layout["yaxis2"] = {
            **nice_axis([float(f(a)) for a in y2 if a.size for f in (np.min, np.max)]),
            "exponentformat": "none",
            "overlaying": "y",
            "side": "right",
            "title": {"text": esc(units[1]), "font": {"size": 11}},
            "showgrid": False,
            "zeroline": False,
        }
        layout["margin"]["r"] = 64
    if marks.hlines:  # room for the reference lines' names right of the plot
        longest = max(len(label) for _, label, _ in marks.hlines)
        layout["margin"]["r"] = max(layout["margin"]["r"], 12 + 6 * longest)
    if not traces:  # evidence windows only (counter, CRC errors): no value axis to read
        layout["yaxis"].update({"showticklabels": False, "showgrid": False, "ticks": ""})
        layout["height"] = 160
    if span > 0:
        layout["xaxis"]["range"] = [0, span]
    return {"data": traces, "layout": layout}


DIAG_COLORS = {
    "positive": "#15803d",
    "negative": "#b91c1c",
    "no_response": "#d97706",
    "invalid": "#7c3aed",
    "suppressed": "#6b7280",
    "unsolicited": "#6b7280",
}
DIAG_ROW = "UDS outside steps"


def timeline_figure(
    steps: Sequence[StepRecord],
    t0: float,
    t_end: float,
    abort_at: float | None = None,
    abort_label: str = "",
    diagnostics: Sequence[dict[str, Any]] = (),
) -> Figure:
    """Gantt-like bars, one row per step in plan order, coloured by how the step ended.

    ``diagnostics`` (summary.json's UDS exchanges) are diamonds on the row of the step their
    request was sent in (a row of their own outside every step), coloured by outcome; hovering
    shows the request, the response and what it decoded to."""
    names = [f"{i + 1}. {esc(s.name)}" for i, s in enumerate(steps)]
    starts = [s.start - t0 for s in steps]
    ends = [(s.end if s.end is not None else t_end) - t0 for s in steps]
    durations = [max(e - b, 0.0) for b, e in zip(starts, ends, strict=True)]
    colors = [STEP_COLORS.get(s.status, "#94a3b8") for s in steps]
    statuses = [esc(s.status) for s in steps]
    bar = {
        "type": "bar",
        "y": names,
        "x": durations,
        "base": starts,
        "orientation": "h",
        "marker": {"color": colors, "line": {"width": 0}},
        "customdata": [[a, b, st] for a, b, st in zip(starts, ends, statuses, strict=True)],
        "hovertemplate": (
            "<b>%{y}</b><br>%{customdata[0]:.3f} s → %{customdata[1]:.3f} s"
            "<br>%{x:.3f} s · %{customdata[2]}<extra></extra>"
        ),
        "showlegend": False,
        "width": 0.6,
    }
    layout = _base_layout(max(140, 56 + 30 * len(steps)))
    layout["hovermode"] = "closest"
    layout["showlegend"] = False
    layout["margin"]["t"] = 16
    layout["yaxis"].update({"autorange": "reversed", "showgrid": False, "ticks": ""})
    shapes, notes = _abort_marks(abort_at, t0)
    if notes and abort_label:
        notes[0]["text"] = f"<b>ABORT</b> {esc(abort_label)}"
        notes[0].update({"textangle": 0, "y": 1.0, "yanchor": "bottom"})
        layout["margin"]["t"] = 30
    layout["shapes"] = shapes
    layout["annotations"] = notes
    span = max(t_end - t0, max(ends, default=0.0))
    if span > 0:
        layout["xaxis"]["range"] = [0, span * 1.01]
    data = [bar]
    if diagnostics:
        data.append(_diagnostics_trace(steps, names, diagnostics, t0))
        if any(_step_row(steps, names, d) == DIAG_ROW for d in diagnostics):
            layout["height"] += 30
    return {"data": data, "layout": layout}


def _step_row(steps: Sequence[StepRecord], names: Sequence[str], exchange: dict[str, Any]) -> str:
    t = _number(exchange.get("request_time"))
    if t is None:
        return DIAG_ROW
    row = DIAG_ROW
    for step, name in zip(steps, names, strict=True):  # the latest step holding it
        if step.start <= t and (step.end is None or t <= step.end):
            row = name
    return row


def _diagnostics_trace(
    steps: Sequence[StepRecord], names: Sequence[str], diagnostics: Sequence[dict[str, Any]],
    t0: float,
) -> Trace:  # fmt: skip
    xs, ys, colors, texts = [], [], [], []
    for exchange in diagnostics:
        t = _number(exchange.get("request_time"))
        if t is None:
            continue
        xs.append(t - t0)
        ys.append(_step_row(steps, names, exchange))
        colors.append(DIAG_COLORS.get(str(exchange.get("outcome")), "#6b7280"))
        texts.append("<br>".join(esc(line) for line in exchange_lines(exchange)))
    return {
        "type": "scatter", "x": xs, "y": ys, "mode": "markers", "text": texts,
        "hovertemplate": "%{text}<extra></extra>",
        "marker": {"symbol": "diamond", "size": 11, "color": colors,
                   "line": {"width": 1, "color": "#ffffff"}},
        "showlegend": False, "name": "UDS",
    }  # fmt: skip


def exchange_lines(exchange: dict[str, Any]) -> list[str]:
    """A UDS exchange of summary.json as short lines of plain text (escape before HTML)."""
    head = f"{exchange.get('ecu')} {exchange.get('service')}: {exchange.get('outcome')}"
    lines = [head, f"request {exchange.get('request') or '—'}"]
    if exchange.get("response") is not None:
        lines.append(f"response {_clip(str(exchange['response']))}")
    if exchange.get("problem"):
        lines.append(str(exchange["problem"]))
    for dtc in exchange.get("dtcs") or []:
        bits = ", ".join(dtc.get("status_bits") or []) or "no status bits"
        lines.append(f"{dtc.get('label')} {dtc.get('name')} [{bits}]")
    if exchange.get("dtcs") == []:
        lines.append("no DTC reported")
    if exchange.get("dtc_count") is not None:
        lines.append(f"{exchange['dtc_count']} DTC(s) counted")
    for did in exchange.get("dids") or []:
        value = did.get("value")
        shown = f"{value:g}" if isinstance(value, int | float) else repr(value)
        lines.append(f"{did.get('name')} = {shown} {did.get('unit') or ''}".rstrip())
    return lines


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def overlay_figure(
    title: str,
    runs: Sequence[tuple[str, Series | None, float]],
    height: int = 320,
) -> Figure:
    """One signal of several runs on a common time axis (each run's t0 at x = 0)."""
    layout = _base_layout(height)
    layout["xaxis"]["title"]["text"] = "time since alignment point (s)"
    traces = []
    unit = ""
    choices: dict[int, str] = {}
    for i, (label, series, t0) in enumerate(runs):
        if series is None:
            continue
        unit = unit or series.unit
        choices = choices or series.choices
        traces.append(series_trace(series, t0, TRACE_COLORS[i % len(TRACE_COLORS)], name=label))
    layout["yaxis"]["title"] = {"text": esc(unit), "font": {"size": 11}}
    if choices:
        codes = sorted(choices)
        layout["yaxis"]["tickvals"] = codes
        layout["yaxis"]["ticktext"] = [esc(choices[c]) for c in codes]
    layout["meta"] = {"signal": esc(title)}  # the page heads the plot with the signal's name
    return {"data": traces, "layout": layout}


def figure_json(figure: Figure) -> str:
    """JSON safe to place inside a ``<script type="application/json">`` element.

    Numeric numpy columns of the traces are written as plotly.js typed arrays (:func:`typed_array`),
    as plotly's graph objects write them; other arrays (labels) as lists."""
    data = [{k: _json_value(v) for k, v in trace.items()} for trace in figure["data"]]
    text = pio.to_json({**figure, "data": data}, validate=False, remove_uids=True)
    # plotly already writes < > / as \\u escapes; make sure no "</script>" can ever close the tag
    return text.replace("<", "\\u003c").replace(">", "\\u003e")


def typed_array(values: np.ndarray) -> dict[str, str]:
    """plotly.js' typed-array form of a numeric column: ``{"dtype": "f4", "bdata": base64}``.

    The little-endian bytes of the array in base64 (plotly.js ≥ 2.28 reads it; plotly.py's graph
    objects write float arrays the same way): a float32 sample costs 5.3 characters of JSON
    instead of ~18 as a decimal number, and the browser decodes it without parsing text."""
    array = np.ascontiguousarray(values)
    dtype = array.dtype.newbyteorder("<")
    code = {np.dtype("<f4"): "f4", np.dtype("<f8"): "f8"}.get(dtype)
    if code is None:
        raise ValueError(f"typed_array: float32 or float64 expected, got {array.dtype}")
    return {"dtype": code, "bdata": base64.b64encode(array.astype(dtype).tobytes()).decode()}


def _json_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return typed_array(value) if value.dtype.kind == "f" else value.tolist()
    return value


def _finite(values: Any) -> np.ndarray:
    if values is None:
        return np.empty(0)
    array = np.asarray(values, dtype=np.float64)
    return array[np.isfinite(array)]


def _padded_range(values: list[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 1.0
    lo, hi = min(values), max(values)
    scale = max(abs(lo), abs(hi))
    # a spread below a billionth of the values' size (float noise: 999999.9999999999 and 1e6)
    # has no round ticks that floats can tell apart: draw those values as one level
    spread = hi - lo > scale * 1e-9
    pad = (hi - lo) * 0.08 if spread else max(scale * 0.1, 1.0)
    return lo - pad, hi + pad


def nice_step(span: float, ticks: int = 6) -> float:
    """The round tick step (1, 2, 2.5 or 5 × 10^k) for about ``ticks`` intervals over ``span``."""
    if not math.isfinite(span) or span <= 0:
        return 1.0
    raw = span / ticks
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        if factor * power >= raw:
            return factor * power
    return 10.0 * power  # pragma: no cover - the loop always returns


def nice_axis(values: Sequence[float], ticks: int = 6) -> dict[str, float | list[float]]:
    """A value axis over every number in ``values`` (data, limits, targets): its range runs from
    one round tick to another, so each label is a round number (``-32, -28, … -12``), and each
    value lies strictly inside, with a little room, never on the frame.

    Returns plotly axis settings: ``range``, ``tick0`` and ``dtick``."""
    lo, hi = _padded_range([v for v in values if math.isfinite(v)])
    step = nice_step(hi - lo, ticks)
    low = math.floor(lo / step) * step
    high = math.ceil(hi / step) * step
    # round away binary noise (0.1 * 3 = 0.30000000000000004) so the labels print round
    digits = max(0, -math.floor(math.log10(step)) + 2)
    return {
        "range": [round(low, digits), round(high, digits)],
        "tick0": 0.0,
        "dtick": step,
    }


def rate_series(series: Series, over: float | None = None) -> Series | None:
    """The absolute rate of change of ``series`` as the ``rate`` check computes it, per second.

    Sample to sample, ``|v[i] - v[i-1]| / (t[i] - t[i-1])`` at ``t[i]`` (equal timestamps give no
    slope); with ``over``, ``|v(t) - v(t - over)| / over`` with ``v(t - over)`` the last sample at
    or before it (as-of), for samples at least ``over`` after the first. Every sample counts: a
    check's ``when:``/``during:`` are not applied here (its evidence windows show what it judged).
    None when there are fewer than two samples. Shapes: in (n,), out (≤ n - 1,); the unit gains
    ``/s``. Checked against :mod:`bench.checks.rate` in ``tests/test_report_html.py``.
    """
    t = np.asarray(series.t, dtype=np.float64)
    y = np.asarray(series.y, dtype=np.float64)
    keep = np.isfinite(t) & np.isfinite(y)
    t, y = t[keep], y[keep]
    if t.size < 2:
        return None
    if over:
        ends = np.flatnonzero(t - over >= t[0])
        begins = np.searchsorted(t, t[ends] - over, side="right") - 1
        at, rates = t[ends], np.abs(y[ends] - y[begins]) / over
    else:
        dt = np.diff(t)
        valid = dt > 0
        at = t[1:][valid]
        rates = np.abs(np.diff(y))[valid] / dt[valid]
    if at.size == 0:
        return None
    unit = f"{series.unit}/s" if series.unit else "1/s"
    window = f" over {over:g} s" if over else ""
    return Series(f"|d/dt| {series.name}{window}", at, rates, unit=unit)
