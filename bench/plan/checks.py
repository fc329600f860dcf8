"""The plan forms of every check kind: what a plan may say under ``checks:``.

Each model is one kind; the kind is recognised by its distinguishing key (``cycle_time:``,
``counter:``, ``reaches:`` …), a plain ``signal:`` with limits being a ``range`` check. These models
only describe and validate a check; evaluating one lives in ``bench/checks/<kind>.py``.

Limits follow OpenHTF's marginal idea: a value inside ``[min, max]`` but outside
``[marginal_min, marginal_max]`` is *marginal* — a pass that is close to failing.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    PlainValidator,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from ..durations import format_duration, parse_duration
from .conditions import Condition, ConditionError, parse_condition

CHECK_KEYS = ("cycle_time", "timeout", "counter", "crc", "bus", "reaches", "max_rate", "statistic")


_DURATION_PATTERN = (
    r"^\s*(\d+(\.\d*)?|\.\d+)\s*(ms|s|sec|min|m|h)?(\s*(\d+(\.\d*)?)\s*(ms|s|sec|min|m|h))*\s*$"
)

Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": _DURATION_PATTERN},
            ],
            "description": "Seconds, or a duration like 100ms, 2s, 25min, 2h.",
        }
    ),
]
"""A duration in seconds; plans write ``100ms``, ``2s``, ``25min`` or ``2h``."""


def _to_condition(value: Any) -> Condition:
    return value if isinstance(value, Condition) else parse_condition(str(value))


ConditionText = Annotated[
    Condition,
    # Plain, not Before: a Condition is the parsed tree, pydantic has no schema of its own for it.
    PlainValidator(_to_condition),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "description": "A condition, e.g. BMS_PackStatus.SOC < 80"}),
]
"""A condition in the whitelisted grammar of :mod:`bench.plan.conditions`."""


class CheckSpec(BaseModel):
    """Fields every check has."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, arbitrary_types_allowed=True)
    kind: ClassVar[str] = ""

    name: str = Field(description="Shown in reports and JUnit; unique within the plan.")
    description: str | None = None
    abort: bool = Field(
        False, description="Also evaluate live while running; a breach aborts the run (exit 3)."
    )
    during: list[str] | None = Field(
        None, description="Only judge samples inside these steps (needs step events)."
    )

    def references(self) -> list[tuple[str, str, str]]:
        """(field, 'signal' | 'message', name) for every DBC name this check uses."""
        return []

    def conditions(self) -> list[tuple[str, Condition]]:
        """(field, condition) for every condition this check holds."""
        return []


class _Limits(BaseModel):
    min: float | None = None
    max: float | None = None
    marginal_min: float | None = None
    marginal_max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> _Limits:
        check_limits(self.min, self.max, self.marginal_min, self.marginal_max)
        return self

    def limit_dict(self) -> dict[str, float]:
        return {
            k: v
            for k, v in {
                "min": self.min,
                "max": self.max,
                "marginal_min": self.marginal_min,
                "marginal_max": self.marginal_max,
            }.items()
            if v is not None
        }


def check_limits(
    low: float | None,
    high: float | None,
    marginal_low: float | None,
    marginal_high: float | None,
) -> None:
    """Reject impossible limits: min > max, a marginal band outside the limits, NaN."""
    for label, value in (("min", low), ("max", high), ("marginal_min", marginal_low),
                         ("marginal_max", marginal_high)):  # fmt: skip
        if value is not None and math.isnan(value):
            raise ValueError(f"{label} is not a number")
    if low is not None and high is not None and low > high:
        raise ValueError(f"min ({low:g}) is greater than max ({high:g})")
    if marginal_low is not None:
        if low is None:
            raise ValueError("marginal_min needs min")
        if marginal_low < low:
            raise ValueError(f"marginal_min ({marginal_low:g}) is below min ({low:g})")
    if marginal_high is not None:
        if high is None:
            raise ValueError("marginal_max needs max")
        if marginal_high > high:
            raise ValueError(f"marginal_max ({marginal_high:g}) is above max ({high:g})")
    if marginal_low is not None and marginal_high is not None and marginal_low > marginal_high:
        raise ValueError(
            f"marginal_min ({marginal_low:g}) is greater than marginal_max ({marginal_high:g})"
        )


