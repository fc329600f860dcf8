"""``report.html``: one self-contained page an engineer can trust, built from the run directory.

Self-contained means no network at all: CSS, the small sorting script, plotly.js (embedded exactly
once, ~4.8 MB) and every figure's data are inline, so the page opens from an archive on a laptop
in a climate chamber's control room. Figures travel as ``<script type="application/json">`` blocks
(plotly's binary-array JSON, ``<`` escaped) and are drawn by a few lines of JavaScript; nothing
from a plan or DBC is ever placed into HTML or JavaScript unescaped (jinja2 autoescape is on and
plotly text is escaped in :mod:`.plots`).

Budget (DESIGN.md): a 10 M-frame run → ≤ 10 MB, ≤ 10 s. Signals are read one column at a time and
decimated to ≤ 2,000 points per trace, so size and time grow with the number of checks, not frames
(``benchmarks/bench_report.py``).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import yaml

from .. import __version__
from ..errors import HarnessError
from ..rundir import FRAMES_DIR, PLAN_FILE, REPORT_FILE, SUMMARY_FILE, list_journals
from ..summary import SEVERITY, CheckResult, Summary
from . import plots
from .source import RunDir, Series, open_run

TEMPLATES = Path(__file__).resolve().parent / "templates"
MAX_EVENT_ROWS = 1000
MESSAGE_KINDS = ("cycle_time", "timeout", "crc")  # checks judged on a message, not a signal
REPORT_NAME = REPORT_FILE
# plotted as their evidence windows, not their signal (dtc/did: the UDS exchanges judged)
WINDOW_ONLY_KINDS = ("counter", "crc", "dtc", "did")
DURATION_KEYS = {"for", "within", "max_gap", "over", "period"}  # limit keys holding seconds
RATE_KEYS = {"max_rate": "max", "marginal_max_rate": "marginal_max"}  # a rate check's limit


# -- shared with compare ---------------------------------------------------------------------------


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every {{ }} is HTML-escaped: plan and DBC text is data, never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = fmt_number
    env.filters["rel"] = fmt_seconds
    env.globals["severity"] = lambda verdict: SEVERITY.get(verdict, 0)
    return env


@cache
def plotly_js() -> str:
    """The plotly.js bundle shipped inside the plotly wheel (never a CDN)."""
    from plotly.offline import get_plotlyjs

    # the bundle is JavaScript inside <script>: a "</script" would end the element early and a
    # "<!--" switch the HTML parser's script state; neither occurs today, both are neutralised
    return get_plotlyjs().replace("</script", "<\\/script").replace("<!--", "<\\!--")


def fmt_number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if 1e4 <= abs(value) < 1e9:  # 10540 reads better than 1.054e+04
            return f"{value:.0f}"
        return f"{value:.{digits}g}"
    if isinstance(value, list | tuple):  # e.g. the DTC labels of a dtc check, its status bits
        return ", ".join(fmt_number(v, digits) for v in value) or "none"
    return str(value)


def fmt_seconds(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    if abs(value) >= 3600:
        hours, rest = divmod(value, 3600)
        return f"{int(hours)} h {rest / 60:.1f} min"
    if abs(value) >= 120:
        return f"{value / 60:.1f} min"
    return f"{value:.3g} s" if abs(value) < 10 else f"{value:.1f} s"


# keys of observed/limit dicts that are counts, never scaled with the unit
COUNT_KEYS = {"violations", "max_violations", "errors", "max_errors", "modulus", "steps", "frames",
              "responses", "readings"}  # fmt: skip


def display_scale(unit: str, *values: Any) -> tuple[float, str]:
    """Seconds below one read better as ms (a 20 ms cycle time, not 0.02 s)."""
    if unit != "s":
        return 1.0, unit
    numbers = []
    for value in values:
        if isinstance(value, dict):
            value = [v for k, v in value.items() if k not in COUNT_KEYS]
        for v in value if isinstance(value, list | tuple) else [value]:
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
                numbers.append(abs(v))
    if numbers and max(numbers) < 1:
        return 1000.0, "ms"
    return 1.0, unit


def _scaled(value: Any, scale: float, key: str = "") -> Any:
    if scale == 1.0 or key in COUNT_KEYS or key in ("statistic", "after"):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value * scale
    return value


def fmt_window(start: float, end: float) -> str:
    """An evidence window in seconds since log start — the unit of every time axis and of the
    events table — with enough decimals to tell its two ends apart: ``300.0–2100.0 s``,
    ``2201.340–2201.368 s``, or ``at 12.500 s`` for a single moment."""
    if not (math.isfinite(start) and math.isfinite(end)):
        return "—"
    width = end - start
    if width < 1e-6:
        return f"at {start:.3f} s"
    decimals = min(6, max(1, math.ceil(-math.log10(width)) + 1))
    return f"{start:.{decimals}f}–{end:.{decimals}f} s"


def fmt_value(value: Any, unit: str = "", scale: float = 1.0) -> str:
    """Observed values: a number, named numbers ({min, max}) or anything else as text."""
    suffix = f" {unit}" if unit else ""
    if isinstance(value, dict):
        # measured values share the unit; counts (violations, errors …) have none
        measured = [f"{k} {fmt_number(_scaled(v, scale, k))}" for k, v in value.items()
                    if k not in COUNT_KEYS]  # fmt: skip
        counts = [f"{k} {fmt_number(v)}" for k, v in value.items() if k in COUNT_KEYS]
        text = ", ".join(measured) + (suffix if measured else "")
        return ", ".join(p for p in (text, *counts) if p)
    if isinstance(value, list | tuple):
        return ", ".join(fmt_number(v) for v in value) + suffix
    if value is None:
        return "—"
    return fmt_number(_scaled(value, scale)) + suffix


def _limits_text(lim: Any, unit: str) -> str:
    """min/max and the marginal band in the one wording of :class:`bench.checks.limits.Limits`
    (the plan reference, the console and summary messages say it the same way); impossible
    limits (that check is ``error``) are worded as written."""
    return lim.format(unit) if lim.values() else ""


def fmt_limit(limit: Any, unit: str = "", scale: float = 1.0) -> str:
    """``max 55 degC (marginal above 50 degC)``, or the limit's own keys for other kinds.

    The report's one text for a limit (table, plot headers): it renders the ``limit`` field of
    summary.json, a dict today; a limit given as text (a ``Limits.__str__``) is shown as is."""
    if isinstance(limit, str):
        return limit
    if not isinstance(limit, dict):
        return fmt_value(limit, unit, scale)
    # a rate's bound is a max like any other, in the rate's unit (degC/s)
    limit = {RATE_KEYS.get(k, k): v for k, v in limit.items()}
    lim = plots.limits_of(limit, scale)
    head = _limits_text(lim, unit)
    text = [head] if head else []
    known = {"min", "max", "marginal_min", "marginal_max"}
    for key, value in limit.items():
        if key in known:
            continue
        if key in DURATION_KEYS and isinstance(value, int | float) and unit in ("s", "ms"):
            # a time-valued check says its limit in the unit of its observed value and margin
            text.append(f"{key} {fmt_number(value * scale)} {unit}")
        elif key in DURATION_KEYS and isinstance(value, int | float):
            text.append(f"{key} {fmt_seconds(float(value))}")
        elif key == "after" and text and text[-1].startswith("within"):
            text[-1] += f" after {value or 'the start'}"  # a reaches check reads as one phrase
        elif value is not None:
            text.append(f"{key} {fmt_number(_scaled(value, scale, key))}")
    return " · ".join(text) if text else "—"


def scalar_observed(check: CheckResult) -> float | None:
    """One number for a check's observation, to compare runs: the side its limit is on."""
    value = check.observed
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        limit = check.limit if isinstance(check.limit, dict) else {}
        order = ["value", "max" if "max" in limit else "min", "min", "max", "mean"]
        for key in [*order, *value]:
            v = value.get(key)
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
                return float(v)
    return None


