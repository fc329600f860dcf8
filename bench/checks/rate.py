"""``rate``: the absolute rate of change of a signal stays below ``max_rate`` (units per second).

Sample to sample by default: ``|v[i] - v[i-1]| / (t[i] - t[i-1])`` for consecutive samples that are
both judged (``when:``/``during:``) and in the same ``during:`` window, pairs with equal timestamps
skipped. With ``over:`` the slope
is the difference across that window, ``|v(t) - v(t - over)| / over``, with ``v(t - over)`` as-of
joined — smoothing out quantisation steps that would look steep sample to sample; both ends must be
judged samples in one window. A slope involving a NaN sample is not judged. The observed value is
the steepest slope; fail above ``max_rate``, marginal above ``marginal_max_rate``. Evidence: the
windows whose rate exceeds the limit.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field, model_validator

from ..summary import CheckResult
from .context import EvalContext, NotJudgeable, judged_samples
from .limits import Limits
from .registry import CheckKind, register
from .results import fmt, make_result
from .spec import Duration, SignalCheckSpec


class RateCheck(SignalCheckSpec):
    """The rate of change of ``signal`` stays below ``max_rate`` (units per second, absolute)."""

    kind: ClassVar[str] = "rate"
    max_rate: float = Field(gt=0)
    marginal_max_rate: float | None = Field(None, gt=0)
    over: Duration | None = Field(
        None, description="Slope over this window (default: sample to sample)."
    )

    @model_validator(mode="after")
    def _marginal_below(self) -> RateCheck:
        if self.marginal_max_rate is not None and self.marginal_max_rate > self.max_rate:
            raise ValueError(
                f"marginal_max_rate ({self.marginal_max_rate:g}) is above max_rate "
                f"({self.max_rate:g})"
            )
        return self

    @property
    def limits(self) -> Limits:
        return Limits(max=self.max_rate, marginal_max=self.marginal_max_rate)


def evaluate(spec: RateCheck, ctx: EvalContext) -> CheckResult:
    s = judged_samples(spec, ctx)
    unit = ctx.unit(spec.signal)
    if spec.over:
        ends = np.flatnonzero(s.judged & (s.times - spec.over >= s.times[0]))
        begins = np.searchsorted(s.times, s.times[ends] - spec.over, side="right") - 1
        keep = s.judged[begins]
        if s.windows is not None:
            keep &= s.windows.index(s.times[begins]) == s.windows.index(s.times[ends])
        begins, ends = begins[keep], ends[keep]
        ends_t = s.times[ends]
        starts_t = ends_t - spec.over
        rates = np.abs(s.values[ends] - s.values[begins]) / spec.over
    else:
        if s.judged.all() and s.windows is None:  # the common case: slices, no index arrays
            starts_t, ends_t = s.times[:-1], s.times[1:]
            v0, v1 = s.values[:-1], s.values[1:]
        else:
            pairs = s.judged[1:] & s.judged[:-1]
            if s.windows is not None:  # never across the gap between two steps
                index = s.windows.index(s.times)
                pairs &= index[1:] == index[:-1]
            ends = np.flatnonzero(pairs) + 1
            starts_t, ends_t = s.times[ends - 1], s.times[ends]
            v0, v1 = s.values[ends - 1], s.values[ends]
        dt = ends_t - starts_t
        with np.errstate(divide="ignore", invalid="ignore"):
            rates = np.abs(v1 - v0) / dt
        valid = dt > 0  # equal timestamps give no slope
        if not valid.all():
            rates, starts_t, ends_t = rates[valid], starts_t[valid], ends_t[valid]
    finite = ~np.isnan(rates)
    if not finite.all():
        rates, starts_t, ends_t = rates[finite], starts_t[finite], ends_t[finite]
    if rates.size == 0:
        raise NotJudgeable(f"fewer than two judged samples of {spec.signal}: no rate to judge")
    peak = float(rates.max())
    rate_unit = f"{unit}/s" if unit else "1/s"
    limits = spec.limits
    over = limits.outside(rates)
    if over.any():
        verdict, mask = "fail", over
    elif limits.outside_band(peak):
        verdict, mask = "marginal", limits.outside_band(rates)
    else:
        verdict, mask = "pass", None
    evidence = (
        np.column_stack((starts_t[mask], ends_t[mask]))
        if mask is not None
        else [[starts_t[0], ends_t[-1]]]
    )
    limit = {"max_rate": spec.max_rate}
    if spec.marginal_max_rate is not None:
        limit["marginal_max_rate"] = spec.marginal_max_rate
    if spec.over:
        limit["over"] = spec.over
    relation = {"fail": "above", "marginal": "close to", "pass": "within"}[verdict]
    return make_result(
        spec,
        verdict,  # type: ignore[arg-type]
        observed=peak,
        limit=limit,
        margin=limits.margin(peak),
        unit=rate_unit,
        evidence=evidence,
        message=(
            f"max rate {fmt(peak, rate_unit)} {relation} limit {fmt(spec.max_rate, rate_unit)}"
            f" ({int(np.count_nonzero(over))} of {rates.size} slopes above)"
        ),
        signals=[spec.signal, *(spec.when.signals if spec.when else [])],
        details={"slopes": int(rates.size), "above": int(np.count_nonzero(over))},
        judged=(peak, limits),
    )


KIND = register(CheckKind("rate", RateCheck, evaluate, key="max_rate"))
