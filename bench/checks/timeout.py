"""``timeout``: no gap in a message's frames is longer than ``max_gap``.

Gaps include the start — the first step's start if there are step events, else the first frame of
the log — to the message's first frame, and its last frame to the end of the log (the last frame
of any message): a message that stops, or never comes, is a timeout. With ``during:``, each step
window is judged the same way from its start to its end.
"""

from __future__ import annotations

import numpy as np

from ..plan.checks import TimeoutCheck
from ..summary import CheckResult
from . import fmt_s, make_result, register
from .context import EvalContext, NotJudgeable, Windows


@register("timeout")
def evaluate(spec: TimeoutCheck, ctx: EvalContext) -> CheckResult:
    ctx.message(spec.timeout)
    windows = ctx.during(spec.during)
    if windows is None:
        if not ctx.has_frames:
            raise NotJudgeable("the log holds no frames")
        start = min(s.start for s in ctx.steps) if ctx.steps else ctx.log_start
        windows = Windows.of([(start, max(ctx.log_end, start))])
    times = ctx.frame_times(spec.timeout)
    starts, ends = [], []
    for a, b in windows.as_list():  # one slice per step window, not per frame
        inside = times[(times >= a) & (times <= b)]
        edges = np.concatenate(([a], inside, [b]))
        starts.append(edges[:-1])
        ends.append(edges[1:])
    gap_start, gap_end = np.concatenate(starts), np.concatenate(ends)
    gaps = gap_end - gap_start
    longest = float(gaps.max())
    bad = gaps > spec.max_gap + 1e-9
    count = int(np.count_nonzero(bad))
    verdict = "fail" if count else "pass"
    frames = int(times.size)
    message = (
        f"longest gap {fmt_s(longest)} against max gap {fmt_s(spec.max_gap)}: "
        f"{count} timeout(s) over {frames} frame(s)"
    )
    evidence = (
        np.column_stack((gap_start[bad], gap_end[bad]))
        if count
        else [[windows.starts[0], windows.ends[-1]]]
    )
    return make_result(
        spec,
        verdict,
        observed=longest,
        limit={"max_gap": spec.max_gap},
        margin=spec.max_gap - longest,
        unit="s",
        evidence=evidence,
        message=message,
        signals=[],
        details={"timeouts": count, "frames": frames},
    )
