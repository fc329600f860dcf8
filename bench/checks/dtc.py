"""``dtc``: what an ECU's ReadDTCInformation answers say about its diagnostic trouble codes.

Judged on the positive responses to ReadDTCInformation (reportDTCByStatusMask, and
reportNumberOfDTCByStatusMask where it can decide) of one ECU inside the check's window,
reassembled from the recorded frames (:mod:`bench.checks.diagnostic`). Status bits are ISO
14229-1's, named as udsoncan's ``Dtc.Status`` (``confirmed``, ``test_failed``, ``pending`` …).
A DTC is reported when its status shares a bit with the request's status mask, so a response
only proves the *absence* of the bits its mask asked for: one whose mask does not cover the bits
a check asks about does not count (never a vacuous pass).

* ``none_with_status: [bits]`` — no DTC has any of these bits set in any judged response. A DTC
  with one of them: ``fail``, naming it (label, name, status bits) and the time.
* ``present: NAME`` (``with_status: [bits]``) — at least one judged response reports the DTC
  (name or label, e.g. ``P1A41-92``) with all these bits set. Reported nowhere: ``fail``.
* ``none_new_since: STEP`` — no DTC is *set* (a failure bit: anything but the two
  ``test_not_completed_*`` bits, which a freshly cleared DTC has) in a response after STEP's end
  that was not set at STEP: the baseline is empty after a positive ClearDiagnosticInformation
  in STEP, else the DTCs set in the DTC reads in STEP. A response counts for a pass only when its
  mask covers every failure bit.

Common rules: no judged response in the window is ``inconclusive``; a negative response, an
unanswered request or a broken ISO-TP message among the ECU's DTC reads in the window is
``error`` with its reason — unless a judged response already proves a ``fail``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..diag.catalog import STATUS_BITS, Dtc, Ecu, parse_dtc_label, status_mask, status_names
from ..diag.log import (
    REPORT_DTC_BY_STATUS_MASK,
    REPORT_NUMBER_OF_DTC_BY_STATUS_MASK,
    DtcEntry,
    Exchange,
)
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
from .registry import CheckKind, register
from .results import make_result
from .spec import select_steps

StatusBit = Literal[STATUS_BITS]  # type: ignore[valid-type]

READ_DTC = 0x19
CLEAR_DTC = 0x14
FAILURE_BITS = 0xFF & ~status_mask(
    ["test_not_completed_since_last_clear", "test_not_completed_this_operation_cycle"]
)
"""Status bits that say a DTC's test failed (0xAF): a DTC with one of them is *set*."""


