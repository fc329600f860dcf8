"""What the diagnostic check kinds (``dtc``, ``did``) share: the ECU, the ``after:`` anchor, the
exchanges in a check's window, and the "a failed exchange is error" rule.

Diagnostic checks are judged from the UDS exchanges the evaluator reassembles from the recorded
frames (:mod:`bench.diag.log`), never from what the runner's client saw: so ``bench evaluate``
of an archived run gives the same verdicts. An exchange belongs to a check's window by its
request time (the request's first frame): ``during:`` steps hold it, ``after:`` (a step, its
``.end``, an event or a condition, as for ``reaches``) starts before it.

They have no live rule: a diagnostic answer arrives only when a ``diag:`` step asks, and the
step ends once it has it, so there is nothing to abort on mid-step; they are judged after the
run like every other check (``abort: true`` is refused on them by the plan).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from pydantic import Field, field_validator, model_validator

from ..dbc import suggest
from ..diag.catalog import Ecu
from ..diag.log import Exchange
from ..plan.conditions import Condition
from .context import EvalContext
from .spec import Anchor, CheckSpec, parse_anchor


class DiagnosticCheck(CheckSpec):
    """Fields of every diagnostic check: ``after:`` besides the usual ``during:``."""

    after: str | None = Field(
        None,
        description="Only exchanges requested at or after this: a step (its start), STEP.end, "
        "an event name, or a condition (the first time it holds).",
    )

    @field_validator("after")
    @classmethod
    def _anchor(cls, value: str | None) -> str | None:
        parse_anchor(value)  # a condition that does not parse is reported at its bad token
        return value

    @model_validator(mode="after")
    def _not_live(self) -> DiagnosticCheck:
        if self.abort:
            raise ValueError(
                "abort: diagnostic checks are judged after the run (a diag: step's answer "
                "ends the step), not live"
            )
        return self

    @property
    def anchor(self) -> Anchor:
        return parse_anchor(self.after)

    def conditions(self) -> list[tuple[str, Condition]]:
        anchor = self.anchor
        return [("after", anchor.condition)] if anchor.condition is not None else []

    def diagnostic_problems(self, ecus: dict[str, Ecu]) -> list[tuple[tuple[str, ...], str]]:
        """``[(path under the check, reason)]`` for names the catalog does not know.

        The check's spec sits under its kind (``dtc:``, ``did:``) and names its ``ecu``; what
        the ECU must know besides is :meth:`ecu_problems`."""
        name = getattr(self, self.kind).ecu
        ecu = ecus.get(name)
        if ecu is None:
            return [((self.kind, "ecu"), unknown_ecu(name, ecus))]
        return self.ecu_problems(ecu)

    def ecu_problems(self, ecu: Ecu) -> list[tuple[tuple[str, ...], str]]:
        """Problems of the spec's other names (DTC, DID) on its known ``ecu``."""
        return []


def unknown_ecu(name: str, ecus: dict[str, Ecu]) -> str:
    known = ", ".join(ecus) or "none"
    return (
        f"unknown ECU {name!r}{suggest(name, ecus)}; known: {known} "
        "(others go in the plan's diagnostics: section)"
    )


def window_exchanges(
    spec: DiagnosticCheck, ctx: EvalContext, ecu: Ecu, wanted: Callable[[Exchange], bool]
) -> tuple[list[Exchange], str]:
    """The ECU's exchanges ``wanted`` selects inside the check's window, and the window said
    in words (for messages). Raises NotJudgeable when ``during:``/``after:`` cannot be found."""
    windows = ctx.during(spec.during)
    start = -np.inf
    where = []
    if spec.after is not None:
        anchor = spec.anchor
        if anchor.condition is not None:
            anchor.condition.bind(ctx.dbcs)
        start, text = ctx.anchor_time(anchor)
        where.append(f"after {text}")
    if spec.during:
        where.append(f"during {', '.join(spec.during)}")
    chosen = []
    for exchange in ctx.diag().of(ecu.name):
        if exchange.outcome == "unsolicited" or not wanted(exchange):
            continue
        t = exchange.time
        if t < start or (windows is not None and not windows.contains(np.array([t]))[0]):
            continue
        chosen.append(exchange)
    return chosen, " ".join(where) or "in the log"


def failures(exchanges: Iterable[Exchange]) -> list[Exchange]:
    return [e for e in exchanges if e.failed]


def failure_text(failed: Sequence[Exchange]) -> str:
    """``BMS ReadDTCInformation at 12.300 s: negative: negative response 0x31 …`` (+ N more)."""
    first = failed[0].describe()
    return first + (f" (and {len(failed) - 1} more)" if len(failed) > 1 else "")


def spans(exchanges: Iterable[Exchange]) -> list[tuple[float, float]]:
    """Evidence windows: request time to response time (the request alone without one)."""
    out = []
    for e in exchanges:
        end = e.response_time if e.response_time is not None else e.request_time
        out.append((e.request_time, max(end, e.request_time)))
    return out


def exchange_details(exchanges: Iterable[Exchange]) -> list[dict[str, Any]]:
    """The judged exchanges as summary.json holds them (the first 20)."""
    return [e.to_dict() for e in list(exchanges)[:20]]
