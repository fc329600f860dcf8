"""``range``: a signal stays within ``min``/``max``; ``marginal_min``/``marginal_max`` mark a pass
that is close to failing.

Meaning, as a test engineer checks it by hand:

* A **judged sample** is a sample of ``signal`` inside a ``during:`` step where ``when:`` holds
  (as-of joined at the sample's time). Its value holds until the signal's next sample, the end of
  its ``during:`` window, or the end of the log, whichever comes first.
* A **violation** is a maximal stretch of time during which the held value of judged samples is
  outside the limits (a received NaN is outside). Without ``for:`` every violation fails the
  check; with ``for: F`` only violations lasting at least ``F``.
* **Cut short**: with ``for: F``, a violation shorter than ``F`` is harmless only if the check
  could have seen it last ``F``. It is *cut short* when it was still open when the data ended
  (its last sample's value held until the end of the log), when it spans the moment the run was
  aborted (the abort's safe state ends it), or when the judged stretch holding it (consecutive
  judged samples, each held until the next) lasted less than ``F`` in all — a ``when:`` or
  ``during:`` scope too short to ever show ``F``. A cut-short violation makes the verdict
  ``inconclusive``, never ``pass``, saying when and why. Why not ``fail``: nobody saw it last
  ``F``; a false FAIL sends an engineer chasing a fault that may not exist, while
  ``inconclusive`` is still not a pass (exit 1, red in the report) and says what to do: judge a
  longer stretch. A real failure elsewhere in the log still makes the verdict ``fail``.
* **Marginal**: no violation counts, but the held value left the marginal band for at least
  ``F`` (any time, without ``for:``) — or a band excursion was cut short by the end of the data.
* **Observed and margin** are those of what the check judges: without ``for:``, the extreme judged
  values; with ``for: F``, the worst level held for at least ``F`` (the highest value the signal
  stayed at or above for ``F``; the lowest it stayed at or below for ``min``). The longest
  excursion shorter than ``F`` is reported beside it (``details.longest_short_excursion``), never
  as the observed value. Margin = distance from that level to the nearer limit (< 0 outside).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field, model_validator

from ..summary import CheckResult
from .context import EvalContext, Judged, make_judged
from .debounce import FOR_TOLERANCE_S, held_level, lasting, run_bounds
from .limits import Limits
from .live import Breach, LiveRule
from .registry import CheckKind, register
from .results import fmt, fmt_s, make_result
from .spec import Duration, LimitFields, SignalCheckSpec
from .streaming import JudgedStream, Spill, one_batch


class RangeCheck(SignalCheckSpec, LimitFields):
    """``signal`` stays within ``min``/``max``; ``for:`` a violation must last that long."""

    kind: ClassVar[str] = "range"
    for_: Duration | None = Field(None, alias="for", description="Debounce: 2s, 500ms …")

    @model_validator(mode="after")
    def _needs_a_limit(self) -> RangeCheck:
        if self.min is None and self.max is None:
            raise ValueError("a range check needs min and/or max")
        return self


class RangeStream:
    """The check batch by batch (:mod:`bench.checks.streaming`): ``when:`` is joined per batch
    with the carried condition signals, and only the check's own samples with their judged mask
    are kept (runs, ``for:`` levels and cut-short stretches need them all); judged at the end
    exactly as on the whole log. The kept samples wait in a temporary file
    (:class:`~bench.checks.streaming.Spill`), not in memory."""

    def __init__(self, spec: RangeCheck, ctx: EvalContext) -> None:
        self.spec = spec
        self.samples = JudgedStream(spec, ctx)
        self.kept = Spill(np.float64, np.float64, np.bool_)

    def feed(self, ctx: EvalContext) -> None:
        times, values, judged = self.samples.batch(ctx)
        if times.size:
            self.kept.add(times, values, judged)

    def finish(self, ctx: EvalContext) -> CheckResult:
        times, values, judged = self.kept.read()
        self.samples.check()
        s = make_judged(self.spec.signal, times, values, judged, self.samples.windows, ctx)
        return _judge(self.spec, ctx, s)


evaluate = one_batch(RangeStream)


def _judge(spec: RangeCheck, ctx: EvalContext, s: Judged) -> CheckResult:
    limits = spec.limits
    unit = ctx.unit(spec.signal)
    d = limits.distance(s.values)  # > 0 outside, NaN → +inf
    bad = s.judged & limits.outside(s.values)
    band = s.judged & limits.outside_band(s.values)
    violations, open_at_end = _runs(s, bad, spec.for_)
    excursions, band_open = _runs(s, band, spec.for_)
    counted = lasting(violations, spec.for_)
    band_counted = lasting(excursions, spec.for_)
    cut = ~counted & open_at_end
    band_cut = ~band_counted & band_open

    observed, level = _observed(spec, s, d, limits)
    margin = None if level is None else -level
    details: dict[str, Any] = {
        "samples": s.count,
        "violations": int(np.count_nonzero(counted)),
        "violation_s": float(np.sum(np.diff(violations[counted], axis=1))),
        "nan_samples": int(np.count_nonzero(np.isnan(s.values[s.judged]))),
    }
    short = violations[~counted & ~cut]
    if spec.for_ and len(short):
        details["shorter_than_for"] = len(short)
        details["longest_short_excursion"] = _longest(short, s, limits)

    limit_text = limits.format(unit)
    seen = _seen_text(observed, spec, unit, spec.for_)
    if counted.any():
        verdict, evidence = "fail", violations[counted]
        longest = float(np.max(np.diff(evidence, axis=1)))
        message = (
            f"{seen} outside {limit_text}: {len(evidence)} violation(s), longest {fmt_s(longest)}"
        )
    elif cut.any():
        verdict, evidence = "inconclusive", violations[cut]
        t0, t1 = evidence[-1]
        if s.abort_time is not None and t0 <= s.abort_time <= t1:
            why = f"the run was aborted at t = {s.abort_time:.3f} s"
        elif t1 >= s.log_end:
            why = f"the log ends at t = {s.log_end:.3f} s"
        else:
            why = f"its when:/during: stretch lasted less than for {fmt_s(spec.for_ or 0)}"
        message = (
            f"a violation of {limit_text} from t = {t0:.3f} s (lasting {fmt_s(t1 - t0)}) was "
            f"cut short: {why}; it cannot be judged against for {fmt_s(spec.for_ or 0)}"
        )
    elif band_counted.any() or np.any(band_cut):
        chosen = band_counted | band_cut
        verdict, evidence = "marginal", excursions[chosen]
        message = f"{seen} inside {limit_text} but outside the marginal band"
        if not band_counted.any():
            message += " (an excursion cut short by the end of the data)"
    else:
        verdict = "pass"
        judged_t = s.times[s.judged]
        evidence = np.array([[judged_t[0], s.hold_end[s.judged][-1]]])
        message = f"{seen} within {limit_text} ({s.count} samples)"
    if "longest_short_excursion" in details:
        longest_short = details["longest_short_excursion"]
        message += (
            f"; {len(short)} excursion(s) shorter than for {fmt_s(spec.for_ or 0)}, the longest "
            f"{fmt_s(longest_short['duration_s'])} reaching {fmt(longest_short['worst'], unit)}"
        )
    return make_result(
        spec,
        verdict,  # type: ignore[arg-type]
        observed=observed,
        limit={**limits.as_dict(), **({"for": spec.for_} if spec.for_ else {})},
        margin=margin,
        unit=unit,
        evidence=evidence,
        message=message,
        signals=[spec.signal, *(spec.when.signals if spec.when else [])],
        details=details,
        judged=(observed, limits),
    )


def _runs(s: Any, mask: np.ndarray, for_s: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Intervals of the runs of ``mask``, and which of them were cut short (see the module doc):
    still open at the end of the log, spanning the abort, or in a judged stretch shorter than
    ``for_s``."""
    first, last = run_bounds(mask, s.continuous)
    if not first.size:
        return np.zeros((0, 2)), np.zeros(0, dtype=bool)
    intervals = np.column_stack((s.times[first], s.hold_end[last]))
    # its value held until the end of the log: nothing closed it
    cut = (last == s.times.size - 1) & (s.hold_end[last] >= s.log_end)
    if for_s:  # the judged stretch holding it was too short to ever show `for:`
        stretch_first, stretch_last = run_bounds(s.judged, s.continuous)
        holder = np.searchsorted(stretch_first, first, side="right") - 1
        stretch = s.hold_end[stretch_last[holder]] - s.times[stretch_first[holder]]
        cut |= stretch < for_s - FOR_TOLERANCE_S
    if s.abort_time is not None:
        cut |= (intervals[:, 0] <= s.abort_time) & (intervals[:, 1] >= s.abort_time)
    return intervals, cut


