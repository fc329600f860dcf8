"""report.html from a run directory: content, escaping, zero frames, missing parts, decimation."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bench.checks.context import slack
from bench.errors import InputError
from bench.report import plots
from bench.report.html import (
    build_report,
    fmt_limit,
    fmt_value,
    fmt_window,
    scalar_observed,
    write_report,
)
from bench.report.source import open_run
from bench.summary import SEVERITY, CheckResult, StepRecord, read_summary, write_summary

from .runfixtures import EVIL, EVIL_LABEL, cached_run, copy_run
from .test_checks_context import run as run_check
from .test_checks_context import spec, table

SPEC = re.compile(r'<script type="application/json" data-plot="([^"]+)">(.*?)</script>', re.S)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {
        "heihe": cached_run(root / "heihe"),
        "turpan": cached_run(root / "turpan", scenario="turpan"),
        "abort": cached_run(root / "abort", abort=True),
        "empty": cached_run(root / "empty", zero_frames=True),
        "evil": cached_run(root / "evil", evil=True),
    }


@pytest.fixture(scope="module")
def pages(runs: dict[str, Path]) -> dict[str, str]:
    return {name: write_report(run).read_text() for name, run in runs.items()}


def _specs(page: str) -> dict[str, dict]:
    return {target: json.loads(body) for target, body in SPEC.findall(page)}


def test_report_is_written_into_the_run_directory(runs: dict[str, Path]) -> None:
    path = write_report(runs["heihe"])
    assert path == runs["heihe"] / "report.html"
    assert not list(runs["heihe"].glob("*.tmp"))


def test_plotly_is_inline_once_and_nothing_is_fetched(pages: dict[str, str]) -> None:
    page = pages["turpan"]
    # the bundle's banner comment appears once: one copy of plotly.js for every plot
    assert page.count("plotly.js v") == 1
    assert not re.search(r"""<(script|link|img|iframe)[^>]+(src|href)=["']?(https?:)?//""", page)
    assert "default-src 'none'" in page  # the page itself forbids network access


def test_verdict_banner_and_run_facts(pages: dict[str, str], runs: dict[str, Path]) -> None:
    page = pages["turpan"]
    assert 'data-verdict="fail"' in page
    assert "1 of 10 checks failed" in page
    assert "failed: Max cell temperature" in page
    for fact in ("Turpan", "PK-2025-0042", "bench-3", "virtual · bench0 · 500000", "lockstep"):
        assert fact in page
    assert "python-can 4.5.0" in page
    assert "22,8" in page  # frames, e.g. 22,800
    digest = hashlib.sha256((runs["turpan"] / "dbc/battery.dbc").read_bytes())
    assert digest.hexdigest() in page  # the full sha256 is the tooltip of the DBC row
    assert "battery.dbc</span><span>version bench 1.0</span>" in page
    assert "BMS_ModuleData: not in this bench&#39;s restbus" in page  # skipped inputs


def test_every_check_with_a_signal_has_its_plot(
    pages: dict[str, str], runs: dict[str, Path]
) -> None:
    page = pages["heihe"]
    summary = read_summary(runs["heihe"] / "summary.json")
    specs = _specs(page)
    assert "plot-timeline" in specs
    plotted = {t for t in specs if t.startswith("plot-check-")}
    # every check but the bus check and the passing counter has something to draw (cycle time:
    # the message's frame gaps)
    assert len(plotted) == len([c for c in summary.checks if c.kind not in ("bus", "counter")])
    for target in plotted:
        assert f'<div class="plot" id="{target}">' in page
        anchor = target.removeprefix("plot-")
        assert f'href="#{anchor}"' in page and f'id="{anchor}"' in page
    assert "This check has no signal to plot" in page  # the bus check says why it has no plot


def test_failures_come_first(pages: dict[str, str]) -> None:
    verdicts = re.findall(r'<tr class="row-(\w+)" data-check=', pages["turpan"])
    assert verdicts[0] == "fail"
    ranks = [SEVERITY[v] for v in verdicts]
    assert ranks == sorted(ranks, reverse=True)


