"""``timeout``: no gap in a message's frames is longer than ``max_gap``.

Gaps include the start — the first step's start if there are step events, else the first frame of
the log — to the message's first frame, and its last frame to the end of the log (the last frame
of any message): a message that stops, or never comes, is a timeout. With ``during:``, each step
window is judged the same way from its start to its end.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from ..summary import CheckResult
from .context import EvalContext, NotJudgeable, Windows
from .limits import Limits
from .live import Breach, LiveRule
from .registry import CheckKind, register
from .results import fmt_s, make_result
from .spec import CheckSpec, Duration
from .streaming import Evidence, one_batch


class TimeoutCheck(CheckSpec):
    """No gap between frames of ``timeout`` (a message) is longer than ``max_gap``."""

    kind: ClassVar[str] = "timeout"
    timeout: str = Field(description="Message name")
    max_gap: Duration

    def references(self) -> list[tuple[str, str, str]]:
        return [("timeout", "message", self.timeout)]


class TimeoutStream:
    """The check batch by batch (:mod:`bench.checks.streaming`): each window's last edge (its
    start, then its last frame) is carried; a window's closing gap is added as soon as a frame
    beyond it shows that no frame can still fall in it, so gaps stay in time order."""

    def __init__(self, spec: TimeoutCheck, ctx: EvalContext) -> None:
        ctx.message(spec.timeout)
        windows = ctx.during(spec.during)
        if windows is None:
            if not ctx.has_frames:
                raise NotJudgeable("the log holds no frames")
            start = min(s.start for s in ctx.steps) if ctx.steps else ctx.log_start
            windows = Windows.of([(start, max(ctx.log_end, start))])
        self.spec, self.windows = spec, windows
        self.edges = [float(a) for a in windows.starts]  # each window's last edge so far
        self.closed = 0  # windows before this one have their closing gap
        self.frames = self.count = 0
        self.longest = -np.inf
        self.evidence = Evidence()
        self.limits = Limits(max=spec.max_gap)

    def _gaps(self, starts: np.ndarray, ends: np.ndarray) -> None:
        if not starts.size:
            return
        gaps = ends - starts
        self.longest = max(self.longest, float(gaps.max()))
        bad = self.limits.outside(gaps)
        self.count += int(np.count_nonzero(bad))
        self.evidence.add(starts[bad], ends[bad])

    def feed(self, ctx: EvalContext) -> None:
        times = ctx.frame_times(self.spec.timeout)
        self.frames += int(times.size)
        if not times.size:
            return
        newest = float(times[-1])
        for w in range(self.closed, len(self.windows)):  # one slice per window, not per frame
            a, b = float(self.windows.starts[w]), float(self.windows.ends[w])
            inside = times[(times >= a) & (times <= b)]
            if inside.size:
                edges = np.concatenate(([self.edges[w]], inside))
                self._gaps(edges[:-1], edges[1:])
                self.edges[w] = float(inside[-1])
            if newest > b and w == self.closed:  # no later frame can fall in this window
                self._close(w)

    def _close(self, w: int) -> None:
        end = float(self.windows.ends[w])
        self._gaps(np.array([self.edges[w]]), np.array([end]))
        self.closed = w + 1

    def finish(self, ctx: EvalContext) -> CheckResult:
        for w in range(self.closed, len(self.windows)):
            self._close(w)
        spec, count, longest, windows = self.spec, self.count, self.longest, self.windows
        verdict = "fail" if count else "pass"
        message = (
            f"longest gap {fmt_s(longest)} against max gap {fmt_s(spec.max_gap)}: "
            f"{count} timeout(s) over {self.frames} frame(s)"
        )
        evidence = self.evidence.windows if count else [[windows.starts[0], windows.ends[-1]]]
        return make_result(
            spec,
            verdict,
            observed=longest,
            limit={"max_gap": spec.max_gap},
            margin=spec.max_gap - longest,
            unit="s",
            evidence=evidence,
            evidence_total=self.evidence.total,
            message=message,
            signals=[],
            details={"timeouts": count, "frames": self.frames},
            judged=(longest, self.limits),
        )


evaluate = one_batch(TimeoutStream)


class TimeoutRule(LiveRule):
    """Live: armed at the run's start (or, with ``during:``, at the start of each of its steps);
    breaches on the first tick or frame at which the time since the message's last frame — or
    since arming, if none came after it — exceeds ``max_gap`` (with the limit's slack)."""

    def __init__(self, spec: TimeoutCheck, dbcs: Any) -> None:
        super().__init__(spec)
        self.timeout = spec
        self.limits = Limits(max=spec.max_gap)
        self.messages = {spec.timeout}
        self.armed_at: float | None = None
        self.last_seen = math.nan

    def start(self, t: float) -> None:
        if not self.spec.during:
            self.armed_at = t

    def enter_step(self, name: str, t: float) -> Breach | None:
        breach = self.on_tick(t) if self.armed_at is not None else None
        super().enter_step(name, t)
        if self.spec.during:
            self.armed_at = t if self.in_scope else None
        return breach

    def on_frame(self, message, frame, decoded, latest) -> Breach | None:  # type: ignore[override]
        t = float(frame.timestamp)
        breach = self.on_tick(t)
        self.last_seen = t
        return breach

    def on_tick(self, t: float) -> Breach | None:
        if self.armed_at is None:
            return None
        since = self.last_seen
        reference = self.armed_at if math.isnan(since) or since < self.armed_at else since
        if self.limits.outside(t - reference):
            return Breach(
                self.spec.name,
                t,
                f"{self.timeout.timeout} not received for {t - reference:.3f} s "
                f"(max_gap {self.timeout.max_gap:g} s)",
            )
        return None


def validate(spec: TimeoutCheck, dbcs: Any) -> list[tuple[str, str]]:
    """A timeout watches a cyclic message: an event message is silent by design."""
    from .cycle_time import not_cyclic

    why = not_cyclic(dbcs.message(spec.timeout))
    return [("timeout", f"{spec.timeout} {why}: a timeout needs a cyclic message")] if why else []


KIND = register(
    CheckKind(
        "timeout",
        TimeoutCheck,
        evaluate,
        key="timeout",
        live=TimeoutRule,
        validate=validate,
        stream=TimeoutStream,
    )
)