class DtcSpec(BaseModel):
    """The ``dtc:`` mapping: the ECU and exactly one of the three questions."""

    model_config = ConfigDict(extra="forbid")

    ecu: str = Field(description="ECU name of the diagnostics catalog (BMS, MCU …).")
    none_with_status: list[StatusBit] | None = Field(
        None, min_length=1, description="No DTC has any of these status bits set."
    )
    present: str | None = Field(None, description="This DTC (name or label) is reported …")
    with_status: list[StatusBit] | None = Field(
        None, description="… with all these status bits set (with present: only)."
    )
    none_new_since: str | None = Field(
        None, description="No DTC set after this step that was not set at it (a clear: none)."
    )

    @model_validator(mode="after")
    def _one_question(self) -> DtcSpec:
        given = [k for k in ("none_with_status", "present", "none_new_since")
                 if getattr(self, k) is not None]  # fmt: skip
        if len(given) != 1:
            raise ValueError(
                "give exactly one of none_with_status, present, none_new_since"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.with_status is not None and self.present is None:
            raise ValueError("with_status goes with present:")
        return self


class DtcCheck(DiagnosticCheck):
    """An ECU's DTCs as its ReadDTCInformation responses report them."""

    kind: ClassVar[str] = "dtc"
    dtc: DtcSpec

    def ecu_problems(self, ecu: Ecu) -> list[tuple[tuple[str, ...], str]]:
        if self.dtc.present is not None:
            try:
                wanted_dtc(ecu, self.dtc.present)
            except KeyError as exc:
                return [(("dtc", "present"), str(exc.args[0]))]
        return []

    def step_references(self) -> list[tuple[tuple[str, ...], str]]:
        """Step names this check needs besides ``during:``/``after:``."""
        since = self.dtc.none_new_since
        return [(("dtc", "none_new_since"), since)] if since is not None else []


def wanted_dtc(ecu: Ecu, text: str) -> Dtc:
    """The DTC ``present:`` names: a catalog name or label, else any SAE J2012 label
    (``P0AA6-1A``: an ECU added in the plan's ``diagnostics:`` has no named DTCs). KeyError
    naming the known ones when it is neither."""
    try:
        return ecu.dtc(text)
    except KeyError:
        try:
            code = parse_dtc_label(text)
        except ValueError:
            raise KeyError(
                f"{ecu.name} has no DTC {text!r} and it is no DTC label like P0AA6-1A; known: "
                + (", ".join(f"{d.name} ({d.label})" for d in ecu.dtcs) or "(none)")
            ) from None
        return ecu.describe_dtc(code)


def _is_dtc_read(exchange: Exchange) -> bool:
    return exchange.sid == READ_DTC and exchange.subfunction in (
        REPORT_DTC_BY_STATUS_MASK,
        REPORT_NUMBER_OF_DTC_BY_STATUS_MASK,
    )


def _bits(mask: int) -> str:
    return ", ".join(status_names(mask)) or "none"


def _listing(found: list[tuple[Exchange, DtcEntry]]) -> str:
    shown = [f"{d.describe()} at t = {e.request_time:.3f} s" for e, d in found[:5]]
    more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
    return "; ".join(shown) + more


def evaluate(spec: DtcCheck, ctx: EvalContext) -> CheckResult:
    ecu = ctx.ecu(spec.dtc.ecu)
    if spec.dtc.none_with_status is not None:
        return _none_with_status(spec, ctx, ecu)
    if spec.dtc.present is not None:
        return _present(spec, ctx, ecu)
    return _none_new_since(spec, ctx, ecu)


def _result(spec: DtcCheck, verdict: str, message: str, **fields: Any) -> CheckResult:
    return make_result(spec, verdict, message=message, signals=[], **fields)  # type: ignore[arg-type]


def _none_with_status(spec: DtcCheck, ctx: EvalContext, ecu: Ecu) -> CheckResult:
    bits = list(spec.dtc.none_with_status or [])
    mask = status_mask(bits)
    reads, where = window_exchanges(spec, ctx, ecu, _is_dtc_read)
    failed = failures(reads)
    judged: list[Exchange] = []
    found: list[tuple[Exchange, DtcEntry]] = []
    counted: list[Exchange] = []  # a count > 0 of DTCs that can only have the asked bits
    for e in reads:
        if e.outcome != "positive" or e.status_mask is None:
            continue
        covers = mask & e.status_mask == mask
        if e.dtcs is not None:
            if covers:
                judged.append(e)
            found += [(e, d) for d in e.dtcs if d.status & mask]  # proof whatever the mask
        elif e.dtc_count is not None:
            if e.dtc_count and e.status_mask and e.status_mask & ~mask == 0:
                counted.append(e)
                judged.append(e)
            elif covers and not e.dtc_count:
                judged.append(e)
    limit = {"none_with_status": bits}
    what = f"{ecu.name} DTCs with {', '.join(bits)}"
    details: dict[str, Any] = {"ecu": ecu.name, "responses": len(judged),
                               "exchanges": exchange_details(reads)}  # fmt: skip
    if found or counted:
        offending = [e for e, _ in found] + counted
        text = _listing(found) if found else (
            f"{counted[0].dtc_count} DTC(s) counted with status mask "
            f"0x{counted[0].status_mask:02X} at t = {counted[0].request_time:.3f} s")  # fmt: skip
        details["dtcs"] = [{**d.to_dict(), "time": e.request_time} for e, d in found[:20]]
        return _result(
            spec, "fail", f"{what}: {text}",
            observed={"dtcs": sorted({d.label for _, d in found}), "responses": len(judged)},
            limit=limit, evidence=spans(offending), details=details,
        )  # fmt: skip
    if failed:
        return _result(spec, "error", f"{what}: {failure_text(failed)}", limit=limit,
                       evidence=spans(failed), details=details)  # fmt: skip
    if not judged:
        asked = sorted({f"0x{e.status_mask:02X}" for e in reads if e.status_mask is not None})
        why = (
            f"no ReadDTCInformation response of {ecu.name} {where}"
            if not asked
            else f"no ReadDTCInformation response of {ecu.name} {where} asked for "
            f"{', '.join(bits)} (status masks {', '.join(asked)})"
        )
        raise NotJudgeable(why)
    return _result(
        spec, "pass",
        f"{what}: none in {len(judged)} ReadDTCInformation response(s) {where}",
        observed={"dtcs": [], "responses": len(judged)}, limit=limit,
        evidence=spans(judged), details=details,
    )  # fmt: skip


def _present(spec: DtcCheck, ctx: EvalContext, ecu: Ecu) -> CheckResult:
    try:
        wanted = wanted_dtc(ecu, spec.dtc.present or "")
    except KeyError as exc:
        raise CheckError(str(exc.args[0])) from None
    bits = list(spec.dtc.with_status or [])
    mask = status_mask(bits)
    reads, where = window_exchanges(spec, ctx, ecu, _is_dtc_read)
    failed = failures(reads)
    judged = [
        e for e in reads
        if e.outcome == "positive" and e.dtcs is not None and e.status_mask is not None
        and (not mask or e.status_mask & mask)
    ]  # fmt: skip
    found = [(e, d) for e in judged for d in e.dtcs or () if d.code == wanted.code
             and d.status & mask == mask]  # fmt: skip
    seen = [(e, d) for e in judged for d in e.dtcs or () if d.code == wanted.code]
    label = f"{wanted.label} {wanted.name}"
    what = f"{ecu.name} reports {label}" + (f" with {', '.join(bits)}" if bits else "")
    limit = {"present": wanted.label, "with_status": bits}
    details: dict[str, Any] = {"ecu": ecu.name, "responses": len(judged),
                               "exchanges": exchange_details(reads)}  # fmt: skip
    observed = {"statuses": [d.status_names for _, d in seen][:20], "responses": len(judged)}
    if failed:
        return _result(spec, "error", f"{what}: {failure_text(failed)}", limit=limit,
                       observed=observed, evidence=spans(failed), details=details)  # fmt: skip
    if found:
        e, d = found[0]
        return _result(
            spec, "pass", f"{what}: {d.describe()} at t = {e.request_time:.3f} s"
            + (f" (in {len(found)} of {len(judged)} responses)" if len(judged) > 1 else ""),
            observed=observed, limit=limit, evidence=spans(x for x, _ in found),
            details=details,
        )  # fmt: skip
    if not judged:
        raise NotJudgeable(f"no ReadDTCInformation response of {ecu.name} {where}"
                           + (f" asked for {', '.join(bits)}" if bits else ""))  # fmt: skip
    how = (
        f"reported only as {_listing(seen)}" if seen
        else f"not reported in {len(judged)} ReadDTCInformation response(s) {where}"
    )  # fmt: skip
    return _result(spec, "fail", f"{what}: {how}", observed=observed, limit=limit,
                   evidence=spans(judged), details=details)  # fmt: skip


def _none_new_since(spec: DtcCheck, ctx: EvalContext, ecu: Ecu) -> CheckResult:
    name = spec.dtc.none_new_since or ""
    ran = list(dict.fromkeys(s.name for s in ctx.steps))
    selected = set(select_steps(name, ran))
    step = next((s for s in ctx.steps if s.name in selected), None)
    if step is None:
        raise NotJudgeable(f"step {name!r} never ran" if ctx.steps else "no step events in the log")
    if step.end is None:
        raise NotJudgeable(f"step {step.name!r} never ended ({step.status})")
    mine = [e for e in ctx.diag().of(ecu.name) if e.outcome != "unsolicited"]
    at_step = [e for e in mine if step.start <= e.time < step.end
               and (_is_dtc_read(e) or e.sid == CLEAR_DTC)]  # fmt: skip
    details: dict[str, Any] = {"ecu": ecu.name, "since": step.name}
    what = f"No new {ecu.name} DTC since {step.name!r}"
    limit = {"none_new_since": name}
    bad_base = failures(at_step)
    if bad_base:
        return _result(spec, "error", f"{what}: baseline: {failure_text(bad_base)}",
                       limit=limit, evidence=spans(bad_base), details=details)  # fmt: skip
    clears = [i for i, e in enumerate(at_step) if e.sid == CLEAR_DTC and e.outcome == "positive"]
    base_reads = at_step[clears[-1] + 1 :] if clears else at_step
    base_reads = [e for e in base_reads if e.dtcs is not None]
    if not clears and not base_reads:
        raise NotJudgeable(
            f"step {step.name!r} holds no ClearDiagnosticInformation or DTC read of "
            f"{ecu.name}: no baseline"
        )
    baseline = {d.code for e in base_reads for d in e.dtcs or () if d.status & FAILURE_BITS}
    details["baseline"] = sorted(ecu.describe_dtc(c).label for c in baseline)
    details["baseline_from"] = "clear" if clears else "read"
    reads, where = window_exchanges(spec, ctx, ecu, _is_dtc_read)
    reads = [e for e in reads if e.time >= step.end]
    failed = failures(reads)
    judged = [e for e in reads if e.outcome == "positive" and e.dtcs is not None
              and e.status_mask is not None]  # fmt: skip
    new = [(e, d) for e in judged for d in e.dtcs or ()
           if d.status & FAILURE_BITS and d.code not in baseline]  # fmt: skip
    complete = [e for e in judged if (e.status_mask or 0) & FAILURE_BITS == FAILURE_BITS]
    details["responses"] = len(judged)
    details["exchanges"] = exchange_details(reads)
    if new:
        details["dtcs"] = [{**d.to_dict(), "time": e.request_time} for e, d in new[:20]]
        return _result(
            spec, "fail", f"{what}: {_listing(new)}",
            observed={"new": sorted({d.label for _, d in new}), "responses": len(judged)},
            limit=limit, evidence=spans(e for e, _ in new), details=details,
        )  # fmt: skip
    if failed:
        return _result(spec, "error", f"{what}: {failure_text(failed)}", limit=limit,
                       evidence=spans(failed), details=details)  # fmt: skip
    if not complete:
        masks = sorted({f"0x{e.status_mask:02X}" for e in judged})
        raise NotJudgeable(
            f"no ReadDTCInformation response of {ecu.name} after step {step.name!r} {where}"
            + (f" asked for every failure bit ({_bits(FAILURE_BITS)}; masks {', '.join(masks)})"
               if masks else "")
        )  # fmt: skip
    return _result(
        spec, "pass",
        f"{what}: none in {len(complete)} ReadDTCInformation response(s) after it"
        + (f" (baseline: {', '.join(details['baseline'])})" if baseline else ""),
        observed={"new": [], "responses": len(complete)}, limit=limit,
        evidence=spans(complete), details=details,
    )  # fmt: skip


KIND = register(CheckKind("dtc", DtcCheck, evaluate, key="dtc"))