class _SignalCheck(CheckSpec):
    signal: str = Field(description="Message.Signal")
    when: ConditionText | None = Field(
        None, description="Only judge samples where this condition holds (as-of joined signals)."
    )

    def references(self) -> list[tuple[str, str, str]]:
        return [("signal", "signal", self.signal)]

    def conditions(self) -> list[tuple[str, Condition]]:
        return [("when", self.when)] if self.when is not None else []


class RangeCheck(_SignalCheck, _Limits):
    """``signal`` stays within ``min``/``max``; ``for:`` a violation must last that long."""

    kind: ClassVar[str] = "range"
    for_: Duration | None = Field(None, alias="for", description="Debounce: 2s, 500ms …")

    @model_validator(mode="after")
    def _needs_a_limit(self) -> RangeCheck:
        if self.min is None and self.max is None:
            raise ValueError("a range check needs min and/or max")
        return self


class ReachesCheck(CheckSpec):
    """A condition becomes true within ``within`` after step or event ``after`` (default: start)."""

    kind: ClassVar[str] = "reaches"
    signal: str | None = Field(None, description="With a signal, reaches may be '>= 0'.")
    reaches: ConditionText
    within: Duration
    after: str | None = Field(None, description="A step name (its start) or an event name.")

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

    def references(self) -> list[tuple[str, str, str]]:
        return [("signal", "signal", self.signal)] if self.signal else []

    def conditions(self) -> list[tuple[str, Condition]]:
        return [("reaches", self.reaches)]


class RateCheck(_SignalCheck):
    """The rate of change of ``signal`` stays below ``max_rate`` (units per second, absolute)."""

    kind: ClassVar[str] = "rate"
    max_rate: float = Field(gt=0)
    marginal_max_rate: float | None = Field(None, gt=0)
    over: Duration | None = Field(
        None, description="Slope over this window (default: sample to sample)."
    )

    @model_validator(mode="after")
    def _marginal_below(self) -> RateCheck:
        if self.marginal_max_rate is not None and self.marginal_max_rate > self.max_rate:
            raise ValueError(
                f"marginal_max_rate ({self.marginal_max_rate:g}) is above max_rate "
                f"({self.max_rate:g})"
            )
        return self


class StatisticCheck(_SignalCheck, _Limits):
    """A statistic of ``signal`` over the judged samples lies within limits."""

    kind: ClassVar[str] = "statistic"
    statistic: Literal["mean", "min", "max", "median", "std", "percentile"]
    percentile: float | None = Field(None, ge=0, le=100)

    @model_validator(mode="after")
    def _percentile_given(self) -> StatisticCheck:
        if (self.statistic == "percentile") != (self.percentile is not None):
            raise ValueError("percentile (0-100) goes with statistic: percentile, and only there")
        if self.min is None and self.max is None:
            raise ValueError("a statistic check needs min and/or max")
        return self


class Tolerance(BaseModel):
    """``10%`` (relative to the period) or ``2ms`` (absolute)."""

    relative: float | None = None
    absolute_s: float | None = None

    def bounds(self, period_s: float) -> tuple[float, float]:
        delta = self.absolute_s if self.absolute_s is not None else period_s * (self.relative or 0)
        return period_s - delta, period_s + delta

    @classmethod
    def parse(cls, value: Any) -> Tolerance:
        text = str(value).strip()
        if text.endswith("%"):
            fraction = float(text[:-1]) / 100
            if not 0 <= fraction <= 1:
                raise ValueError(f"tolerance must be between 0% and 100%, got {text}")
            return cls(relative=fraction)
        return cls(absolute_s=parse_duration(text))


def _to_tolerance(value: Any) -> Any:
    return value if isinstance(value, Tolerance | dict) else Tolerance.parse(value)