def verdict_counts(checks: Sequence[CheckResult]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for check in checks:
        counts[check.verdict] = counts.get(check.verdict, 0) + 1
    return sorted(counts.items(), key=lambda kv: -SEVERITY.get(kv[0], 0))


def parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


# -- the report ------------------------------------------------------------------------------------


@dataclass
class CheckView:
    """One row of the checks table and its plot section."""

    index: int
    check: CheckResult
    anchor: str
    observed: str
    limit: str
    margin: str
    margin_sort: float
    evidence: str  # the first window, e.g. "300.0–2100.0 s"
    evidence_count: int  # all windows (the page adds "+N more")
    figure: str | None = None  # JSON, when there was something to plot
    missing: list[str] = field(default_factory=list)  # signals named but not in the run
    note: str = ""  # why there is no plot, where that is not obvious


def build_report(run: RunDir | Path) -> str:
    """The report page of a run as one HTML string."""
    if not isinstance(run, RunDir):
        run = open_run(run)
    summary = run.summary
    frames = run.frame_count
    if frames and not run.signals_dir.is_dir():
        run.notes.append("signals/: missing (decoded signals; `bench evaluate` writes them)")
    abort_at = _abort_time(run)
    steps = run.steps
    entries = _plan_entries(run)
    # the page's point budget shared by every trace it will draw (one per named signal)
    traces = sum(
        max(1, len(set(c.signals)))
        for c in summary.checks
        if c.kind not in WINDOW_ONLY_KINDS and c.kind != "bus"
    )
    points = plots.points_per_trace(traces)
    views = [
        _check_view(run, i, c, frames > 0, abort_at, entries.get(c.name), points)
        for i, c in enumerate(summary.checks)
    ]
    # failures first; the plan's order within one verdict (sorted() is stable)
    ordered = sorted(views, key=lambda v: -SEVERITY.get(v.check.verdict, 0))
    timeline = None
    if steps:
        figure = plots.timeline_figure(
            steps,
            run.t0,
            run.t_end,
            abort_at,
            summary.aborted.reason if summary.aborted else "",
            summary.diagnostics,
        )
        timeline = plots.figure_json(figure)
    context = {
        "title": f"{summary.plan} — {summary.verdict.upper()}",
        "summary": summary,
        "run_name": run.path.resolve().name,
        "verdict": summary.verdict,
        "headline": _headline(summary),
        "worst": [c.name for c in summary.checks if c.verdict in ("fail", "error")][:5],
        "counts": verdict_counts(summary.checks),
        "facts": _facts(run),
        "frames": frames,
        "zero_frames": frames == 0,
        "span": run.t_end - run.t0,
        "steps": steps,
        "t0": run.t0,
        "timeline": timeline,
        "abort_at": None if abort_at is None else abort_at - run.t0,
        "views": ordered,
        "events": _event_rows(run),
        "event_total": len(run.events),
        "plan_text": run.plan_text,
        "notes": list(dict.fromkeys(run.notes)),
        "diagnostics": _diagnostic_rows(summary, run.t0),
        "bus": _bus_rows(summary.bus),
        "bus_messages": _bus_messages(summary.bus),
        "version": __version__,
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "plotly_js": plotly_js(),
    }
    return environment().get_template("report.html.j2").render(context)


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write ``report.html`` into the run directory (or ``out``); returns its path.

    A run directory a killed run left (a frame journal, or no ``summary.json`` beside its
    ``plan.yaml`` and ``frames/``) is recovered and evaluated first, as ``bench evaluate``
    would: its report then shows everything that reached the disk, verdict ``aborted``.
    """
    if needs_evaluation(Path(run_dir)):
        from ..evaluate import evaluate_path

        evaluate_path(Path(run_dir))  # recovers, judges and writes report.html
        if out is None:
            return Path(run_dir) / REPORT_NAME
    run = open_run(Path(run_dir))
    target = Path(out) if out is not None else run.path / REPORT_NAME
    text = build_report(run)
    write_page(target, text)
    return target


def needs_evaluation(run_dir: Path) -> bool:
    """A run directory whose run was killed: frames journalled but never closed, or no summary."""
    frames = run_dir / FRAMES_DIR
    if not frames.is_dir() or not (run_dir / PLAN_FILE).is_file():
        return False
    return bool(list_journals(frames)) or not (run_dir / SUMMARY_FILE).exists()


def write_page(target: Path, text: str) -> None:
    """Write atomically (never half a page where an archive expects one), errors in one line."""
    tmp = target.with_name(target.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise HarnessError(f"{target}: cannot write the page ({exc.strerror or exc})") from None


def _headline(summary: Summary) -> str:
    total = len(summary.checks)
    bad = len([c for c in summary.checks if c.verdict == "fail"])
    if summary.verdict == "aborted" and summary.aborted:
        return f"Aborted: {summary.aborted.reason}"
    if summary.verdict == "aborted":
        return "Aborted"
    if total == 0:
        return "No checks were judged"
    if summary.verdict == "fail":
        return f"{bad} of {total} checks failed"
    if summary.verdict == "marginal":
        return f"All {total} checks passed, some close to their limits"
    if summary.verdict == "pass":
        return f"All {total} checks passed"
    others = len([c for c in summary.checks if c.verdict == summary.verdict])
    return f"{others} of {total} checks {summary.verdict}"


def _abort_time(run: RunDir) -> float | None:
    aborted = run.summary.aborted
    if aborted and aborted.time is not None:
        return aborted.time
    for event in run.events:
        if event.kind == "abort":
            return event.time
    return None


def _facts(run: RunDir) -> list[tuple[str, list[tuple[str, str]]]]:
    """The run's identity as (label, [(text, title)]) rows; empty rows are left out."""
    s = run.summary
    start = run.run_start
    rows: list[tuple[str, list[tuple[str, str]]]] = []

    def add(label: str, *values: Any, title: str = "") -> None:
        texts = [(str(v), title) for v in values if v not in (None, "", [], {})]
        if texts:
            rows.append((label, texts))

    add("Plan", s.plan, s.plan_file)
    add("Site", s.site)
    add("DUT", *_pairs(s.dut))
    add("Bench", *_pairs(s.bench))
    interface = s.interface or start.get("interface")
    channel = s.channel or start.get("channel")
    bitrate = s.bus.get("bitrate") if isinstance(s.bus, dict) else None
    add("Interface", " · ".join(str(x) for x in (interface, channel, bitrate) if x))
    add("Mode", start.get("mode") or s.mode)
    seed = s.seed if s.seed is not None else start.get("seed")
    add("Seed", seed)
    software = s.software or start.get("software") or {}
    add("Software", *_pairs(software) if isinstance(software, dict) else [software])
    for dbc in run.dbc_files:
        digest = dbc.get("sha256", "")
        parts = [(dbc.get("file", "?"), "")]
        if dbc.get("version"):
            parts.append((f"version {dbc['version']}", ""))
        rows.append(("DBC", [*parts, (f"sha256 {digest[:16]}…", digest)]))
    inject = start.get("inject")
    if inject:
        add("Injected faults", *(inject if isinstance(inject, list) else [inject]))
    started = s.started_at or start.get("started_at")
    add("Started", started)
    add("Ended", s.ended_at)
    add("Duration", fmt_seconds(run.t_end - run.t0) if run.t_end > run.t0 else None)
    frames = run.frame_count
    recorded = run.recorded_frames
    frame_text = f"{frames:,}"
    if recorded is not None and recorded != frames:
        frame_text += f" (frames/ holds {recorded:,})"
    add("Frames", frame_text)
    for skipped in s.skipped:
        add("Skipped", skipped)
    if s.aborted:
        where = f" at {fmt_seconds(s.aborted.time - run.t0)}" if s.aborted.time else ""
        by = f" by check {s.aborted.check!r}" if s.aborted.check else ""
        add("Abort", f"{s.aborted.reason}{where}{by}")
    return rows


def _pairs(mapping: dict[str, Any]) -> list[str]:
    return [f"{k} {v}" for k, v in mapping.items()]


def _plan_entries(run: RunDir) -> dict[str, dict[str, Any]]:
    """Check name → its entry in the run's plan.yaml copy, for what a result does not carry:
    the message of a cycle_time/timeout check (its plot shows that message's frame gaps) and the
    condition of a reaches check (its target line). A plan that does not parse gives none."""
    if not run.plan_text:
        return {}
    try:
        plan = yaml.safe_load(run.plan_text)
    except yaml.YAMLError:
        return {}
    checks = plan.get("checks") if isinstance(plan, dict) else None
    return {
        entry["name"]: entry
        for entry in (checks if isinstance(checks, list) else [])
        if isinstance(entry, dict) and isinstance(entry.get("name"), str)
    }


def _plan_message(entry: dict[str, Any] | None) -> str | None:
    for key in MESSAGE_KINDS:
        if entry and isinstance(entry.get(key), str):
            return entry[key]
    return None


def _check_series(
    run: RunDir, check: CheckResult, entry: dict[str, Any] | None
) -> tuple[list[Series], list[str]]:
    """The series a check's plot shows, and the names the run has no data for."""
    names = list(dict.fromkeys(check.signals))
    if check.kind == "rate" and names:
        names = names[:1]  # the judged signal; its rate is what the limit bounds
    message = check.details.get("message") if isinstance(check.details, dict) else None
    if check.kind in MESSAGE_KINDS and not isinstance(message, str):
        message = _plan_message(entry)
    if check.kind in ("cycle_time", "timeout") and isinstance(message, str):
        names = [message]
    found, missing = [], []
    for name in names:
        series = _plotted(run, name, check)
        if series is None:
            missing.append(name)
        else:
            found.append(series)
    return found, missing


#: Rows read at a time for a plot: a longer table is decimated chunk by chunk as it is read
PLOT_CHUNK_ROWS = 1 << 19
#: Points kept per chunk of such a table (min and max of each bucket), before the plot's own
#: decimation: a spike survives both; a silence shorter than about 10 buckets is drawn as a line
CHUNK_POINTS = 4 * plots.MAX_POINTS


def _plotted(run: RunDir, name: str, check: CheckResult) -> Series | None:
    """What a check's plot draws for ``name``: the signal, its rate (rate checks) or, for a bare
    message name, its frame-to-frame gaps (cycle time, timeout), computed chunk by chunk with
    the samples the next chunk needs carried over (the last one; ``over`` seconds for a rate
    over a window). A table longer than one chunk is decimated chunk by chunk."""
    over: float | None = None
    if check.kind == "rate":
        limit = check.limit if isinstance(check.limit, dict) else {}
        over = plots._number(limit.get("over"))
    message = name.partition(".")[0]
    many = run.rows(message) > PLOT_CHUNK_ROWS
    chunks = run.chunks(name, PLOT_CHUNK_ROWS)
    if chunks is None:
        return None
    pieces: list[tuple[np.ndarray, np.ndarray]] = []
    tail: Series | None = None
    shown: Series | None = None
    for chunk in chunks:
        joined = chunk if tail is None else _joined(tail, chunk)
        if "." not in name:  # a bare message name stands for its frame-to-frame gaps
            result = plots.gap_series(name, joined.t)
        elif check.kind == "rate":
            result = plots.rate_series(joined, over)
        else:
            result = joined
        if result is not None:
            keep = result.t > tail.t[-1] if tail is not None and tail.t.size else None
            t, y = (result.t[keep], result.y[keep]) if keep is not None else (result.t, result.y)
            pieces.append(plots.decimate(t, y, CHUNK_POINTS) if many else (t, y))
            shown = result
        tail = _tail(joined, over if check.kind == "rate" else None)
    if shown is None:
        return None
    if len(pieces) == 1:
        t, y = pieces[0]
    else:
        t = np.concatenate([p[0] for p in pieces])
        y = np.concatenate([p[1] for p in pieces])
    return Series(shown.name, t, y, shown.unit, shown.choices)


def _joined(tail: Series, chunk: Series) -> Series:
    return Series(
        chunk.name,
        np.concatenate((tail.t, chunk.t)),
        np.concatenate((tail.y, chunk.y)),
        chunk.unit,
        chunk.choices,
    )


def _tail(series: Series, over: float | None) -> Series:
    """What the next chunk needs of this one: its last finite sample, or with ``over`` the
    samples of its last ``over`` seconds and the one before them."""
    finite = np.flatnonzero(np.isfinite(series.t) & np.isfinite(series.y))
    if not finite.size:
        return Series(series.name, series.t[:0], series.y[:0], series.unit, series.choices)
    if over:
        t = series.t[finite]
        first = max(int(np.searchsorted(t, t[-1] - over, "left")) - 1, 0)
        rows = finite[first:]
    else:
        rows = finite[-1:]
    return Series(series.name, series.t[rows], series.y[rows], series.unit, series.choices)


def _check_view(
    run: RunDir,
    index: int,
    check: CheckResult,
    have_frames: bool,
    abort_at: float | None,
    entry: dict[str, Any] | None,
    points: int = plots.MAX_POINTS,
) -> CheckView:
    windows = [(a, b) for a, b in check.evidence]
    total = check.details.get("evidence_total") if isinstance(check.details, dict) else None
    count = total if isinstance(total, int) and total > len(windows) else len(windows)
    first = ""
    if windows:
        a, b = windows[0]
        first = fmt_window(a - run.t0, b - run.t0)
    scale, unit = display_scale(check.unit, check.observed, check.limit)
    label = _choice_label(run, check)
    view = CheckView(
        index=index,
        check=check,
        anchor=f"check-{index + 1}",
        observed=fmt_value(check.observed, unit, scale) + (f" ({label})" if label else ""),
        limit=fmt_limit(check.limit, unit, scale),
        margin=f"{fmt_number(check.margin * scale)} {unit}".strip()
        if check.margin is not None
        else "—",
        margin_sort=check.margin if check.margin is not None else math.inf,
        evidence=first or "—",
        evidence_count=count,
    )
    if not have_frames:
        return view
    if check.kind in WINDOW_ONLY_KINDS:
        # an alive counter or CRC byte over time is noise at any zoom; where errors happened is
        # what matters, so only failing ones get a plot: their evidence windows against the steps
        if check.evidence and check.verdict != "pass":
            figure = plots.check_figure(check, [], run.steps, run.t0, run.t_end, abort_at)
            view.figure = plots.figure_json(figure)
        else:
            view.note = f"No {check.kind} errors: nothing to plot."
        return view
    series, view.missing = _check_series(run, check, entry)
    if series:
        figure = plots.check_figure(
            check,
            series,
            run.steps,
            run.t0,
            run.t_end,
            abort_at,
            _marks(check, run, entry, series),
            max_points=points,
        )
        view.figure = plots.figure_json(figure)
    return view


def _choice_label(run: RunDir, check: CheckResult) -> str:
    """The DBC's name for an observed code (FaultLevel 3 → SHUTDOWN), when it has one."""
    value = check.observed
    if check.kind not in ("range", "statistic") or not check.signals:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        return ""
    if run.dbcs is None:
        return ""
    try:
        choices = run.dbcs.signal(check.signals[0]).signal.choices or {}
    except KeyError:
        return ""
    return str(choices.get(int(value), ""))


def _marks(
    check: CheckResult, run: RunDir, entry: dict[str, Any] | None, series: Sequence[Series]
) -> plots.Marks:
    """Limits and reference lines, where they mean something for the plotted samples."""
    limit = check.limit if isinstance(check.limit, dict) else {}
    if check.kind == "range":
        return plots.Marks(limits=plots.limits_of(limit))
    if check.kind == "rate":  # the plot shows the rate: its limit bounds every plotted slope
        bounds = {RATE_KEYS.get(k, k): v for k, v in limit.items()}
        return plots.Marks(limits=plots.limits_of(bounds))
    if check.kind == "cycle_time":
        scale = 1000.0 if check.unit == "s" else 1.0  # gaps are plotted in ms
        return plots.Marks(limits=plots.limits_of(limit, scale))
    if check.kind == "timeout":
        gap = plots.limits_of({"max": limit.get("max_gap")}, 1000.0 if check.unit == "s" else 1.0)
        return plots.Marks(limits=gap)
    if check.kind == "statistic":
        # a statistic's limits bound one number, not every sample: lines, not failing zones
        name = str(limit.get("statistic", "statistic"))
        lines = []
        value = scalar_observed(check)
        if value is not None:
            lines.append((value, f"{name} {fmt_number(value)}", plots.TRACE_COLORS[0]))
        for key in ("min", "max"):
            bound = plots._number(limit.get(key))
            if bound is not None:
                lines.append((bound, f"{name} {key} {fmt_number(bound)}", "#b91c1c"))
        return plots.Marks(hlines=tuple(lines))
    if check.kind == "reaches":
        anchor = check.details.get("anchor") if isinstance(check.details, dict) else None
        within = plots._number(limit.get("within"))
        if isinstance(anchor, int | float):
            after = str(limit.get("after") or "start")
            moments = [(float(anchor), f"after {after}")]
            if within is not None:
                # in the words of the limit column (the check's own time unit), not re-unitised
                scale, unit = display_scale(check.unit, check.observed, check.limit)
                deadline = f"deadline +{fmt_number(within * scale)} {unit}".rstrip()
                moments.append((float(anchor) + within, deadline))
            return plots.Marks(vlines=tuple(moments), hlines=_targets(entry, series, run))
        return plots.Marks(hlines=_targets(entry, series, run))
    return plots.Marks()


def _targets(
    entry: dict[str, Any] | None, series: Sequence[Series], run: RunDir
) -> tuple[tuple[float, str, str], ...]:
    """A reaches check's target lines: each comparison of a plotted signal with a number (or
    a choice name) in its condition, e.g. ``target ≥ -15`` for ``reaches: ">= -15"``."""
    from ..plan.conditions import (
        Compare,
        ConditionError,
        Label,
        SignalName,
        parse_condition,
    )

    if not entry or not isinstance(entry.get("reaches"), str | int | float):
        return ()
    subject = entry.get("signal") if isinstance(entry.get("signal"), str) else None
    try:
        condition = parse_condition(str(entry["reaches"]), subject=subject)
        if run.dbcs is not None:
            condition.bind(run.dbcs)
    except (ConditionError, KeyError):
        return ()  # the plan was judged as it was; a line is only a help to read the plot
    plotted = {s.name for s in series}
    flipped = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
    symbols = {"<=": "≤", ">=": "≥"}
    lines = []
    for node in condition.root.walk():
        if not isinstance(node, Compare):
            continue
        for signal, other, op in ((node.left, node.right, node.op),
                                  (node.right, node.left, flipped[node.op])):  # fmt: skip
            if not (isinstance(signal, SignalName) and signal.name in plotted):
                continue
            if not any(isinstance(n, SignalName | Label) for n in other.walk()):
                value = float(other.evaluate({}))  # a constant: 15, -15, 2 * 7.5
                if not math.isfinite(value):
                    continue
                text = fmt_number(value)
            elif isinstance(other, Label) and other.code is not None:
                value, text = float(other.code), f'"{other.text}"'
            else:
                continue
            label = f"target {symbols.get(op, op)} {text}"
            lines.append((value, label, "#1e3a8a"))
    return tuple(lines)


@dataclass
class DiagnosticRow:
    """One UDS exchange in the report's diagnostics table."""

    time: str
    step: str
    ecu: str
    service: str
    outcome: str
    request: str
    response: str
    decoded: list[str]  # DTCs with status bits, DID values with units, the NRC or the problem
    seconds: float  # for sorting
    badge: str  # the verdict colour the outcome is shown in


_OUTCOME_BADGE = {
    "positive": "pass",
    "negative": "fail",
    "no_response": "error",
    "invalid": "error",
    "suppressed": "inconclusive",
    "unsolicited": "inconclusive",
}


def _diagnostic_rows(summary: Summary, t0: float) -> list[DiagnosticRow]:
    rows = []
    for exchange in summary.diagnostics:
        t = exchange.get("request_time")
        step = ""
        if isinstance(t, int | float):
            for s in summary.steps:
                if s.start <= t and (s.end is None or t <= s.end):
                    step = s.name
        lines = plots.exchange_lines(exchange)[2:]  # head and request are columns of their own
        if exchange.get("response") is not None:
            lines = lines[1:]
        rows.append(
            DiagnosticRow(
                time=fmt_seconds(t - t0) if isinstance(t, int | float) else "—",
                step=step,
                ecu=str(exchange.get("ecu", "")),
                service=str(exchange.get("service", "")),
                outcome=str(exchange.get("outcome", "")),
                request=str(exchange.get("request") or "—"),
                response=str(exchange.get("response") or "—"),
                decoded=lines,
                seconds=float(t - t0) if isinstance(t, int | float) else math.inf,
                badge=_OUTCOME_BADGE.get(str(exchange.get("outcome")), "inconclusive"),
            )
        )
    return rows


def _bus_rows(bus: dict[str, Any]) -> list[tuple[str, str]]:
    """The summary's bus statistics, nested per-message counts left to their own table."""
    rows = []
    for key, value in bus.items():
        if key == "messages" and isinstance(value, dict):
            continue
        if key in ("mixed_messages", "selection"):
            rows.append((key, _stream_text(key, value)))
            continue
        if isinstance(value, dict):
            text = ", ".join(f"{k}: {v}" for k, v in value.items()) or "none"
        elif isinstance(value, int) and not isinstance(value, bool):
            text = f"{value:,}"
        else:
            text = str(value)
        rows.append((key, text))
    return rows


def _stream_text(key: str, value: Any) -> str:
    """``bus.mixed_messages`` / ``bus.selection`` (bench.channels) as one line a reviewer reads."""
    if key == "selection" and isinstance(value, dict):
        channels = ", ".join(map(str, value.get("channels") or [])) or "every channel"
        direction = value.get("direction") or "rx and tx"
        missing = value.get("channels_without_frames") or []
        text = f"channel {channels}, {direction} ({value.get('origin')}): "
        text += f"{fmt_value(value.get('frames_left_out'))} frames left out"
        return text + (f"; no frame on {', '.join(map(str, missing))}" if missing else "")
    if isinstance(value, dict) and value:
        parts = []
        for name, streams in value.items():
            each = ", ".join(
                f"channel {s.get('channel') or '(none)'} {s.get('direction')}: {s.get('frames')}"
                for s in streams
                if isinstance(s, dict)
            )
            parts.append(f"{name} ({each})")
        return "; ".join(parts) + " — frame-timing checks of these are inconclusive"
    return "none"


def _bus_messages(bus: dict[str, Any]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Per-message frame counts (``bus.messages``) as (columns, rows)."""
    messages = bus.get("messages")
    if not isinstance(messages, dict) or not messages:
        return [], []
    columns: list[str] = []
    for counts in messages.values():
        if isinstance(counts, dict):
            columns += [k for k in counts if k not in columns]
    rows = []
    for name, counts in messages.items():
        counts = counts if isinstance(counts, dict) else {"frames": counts}
        rows.append((str(name), [fmt_value(counts.get(c)) for c in columns]))
    return columns, rows


def _event_rows(run: RunDir) -> list[dict[str, str]]:
    rows = []
    for event in run.events[:MAX_EVENT_ROWS]:
        detail = (
            json.dumps(event.detail, ensure_ascii=False, sort_keys=True) if event.detail else ""
        )
        rows.append(
            {
                "time": f"{event.time - run.t0:.3f}" if math.isfinite(event.time) else "—",
                "kind": event.kind,
                "name": event.name,
                "detail": detail if len(detail) < 300 else detail[:297] + "…",
            }
        )
    return rows
