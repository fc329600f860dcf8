"""``range``: a signal stays within ``min``/``max``; ``marginal_min``/``marginal_max`` mark a pass
that is close to failing.

A violation is a run of consecutive judged samples outside the limits, lasting from its first
sample until the next sample of the signal (the value holds until then). With ``for:`` only runs
lasting at least that long count — for failures and for marginal excursions alike. A received NaN
is outside every limit (NaN never satisfies a comparison); absent values (multiplexed signals in
other rows) are not samples at all.
"""

from __future__ import annotations

import numpy as np

from ..plan.checks import RangeCheck
from ..summary import CheckResult
from . import fmt, fmt_s, make_result, register
from .context import EvalContext, judged_samples, slack, violation_intervals


def _outside(values: np.ndarray, low: float | None, high: float | None) -> np.ndarray:
    outside = np.isnan(values)
    with np.errstate(invalid="ignore"):
        if low is not None:
            outside |= values < low - slack(low)
        if high is not None:
            outside |= values > high + slack(high)
    return outside


def _margin(vmin: float, vmax: float, low: float | None, high: float | None) -> float | None:
    distances = []
    if low is not None:
        distances.append(vmin - low)
    if high is not None:
        distances.append(high - vmax)
    return min(distances) if distances else None


@register("range")
def evaluate(spec: RangeCheck, ctx: EvalContext) -> CheckResult:
    s = judged_samples(spec, ctx)
    unit = ctx.unit(spec.signal)
    values = s.values[s.judged]
    finite = values[~np.isnan(values)]
    vmin = float(finite.min()) if finite.size else float("nan")
    vmax = float(finite.max()) if finite.size else float("nan")
    fail_mask = s.judged & _outside(s.values, spec.min, spec.max)
    band_low = spec.marginal_min if spec.marginal_min is not None else spec.min
    band_high = spec.marginal_max if spec.marginal_max is not None else spec.max
    band_mask = s.judged & _outside(s.values, band_low, band_high)
    failures = violation_intervals(s.times, fail_mask, s.hold_end, spec.for_)
    marginals = violation_intervals(s.times, band_mask, s.hold_end, spec.for_)

    if spec.min is not None and spec.max is not None:
        observed: object = {"min": vmin, "max": vmax}
    else:
        observed = vmin if spec.max is None else vmax
    details = {
        "samples": s.count,
        "violations": len(failures),
        "violation_s": float(np.sum(failures[:, 1] - failures[:, 0])) if len(failures) else 0.0,
        "nan_samples": int(np.count_nonzero(np.isnan(values))),
    }
    if spec.for_:
        ignored = len(violation_intervals(s.times, fail_mask, s.hold_end)) - len(failures)
        details["shorter_than_for"] = int(ignored)

    limits = _limits_text(spec, unit)
    seen = _seen_text(vmin, vmax, spec, unit, details["nan_samples"])
    if len(failures):
        verdict, evidence = "fail", failures
        longest = float(np.max(failures[:, 1] - failures[:, 0]))
        message = f"{seen} outside {limits}: {len(failures)} violation(s), longest {fmt_s(longest)}"
    elif len(marginals):
        verdict, evidence = "marginal", marginals
        message = f"{seen} inside {limits} but outside the marginal band"
    else:
        verdict, evidence = "pass", np.array([[s.times[s.judged][0], s.hold_end[s.judged][-1]]])
        message = f"{seen} within {limits} ({s.count} samples)"
    if spec.for_ and details.get("shorter_than_for"):
        message += f"; {details['shorter_than_for']} shorter than for {fmt_s(spec.for_)} ignored"
    return make_result(
        spec,
        verdict,  # type: ignore[arg-type]
        observed=observed,
        limit={**spec.limit_dict(), **({"for": spec.for_} if spec.for_ else {})},
        margin=_margin(vmin, vmax, spec.min, spec.max) if finite.size else None,
        unit=unit,
        evidence=evidence,
        message=message,
        signals=[spec.signal, *(spec.when.signals if spec.when else [])],
        details=details,
    )


def _limits_text(spec: RangeCheck, unit: str) -> str:
    parts = []
    if spec.min is not None:
        parts.append(f"min {fmt(spec.min, unit)}")
    if spec.max is not None:
        parts.append(f"max {fmt(spec.max, unit)}")
    band = []
    if spec.marginal_min is not None:
        band.append(f"≥ {fmt(spec.marginal_min, unit)}")
    if spec.marginal_max is not None:
        band.append(f"≤ {fmt(spec.marginal_max, unit)}")
    text = "limits " + ", ".join(parts)
    return text + (f" (marginal band {' and '.join(band)})" if band else "")


def _seen_text(vmin: float, vmax: float, spec: RangeCheck, unit: str, nans: int) -> str:
    if np.isnan(vmin):
        seen = "only NaN values"
    elif spec.min is not None and spec.max is not None:
        seen = f"observed min {fmt(vmin, unit)}, max {fmt(vmax, unit)}"
    elif spec.max is not None:
        seen = f"observed max {fmt(vmax, unit)}"
    else:
        seen = f"observed min {fmt(vmin, unit)}"
    return seen + (f" and {nans} NaN sample(s)" if nans and not np.isnan(vmin) else "")