def test_check_plot_has_limits_evidence_and_steps(pages: dict[str, str]) -> None:
    specs = _specs(pages["turpan"])
    # anchors follow the plan's order: the max-cell-temperature check is check-1
    figure = specs["plot-check-1"]
    shapes = figure["layout"]["shapes"]
    assert any(s.get("yref") == "y" and s.get("y0") == 55 and s["type"] == "line" for s in shapes)
    assert any(s.get("yref") == "y" and s.get("y0") == 50 and s["type"] == "line" for s in shapes)
    red = [s for s in shapes if s.get("fillcolor") == plots.WINDOW_FILL["fail"]]
    assert red, "the violation window is highlighted"
    notes = [a["text"] for a in figure["layout"]["annotations"]]
    assert {"soak", "key_on", "warm_up", "drive"} <= set(notes)
    low, high = figure["layout"]["yaxis"]["range"]
    assert low < 45 and high > 55.7


def test_peaks_survive_into_the_plot(pages: dict[str, str], runs: dict[str, Path]) -> None:
    figure = _specs(pages["turpan"])["plot-check-1"]
    trace = figure["data"][0]
    y = np.frombuffer(base64.b64decode(trace["y"]["bdata"]), dtype=trace["y"]["dtype"])
    series = open_run(runs["turpan"]).signal("BMS_Temps.MaxCellTemp")
    assert series is not None
    assert float(np.nanmax(y)) == pytest.approx(float(series.y.max()), abs=1e-4)
    assert float(np.nanmin(y)) == pytest.approx(float(series.y.min()), abs=1e-4)


def test_choice_signals_show_labels(pages: dict[str, str]) -> None:
    page = pages["heihe"]
    specs = _specs(page)
    hv = next(f for f in specs.values() if f["data"] and "HvState" in f["data"][0].get("name", ""))
    assert "READY" in hv["layout"]["yaxis"]["ticktext"]
    assert "READY" in hv["data"][0]["customdata"]
    assert "%{customdata}" in hv["data"][0]["hovertemplate"]
    # a reaches check marks where its clock starts and its deadline
    notes = [a["text"] for a in hv["layout"]["annotations"]]
    assert "after key_on" in notes and "deadline +5 s" in notes


def test_cycle_time_check_plots_frame_gaps_in_ms(pages: dict[str, str]) -> None:
    specs = _specs(pages["heihe"])
    gap = next(
        f for f in specs.values() if f["data"] and "frame gap" in f["data"][0].get("name", "")
    )
    values = [s["y0"] for s in gap["layout"]["shapes"] if s["type"] == "line" and s["yref"] == "y"]
    assert sorted(values) == pytest.approx([18.0, 22.0])
    assert "min 18 ms, max 22 ms" in pages["heihe"]  # a 20 ms period in ms, not 0.02 s


def test_abort_is_marked(pages: dict[str, str]) -> None:
    page = pages["abort"]
    assert 'data-verdict="aborted"' in page
    assert "Aborted: No BMS fault" in page
    assert '<td class="num">3 (SHUTDOWN)</td>' in page  # the DBC names the observed code
    timeline = _specs(page)["plot-timeline"]
    assert any("ABORT" in a["text"] for a in timeline["layout"]["annotations"])
    abort_x = [s["x0"] for s in timeline["layout"]["shapes"] if s["line"]["color"] == "#b91c1c"]
    assert abort_x == [pytest.approx(50.0, abs=0.1)]
    assert "aborted" in timeline["data"][0]["customdata"][3]


def test_zero_frames_says_so(pages: dict[str, str]) -> None:
    page = pages["empty"]
    assert 'id="zero-frames"' in page
    assert "No frames were recorded in this run" in page
    assert not [t for t in _specs(page) if t.startswith("plot-check-")]
    assert page.count("No frames recorded: nothing to plot.") == 10


def test_evil_text_is_escaped(pages: dict[str, str]) -> None:
    page = pages["evil"]
    for raw in (EVIL, EVIL_LABEL, "<img src=x onerror=alert(2)>", "<img src=x onerror=alert(4)>"):
        assert raw not in page
    assert "</script><script>alert(5)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # inside the plot JSON, < is a \u003c escape: the JSON can never close its <script> element
    for _, body in SPEC.findall(page):
        assert "<" not in body
    specs = _specs(page)
    labels = [t for f in specs.values() for t in f["layout"]["yaxis"].get("ticktext", [])]
    assert "&lt;img src=x onerror=alert(3)&gt;" in labels  # plotly shows entities as text


def test_missing_signals_directory_is_reported(runs: dict[str, Path], tmp_path: Path) -> None:
    run = copy_run(runs["heihe"], tmp_path)
    shutil.rmtree(run / "signals")
    (run / "events.parquet").unlink()
    page = build_report(run)
    assert "signals/: missing" in page
    assert "events.parquet: missing" in page
    assert "No data in this run for BMS_Temps.MaxCellTemp" in page