def _observed(spec: RangeCheck, s: Any, d: np.ndarray, limits: Limits) -> tuple[Any, float | None]:
    """(observed value(s), worst level in distance terms) — see the module doc."""
    nan = np.isnan(s.values)
    high = np.where(nan, np.inf, s.values)  # NaN is beyond every limit, on both sides
    low = np.where(nan, np.inf, -s.values)
    args = (s.judged, s.times, s.hold_end, s.continuous, spec.for_)
    top = held_level(high, *args) if spec.max is not None else None
    bottom = held_level(low, *args) if spec.min is not None else None
    # One-sided, the distance is the value shifted by the limit: subtracting a constant is
    # monotonic in IEEE arithmetic too, so the level follows exactly without another pass.
    if spec.min is None:
        level = None if top is None else top - spec.max
    elif spec.max is None:
        level = None if bottom is None else bottom + spec.min  # bottom is -(lowest level)
    else:
        level = held_level(d, *args)
    bottom = -bottom if bottom is not None else None
    if spec.min is not None and spec.max is not None:
        observed: Any = None if level is None else {"min": bottom, "max": top}
    else:
        observed = top if spec.max is not None else bottom
    return observed, level


def _longest(short: np.ndarray, s: Any, limits: Limits) -> dict[str, float]:
    """The longest violation shorter than ``for:``: start, duration and its worst value."""
    i = int(np.argmax(short[:, 1] - short[:, 0]))
    t0, t1 = float(short[i, 0]), float(short[i, 1])
    inside = s.judged & (s.times >= t0) & (s.times < t1) if t1 > t0 else s.times == t0
    values = s.values[inside & s.judged]
    worst = values[int(np.argmax(limits.distance(values)))] if values.size else float("nan")
    return {"start": t0, "duration_s": t1 - t0, "worst": float(worst)}


