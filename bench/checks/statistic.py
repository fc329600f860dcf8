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
from .context import EvalContext, NotJudgeable
from .registry import CheckKind, register
from .results import fmt, make_result
from .spec import LimitFields, SignalCheckSpec
from .streaming import JudgedStream, LastJudged, Spill, one_batch

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


class StatisticStream:
    """The check batch by batch (:mod:`bench.checks.streaming`): ``min``/``max`` carry the
    extreme only; the other statistics keep the judged values (8 bytes each, in log order, in a
    temporary file: :class:`~bench.checks.streaming.Spill`) and compute them with numpy at the
    end, so they are exactly the whole log's."""

    def __init__(self, spec: StatisticCheck, ctx: EvalContext) -> None:
        self.spec = spec
        self.samples = JudgedStream(spec, ctx)
        self.extreme = spec.statistic in ("min", "max")
        self.values: list[np.ndarray] = []  # min/max: the extreme so far
        self.kept = Spill(np.float64)  # the other statistics: every judged value
        self.count = self.nans = 0
        self.first: float | None = None
        self.last = LastJudged(self.samples.windows)

    def feed(self, ctx: EvalContext) -> None:
        times, values, judged = self.samples.batch(ctx)
        self.last.add(times, judged)
        values = values[judged]
        if not values.size:
            return
        if self.first is None:
            self.first = float(times[judged][0])
        nan = np.isnan(values)
        self.nans += int(np.count_nonzero(nan))
        values = values[~nan]
        self.count += int(values.size)
        if not values.size:
            return
        if self.extreme:  # keep one value: the extreme so far
            values = np.array([_FUNCTIONS[self.spec.statistic](values)])
            if self.values:
                values = np.array(
                    [_FUNCTIONS[self.spec.statistic](np.concatenate((self.values[0], values)))]
                )
            self.values = [values]
        else:
            self.kept.add(values)

    def finish(self, ctx: EvalContext) -> CheckResult:
        spec = self.spec
        self.samples.check()
        unit = ctx.unit(spec.signal)
        if not self.count:
            raise NotJudgeable(f"only NaN values of {spec.signal} judged")
        values = self.values[0] if self.extreme else self.kept.read()[0]
        if spec.statistic == "percentile":
            value = float(np.percentile(values, spec.percentile))
            label = f"p{spec.percentile:g}"
        else:
            value = float(_FUNCTIONS[spec.statistic](values))
            label = spec.statistic
        limits = spec.limits
        verdict = (
            "fail"
            if limits.outside(value)
            else "marginal"
            if limits.outside_band(value)
            else "pass"
        )
        bounds = limits.format(unit)
        relation = {"fail": "outside", "marginal": "inside but near", "pass": "within"}[verdict]
        return make_result(
            spec,
            verdict,  # type: ignore[arg-type]
            observed=value,
            limit={"statistic": label, **limits.as_dict()},
            margin=limits.margin(value),
            unit=unit,
            evidence=[[self.first, self.last.hold_end(ctx.log_end)]],
            message=f"{label} {fmt(value, unit)} over {self.count} samples {relation} {bounds}",
            signals=[spec.signal, *(spec.when.signals if spec.when else [])],
            details={"samples": self.count, "nan_samples": self.nans},
            judged=(value, limits),
        )


evaluate = one_batch(StatisticStream)


KIND = register(
    CheckKind("statistic", StatisticCheck, evaluate, key="statistic", stream=StatisticStream)
)