def test_not_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"summary\.json missing"):
        write_report(tmp_path)
    with pytest.raises(InputError, match="no such directory"):
        write_report(tmp_path / "nope")


def test_damaged_summary(runs: dict[str, Path], tmp_path: Path) -> None:
    run = copy_run(runs["heihe"], tmp_path)
    (run / "summary.json").write_text('{"plan": "x", "verdict": ')
    with pytest.raises(InputError, match=r"summary\.json:1:\d+: damaged summary"):
        write_report(run)
    (run / "summary.json").write_text('{"plan": "x"}')
    with pytest.raises(InputError, match="damaged summary: verdict"):
        write_report(run)


# -- units -----------------------------------------------------------------------------------------


def test_decimation_keeps_extremes_in_time_order() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(1_000_000) * 0.01
    y = rng.normal(0, 1, t.size)
    y[123_457] = 40.0  # a one-sample spike
    y[876_543] = -35.0
    td, yd = plots.decimate(t, y)
    assert len(td) <= plots.MAX_POINTS
    assert yd.max() == 40.0 and yd.min() == -35.0
    assert np.all(np.diff(td) >= 0)


def test_decimation_breaks_lines_at_silences() -> None:
    t = np.r_[np.arange(0, 10, 0.01), np.arange(20, 30, 0.01)]  # the message was silent 10 s
    y = np.sin(t)
    td, yd = plots.decimate(t, y, max_points=200)
    gaps = np.flatnonzero(np.isnan(yd))
    assert len(gaps) == 1 and 10 < td[gaps[0]] < 20
    small_t, _ = plots.decimate(t[:50], y[:50])
    assert np.array_equal(small_t, t[:50])  # short series are drawn as they are


def test_decimation_drops_null_samples() -> None:
    t = np.arange(10.0)
    y = np.where(t % 2 == 0, t, np.nan)  # a multiplexed signal present in every other frame
    _, yd = plots.decimate(t, y)
    assert list(yd) == [0, 2, 4, 6, 8]


def test_the_report_draws_and_words_limits_with_the_one_limits() -> None:
    from bench.checks.limits import Limits

    drawn = plots.limits_of({"max": 0.055, "marginal_max": 0.05, "for": 2}, 1000.0)
    assert type(drawn) is Limits and drawn == Limits(max=55.0, marginal_max=50.0)
    assert drawn.outside(56.0) and drawn.outside_band(52.0)  # the same meaning, not a copy
    # impossible limits (that check is `error`) are still drawn and worded as written
    assert plots.limits_of({"min": 5, "max": 3}).values() == [5.0, 3.0]
    assert fmt_limit({"min": 5, "max": 3}, "V") == "min 5 V, max 3 V"
    assert plots.limits_of("≤ 55").values() == [] and plots.limits_of({"max": "x"}).max is None


def test_limit_and_value_formatting() -> None:
    assert fmt_limit({"max": 55, "marginal_max": 50}, "degC") == (
        "max 55 degC (marginal above 50 degC)"
    )
    assert fmt_limit({"min": 2.8, "max": 4.2}, "V") == "min 2.8 V, max 4.2 V"
    assert fmt_limit({"within": 1500, "after": "key_on"}) == "within 25.0 min after key_on"
    assert fmt_value({"min": 1.5, "max": 2.25}, "V") == "min 1.5, max 2.25 V"
    assert fmt_value(None) == "—"
    check = CheckResult(name="c", kind="range", verdict="pass", observed={"min": 1, "max": 9},
                        limit={"max": 10})  # fmt: skip
    assert scalar_observed(check) == 9.0


def test_figure_json_cannot_close_its_script_element() -> None:
    figure = plots.timeline_figure(
        [StepRecord(name="</script>", start=0)],
        0.0,
        1.0,
    )
    text = plots.figure_json(figure)
    assert "<" not in text and ">" not in text


def test_counter_errors_are_plotted_as_windows(runs: dict[str, Path], tmp_path: Path) -> None:
    run = copy_run(runs["heihe"], tmp_path)
    page = build_report(run)
    assert "No counter errors: nothing to plot." in page
    summary = read_summary(run / "summary.json")
    t0 = summary.time_span[0] if summary.time_span else 0.0
    checks = [
        c.model_copy(update={"verdict": "fail", "evidence": [(t0 + 20.0, t0 + 20.1)]})
        if c.kind == "counter"
        else c
        for c in summary.checks
    ]
    write_summary(
        summary.model_copy(update={"checks": checks, "verdict": "fail"}), run / "summary.json"
    )
    specs = _specs(build_report(run))
    index = next(i for i, c in enumerate(checks) if c.kind == "counter")
    figure = specs[f"plot-check-{index + 1}"]  # anchors follow the plan's order
    assert figure["data"] == []
    windows = [
        s for s in figure["layout"]["shapes"] if s.get("fillcolor") == plots.WINDOW_FILL["fail"]
    ]
    assert len(windows) == 1 and windows[0]["x0"] == pytest.approx(20.0, abs=0.1)


