"""``reaches``: a condition becomes true within ``within`` after ``after``.

Meaning, as a test engineer checks it by hand: the clock starts at the anchor — ``after: STEP``
the start of that step's first run, ``after: STEP.end`` its end, ``after: CONDITION`` the first
time that condition holds, a name no step has the first event of that name (``run_start``), and
without ``after:`` the first frame of the log. The condition is evaluated at the anchor and at
every sample time of the signals it reads (as-of joined), so the moment it becomes true is the
first frame that makes it true; the observed value is that moment minus the anchor.

* It must **become** true inside the window: if it already holds at the anchor, nothing was seen
  to happen, and the verdict is ``inconclusive`` saying so (a "pack warms to −15 °C" check on a
  pack that was never cold proves nothing). ``accept_already_true: true`` accepts it as a pass
  after 0 s, for conditions that may legitimately hold from the start.
* Reached later than ``within``, or never in a log that lasts past the deadline: ``fail``.
* Not reached and the data ends (the log, or the abort of an aborted run) before the deadline:
  ``inconclusive`` (nobody waited long enough).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from ..plan.conditions import Condition, ConditionError, parse_condition
from ..summary import CheckResult
from .context import EvalContext, NotJudgeable
from .limits import Limits
from .registry import CheckKind, register
from .results import fmt_s, make_result
from .spec import Anchor, CheckSpec, ConditionText, Duration, parse_anchor


class ReachesCheck(CheckSpec):
    """A condition becomes true within ``within`` after ``after`` (default: the first frame)."""

    kind: ClassVar[str] = "reaches"
    signal: str | None = Field(None, description="With a signal, reaches may be '>= 0'.")
    reaches: ConditionText
    within: Duration
    after: str | None = Field(
        None,
        description="A step (its start), STEP.end (its end), an event name, or a condition "
        "(the first time it holds). Default: the first frame of the log.",
    )
    accept_already_true: bool = Field(
        False, description="Already true when the clock starts counts as a pass (default: no)."
    )

    @field_validator("reaches", mode="before")
    @classmethod
    def _parse(cls, value: Any, info: ValidationInfo) -> Any:
        # A field validator (not a model one) so that an error is located at `reaches:`.
        if isinstance(value, Condition):
            return value
        if "signal" not in info.data:  # signal: failed already; report that alone
            return parse_condition(str(value), subject="signal.invalid")
        subject = info.data["signal"]
        text = str(value).strip()
        if subject is None and text[:1] in "<>=!":
            raise ConditionError(f"{text!r} compares nothing: add signal: Message.Signal", 0)
        return parse_condition(text, subject=subject)

    @field_validator("after")
    @classmethod
    def _anchor(cls, value: str | None) -> str | None:
        parse_anchor(value)  # a condition that does not parse is reported at its bad token
        return value

    @property
    def anchor(self) -> Anchor:
        return parse_anchor(self.after)

    def references(self) -> list[tuple[str, str, str]]:
        return [("signal", "signal", self.signal)] if self.signal else []

    def conditions(self) -> list[tuple[str, Condition]]:
        found = [("reaches", self.reaches)]
        anchor = self.anchor
        if anchor.condition is not None:
            found.append(("after", anchor.condition))
        return found


def evaluate(spec: ReachesCheck, ctx: EvalContext) -> CheckResult:
    windows = ctx.during(spec.during)
    anchor_spec = spec.anchor
    if anchor_spec.condition is not None:
        anchor_spec.condition.bind(ctx.dbcs)
    anchor, anchor_text = ctx.anchor_time(anchor_spec)
    signals = spec.reaches.signals
    times = np.unique(np.concatenate([[anchor], *(ctx.samples(s).times for s in signals)]))
    times = times[times >= anchor]
    if windows is not None:
        times = times[windows.contains(times)]
    holds = ctx.condition_at(spec.reaches, times) if times.size else np.zeros(0, dtype=bool)
    deadline = anchor + spec.within
    what = _condition_text(spec)
    limit = {"within": spec.within, "after": spec.after}
    limits = Limits(max=spec.within)
    if holds.size and holds[0] and not spec.accept_already_true:
        return make_result(
            spec,
            "inconclusive",
            observed=0.0,
            limit=limit,
            unit="s",
            evidence=[[anchor, times[0]]],
            message=(
                f"{what} already held when the window opened at {anchor_text} "
                f"(t = {times[0]:.3f} s): it was not seen to "
                "become true (accept_already_true: true accepts this as a pass)"
            ),
            signals=signals,
            details={"anchor": anchor, "already_true": True},
        )
    hits = np.flatnonzero(holds)
    if hits.size:
        reached = float(times[hits[0]])
        taken = reached - anchor
        verdict = "fail" if limits.outside(taken) else "pass"
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
            judged=(taken, limits),
        )
    log_end = ctx.data_end if ctx.has_frames else anchor
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


KIND = register(CheckKind("reaches", ReachesCheck, evaluate, key="reaches"))
