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
from .results import make_result
from .spec import CheckSpec


class BusLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_error_frames: int = Field(0, ge=0)
    max_unknown_ids: int = Field(0, ge=0, description="Frames whose id is in no DBC.")
    max_dlc_mismatches: int = Field(0, ge=0, description="Frames shorter than their message.")


class BusCheck(CheckSpec):
    """Error frames, unknown ids and DLC mismatches stay within limits."""

    kind: ClassVar[str] = "bus"
    bus: BusLimits = Field(default_factory=BusLimits)


def evaluate(spec: BusCheck, ctx: EvalContext) -> CheckResult:
    windows = ctx.during(spec.during)
    if ctx.frame_count == 0:
        raise NotJudgeable("the log holds no frames")
    limits = {
        "error_frames": spec.bus.max_error_frames,
        "unknown_ids": spec.bus.max_unknown_ids,
        "dlc_mismatches": spec.bus.max_dlc_mismatches,
    }
    if windows is None:
        observed = ctx.bus_counts()
    else:  # counting inside step windows needs the frames' times
        observed = {k: int(np.count_nonzero(windows.contains(ctx.bus_times(k)))) for k in limits}
    over: list[str] = []
    evidence: list[np.ndarray] = []
    for key, allowed in limits.items():
        if observed[key] > allowed:
            over.append(f"{key.replace('_', ' ')} {observed[key]} > {allowed}")
            if ctx.frames is not None:  # times only where they are evidence (a clean log: none)
                times = ctx.bus_times(key)
                if windows is not None:
                    times = times[windows.contains(times)]
                evidence.append(np.column_stack((times, times)))
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
        spec,
        verdict,  # type: ignore[arg-type]
        observed=observed,
        limit={f"max_{k}": v for k, v in limits.items()},
        margin=float(worst),
        evidence=stacked,
        message=message,
        signals=[],
        details={"unknown_ids": [f"0x{i:X}" for i in ctx.unknown_ids()][:50]},
    )


KIND = register(CheckKind("bus", BusCheck, evaluate, key="bus"))