def test_many_checks_share_the_page_budget(runs: dict[str, Path], tmp_path: Path) -> None:
    run = copy_run(runs["heihe"], tmp_path)
    summary = read_summary(run / "summary.json")
    speed = next(c for c in summary.checks if c.name == "Motor speed")  # 6,000 samples
    many = [speed.model_copy(update={"name": f"Motor speed {i}"}) for i in range(400)]
    write_summary(summary.model_copy(update={"checks": many}), run / "summary.json")
    page = write_report(run).read_text()
    budget = plots.points_per_trace(400)
    assert budget == plots.MIN_POINTS
    for figure in _specs(page).values():
        for trace in figure["data"]:
            if trace.get("type") == "scatter":
                assert len(base64.b64decode(trace["x"]["bdata"])) // 4 <= budget + plots.MAX_GAPS
    assert len(page.encode()) < 10_000_000
    assert plots.points_per_trace(10) == plots.MAX_POINTS


# -- value axes: every limit and target on it, round ticks -----------------------------------------


def _decoded(array: object) -> np.ndarray:
    if isinstance(array, dict):  # plotly's binary array form
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.asarray(array, dtype=float)


def _assert_axis_holds_every_line(figure: dict) -> None:
    """The figure JSON's value axis: a range from one round tick to another holding every
    horizontal line (limits, marginal limits, targets, statistic bounds) and every sample."""
    axis = figure["layout"]["yaxis"]
    low, high = axis["range"]
    lines = [
        s["y0"]
        for s in figure["layout"]["shapes"]
        if s["type"] == "line" and s.get("yref") == "y" and s["y0"] == s["y1"]
    ]
    values = [v for tr in figure["data"] if tr.get("yaxis", "y") == "y" for v in _decoded(tr["y"])]
    values = [v for v in values if np.isfinite(v)]
    for y in lines + values:
        assert low < y < high, (y, low, high)
    if "tickvals" in axis:  # a choice signal is labelled with its choice names
        return
    step = axis["dtick"]
    assert axis["tick0"] == 0
    assert np.isclose(step / 10 ** np.floor(np.log10(step)), [1, 2, 2.5, 5, 10]).any()
    for end in (low, high):
        assert abs(end / step - round(end / step)) < 1e-9, (end, step)


def test_every_check_plot_shows_its_limits_and_targets_on_round_ticks(
    pages: dict[str, str],
) -> None:
    checked = 0
    for page in pages.values():
        for target, figure in _specs(page).items():
            if target.startswith("plot-check-") and figure["data"]:
                _assert_axis_holds_every_line(figure)
                checked += 1
    assert checked >= 20


