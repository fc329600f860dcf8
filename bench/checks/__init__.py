"""Checks: one module per kind, registered by kind; :func:`evaluate_check` runs one spec.

A check function takes its plan spec (:mod:`bench.plan.checks`) and an
:class:`~bench.checks.context.EvalContext` and returns a :class:`~bench.summary.CheckResult`.
Inside a check, raise :class:`NotJudgeable` for "nothing to judge" (verdict ``inconclusive``) and
:class:`CheckError` for "cannot be evaluated as written" (verdict ``error``); any other exception
is also turned into ``error`` with its reason, so one broken check never hides the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..plan.checks import CheckSpec
from ..summary import CheckResult, Verdict
from .context import CheckError, EvalContext, NotJudgeable

CheckFunction = Callable[[Any, EvalContext], CheckResult]
REGISTRY: dict[str, CheckFunction] = {}

MAX_EVIDENCE = 20
"""Evidence windows kept per check (the first ones in time); ``details`` keeps the total."""


def register(kind: str) -> Callable[[CheckFunction], CheckFunction]:
    def decorate(function: CheckFunction) -> CheckFunction:
        REGISTRY[kind] = function
        return function

    return decorate


def evaluate_check(spec: CheckSpec, ctx: EvalContext) -> CheckResult:
    """Evaluate one check; never raises (an exception becomes verdict ``error``)."""
    function = REGISTRY.get(spec.kind)
    try:
        if function is None:
            raise CheckError(f"no evaluator for check kind {spec.kind!r}")
        for _, condition in spec.conditions():
            condition.bind(ctx.dbcs)  # choice names → codes; idempotent
        result = function(spec, ctx)
    except NotJudgeable as exc:
        result = make_result(spec, "inconclusive", message=str(exc))
    except CheckError as exc:
        result = make_result(spec, "error", message=str(exc))
    except Exception as exc:  # a bug or a surprise in the data: report it, keep going
        result = make_result(spec, "error", message=f"{type(exc).__name__}: {exc}")
    result.abort = spec.abort
    return sanitize(result)


# -- building results ------------------------------------------------------------------------------


def make_result(
    spec: CheckSpec,
    verdict: Verdict,
    *,
    observed: Any = None,
    limit: Any = None,
    margin: float | None = None,
    unit: str = "",
    evidence: Iterable[Iterable[float]] | np.ndarray = (),
    message: str = "",
    signals: list[str] | None = None,
    details: dict[str, Any] | None = None,
) -> CheckResult:
    array = np.asarray(evidence, dtype=float).reshape(-1, 2)
    details = dict(details or {})
    if len(array) > MAX_EVIDENCE:  # cap before leaving numpy: a failing log has millions
        details.setdefault("evidence_total", len(array))
        array = array[:MAX_EVIDENCE]
    windows = [(a, b) for a, b in array.tolist()]
    if signals is None:
        signals = [name for field, kind, name in spec.references() if kind == "signal"]
    return CheckResult(
        name=spec.name,
        kind=spec.kind,
        verdict=verdict,
        observed=observed,
        limit=limit,
        margin=margin,
        unit=unit,
        evidence=windows,
        message=message,
        signals=signals,
        details=details,
    )


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to None (summary.json forbids NaN)."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def sanitize(result: CheckResult) -> CheckResult:
    result.observed = _clean(result.observed)
    result.limit = _clean(result.limit)
    result.details = _clean(result.details)
    margin = _clean(result.margin)
    result.margin = float(margin) if margin is not None else None
    result.evidence = [
        (a, b)
        for a, b in ((_clean(float(a)), _clean(float(b))) for a, b in result.evidence)
        if a is not None and b is not None
    ]
    return result


def fmt(value: float | None, unit: str = "") -> str:
    """``57.3 degC``: six significant digits, the unit when there is one."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NaN"
    text = f"{float(value):.6g}"
    return f"{text} {unit}" if unit else text


def fmt_s(seconds: float) -> str:
    """Durations in messages: ``12.5 ms`` under a second, ``3.2 s`` above."""
    if abs(seconds) < 1:
        return f"{seconds * 1000:.4g} ms"
    return f"{seconds:.4g} s"


def count_verdict(errors: int, allowed: int) -> Verdict:
    """Counting checks: over the allowance fails; errors within it are marginal."""
    if errors > allowed:
        return "fail"
    return "marginal" if errors else "pass"


# Register every kind (imported for their @register side effect; after the helpers they use).
from . import (  # noqa: E402
    bus,
    counter,
    crc,
    cycle_time,
    range,
    rate,
    reaches,
    statistic,
    timeout,
)

__all__ = [
    "MAX_EVIDENCE",
    "REGISTRY",
    "CheckError",
    "EvalContext",
    "NotJudgeable",
    "bus",
    "counter",
    "crc",
    "cycle_time",
    "evaluate_check",
    "make_result",
    "range",
    "rate",
    "reaches",
    "register",
    "statistic",
    "timeout",
]
