"""``cycle_time``: gaps between consecutive frames of a message lie within period ± tolerance.

The period is the plan's ``period:`` or the DBC's ``GenMsgCycleTime``; with neither, the check is
an error naming the message. Every data frame with the message's id counts (short frames too:
they were on the bus). With ``during:``, only gaps between two frames in the same step window are
judged. Up to ``max_violations`` gaps outside the tolerance are allowed (then: marginal).
"""

from __future__ import annotations

import numpy as np

from ..dbc import DbcSet
from ..plan.checks import CycleTimeCheck
from ..summary import CheckResult
from . import count_verdict, fmt_s, make_result, register
from .context import CheckError, EvalContext, NotJudgeable, consecutive_pairs

# Timestamps are binary fractions: a gap of exactly period + tolerance must not count as outside.
_EPSILON_S = 1e-9


@register("cycle_time")
def evaluate(spec: CycleTimeCheck, ctx: EvalContext) -> CheckResult:
    message = ctx.message(spec.cycle_time)
    period = spec.period if spec.period is not None else DbcSet.cycle_time_s(message)
    if period is None or period <= 0:
        raise CheckError(
            f"no cycle time for {spec.cycle_time}: give period: in the plan "
            "(its DBC has no GenMsgCycleTime)"
        )
    low, high = spec.tolerance.bounds(period)
    windows = ctx.during(spec.during)
    times = ctx.frame_times(spec.cycle_time)
    starts, ends = times[:-1], times[1:]
    if windows is not None:
        pairs = consecutive_pairs(times, windows)
        starts, ends = starts[pairs], ends[pairs]
    if starts.size == 0:
        raise NotJudgeable(
            f"{times.size} frame(s) of {spec.cycle_time}"
            f"{' in ' + ', '.join(spec.during) if spec.during else ''}: no gap to judge"
        )
    gaps = ends - starts
    gmin, gmean, gmax = float(gaps.min()), float(gaps.mean()), float(gaps.max())
    too_short = gaps < low - _EPSILON_S if gmin < low - _EPSILON_S else None
    too_long = gaps > high + _EPSILON_S if gmax > high + _EPSILON_S else None
    # most logs are clean: skip building masks when the extremes are inside the tolerance
    if too_short is None and too_long is None:
        bad = None
    elif too_short is None or too_long is None:
        bad = too_long if too_short is None else too_short
    else:
        bad = too_short | too_long
    violations = int(np.count_nonzero(bad)) if bad is not None else 0
    verdict = count_verdict(violations, spec.max_violations)
    where = f"period {fmt_s(period)} ± {fmt_s(period - low)}"
    message = (
        f"gaps min {fmt_s(gmin)}, mean {fmt_s(gmean)}, max {fmt_s(gmax)} against {where}: "
        f"{violations} outside (allowed {spec.max_violations})"
    )
    evidence = np.column_stack((starts[bad], ends[bad])) if violations else [[starts[0], ends[-1]]]
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
        margin=min(gmin - low, high - gmax),
        unit="s",
        evidence=evidence,
        message=message,
        signals=[],
        details={
            "gaps": int(gaps.size),
            "too_short": int(np.count_nonzero(too_short)) if too_short is not None else 0,
            "too_long": int(np.count_nonzero(too_long)) if too_long is not None else 0,
            "period_from": "plan" if spec.period is not None else "dbc",
        },
    )
