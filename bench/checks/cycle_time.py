"""``cycle_time``: gaps between consecutive frames of a message lie within period ± tolerance.

The period is the plan's ``period:`` or the DBC's ``GenMsgCycleTime``; with neither, the check is
an error naming the message. Every data frame with the message's id counts (short frames too:
they were on the bus). With ``during:``, only gaps between two frames in the same step window are
judged. Up to ``max_violations`` gaps outside the tolerance are allowed (then: marginal). The mean
gap is correctly rounded (an exact sum, :class:`~bench.checks.streaming.ExactSum`), so it does not
depend on how the log was split into batches.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import BaseModel, BeforeValidator, Field, PlainSerializer, WithJsonSchema

from ..dbc import DbcSet
from ..durations import format_duration, parse_duration
from ..summary import CheckResult
from .context import CheckError, EvalContext, NotJudgeable, consecutive_pairs
from .limits import Limits
from .registry import CheckKind, register
from .results import count_verdict, fmt_s, make_result
from .spec import CheckSpec, Duration
from .streaming import Evidence, ExactSum, one_batch, top_k

# Timestamps are binary fractions: a gap of exactly period + tolerance must not count as outside.
_EPSILON_S = 1e-9


class Tolerance(BaseModel):
    """``10%`` (relative to the period) or ``2ms`` (absolute)."""

    relative: float | None = None
    absolute_s: float | None = None

    def bounds(self, period_s: float) -> tuple[float, float]:
        delta = self.absolute_s if self.absolute_s is not None else period_s * (self.relative or 0)
        return period_s - delta, period_s + delta

    @classmethod
    def parse(cls, value: Any) -> Tolerance:
        text = str(value).strip()
        if text.endswith("%"):
            fraction = float(text[:-1]) / 100
            if not 0 <= fraction <= 1:
                raise ValueError(f"tolerance must be between 0% and 100%, got {text}")
            return cls(relative=fraction)
        return cls(absolute_s=parse_duration(text))


def _to_tolerance(value: Any) -> Any:
    return value if isinstance(value, Tolerance | dict) else Tolerance.parse(value)


def _tolerance_text(value: Tolerance) -> str:
    if value.absolute_s is not None:
        return format_duration(value.absolute_s)
    return f"{(value.relative or 0) * 100:g}%"


ToleranceText = Annotated[
    Tolerance,
    BeforeValidator(_to_tolerance),
    PlainSerializer(_tolerance_text, return_type=str),
    WithJsonSchema({"type": "string", "description": "10% of the period, or 2ms"}),
]


class CycleTimeCheck(CheckSpec):
    """Gaps between frames of ``cycle_time`` (a message) stay within ``tolerance`` of its period."""

    kind: ClassVar[str] = "cycle_time"
    cycle_time: str = Field(description="Message name")
    period: Duration | None = Field(None, description="Default: the DBC's GenMsgCycleTime.")
    tolerance: ToleranceText = Field(default_factory=lambda: Tolerance(relative=0.1))
    max_violations: int = Field(0, ge=0, description="Gaps outside tolerance allowed.")

    def references(self) -> list[tuple[str, str, str]]:
        return [("cycle_time", "message", self.cycle_time)]


class CycleTimeStream:
    """The check batch by batch (:mod:`bench.checks.streaming`): the last frame before a batch
    closes the gap across its border; counts, extremes, the exact sum of the gaps, the
    ``max_violations + 1`` worst gaps (the margin) and the first evidence are carried."""

    def __init__(self, spec: CycleTimeCheck, ctx: EvalContext) -> None:
        message = ctx.message(spec.cycle_time)
        period = spec.period if spec.period is not None else DbcSet.cycle_time_s(message)
        if period is None or period <= 0:
            raise CheckError(
                f"no cycle time for {spec.cycle_time}: give period: in the plan "
                "(its DBC has no GenMsgCycleTime)"
            )
        self.spec, self.period = spec, period
        self.low, self.high = spec.tolerance.bounds(period)
        self.windows = ctx.during(spec.during)
        self.frames = 0
        self.last: np.ndarray = np.zeros(0)  # the last frame time before this batch
        self.gmin, self.gmax = np.inf, -np.inf
        self.sum = ExactSum()
        self.too_short = self.too_long = self.violations = 0
        self.evidence = Evidence()
        self.first_start: float | None = None
        self.last_end: float | None = None
        self.worst = np.zeros(0)  # the max_violations + 1 largest distances outside the band

    def feed(self, ctx: EvalContext) -> None:
        times = ctx.frame_times(self.spec.cycle_time)
        self.frames += int(times.size)
        if not times.size:
            return
        times = np.concatenate((self.last, times)) if self.last.size else times
        self.last = times[-1:]
        starts, ends = times[:-1], times[1:]
        if self.windows is not None:
            pairs = consecutive_pairs(times, self.windows)
            starts, ends = starts[pairs], ends[pairs]
        if not starts.size:
            return
        low, high = self.low, self.high
        gaps = ends - starts
        self.gmin = min(self.gmin, float(gaps.min()))
        self.gmax = max(self.gmax, float(gaps.max()))
        self.sum.add(gaps)
        too_short = gaps < low - _EPSILON_S
        too_long = gaps > high + _EPSILON_S
        bad = too_short | too_long
        self.too_short += int(np.count_nonzero(too_short))
        self.too_long += int(np.count_nonzero(too_long))
        self.violations += int(np.count_nonzero(bad))
        self.evidence.add(starts[bad], ends[bad])
        if self.first_start is None:
            self.first_start = float(starts[0])
        self.last_end = float(ends[-1])
        outside = np.maximum(low - gaps, gaps - high)
        self.worst = top_k(self.worst, outside, self.spec.max_violations + 1)

    def finish(self, ctx: EvalContext) -> CheckResult:
        spec, period, low, high = self.spec, self.period, self.low, self.high
        count = self.sum.count
        if count == 0:
            raise NotJudgeable(
                f"{self.frames} frame(s) of {spec.cycle_time}"
                f"{' in ' + ', '.join(spec.during) if spec.during else ''}: no gap to judge"
            )
        gmin, gmean, gmax = self.gmin, self.sum.mean(), self.gmax
        violations = self.violations
        verdict = count_verdict(violations, spec.max_violations)
        where = f"period {fmt_s(period)} ± {fmt_s(period - low)}"
        message = (
            f"gaps min {fmt_s(gmin)}, mean {fmt_s(gmean)}, max {fmt_s(gmax)} against {where}: "
            f"{violations} outside (allowed {spec.max_violations})"
        )
        evidence = self.evidence.windows if violations else [[self.first_start, self.last_end]]
        # Seconds from the (allowed + 1)-th worst gap to the tolerance band (< 0: outside): the
        # gap the verdict rests on; None when every gap is allowed to be outside.
        margin = None if count <= spec.max_violations else -float(self.worst.min())
        return make_result(
            spec,
            verdict,
            observed={"min": gmin, "mean": gmean, "max": gmax, "violations": violations},
            limit={
                "period": period,
                "min": low,
                "max": high,
                "max_violations": spec.max_violations,
            },
            margin=margin,
            unit="s",
            evidence=evidence,
            evidence_total=self.evidence.total,
            message=message,
            signals=[],
            details={
                "gaps": count,
                "too_short": self.too_short,
                "too_long": self.too_long,
                "period_from": "plan" if spec.period is not None else "dbc",
            },
            judged=(violations, Limits(max=spec.max_violations)),
        )


evaluate = one_batch(CycleTimeStream)


def validate(spec: CycleTimeCheck, dbcs: Any) -> list[tuple[str, str]]:
    """Without ``period:`` the DBC must give the message a cycle time (an event message has
    none to check against)."""
    if spec.period is not None:
        return []
    why = not_cyclic(dbcs.message(spec.cycle_time))
    return [("cycle_time", f"{spec.cycle_time} {why}: give period: to check it")] if why else []


def not_cyclic(message: Any) -> str | None:
    """Why ``message`` has no cycle to check (None when it has one): no ``GenMsgCycleTime``, or
    ``GenMsgSendType`` says it is an event message."""
    if DbcSet.cycle_time_s(message) is None:
        return "has no cycle time in its DBC (no GenMsgCycleTime)"
    if message.send_type == "Event":
        return "is an event message (GenMsgSendType Event), sent only when something changes"
    return None


KIND = register(
    CheckKind(
        "cycle_time",
        CycleTimeCheck,
        evaluate,
        key="cycle_time",
        validate=validate,
        stream=CycleTimeStream,
    )
)
