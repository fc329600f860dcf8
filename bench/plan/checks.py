"""The plan forms of every check kind: what a plan may say under ``checks:``.

Each kind's model lives in its own module, ``bench/checks/<kind>.py``, next to its evaluation and
live rule; this module assembles the ``checks:`` union from the registry
(:data:`bench.checks.registry.KINDS`). The kind of an entry is recognised by its distinguishing key
(``cycle_time:``, ``counter:``, ``reaches:`` …), a plain ``signal:`` with limits being a ``range``
check. The names below are re-exported for the code that imported them from here.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Discriminator, Tag

from ..checks.bus import BusCheck, BusLimits
from ..checks.counter import CounterCheck
from ..checks.crc import CrcCheck
from ..checks.cycle_time import CycleTimeCheck, Tolerance, ToleranceText
from ..checks.kinds import KINDS
from ..checks.limits import Limits, check_limits
from ..checks.range import RangeCheck
from ..checks.rate import RateCheck
from ..checks.reaches import ReachesCheck
from ..checks.responds import RespondsCheck
from ..checks.spec import CheckSpec, ConditionText, Duration
from ..checks.statistic import StatisticCheck
from ..checks.timeout import TimeoutCheck

CHECK_MODELS: dict[str, type[CheckSpec]] = {name: kind.model for name, kind in KINDS.items()}
"""Plan model per kind name."""

CHECK_KEYS: tuple[str, ...] = tuple(k.key for k in KINDS.values() if k.key is not None)
"""Plan keys that identify a kind (the default kind, ``range``, has none)."""

_BY_KEY = {k.key: k.name for k in KINDS.values() if k.key is not None}
_DEFAULT = next(k.name for k in KINDS.values() if k.key is None)


def check_kind(data: Any) -> str:
    """The kind a plan's check entry is, from its distinguishing key (``range`` by default)."""
    if isinstance(data, CheckSpec):
        return data.kind
    if isinstance(data, dict):
        for key in CHECK_KEYS:
            if key in data:
                return _BY_KEY[key]
    return _DEFAULT


AnyCheck = Annotated[
    Union[tuple(Annotated[model, Tag(name)] for name, model in CHECK_MODELS.items())],  # noqa: UP007
    Discriminator(check_kind),
]
"""Any check, as the plan's ``checks:`` list holds it."""

__all__ = [
    "CHECK_KEYS",
    "CHECK_MODELS",
    "AnyCheck",
    "BusCheck",
    "BusLimits",
    "CheckSpec",
    "ConditionText",
    "CounterCheck",
    "CrcCheck",
    "CycleTimeCheck",
    "Duration",
    "Limits",
    "RangeCheck",
    "RateCheck",
    "ReachesCheck",
    "RespondsCheck",
    "StatisticCheck",
    "TimeoutCheck",
    "Tolerance",
    "ToleranceText",
    "check_kind",
    "check_limits",
]
