"""``reaches``: a condition becomes true within ``within`` after step or event ``after``.

The anchor is the start of step ``after`` (its first run), else the first event of that name,
else — without ``after`` — the first frame of the log. The condition is evaluated at the anchor
and at every sample time of the signals it reads (as-of joined), so it is found at the first
frame that makes it true. Already true at the anchor is reached after 0 s. If the log ends before
the deadline without the condition becoming true, nothing can be said: inconclusive.
"""

from __future__ import annotations

import numpy as np

from ..plan.checks import ReachesCheck
from ..summary import CheckResult
from . import fmt_s, make_result, register
from .context import EvalContext, NotJudgeable


@register("reaches")
def evaluate(spec: ReachesCheck, ctx: EvalContext) -> CheckResult:
    windows = ctx.during(spec.during)
    anchor, anchor_text = ctx.anchor_time(spec.after)
    signals = spec.reaches.signals
    times = np.unique(np.concatenate([[anchor], *(ctx.samples(s).times for s in signals)]))
    times = times[times >= anchor]
    if windows is not None:
        times = times[windows.contains(times)]
    holds = ctx.condition_at(spec.reaches, times) if times.size else np.zeros(0, dtype=bool)
    deadline = anchor + spec.within
    what = _condition_text(spec)
    limit = {"within": spec.within, "after": spec.after}
    hits = np.flatnonzero(holds)
    if hits.size:
        reached = float(times[hits[0]])
        taken = reached - anchor
        verdict = "pass" if taken <= spec.within + 1e-9 else "fail"
        word = "within" if verdict == "pass" else "later than"
        return make_result(
            spec,
            verdict,
            observed=taken,
            limit=limit,
            margin=spec.within - taken,
            unit="s",
            evidence=[[anchor, reached]],
            message=(
                f"{what} reached {fmt_s(taken)} after {anchor_text}, "
                f"{word} the limit of {fmt_s(spec.within)}"
            ),
            signals=signals,
            details={"anchor": anchor, "reached_at": reached},
        )
    log_end = ctx.log_end if ctx.has_frames else anchor
    if log_end < deadline:
        raise NotJudgeable(
            f"{what} not reached before the log ends {fmt_s(log_end - anchor)} after "
            f"{anchor_text}, short of the {fmt_s(spec.within)} limit"
        )
    return make_result(
        spec,
        "fail",
        observed=None,
        limit=limit,
        margin=None,
        unit="s",
        evidence=[[anchor, deadline]],
        message=(
            f"{what} never reached in {fmt_s(log_end - anchor)} after {anchor_text} "
            f"(limit {fmt_s(spec.within)})"
        ),
        signals=signals,
        details={"anchor": anchor},
    )


def _condition_text(spec: ReachesCheck) -> str:
    """``BMS_Temps.MinCellTemp >= 0`` for the short ``reaches: ">= 0"`` form with ``signal:``."""
    text = str(spec.reaches)
    return f"{spec.signal} {text}" if spec.signal and text[:1] in "<>=!" else text
