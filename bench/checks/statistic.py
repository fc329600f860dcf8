"""``statistic``: mean/min/max/median/std/percentile of a signal's judged samples within limits.

Samples are weighted equally (a cyclic signal's samples are evenly spaced, so this is the time
average too). Received NaN values are left out and counted. ``std`` is the population standard
deviation; ``percentile`` interpolates linearly (numpy's default).
"""

from __future__ import annotations

import numpy as np

from ..plan.checks import StatisticCheck
from ..summary import CheckResult
from . import fmt, make_result, register
from .context import EvalContext, NotJudgeable, judged_samples, slack

_FUNCTIONS = {
    "mean": np.mean,
    "min": np.min,
    "max": np.max,
    "median": np.median,
    "std": np.std,
}


@register("statistic")
def evaluate(spec: StatisticCheck, ctx: EvalContext) -> CheckResult:
    s = judged_samples(spec, ctx)
    unit = ctx.unit(spec.signal)
    values = s.values[s.judged]
    nans = int(np.count_nonzero(np.isnan(values)))
    values = values[~np.isnan(values)]
    if values.size == 0:
        raise NotJudgeable(f"only NaN values of {spec.signal} judged")
    if spec.statistic == "percentile":
        value = float(np.percentile(values, spec.percentile))
        label = f"p{spec.percentile:g}"
    else:
        value = float(_FUNCTIONS[spec.statistic](values))
        label = spec.statistic
    outside_limits = _below(value, spec.min) or _above(value, spec.max)
    outside_band = _below(value, spec.marginal_min) or _above(value, spec.marginal_max)
    verdict = "fail" if outside_limits else "marginal" if outside_band else "pass"
    distances = []
    if spec.min is not None:
        distances.append(value - spec.min)
    if spec.max is not None:
        distances.append(spec.max - value)
    bounds = ", ".join(f"{k} {fmt(v, unit)}" for k, v in spec.limit_dict().items())
    relation = {"fail": "outside", "marginal": "inside but near", "pass": "within"}[verdict]
    judged_times = s.times[s.judged]
    return make_result(
        spec,
        verdict,  # type: ignore[arg-type]
        observed=value,
        limit={"statistic": label, **spec.limit_dict()},
        margin=min(distances),
        unit=unit,
        evidence=[[judged_times[0], s.hold_end[s.judged][-1]]],
        message=f"{label} {fmt(value, unit)} over {values.size} samples {relation} {bounds}",
        signals=[spec.signal, *(spec.when.signals if spec.when else [])],
        details={"samples": int(values.size), "nan_samples": nans},
    )


def _below(value: float, limit: float | None) -> bool:
    return limit is not None and value < limit - slack(limit)


def _above(value: float, limit: float | None) -> bool:
    return limit is not None and value > limit + slack(limit)
