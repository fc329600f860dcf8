"""Test plans: YAML data validated into models before anything is sent on a bus.

``load_plan(path)`` gives a :class:`Plan` checked against its DBCs or raises
:class:`~bench.errors.InputError` whose message is the first problem as ``file:line:column: …``;
``validate_plan(path)`` lists every problem. See docs/plan-reference.md for the format.
"""

from __future__ import annotations

from .loader import describe_plan, load, load_plan, validate_plan
from .model import (
    BusSettings,
    ChamberSpec,
    ChargeSpec,
    DriveCycleSpec,
    DriveSpec,
    FaultSpec,
    Plan,
    RampSpec,
    SafeStateFrame,
    SendSpec,
    Step,
    VehicleState,
)
from .schema import plan_json_schema

__all__ = [
    "BusSettings",
    "ChamberSpec",
    "ChargeSpec",
    "DriveCycleSpec",
    "DriveSpec",
    "FaultSpec",
    "Plan",
    "RampSpec",
    "SafeStateFrame",
    "SendSpec",
    "Step",
    "VehicleState",
    "describe_plan",
    "load",
    "load_plan",
    "plan_json_schema",
    "validate_plan",
]