def test_a_reaches_plot_shows_its_target_far_from_the_data(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    # a "reaches >= -15" plot shows -15 however far the data is (the shipped Heihe run with
    # heater_fail sits at -30.8 … -30.7 °C; checked by eye in report.html, and here in the JSON)
    run = copy_run(runs["heihe"], tmp_path)
    summary = read_summary(run / "summary.json")
    index, check = next((i, c) for i, c in enumerate(summary.checks) if c.kind == "reaches")
    plan = (run / "plan.yaml").read_text()
    assert "reaches: '>= 0'" in plan
    (run / "plan.yaml").write_text(plan.replace("reaches: '>= 0'", "reaches: '>= 2 * 150'"))
    series = open_run(run).signal(check.signals[0])
    figure = _specs(build_report(run))[f"plot-check-{index + 1}"]
    targets = [a for a in figure["layout"]["annotations"] if a["text"] == "target ≥ 300"]
    assert len(targets) == 1 and targets[0]["y"] == 300
    low, high = figure["layout"]["yaxis"]["range"]
    assert float(np.nanmax(series.y)) < 100  # far below the target
    assert low < float(np.nanmin(series.y)) and high > 300
    _assert_axis_holds_every_line(figure)
    # a choice-valued target: the line sits at the choice's code, named by the choice
    hv = next(i for i, c in enumerate(summary.checks) if c.name == "HV ready within 5 s of key_on")
    figure = _specs(build_report(run))[f"plot-check-{hv + 1}"]
    assert [a["y"] for a in figure["layout"]["annotations"] if a["text"] == 'target == "READY"']


def test_a_rate_check_plots_the_rate_with_its_limit(runs: dict[str, Path], tmp_path: Path) -> None:
    run = copy_run(runs["heihe"], tmp_path)
    summary = read_summary(run / "summary.json")
    signal = "BMS_Temps.MaxCellTemp"
    rate = CheckResult(name="Cell temperature rate", kind="rate", verdict="pass", observed=0.0,
                       limit={"max_rate": 0.5, "marginal_max_rate": 0.4, "over": 2.0},
                       unit="degC/s", signals=[signal])  # fmt: skip
    write_summary(summary.model_copy(update={"checks": [rate]}), run / "summary.json")
    figure = _specs(build_report(run))["plot-check-1"]
    trace = figure["data"][0]
    assert trace["name"] == f"|d/dt| {signal} over 2 s"
    expected = plots.rate_series(open_run(run).signal(signal), 2.0)
    assert expected is not None
    y = _decoded(trace["y"])
    assert np.nanmax(y) == pytest.approx(expected.y.max(), rel=1e-6)  # float32 in the page
    assert figure["layout"]["yaxis"]["title"]["text"] == "degC/s"
    lines = {s["y0"] for s in figure["layout"]["shapes"] if s["type"] == "line"}
    assert {0.5, 0.4} <= lines
    _assert_axis_holds_every_line(figure)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=6))
@example([1000000.0, 999999.9999999999])  # a spread below float resolution at that size
def test_nice_axis_holds_every_value_between_round_ticks(values: list[float]) -> None:
    axis = plots.nice_axis(values)
    low, high = axis["range"]
    step = axis["dtick"]
    assert all(low < v < high for v in values)
    assert (high - low) / step <= 16  # about six ticks, never a comb
    for end in (low, high):
        assert abs(end / step - round(end / step)) < 1e-6


def test_evidence_is_in_seconds_like_the_time_axis() -> None:
    assert fmt_window(300.0, 2100.0) == "300.0–2100.0 s"
    assert fmt_window(2201.34, 2201.368) == "2201.340–2201.368 s"
    assert fmt_window(12.5, 12.5) == "at 12.500 s"
    # a time-valued check's limit is in the unit of its observed value, not re-unitised
    assert fmt_limit({"within": 1800, "after": "key_on"}, "s") == "within 1800 s after key_on"
    assert fmt_limit({"within": 0.5}, "ms", 1000.0) == "within 500 ms"


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    times=st.lists(st.integers(0, 400), min_size=2, max_size=40).map(
        lambda xs: [x / 10 for x in sorted(xs)]  # duplicates allowed: no slope between them
    ),
    over=st.sampled_from([None, 0.5, 1.0, 3.0]),
)
def test_the_plotted_rate_is_the_rate_the_check_judges(dbcs, data, times, over) -> None:
    values = data.draw(
        st.lists(
            st.floats(-40, 60).map(lambda v: round(v, 1)), min_size=len(times), max_size=len(times)
        )
    )
    fields = {"over": over} if over else {}
    limit = 2.0
    result = run_check(
        spec(name="r", signal="BMS_Temps.MaxCellTemp", max_rate=limit, **fields),
        dbcs,
        messages={"BMS_Temps": table(timestamp=times, MaxCellTemp=values)},
    )
    series = plots.rate_series(
        plots.Series("BMS_Temps.MaxCellTemp", np.array(times), np.array(values), unit="degC"), over
    )
    if result.verdict == "inconclusive":  # no slope to judge: nothing to plot either
        assert series is None
        return
    assert series is not None and series.unit == "degC/s"
    assert result.observed == pytest.approx(float(series.y.max()), rel=1e-12, abs=1e-12)
    above = int(np.count_nonzero(series.y > limit + slack(limit)))
    assert result.details["above"] == above
    assert result.details["slopes"] == series.y.size


def test_a_rate_limit_reads_as_a_bound_in_the_rate_unit() -> None:
    limit = {"max_rate": 0.5, "marginal_max_rate": 0.4, "over": 30.0}
    assert fmt_limit(limit, "degC/s") == (
        "max 0.5 degC/s (marginal above 0.4 degC/s) · over 30.0 s"
    )
    assert fmt_limit("≤ 55 degC (marginal above 50 degC)") == "≤ 55 degC (marginal above 50 degC)"