def _seen_text(observed: Any, spec: RangeCheck, unit: str, for_s: float | None) -> str:
    held = f" (held for {fmt_s(for_s)})" if for_s else ""
    if observed is None:
        if for_s:
            return f"no judged stretch lasted for {fmt_s(for_s)}"
        return "only NaN values"
    if isinstance(observed, dict):
        return f"observed min {fmt(observed['min'], unit)}, max {fmt(observed['max'], unit)}{held}"
    side = "max" if spec.max is not None else "min"
    return f"observed {side} {fmt(observed, unit)}{held}"


# -- live ------------------------------------------------------------------------------------------


class RangeRule(LiveRule):
    """Frame by frame as :func:`evaluate` judges: a violation opens at the first judged sample
    outside the limits and lasts while the following samples are judged and outside; the last
    value holds between samples. The rule breaches when the violation has lasted ``for`` (at
    once without ``for:``), at the first frame or tick that shows it: a sample (its time minus
    the opening time ≥ ``for``), a tick (time passing while the value holds: a signal that stops
    arriving mid-violation still breaches), or — when the ``during:`` window closes after the
    violation lasted ``for`` — the first frame or tick at or after that step change.

    Why not at the step change itself: offline, a value holds until the window's end only if the
    log goes on that long; a log whose last frame comes before the step change cuts the
    violation short (inconclusive), so only a frame at or after the change proves it. A
    violation the data cuts short never breaches."""

    def __init__(self, spec: RangeCheck, dbcs: Any) -> None:
        super().__init__(spec)
        self.range = spec
        self.limits = spec.limits
        self.message, _, self.signal = spec.signal.partition(".")
        self.messages = {self.message}
        self.signals = [spec.signal, *(spec.when.signals if spec.when else [])]
        self.unit = dbcs.signal(spec.signal).signal.unit or ""
        self.since: float | None = None  # when the open violation started
        self.worst = float("nan")
        # (start, window end) of a violation its window closed after it lasted `for`: a breach
        # as soon as any frame or tick shows the log went on to the window's end
        self.closed: tuple[float, float] | None = None

    def enter_step(self, name: str, t: float) -> Breach | None:
        was_in = self.in_scope
        super().enter_step(name, t)
        if was_in and not self.in_scope and self.since is not None:
            since, self.since = self.since, None  # the window closes the violation here
            if self.range.for_ and t - since >= self.range.for_ - 1e-9 and self.closed is None:
                self.closed = (since, t)
        return None

    def on_tick(self, t: float) -> Breach | None:
        if self.closed is not None:
            return self._closed_breach(t)
        # Time passes without a sample: the last value holds (offline it holds until the next
        # sample or the end of the log), so a violation that has lasted `for` by now counts
        # even if the signal's next frame never comes.
        for_s = self.range.for_
        if self.since is not None and for_s and t - self.since >= for_s - 1e-9:
            return self._breach(t, self.since)
        return None

    def on_frame(self, message, frame, decoded, latest) -> Breach | None:  # type: ignore[override]
        t = float(frame.timestamp)
        if self.closed is not None:
            return self._closed_breach(t)
        if decoded is None or self.signal not in decoded:
            return None
        value = float(decoded[self.signal])
        judged = self.in_scope
        if judged and self.range.when is not None:
            judged = bool(self.range.when.evaluate(latest))
        if self.since is not None and t - self.since >= (self.range.for_ or 0.0) - 1e-9:
            return self._breach(t, self.since)  # the held value was outside until now
        if not (judged and self.limits.outside(value)):
            self.since = None
            return None
        if self.since is None:
            self.since, self.worst = t, value
        elif self.limits.distance(value) > self.limits.distance(self.worst):
            self.worst = value
        if not self.range.for_:
            return self._breach(t, t)
        return None

    def _closed_breach(self, t: float) -> Breach:
        assert self.closed is not None
        since, end = self.closed
        self.closed = None
        return self._breach(t, since, end)

    def _breach(self, t: float, since: float, end: float | None = None) -> Breach:
        """A breach at ``t`` of the violation from ``since`` (lasting until ``end``, else ``t``)."""
        value = self.worst
        if value != value:
            beyond = "not a number"
        elif self.range.max is not None and value > self.range.max:
            beyond = f"beyond max {self.range.max:g}"
        else:
            beyond = f"beyond min {self.range.min:g}"
        lasted = f" for {(t if end is None else end) - since:.3f} s" if self.range.for_ else ""
        return Breach(
            self.spec.name, t, f"{self.range.signal} = {value:g} {self.unit} {beyond}{lasted}"
        )


KIND = register(
    CheckKind("range", RangeCheck, evaluate, key=None, live=RangeRule, stream=RangeStream)
)
