"""``statistic``: mean/min/max/median/std/percentile of a signal's judged samples within limits.

Samples are weighted equally (a cyclic signal's samples are evenly spaced, so this is the time
average too). Received NaN values are left out and counted. ``std`` is the population standard
deviation; ``percentile`` interpolates linearly (numpy's default).

Memory: ``min``/``max`` carry one value. ``median`` and ``percentile`` are exact order statistics
found in bounded memory (:func:`~bench.checks.streaming.order_statistics` on the spilled values,
then numpy's own arithmetic: :func:`percentile` and :func:`median` equal ``numpy.percentile`` /
``numpy.median`` bit for bit, proven on random inputs in the tests). ``mean`` and ``std`` read
their spilled values whole at the end (numpy's pairwise summation is what they are defined by;
8 bytes a judged sample, one check at a time).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from ..summary import CheckResult
from .context import EvalContext, NotJudgeable
from .registry import CheckKind, register
from .results import fmt, make_result
from .spec import LimitFields, SignalCheckSpec
from .streaming import JudgedStream, LastJudged, Spill, one_batch, order_statistics

Select = Callable[[Sequence[int]], list[float]]  # the k-th smallest judged values (0-based)

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
        label = f"p{spec.percentile:g}" if spec.statistic == "percentile" else spec.statistic
        if self.extreme:
            value = float(self.values[0][0])
        elif spec.statistic in ("percentile", "median"):
            kept, count = self.kept, self.count

            def select(ranks: Sequence[int]) -> list[float]:
                return order_statistics(kept.chunks, count, ranks)

            if spec.statistic == "median":
                value = median(select, count)
            else:
                value = percentile(select, count, float(spec.percentile))  # type: ignore[arg-type]
            kept.close()
        else:
            value = float(_FUNCTIONS[spec.statistic](self.kept.read()[0]))
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


def percentile(select: Select, count: int, p: float) -> float:
    """``numpy.percentile(values, p)`` (method "linear") from two order statistics of the
    ``count`` values: numpy's own steps in the same float64 operations (``_get_indexes``,
    ``_get_gamma``, ``_lerp`` of numpy 2), so the result is the same number, NaN included."""
    q = p / 100.0
    virtual = (count - 1) * q
    if virtual >= count - 1:  # numpy takes the last value, and its gamma counts from index -1
        below, above, base = count - 1, count - 1, -1
    elif virtual < 0:
        below, above, base = 0, 0, 0
    else:
        below = int(np.floor(virtual))
        above, base = below + 1, below
    gamma = virtual - base
    a, b = select([below, above])
    with np.errstate(invalid="ignore", over="ignore"):  # inf − inf is NaN in numpy too
        diff = np.float64(b) - np.float64(a)
        if gamma >= 0.5:
            return float(np.float64(b) - diff * (1 - gamma))
        return float(np.float64(a) + diff * gamma)


def median(select: Select, count: int) -> float:
    """``numpy.median(values)``: the middle value, or the mean of the two middle ones."""
    half = count // 2
    if count % 2:
        return select([half])[0]
    a, b = select([half - 1, half])
    with np.errstate(invalid="ignore", over="ignore"):
        return float((np.float64(a) + np.float64(b)) / 2)


evaluate = one_batch(StatisticStream)


KIND = register(
    CheckKind("statistic", StatisticCheck, evaluate, key="statistic", stream=StatisticStream)
)
