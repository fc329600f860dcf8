"""``responds``: every time a stimulus becomes true, a response follows within ``within``.

Meaning, as a test engineer checks it by hand:

* The **stimulus** condition is evaluated at every sample time of the signals it reads (as-of
  joined). A *stimulus* is each time it turns from false to true between two consecutive
  evaluation times — the first evaluation time never is one (nothing was seen to change). With
  ``during:`` only stimuli inside those steps count.
* The **response** to a stimulus at ``s`` is the first time ``r ≥ s`` at which the ``responds``
  condition holds, evaluated at ``s`` and at every sample time of the signals it reads. Its
  latency is ``r − s``; a response already holding at ``s`` has latency 0.
* A stimulus is **late** when no response comes within ``within`` and the data goes on past
  ``s + within``: the check fails, each late stimulus is evidence. A stimulus whose deadline lies
  beyond the end of the data (the end of the log, or the abort of an aborted run) and that has
  no response yet is **cut short**: the verdict is then ``inconclusive`` (as for a ``range``
  violation cut short), unless another stimulus was late.
* Observed: the number of stimuli, the maximum and the 95th percentile (linear interpolation) of
  the latencies of the answered ones. The margin is ``within − max``; ``marginal_within`` makes
  a maximum above it marginal. No stimulus at all is ``inconclusive``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field, model_validator

from ..plan.conditions import Condition
from ..summary import CheckResult
from .context import EvalContext, NotJudgeable
from .limits import Limits
from .registry import CheckKind, register
from .results import fmt_s, make_result
from .spec import CheckSpec, ConditionText, Duration


class RespondsCheck(CheckSpec):
    """After each rising edge of ``stimulus``, ``responds`` holds within ``within``."""

    kind: ClassVar[str] = "responds"
    stimulus: ConditionText = Field(description="Each time this becomes true is a stimulus.")
    responds: ConditionText = Field(description="The response: must hold within `within`.")
    within: Duration
    marginal_within: Duration | None = Field(
        None, description="A slowest response above this (but within `within`) is marginal."
    )

    @model_validator(mode="after")
    def _marginal_inside(self) -> RespondsCheck:
        if self.marginal_within is not None and self.marginal_within > self.within:
            raise ValueError(
                f"marginal_within ({self.marginal_within:g}) is above within ({self.within:g})"
            )
        return self

    @property
    def limits(self) -> Limits:
        return Limits(max=self.within, marginal_max=self.marginal_within)

    def conditions(self) -> list[tuple[str, Condition]]:
        return [("stimulus", self.stimulus), ("responds", self.responds)]


def evaluation_times(ctx: EvalContext, condition: Condition) -> np.ndarray:
    """Sorted distinct sample times of the signals ``condition`` reads."""
    parts = [ctx.samples(s).times for s in condition.signals]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0)


def stimuli(ctx: EvalContext, spec: RespondsCheck) -> np.ndarray:
    """Times at which ``spec.stimulus`` turns from false to true (see the module doc)."""
    times = evaluation_times(ctx, spec.stimulus)
    if times.size < 2:
        return np.zeros(0)
    holds = ctx.condition_at(spec.stimulus, times)
    rising = times[1:][holds[1:] & ~holds[:-1]]
    windows = ctx.during(spec.during)
    return rising[windows.contains(rising)] if windows is not None else rising


def response_times(ctx: EvalContext, spec: RespondsCheck, starts: np.ndarray) -> np.ndarray:
    """For each stimulus time, the first time at or after it where the response holds (inf:
    never in the log). One searchsorted over the times the response holds, no loop."""
    times = np.unique(np.concatenate([evaluation_times(ctx, spec.responds), starts]))
    holds = ctx.condition_at(spec.responds, times) if times.size else np.zeros(0, bool)
    true_times = times[holds]
    if not true_times.size:
        return np.full(starts.shape, np.inf)
    index = np.searchsorted(true_times, starts, side="left")
    found = index < true_times.size
    return np.where(found, true_times[np.minimum(index, true_times.size - 1)], np.inf)


def evaluate(spec: RespondsCheck, ctx: EvalContext) -> CheckResult:
    starts = stimuli(ctx, spec)
    if not starts.size:
        raise NotJudgeable(f"the stimulus {spec.stimulus} never became true")
    answers = response_times(ctx, spec, starts)
    latency = answers - starts
    limits = spec.limits
    deadline = starts + spec.within
    late = limits.outside(latency) & (deadline <= ctx.data_end)
    cut = limits.outside(latency) & (deadline > ctx.data_end)
    answered = np.isfinite(latency) & ~cut
    judged = latency[answered]
    worst = float(judged.max()) if judged.size else None
    p95 = float(np.percentile(judged, 95)) if judged.size else None
    observed = {"stimuli": int(starts.size), "max": worst, "p95": p95}
    details: dict[str, Any] = {
        "late": int(np.count_nonzero(late)),
        "never_answered": int(np.count_nonzero(late & ~np.isfinite(latency))),
        "cut_short": int(np.count_nonzero(cut)),
    }
    what = f"{spec.responds} after {spec.stimulus}"
    summary = (
        f"{starts.size} stimuli, slowest response {fmt_s(worst) if worst is not None else 'none'}"
        f", p95 {fmt_s(p95) if p95 is not None else 'none'} (within {fmt_s(spec.within)})"
    )
    if late.any():
        verdict = "fail"
        evidence = np.column_stack((starts[late], np.minimum(answers[late], deadline[late])))
        message = f"{what}: {details['late']} late response(s) of {summary}"
    elif cut.any():
        verdict = "inconclusive"
        evidence = np.column_stack((starts[cut], np.full(int(cut.sum()), ctx.data_end)))
        message = (
            f"{what}: the data ended at t = {ctx.data_end:.3f} s before the response to the "
            f"stimulus at t = {starts[cut][0]:.3f} s was due; {summary}"
        )
    else:
        verdict = "marginal" if worst is not None and limits.outside_band(worst) else "pass"
        evidence = np.column_stack((starts, answers))
        message = f"{what}: {summary}"
    marginal = {} if spec.marginal_within is None else {"marginal_within": spec.marginal_within}
    return make_result(
        spec,
        verdict,  # type: ignore[arg-type]
        observed=observed,
        limit={"within": spec.within, **marginal},
        margin=limits.margin(worst) if worst is not None else None,
        unit="s",
        evidence=evidence,
        message=message,
        signals=list(dict.fromkeys([*spec.stimulus.signals, *spec.responds.signals])),
        details=details,
        judged=(worst, limits) if worst is not None else None,
    )


KIND = register(CheckKind("responds", RespondsCheck, evaluate, key="responds"))
