"""What every check kind's plan form shares: the base model, durations, conditions, limits,
and the ``after:``/``during:`` step references.

Each kind's own model lives in its module (``bench/checks/<kind>.py``) next to its evaluation;
:mod:`bench.plan.checks` assembles them into the plan's ``checks:`` union from the registry.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    model_validator,
)

from ..durations import parse_duration
from ..plan.conditions import Condition, parse_condition
from .limits import Limits, check_limits

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
        None,
        description="Only judge samples inside these steps (exact names, else globs like wot*).",
    )

    def references(self) -> list[tuple[str, str, str]]:
        """(field, 'signal' | 'message', name) for every DBC name this check uses."""
        return []

    def conditions(self) -> list[tuple[str, Condition]]:
        """(field, condition) for every condition this check holds."""
        return []


class LimitFields(BaseModel):
    """``min``/``max``/``marginal_min``/``marginal_max`` of a plan, as one :class:`Limits`."""

    min: float | None = None
    max: float | None = None
    marginal_min: float | None = None
    marginal_max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> LimitFields:
        check_limits(self.min, self.max, self.marginal_min, self.marginal_max)
        return self

    @property
    def limits(self) -> Limits:
        return Limits(self.min, self.max, self.marginal_min, self.marginal_max)

    def limit_dict(self) -> dict[str, float]:
        return self.limits.as_dict()


class SignalCheckSpec(CheckSpec):
    """A check judging samples of one signal, optionally only where ``when:`` holds."""

    signal: str = Field(description="Message.Signal")
    when: ConditionText | None = Field(
        None, description="Only judge samples where this condition holds (as-of joined signals)."
    )

    def references(self) -> list[tuple[str, str, str]]:
        return [("signal", "signal", self.signal)]

    def conditions(self) -> list[tuple[str, Condition]]:
        return [("when", self.when)] if self.when is not None else []


# -- step references -------------------------------------------------------------------------------


def step_matches(pattern: str, name: str) -> bool:
    """``during:``/``after:`` step matching: the exact name, else an fnmatch glob (``wot*``).

    Exact first because ``repeat:`` names steps ``wot[3]`` and ``[3]`` is a character class in
    fnmatch: ``during: [wot[3]]`` must mean that step, not a step named ``wot3``.
    """
    return pattern == name or (_is_glob(pattern) and fnmatch.fnmatchcase(name, pattern))


def select_steps(pattern: str, names: list[str]) -> list[str]:
    """The names ``pattern`` selects: itself if a step has that exact name, else its glob hits."""
    if pattern in names:
        return [pattern]
    if not _is_glob(pattern):
        return []
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


_CONDITION_MARK = re.compile(r"[<>=!()]|\s(and|or|not)\s|^not\s|&&|\|\|")


@dataclass(frozen=True)
class Anchor:
    """Where an ``after:`` starts the clock.

    * ``step``: the start of the first step the name (or glob) selects — ``after: warm_up``;
    * ``step_end``: the end of that step — ``after: warm_up.end``;
    * ``event``: the first recorded event of that name (``run_start``) when no step matches;
    * ``condition``: the first time the condition holds — ``after: BMS_Status.HvState == "READY"``;
    * ``log_start``: no ``after:``, the first frame of the log.
    """

    form: Literal["log_start", "step", "step_end", "condition"]
    name: str = ""
    condition: Condition | None = None

    def __str__(self) -> str:
        if self.form == "condition":
            return str(self.condition)
        if self.form == "step_end":
            return f"{self.name}.end"
        return self.name


def parse_anchor(text: str | None) -> Anchor:
    """Read an ``after:`` value. A text with a comparison, parenthesis or ``and``/``or``/``not``
    is a condition (raising :class:`~bench.plan.conditions.ConditionError` at the bad token);
    anything else names a step (``NAME`` or ``NAME.end``) or an event."""
    if text is None:
        return Anchor("log_start")
    name = str(text)  # a step name is matched exactly, spaces included (as `during:` does)
    source = name.strip()
    if _CONDITION_MARK.search(source):
        return Anchor("condition", condition=parse_condition(source))
    if name.endswith(".end") and len(name) > 4:
        return Anchor("step_end", name[:-4])
    return Anchor("step", name)
