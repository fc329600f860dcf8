"""``bus``: error frames, frames with ids in no DBC, and frames shorter than their message (DLC
mismatches) stay within their limits. Remote frames are neither: they carry no data by design.
Evidence: the times of the first offending frames of each kind over its limit.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..summary import CheckResult
from .context import EvalContext, NotJudgeable
from .registry import CheckKind, register
from .results import MAX_EVIDENCE, make_result
from .spec import CheckSpec
from .streaming import one_batch


class BusLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_error_frames: int = Field(0, ge=0)
    max_unknown_ids: int = Field(0, ge=0, description="Frames whose id is in no DBC.")
    max_dlc_mismatches: int = Field(0, ge=0, description="Frames shorter than their message.")


class BusCheck(CheckSpec):
    """Error frames, unknown ids and DLC mismatches stay within limits."""

    kind: ClassVar[str] = "bus"
    bus: BusLimits = Field(default_factory=BusLimits)


class BusStream:
    """The check batch by batch (:mod:`bench.checks.streaming`): counts come from the decoder's
    statistics of the whole log (or, with ``during:``, are counted per batch); each kind keeps
    the times of its first offending frames, enough for the first evidence of all."""

    def __init__(self, spec: BusCheck, ctx: EvalContext) -> None:
        self.spec = spec
        self.windows = ctx.during(spec.during)
        self.limits = {
            "error_frames": spec.bus.max_error_frames,
            "unknown_ids": spec.bus.max_unknown_ids,
            "dlc_mismatches": spec.bus.max_dlc_mismatches,
        }
        self.inside = dict.fromkeys(self.limits, 0)
        self.times = {key: np.zeros(0) for key in self.limits}
        self.seen = dict.fromkeys(self.limits, 0)
        self.no_frames = False

    def feed(self, ctx: EvalContext) -> None:
        if ctx.frames is None:
            self.no_frames = True
            return
        for key in self.limits:
            times = ctx.bus_times(key)
            if self.windows is not None:
                times = times[self.windows.contains(times)]
            self.inside[key] += int(times.size)
            self.seen[key] += int(times.size)
            if self.times[key].size < MAX_EVIDENCE:
                self.times[key] = np.concatenate((self.times[key], times[:MAX_EVIDENCE]))

    def finish(self, ctx: EvalContext) -> CheckResult:
        limits = self.limits
        if ctx.frame_count == 0:
            raise NotJudgeable("the log holds no frames")
        if self.windows is None:
            observed = ctx.bus_counts()
        elif self.no_frames:  # counting inside step windows needs the frames' times
            raise NotJudgeable("the times of bus errors need the frame table")
        else:
            observed = dict(self.inside)
        over: list[str] = []
        evidence: list[np.ndarray] = []
        total = 0
        for key, allowed in limits.items():
            if observed[key] > allowed:
                over.append(f"{key.replace('_', ' ')} {observed[key]} > {allowed}")
                if not self.no_frames:  # times only where they are evidence (a clean log: none)
                    times = self.times[key][:MAX_EVIDENCE]
                    evidence.append(np.column_stack((times, times)))
                    total += self.seen[key]
        worst = min(limits[k] - observed[k] for k in limits)
        if over:
            verdict, message = "fail", "; ".join(over)
        else:
            verdict = "marginal" if any(observed.values()) else "pass"
            message = ", ".join(
                f"{key.replace('_', ' ')} {observed[key]} (allowed {limits[key]})" for key in limits
            )
        stacked = np.concatenate(evidence) if evidence else np.zeros((0, 2))
        stacked = stacked[np.argsort(stacked[:, 0], kind="stable")]
        return make_result(
            self.spec,
            verdict,  # type: ignore[arg-type]
            observed=observed,
            limit={f"max_{k}": v for k, v in limits.items()},
            margin=float(worst),
            evidence=stacked,
            evidence_total=total,
            message=message,
            signals=[],
            details={"unknown_ids": [f"0x{i:X}" for i in ctx.unknown_ids()][:50]},
        )


evaluate = one_batch(BusStream)


KIND = register(CheckKind("bus", BusCheck, evaluate, key="bus", stream=BusStream))
