"""Building check results, and the one place that guarantees what a verdict promises.

Every kind builds its :class:`~bench.summary.CheckResult` with :func:`make_result`, and every
result leaves :func:`bench.checks.evaluate_check` through :func:`enforce_promise`. Together they
make sure that, whatever a kind computes:

* a ``pass`` or ``marginal`` has a margin ≥ 0 or none (a margin that is negative only by the
  floating-point :func:`~bench.checks.limits.slack` of its limit is reported as 0);
* the value it rests on (``judged=(value, Limits)``) is inside its limits;
* nothing in the result is NaN or infinite (summary.json is strict JSON): such values become
  ``None`` (``null``).

A result that would break the first two is turned into ``error`` naming the contradiction — a
bug in a kind then shows as an error a reviewer sees, never as a false pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..summary import CheckResult, Verdict
from .limits import Limits

if TYPE_CHECKING:
    from .spec import CheckSpec

MAX_EVIDENCE = 20
"""Evidence windows kept per check (the first ones in time); ``details`` keeps the total."""

PASSING = ("pass", "marginal")


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
    judged: tuple[Any, Limits] | None = None,
    evidence_total: int | None = None,
) -> CheckResult:
    """One result. ``judged``: the value the verdict rests on and its limits (a number or a
    ``{"min", "max"}`` dict): a passing verdict with that value outside them becomes ``error``.
    ``evidence``: ``[[t_start, t_end], …]`` seconds, the first :data:`MAX_EVIDENCE` kept;
    ``evidence_total``: how many there were, when ``evidence`` holds only the first ones
    (a check judged batch by batch keeps no more)."""
    array = np.asarray(evidence, dtype=float).reshape(-1, 2)
    details = dict(details or {})
    total = max(len(array), evidence_total or 0)
    if total > MAX_EVIDENCE:  # cap before leaving numpy: a failing log has millions
        details.setdefault("evidence_total", total)
        array = array[:MAX_EVIDENCE]
    windows = [(a, b) for a, b in array.tolist()]
    if signals is None:
        signals = [name for field, kind, name in spec.references() if kind == "signal"]
    result = CheckResult(
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
    if judged is not None and verdict in PASSING:
        value, limits = judged
        if value is not None and not limits.holds(value):
            return _broken(result, f"observed {value!r} is outside {limits.format(unit)}")
    return result


def enforce_promise(result: CheckResult) -> CheckResult:
    """Make ``result`` JSON-safe and hold it to "pass/marginal ⇒ margin ≥ 0" (see module doc)."""
    result = sanitize(result)
    if result.verdict in PASSING and result.margin is not None and result.margin < 0:
        if result.margin >= -_margin_slack(result):
            result.margin = 0.0
        else:
            return _broken(result, f"margin {result.margin:g} is negative")
    return result


def _margin_slack(result: CheckResult) -> float:
    """Floating-point slack for a margin: that of the largest limit value in ``limit``."""
    numbers = [abs(v) for v in _numbers(result.limit)] or [1.0]
    return 1e-9 * max(1.0, *numbers)


def _numbers(value: Any) -> list[float]:
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return [float(value)]
    return []


def _broken(result: CheckResult, why: str) -> CheckResult:
    result.details = {**result.details, "refused_verdict": result.verdict}
    result.verdict = "error"
    result.message = (
        f"internal contradiction, verdict {result.details['refused_verdict']} refused: {why} "
        f"({result.message})"
    )
    return result


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to None (summary.json forbids NaN)."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_clean(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def sanitize(result: CheckResult) -> CheckResult:
    """NaN/inf anywhere in a result become None; evidence windows with a non-finite end go."""
    result.observed = _clean(result.observed)
    result.limit = _clean(result.limit)
    result.details = _clean(result.details)
    margin = _clean(result.margin)
    # + 0.0 turns -0.0 into 0.0: "margin -0" on a check exactly at its limit reads as a breach
    result.margin = float(margin) + 0.0 if margin is not None else None
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
