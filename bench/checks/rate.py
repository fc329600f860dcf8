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
from .context import EvalContext, NotJudgeable
from .limits import Limits
from .registry import CheckKind, register
from .results import fmt, make_result
from .spec import Duration, SignalCheckSpec
from .streaming import Evidence, JudgedStream, one_batch


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


class RateStream:
    """The check batch by batch (:mod:`bench.checks.streaming`): the last sample (sample to
    sample) or the last ``over`` seconds of samples (``over:``) are carried to the next batch;
    the steepest slope, counts and the first evidence of each kind are kept."""

    def __init__(self, spec: RateCheck, ctx: EvalContext) -> None:
        self.spec, self.limits = spec, spec.limits
        self.samples = JudgedStream(spec, ctx)
        self.windows = self.samples.windows
        self.tail = (np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool))  # carried samples
        self.first: float | None = None  # the first sample of the log
        self.slopes = self.above = 0
        self.peak = -np.inf
        self.over = Evidence()  # slopes above the limit
        self.band = Evidence()  # slopes outside the marginal band
        self.first_start: float | None = None
        self.last_end: float | None = None

    def feed(self, ctx: EvalContext) -> None:
        times, values, judged = self.samples.batch(ctx)
        if not times.size:
            return
        if self.first is None:
            self.first = float(times[0])
        carried = self.tail[0].size
        if carried:
            times, values, judged = (
                np.concatenate(p) for p in zip(self.tail, (times, values, judged), strict=True)
            )
        if self.spec.over:
            starts_t, ends_t, rates = self._over(times, values, judged, carried)
            # keep what a later sample may reach back to: the last `over` s and one before
            keep = max(int(np.searchsorted(times, times[-1] - self.spec.over, "left")) - 1, 0)
        else:
            starts_t, ends_t, rates = self._pairs(times, values, judged)
            keep = times.size - 1
        self.tail = (times[keep:], values[keep:], judged[keep:])
        finite = ~np.isnan(rates)
        if not finite.all():
            rates, starts_t, ends_t = rates[finite], starts_t[finite], ends_t[finite]
        if not rates.size:
            return
        self.slopes += int(rates.size)
        self.peak = max(self.peak, float(rates.max()))
        over = self.limits.outside(rates)
        self.above += int(np.count_nonzero(over))
        self.over.add(starts_t[over], ends_t[over])
        band = self.limits.outside_band(rates)
        self.band.add(starts_t[band], ends_t[band])
        if self.first_start is None:
            self.first_start = float(starts_t[0])
        self.last_end = float(ends_t[-1])

    def _pairs(self, times, values, judged) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Consecutive judged samples in one window (equal timestamps give no slope)."""
        pairs = judged[1:] & judged[:-1]
        if self.windows is not None:  # never across the gap between two steps
            index = self.windows.index(times)
            pairs &= index[1:] == index[:-1]
        ends = np.flatnonzero(pairs) + 1
        starts_t, ends_t = times[ends - 1], times[ends]
        dt = ends_t - starts_t
        with np.errstate(divide="ignore", invalid="ignore"):
            rates = np.abs(values[ends] - values[ends - 1]) / dt
        valid = dt > 0
        return starts_t[valid], ends_t[valid], rates[valid]

    def _over(self, times, values, judged, carried) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Judged samples of this batch against the sample ``over`` s before (as-of)."""
        over = self.spec.over
        assert over is not None and self.first is not None
        ends = carried + np.flatnonzero(judged[carried:] & (times[carried:] - over >= self.first))
        begins = np.searchsorted(times, times[ends] - over, side="right") - 1
        keep = judged[begins]
        if self.windows is not None:
            keep &= self.windows.index(times[begins]) == self.windows.index(times[ends])
        begins, ends = begins[keep], ends[keep]
        ends_t = times[ends]
        return ends_t - over, ends_t, np.abs(values[ends] - values[begins]) / over

    def finish(self, ctx: EvalContext) -> CheckResult:
        spec, limits = self.spec, self.limits
        self.samples.check()
        unit = ctx.unit(spec.signal)
        if not self.slopes:
            raise NotJudgeable(f"fewer than two judged samples of {spec.signal}: no rate to judge")
        peak = self.peak
        rate_unit = f"{unit}/s" if unit else "1/s"
        if self.above:
            verdict, evidence = "fail", self.over
        elif limits.outside_band(peak):
            verdict, evidence = "marginal", self.band
        else:
            verdict, evidence = "pass", None
        windows = evidence.windows if evidence is not None else [[self.first_start, self.last_end]]
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
            evidence=windows,
            evidence_total=evidence.total if evidence is not None else None,
            message=(
                f"max rate {fmt(peak, rate_unit)} {relation} limit {fmt(spec.max_rate, rate_unit)}"
                f" ({self.above} of {self.slopes} slopes above)"
            ),
            signals=[spec.signal, *(spec.when.signals if spec.when else [])],
            details={"slopes": self.slopes, "above": self.above},
            judged=(peak, limits),
        )


evaluate = one_batch(RateStream)


KIND = register(CheckKind("rate", RateCheck, evaluate, key="max_rate", stream=RateStream))
