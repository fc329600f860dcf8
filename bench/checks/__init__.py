"""Checks: one module per kind (plan model, vectorized evaluation, live rule), a registry by kind.

:func:`evaluate_check` runs one spec against an :class:`~bench.checks.context.EvalContext` and
returns a :class:`~bench.summary.CheckResult`; it never raises. Inside a kind, raise
:class:`NotJudgeable` for "nothing to judge" (verdict ``inconclusive``) and :class:`CheckError` for
"cannot be evaluated as written" (verdict ``error``); any other exception is also turned into
``error`` with its reason, so one broken check never hides the others. Every result passes
:func:`~bench.checks.results.enforce_promise`: a pass or marginal never has a negative margin or
an observed value outside its limits, and nothing in it is NaN.
"""

from __future__ import annotations

# bench.plan first: its models import the kinds (bench.plan.checks), which import bench.checks
# submodules; importing the package in this order keeps that cycle harmless from either end.
from .. import plan as _plan  # noqa: F401  isort: skip
from ..summary import CheckResult
from .context import CheckError, EvalContext, NotJudgeable
from .kinds import KINDS
from .limits import Limits
from .registry import CheckKind, register
from .results import (
    MAX_EVIDENCE,
    count_verdict,
    enforce_promise,
    fmt,
    fmt_s,
    make_result,
    sanitize,
)
from .spec import CheckSpec

REGISTRY = KINDS  # the old name


def evaluate_check(spec: CheckSpec, ctx: EvalContext) -> CheckResult:
    """Evaluate one check; never raises (an exception becomes verdict ``error``)."""
    kind = KINDS.get(spec.kind)
    try:
        if kind is None:
            raise CheckError(f"no evaluator for check kind {spec.kind!r}")
        for _, condition in spec.conditions():
            condition.bind(ctx.dbcs)  # choice names → codes; idempotent
        result = kind.evaluate(spec, ctx)
    except NotJudgeable as exc:
        result = make_result(spec, "inconclusive", message=str(exc))
    except CheckError as exc:
        result = make_result(spec, "error", message=str(exc))
    except Exception as exc:  # a bug or a surprise in the data: report it, keep going
        result = make_result(spec, "error", message=f"{type(exc).__name__}: {exc}")
    result.abort = spec.abort
    return enforce_promise(result)


__all__ = [
    "KINDS",
    "MAX_EVIDENCE",
    "REGISTRY",
    "CheckError",
    "CheckKind",
    "CheckResult",
    "CheckSpec",
    "EvalContext",
    "Limits",
    "NotJudgeable",
    "count_verdict",
    "enforce_promise",
    "evaluate_check",
    "fmt",
    "fmt_s",
    "make_result",
    "register",
    "sanitize",
]
