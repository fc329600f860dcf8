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

from typing import Any

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
        _bind(spec, ctx)
        result = kind.evaluate(spec, ctx)
    except Exception as exc:
        result = _failed(spec, exc)
    return _finished(spec, result)


def _bind(spec: CheckSpec, ctx: EvalContext) -> None:
    for _, condition in spec.conditions():
        condition.bind(ctx.dbcs)  # choice names → codes; idempotent


def _failed(spec: CheckSpec, exc: Exception) -> CheckResult:
    if isinstance(exc, NotJudgeable):
        return make_result(spec, "inconclusive", message=str(exc))
    if isinstance(exc, CheckError):
        return make_result(spec, "error", message=str(exc))
    # a bug or a surprise in the data: report it, keep going
    return make_result(spec, "error", message=f"{type(exc).__name__}: {exc}")


def _finished(spec: CheckSpec, result: CheckResult) -> CheckResult:
    result.abort = spec.abort
    return enforce_promise(result)


def replace_result(spec: CheckSpec, verdict: str, message: str) -> CheckResult:
    """A check's result replaced by ``verdict`` with a one-line ``message`` (no observed value):
    what the evaluation decides beside the kind, e.g. ``inconclusive`` for a message that comes
    as two streams (:mod:`bench.channels`). Marked and promise-checked as every result."""
    return _finished(spec, make_result(spec, verdict, message=message))  # type: ignore[arg-type]


class CheckStream:
    """One check judged batch by batch (:mod:`bench.checks.streaming`); never raises.

    ``CheckStream(spec, ctx)`` before the first batch (``ctx``: events and the log's span, no
    frames), :meth:`feed` with every batch, :meth:`finish` at the end — the same result as
    :func:`evaluate_check` on the whole log, which is this with one batch. ``streams`` is False
    for a kind without a reducer: judge it with :func:`evaluate_check` on the rows it reads."""

    def __init__(self, spec: CheckSpec, ctx: EvalContext) -> None:
        self.spec = spec
        self.reducer: Any = None
        self.error: Exception | None = None
        kind = KINDS.get(spec.kind)
        self.streams = kind is not None and kind.stream is not None
        if not self.streams:
            return
        try:
            _bind(spec, ctx)
            self.reducer = kind.stream(spec, ctx)  # type: ignore[union-attr]
        except Exception as exc:
            self.error = exc

    def feed(self, ctx: EvalContext) -> None:
        if self.error is None:
            try:
                self.reducer.feed(ctx)
            except Exception as exc:
                self.error = exc

    def finish(self, ctx: EvalContext) -> CheckResult:
        if self.error is not None:
            return _finished(self.spec, _failed(self.spec, self.error))
        try:
            result = self.reducer.finish(ctx)
        except Exception as exc:
            result = _failed(self.spec, exc)
        return _finished(self.spec, result)


__all__ = [
    "KINDS",
    "MAX_EVIDENCE",
    "REGISTRY",
    "CheckError",
    "CheckKind",
    "CheckResult",
    "CheckSpec",
    "CheckStream",
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
    "replace_result",
    "sanitize",
]
