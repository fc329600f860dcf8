"""The registry of check kinds: adding a kind is one module that calls :func:`register`.

A :class:`CheckKind` ties together everything about one kind: its plan model (pydantic), the key
that identifies it in a plan, its vectorized evaluation, and — where it has one — its live abort
rule. The plan's ``checks:`` union (:mod:`bench.plan.checks`), the evaluator
(:func:`bench.checks.evaluate_check`) and the live monitor (:mod:`bench.monitor`) all read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..dbc import DbcSet
    from ..summary import CheckResult
    from .context import EvalContext
    from .live import LiveRule
    from .spec import CheckSpec
    from .streaming import Reducer


@dataclass(frozen=True)
class CheckKind:
    """One check kind.

    ``key``: the plan key that makes an entry this kind (``cycle_time``, ``max_rate`` …); None
    for the default kind (``range``: a ``signal`` with limits). ``evaluate(spec, ctx)`` returns a
    :class:`~bench.summary.CheckResult` built with :func:`bench.checks.results.make_result`.
    ``live(spec, dbcs)``: a :class:`~bench.checks.live.LiveRule` judging ``abort: true`` frame by
    frame, None where the kind can only be judged on the whole log. ``validate(spec, dbcs)``:
    what ``bench validate`` must reject because evaluation could only call it ``error``, as
    ``[(field, reason), …]`` (run once the check's DBC names are known to exist).
    ``stream(spec, ctx)``: a reducer judging the log batch by batch
    (:mod:`bench.checks.streaming`); None: judged at the end on the rows it reads, kept batch by
    batch (:mod:`bench.checks.compact`).
    """

    name: str
    model: type[CheckSpec]
    evaluate: Callable[[Any, EvalContext], CheckResult]
    key: str | None = None
    live: Callable[[Any, DbcSet], LiveRule] | None = None
    validate: Callable[[Any, DbcSet], list[tuple[str, str]]] | None = None
    stream: Callable[[Any, EvalContext], Reducer] | None = None


KINDS: dict[str, CheckKind] = {}


def register(kind: CheckKind) -> CheckKind:
    """Add ``kind``; a second kind of the same name or plan key is a programming error."""
    if kind.name in KINDS:
        raise ValueError(f"check kind {kind.name!r} registered twice")
    if kind.key is not None and any(k.key == kind.key for k in KINDS.values()):
        raise ValueError(f"plan key {kind.key!r} already identifies another check kind")
    if kind.model.kind != kind.name:
        raise ValueError(f"{kind.model.__name__}.kind is {kind.model.kind!r}, not {kind.name!r}")
    KINDS[kind.name] = kind
    return kind