def _tolerance_text(value: Tolerance) -> str:
    if value.absolute_s is not None:
        return format_duration(value.absolute_s)
    return f"{(value.relative or 0) * 100:g}%"


ToleranceText = Annotated[
    Tolerance,
    BeforeValidator(_to_tolerance),
    PlainSerializer(_tolerance_text, return_type=str),
    WithJsonSchema({"type": "string", "description": "10% of the period, or 2ms"}),
]


class CycleTimeCheck(CheckSpec):
    """Gaps between frames of ``cycle_time`` (a message) stay within ``tolerance`` of its period."""

    kind: ClassVar[str] = "cycle_time"
    cycle_time: str = Field(description="Message name")
    period: Duration | None = Field(None, description="Default: the DBC's GenMsgCycleTime.")
    tolerance: ToleranceText = Field(default_factory=lambda: Tolerance(relative=0.1))
    max_violations: int = Field(0, ge=0, description="Gaps outside tolerance allowed.")

    def references(self) -> list[tuple[str, str, str]]:
        return [("cycle_time", "message", self.cycle_time)]


class TimeoutCheck(CheckSpec):
    """No gap between frames of ``timeout`` (a message) is longer than ``max_gap``."""

    kind: ClassVar[str] = "timeout"
    timeout: str = Field(description="Message name")
    max_gap: Duration

    def references(self) -> list[tuple[str, str, str]]:
        return [("timeout", "message", self.timeout)]


class CounterCheck(CheckSpec):
    """``counter`` (Message.Signal) increments by one per frame, modulo its range."""

    kind: ClassVar[str] = "counter"
    counter: str = Field(description="Message.Signal")
    max_errors: int = Field(0, ge=0)

    def references(self) -> list[tuple[str, str, str]]:
        return [("counter", "signal", self.counter)]


class CrcCheck(CheckSpec):
    """Every frame of ``crc`` (a message) carries a correct CRC8 (see bench.e2e)."""

    kind: ClassVar[str] = "crc"
    crc: str = Field(description="Message name")
    max_errors: int = Field(0, ge=0)

    def references(self) -> list[tuple[str, str, str]]:
        return [("crc", "message", self.crc)]


class BusLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_error_frames: int = Field(0, ge=0)
    max_unknown_ids: int = Field(0, ge=0, description="Frames whose id is in no DBC.")
    max_dlc_mismatches: int = Field(0, ge=0, description="Frames shorter than their message.")


class BusCheck(CheckSpec):
    """Error frames, unknown ids and DLC mismatches stay within limits."""

    kind: ClassVar[str] = "bus"
    bus: BusLimits = Field(default_factory=BusLimits)


CHECK_MODELS: dict[str, type[CheckSpec]] = {
    model.kind: model
    for model in (
        RangeCheck,
        ReachesCheck,
        RateCheck,
        StatisticCheck,
        CycleTimeCheck,
        TimeoutCheck,
        CounterCheck,
        CrcCheck,
        BusCheck,
    )
}


def check_kind(data: Any) -> str:
    """The kind a plan's check entry is, from its distinguishing key (``range`` by default)."""
    if isinstance(data, CheckSpec):
        return data.kind
    if isinstance(data, dict):
        for key in CHECK_KEYS:
            if key in data:
                return "rate" if key == "max_rate" else key
    return "range"


AnyCheck = Annotated[
    Annotated[RangeCheck, Tag("range")]
    | Annotated[ReachesCheck, Tag("reaches")]
    | Annotated[RateCheck, Tag("rate")]
    | Annotated[StatisticCheck, Tag("statistic")]
    | Annotated[CycleTimeCheck, Tag("cycle_time")]
    | Annotated[TimeoutCheck, Tag("timeout")]
    | Annotated[CounterCheck, Tag("counter")]
    | Annotated[CrcCheck, Tag("crc")]
    | Annotated[BusCheck, Tag("bus")],
    Discriminator(check_kind),
]
