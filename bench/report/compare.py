"""``bench compare``: several runs side by side in one self-contained page.

Heihe against Turpan, or tonight against last night: a checks × runs verdict matrix, the change of
each check's observed value and margin against the first run (the baseline), and chosen signals of
every run overlaid on one time axis. Runs started at different times line up at the start of one
step (``--align STEP``; default the first step, else the first frame), so "10 s into the drive"
is the same x in every run.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import InputError
from ..summary import SEVERITY, CheckResult
from . import plots
from .html import (
    display_scale,
    environment,
    fmt_number,
    plotly_js,
    scalar_observed,
    write_page,
)
from .source import RunDir, open_run

MAX_DEFAULT_SIGNALS = 4


@dataclass
class Cell:
    verdict: str | None
    observed: str = ""


@dataclass
class MatrixRow:
    name: str
    cells: list[Cell]
    worst: int  # severity of the worst verdict across runs, to put regressions first
    changed: bool  # not the same verdict in every run that has the check


@dataclass
class DeltaRow:
    name: str
    unit: str
    values: list[str]
    deltas: list[str]  # against the baseline (first run); "" for the baseline itself
    margin_deltas: list[str]
    closer: list[bool]  # the margin shrank: the run is nearer its limit than the baseline


@dataclass
class Overlay:
    signal: str
    figure: str | None
    missing: list[str] = field(default_factory=list)  # runs without data for this signal


def build_compare(
    run_dirs: Sequence[Path], signals: Sequence[str] = (), align: str | None = None
) -> str:
    """The comparison page of ``run_dirs`` as one HTML string."""
    if not run_dirs:
        raise InputError("compare needs at least one run directory")
    runs = [open_run(Path(p)) for p in run_dirs]
    labels = _labels(runs)
    origins = [_origin(run, align) for run in runs]
    chosen = list(signals) or _default_signals(runs)
    for name in chosen:
        message, dot, signal = name.partition(".")
        if not (dot and message and signal):
            raise InputError(f"--signal {name!r}: expected Message.Signal")
    overlays = [_overlay(name, runs, labels, origins) for name in chosen]
    context = {
        "title": f"Compare {len(runs)} runs",
        "runs": [_run_header(run, label) for run, label in zip(runs, labels, strict=True)],
        "matrix": _matrix(runs),
        "deltas": _deltas(runs),
        "overlays": overlays,
        "align": align or "the first step",
        "notes": [
            f"{label}: {n}" for run, label in zip(runs, labels, strict=True) for n in run.notes
        ],
        "version": __version__,
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "plotly_js": plotly_js(),
    }
    return environment().get_template("compare.html.j2").render(context)


def write_compare(
    run_dirs: Sequence[Path],
    out: Path,
    signals: Sequence[str] = (),
    align: str | None = None,
) -> Path:
    out = Path(out)
    write_page(out, build_compare(run_dirs, signals, align))
    return out


def _labels(runs: Sequence[RunDir]) -> list[str]:
    """Run directory names (they carry date and plan), made unique if two are alike."""
    labels: list[str] = []
    for run in runs:
        label = run.path.resolve().name
        if label in labels:
            label = f"{label} ({len(labels) + 1})"
        labels.append(label)
    return labels


def _origin(run: RunDir, align: str | None) -> float:
    """The time of the alignment point in this run's log."""
    steps = run.steps
    if align is None:
        return steps[0].start if steps else run.t0
    for step in steps:
        if step.name == align:
            return step.start
    names = ", ".join(s.name for s in steps) or "none"
    raise InputError(f"{run.path}: no step {align!r} to align on (steps: {names})")


def _run_header(run: RunDir, label: str) -> dict[str, Any]:
    s = run.summary
    return {
        "label": label,
        "plan": s.plan,
        "site": s.site or "",
        "verdict": s.verdict,
        "started": s.started_at or run.run_start.get("started_at") or "",
        "frames": run.frame_count,
        "duration": run.t_end - run.t0,
    }


def _by_name(run: RunDir) -> dict[str, CheckResult]:
    return {c.name: c for c in run.summary.checks}


def _matrix(runs: Sequence[RunDir]) -> list[MatrixRow]:
    names: list[str] = []
    for run in runs:
        names += [c.name for c in run.summary.checks if c.name not in names]
    lookups = [_by_name(run) for run in runs]
    rows = []
    for name in names:
        cells = []
        for lookup in lookups:
            check = lookup.get(name)
            if check is None:
                cells.append(Cell(None))
                continue
            value = scalar_observed(check)
            scale, unit = display_scale(check.unit, value)
            text = "" if value is None else f"{fmt_number(value * scale)} {unit}".strip()
            cells.append(Cell(check.verdict, text))
        present = {c.verdict for c in cells if c.verdict is not None}
        worst = max((SEVERITY.get(v, 0) for v in present), default=0)
        rows.append(MatrixRow(name, cells, worst, len(present) > 1))
    # regressions and failures first; the plans' order otherwise
    return sorted(rows, key=lambda r: (not r.changed, -r.worst))


def _deltas(runs: Sequence[RunDir]) -> list[DeltaRow]:
    """Observed values and margins of same-named checks against the first run."""
    if len(runs) < 2:
        return []
    lookups = [_by_name(run) for run in runs]
    rows = []
    for name, base in lookups[0].items():
        base_value = scalar_observed(base)
        if base_value is None:
            continue
        values, deltas, margin_deltas, closer = [], [], [], []
        seen = 0
        scale, unit = display_scale(base.unit, base_value)
        for i, lookup in enumerate(lookups):
            check = lookup.get(name)
            value = scalar_observed(check) if check else None
            values.append(fmt_number(None if value is None else value * scale))
            if i == 0 or value is None:
                deltas.append("")
                margin_deltas.append("")
                closer.append(False)
                continue
            seen += 1
            deltas.append(_signed((value - base_value) * scale))
            if check is not None and check.margin is not None and base.margin is not None:
                change = check.margin - base.margin
                margin_deltas.append(_signed(change * scale))
                closer.append(change < 0)
            else:
                margin_deltas.append("")
                closer.append(False)
        if seen:
            rows.append(DeltaRow(name, unit, values, deltas, margin_deltas, closer))
    return rows


def _signed(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return ("+" if value > 0 else "") + fmt_number(value)


def _default_signals(runs: Sequence[RunDir]) -> list[str]:
    """Without --signal: the signals of checks that did not pass somewhere, else the first ones."""
    bad: list[str] = []
    any_signal: list[str] = []
    for run in runs:
        for check in run.summary.checks:
            first = next((s for s in check.signals if "." in s), None)
            if first is None:
                continue
            if first not in any_signal:
                any_signal.append(first)
            if check.verdict != "pass" and first not in bad:
                bad.append(first)
    return (bad or any_signal)[:MAX_DEFAULT_SIGNALS]


def _overlay(
    name: str, runs: Sequence[RunDir], labels: Sequence[str], origins: Sequence[float]
) -> Overlay:
    series = [run.signal(name) for run in runs]
    missing = [label for label, s in zip(labels, series, strict=True) if s is None]
    if len(missing) == len(runs):
        return Overlay(name, None, missing)
    figure = plots.overlay_figure(
        name, [(label, s, t0) for label, s, t0 in zip(labels, series, origins, strict=True)]
    )
    return Overlay(name, plots.figure_json(figure), missing)
