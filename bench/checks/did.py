"""``did``: a data identifier's value, as an ECU's ReadDataByIdentifier answers give it, against
the usual limits (``min``/``max``/``marginal_min``/``marginal_max``, :class:`~.limits.Limits`)
or ``equals:`` (text DIDs such as ``software_version``, or an exact number).

Judged on every positive ReadDataByIdentifier response of the ECU inside the check's window
that carries the DID, decoded by the catalog's codec (physical value, the DID's unit). Every
reading must hold: one outside the limits is ``fail`` (evidence: its request and response
times), one only inside the marginal band ``marginal``. Observed: the one reading, or
``{"min", "max"}`` of several. No reading in the window: ``inconclusive``; a request for the DID
answered negatively, not at all or by a broken message: ``error`` with the reason — unless a
reading already fails.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ConfigDict, Field, model_validator

from ..diag.catalog import Did, Ecu
from ..diag.log import Exchange
from ..summary import CheckResult
from .context import CheckError, EvalContext, NotJudgeable
from .diagnostic import (
    DiagnosticCheck,
    exchange_details,
    failure_text,
    failures,
    spans,
    window_exchanges,
)
from .limits import slack
from .registry import CheckKind, register
from .results import fmt, make_result
from .spec import LimitFields

READ_DID = 0x22


class DidSpec(LimitFields):
    """The ``did:`` mapping: ECU, DID and the limits (or ``equals``)."""

    model_config = ConfigDict(extra="forbid")

    ecu: str = Field(description="ECU name of the diagnostics catalog (BMS, MCU …).")
    did: str | int = Field(description="DID name of the catalog (pack_soh) or its number.")
    equals: float | str | None = Field(
        None, description="The value must be exactly this (text DIDs: the stripped text)."
    )

    @model_validator(mode="after")
    def _something_to_judge(self) -> DidSpec:
        bounded = self.min is not None or self.max is not None
        if bounded == (self.equals is not None):
            raise ValueError("give min and/or max, or equals (not both)")
        return self


class DidCheck(DiagnosticCheck):
    """A DID's value, read by ReadDataByIdentifier, within limits."""

    kind: ClassVar[str] = "did"
    did: DidSpec

    def ecu_problems(self, ecu: Ecu) -> list[tuple[tuple[str, ...], str]]:
        try:
            did = ecu.did(self.did.did)
        except KeyError as exc:
            return [(("did", "did"), str(exc.args[0]))]
        if did.is_text and self.did.equals is None:
            return [(("did", "did"), f"{did.name} is text ({did.codec}): judge it with equals:")]
        if did.is_text and not isinstance(self.did.equals, str):
            return [(("did", "equals"), f"{did.name} is text ({did.codec}): equals a text")]
        return []


def _did(ecu: Ecu, key: str | int) -> Did:
    try:
        return ecu.did(key)
    except KeyError as exc:
        raise CheckError(str(exc.args[0])) from None


def _equal(value: float | str, wanted: float | str) -> bool:
    if isinstance(value, str) or isinstance(wanted, str):
        return str(value).strip() == str(wanted).strip()
    return abs(float(value) - float(wanted)) <= slack(float(wanted))


def evaluate(spec: DidCheck, ctx: EvalContext) -> CheckResult:
    ecu = ctx.ecu(spec.did.ecu)
    did = _did(ecu, spec.did.did)

    def asks(exchange: Exchange) -> bool:
        return exchange.sid == READ_DID and did.id in exchange.requested_dids

    reads, where = window_exchanges(spec, ctx, ecu, asks)
    failed = failures(reads)
    readings = [
        (e, v.value) for e in reads if e.outcome == "positive" for v in e.dids
        if v.id == did.id and v.value is not None
    ]  # fmt: skip
    what = f"{ecu.name} {did.name}"
    details: dict[str, Any] = {"ecu": ecu.name, "did": f"0x{did.id:04X}", "readings": len(readings),
                               "exchanges": exchange_details(reads)}  # fmt: skip
    if spec.did.equals is not None:
        return _equals(spec, did, readings, failed, where, what, details)
    if did.is_text:
        raise CheckError(f"{did.name} is text ({did.codec}): judge it with equals:")
    limits = spec.did.limits
    unit = did.unit
    values = [float(v) for _, v in readings]
    outside = [(e, v) for (e, _), v in zip(readings, values, strict=True) if limits.outside(v)]
    observed: Any = None
    if values:
        observed = values[0] if len(values) == 1 else {"min": min(values), "max": max(values)}
    common = {"observed": observed, "limit": limits.as_dict(), "unit": unit, "details": details,
              "signals": []}  # fmt: skip
    margin = limits.margin(observed) if observed is not None else None
    if outside:
        shown = "; ".join(f"{fmt(v, unit)} at t = {e.request_time:.3f} s" for e, v in outside[:5])
        return make_result(spec, "fail", margin=margin, evidence=spans(e for e, _ in outside),
                           message=f"{what} outside {limits.format(unit)}: {shown}",
                           **common)  # fmt: skip
    if failed:
        return make_result(spec, "error", evidence=spans(failed),
                           message=f"{what}: {failure_text(failed)}", **common)  # fmt: skip
    if not values:
        raise NotJudgeable(f"no ReadDataByIdentifier response of {ecu.name} with {did.name} "
                           f"{where}")  # fmt: skip
    marginal = any(limits.outside_band(v) for v in values)
    seen = fmt(values[0], unit)
    if len(values) > 1:
        seen = f"{fmt(min(values), unit)} to {fmt(max(values), unit)} in {len(values)} readings"
    return make_result(
        spec, "marginal" if marginal else "pass", margin=margin,
        evidence=spans(e for e, _ in readings),
        message=f"{what} {seen} {'inside but near' if marginal else 'within'} "
        f"{limits.format(unit)}",
        judged=(observed, limits), **common,
    )  # fmt: skip


def _equals(
    spec: DidCheck,
    did: Did,
    readings: list[tuple[Exchange, float | str]],
    failed: list[Exchange],
    where: str,
    what: str,
    details: dict[str, Any],
) -> CheckResult:
    wanted = spec.did.equals
    assert wanted is not None
    wrong = [(e, v) for e, v in readings if not _equal(v, wanted)]
    observed = readings[0][1] if len(readings) == 1 else [v for _, v in readings][:20] or None
    common = {"observed": observed, "limit": {"equals": wanted}, "unit": did.unit,
              "details": details, "signals": []}  # fmt: skip
    if wrong:
        shown = "; ".join(f"{v!r} at t = {e.request_time:.3f} s" for e, v in wrong[:5])
        return make_result(spec, "fail", evidence=spans(e for e, _ in wrong),
                           message=f"{what} is not {wanted!r}: {shown}", **common)  # fmt: skip
    if failed:
        return make_result(spec, "error", evidence=spans(failed),
                           message=f"{what}: {failure_text(failed)}", **common)  # fmt: skip
    if not readings:
        raise NotJudgeable(f"no ReadDataByIdentifier response with {did.name} {where}")
    return make_result(spec, "pass", evidence=spans(e for e, _ in readings),
                       message=f"{what} = {wanted!r} in {len(readings)} reading(s)",
                       **common)  # fmt: skip


KIND = register(CheckKind("did", DidCheck, evaluate, key="did"))
