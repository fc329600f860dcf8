"""``statistic``: mean/min/max/median/std/percentile of a signal's judged samples within limits.

Samples are weighted equally (a cyclic signal's samples are evenly spaced, so this is the time
average too). Received NaN values are left out and counted. ``std`` is the population standard
deviation; ``percentile`` interpolates linearly (numpy's default).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from ..summary import CheckResult
from .context import EvalContext, NotJudgeable, judged_samples
from .registry import CheckKind, register
from .results import fmt, make_result
from .spec import LimitFields, SignalCheckSpec

_FUNCTIONS = {
    "mean": np.mean,
    "min": np.min,
    "max": np.max,
    "median": np.median,
    "std": np.std,
}


class StatisticCheck(SignalCheckSpec, LimitFields):
    """A statistic of ``signal`` over the judged samples lies within limits."""

    kind: ClassVar[str] = "statistic"
    statistic: Literal["mean", "min", "max", "median", "std", "percentile"]
    percentile: float | None = Field(None, ge=0, le=100)

    @model_validator(mode="after")
    def _percentile_given(self) -> StatisticCheck:
        if (self.statistic == "percentile") != (self.percentile is not None):
            raise ValueError("percentile (0-100) goes with statistic: percentile, and only there")
        if self.min is None and self.max is None:
            raise ValueError("a statistic check needs min and/or max")
        return self


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
    limits = spec.limits
    verdict = (
        "fail" if limits.outside(value) else "marginal" if limits.outside_band(value) else "pass"
    )
    bounds = limits.format(unit)
    relation = {"fail": "outside", "marginal": "inside but near", "pass": "within"}[verdict]
    judged_times = s.times[s.judged]
    return make_result(
        spec,
        verdict,  # type: ignore[arg-type]
        observed=value,
        limit={"statistic": label, **limits.as_dict()},
        margin=limits.margin(value),
        unit=unit,
        evidence=[[judged_times[0], s.hold_end[s.judged][-1]]],
        message=f"{label} {fmt(value, unit)} over {values.size} samples {relation} {bounds}",
        signals=[spec.signal, *(spec.when.signals if spec.when else [])],
        details={"samples": int(values.size), "nan_samples": nans},
        judged=(value, limits),
    )


KIND = register(CheckKind("statistic", StatisticCheck, evaluate, key="statistic"))
