"""Diagnostic exchanges from a recorded log: ISO-TP messages paired into UDS request/response.

The evaluator's side of issue 15: a run's ``dtc:``/``did:`` verdicts come from the frames alone,
so ``bench evaluate`` of an archived run reproduces them. For each ECU of the catalog
(:func:`bench.diag.catalog.plan_ecus`) the frames on its request and response ids are
reassembled (:mod:`bench.diag.isotp_log`) and each request is paired with the response that
follows it. UDS itself is decoded by udsoncan (``Request.from_payload``,
``Response.from_payload``, the services' ``interpret_response``); DID records by the catalog's
codecs, handed to udsoncan as its ``DidCodec``.

Pairing (ISO 14229-2: a client sends one request per server and waits): the response to a
request is the first response on the ECU's response id that starts after the request's last
frame and before the ECU's next request. ``0x7F SID 0x78`` (responsePending) is not the answer:
it restarts the clock, and the answer must then come within P2* (ISO 14229-2, 5 s); without a
pending response the server's P2 is 50 ms but simulated and busy buses are slower, so an answer
within P2* is accepted either way (its latency is in the exchange). Outcomes:

* ``positive`` / ``negative`` (with the NRC and its udsoncan name);
* ``no_response``: nothing within P2* — or the log ended first (said so);
* ``invalid``: a truncated or malformed ISO-TP message, a response udsoncan cannot interpret,
  a response to another service;
* ``suppressed``: a request with suppressPosRspMsgIndicationBit set, nothing came back (right);
* ``unsolicited``: a response no request asked for (shown, judged by no check).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
from udsoncan import Request, Response
from udsoncan.common.DidCodec import DidCodec
from udsoncan.exceptions import ConfigError, InvalidResponseException
from udsoncan.services import (
    ClearDiagnosticInformation,
    ReadDataByIdentifier,
    ReadDTCInformation,
)

from .catalog import Did, Ecu, status_names
from .isotp_log import N_CR, IsoTpMessage, reassemble, select_frames

P2_STAR = 5.0
"""ISO 14229-2 P2*server_max, seconds: the longest wait for a response (after responsePending)."""

RESPONSE_PENDING = 0x78

Outcome = Literal["positive", "negative", "no_response", "invalid", "suppressed", "unsolicited"]
FAILED_OUTCOMES: tuple[str, ...] = ("negative", "no_response", "invalid")
"""Outcomes that make a check whose window holds them ``error``."""

REPORT_DTC_BY_STATUS_MASK = ReadDTCInformation.Subfunction.reportDTCByStatusMask
REPORT_NUMBER_OF_DTC_BY_STATUS_MASK = ReadDTCInformation.Subfunction.reportNumberOfDTCByStatusMask


@dataclass(frozen=True)
class DtcEntry:
    """One DTC of a ReadDTCInformation response: 24-bit code, the catalog's name and text (an
    unknown code is named by its label), and the ISO 14229-1 status byte."""

    code: int
    label: str
    name: str
    text: str
    status: int

    @property
    def status_names(self) -> list[str]:
        return status_names(self.status)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": f"0x{self.code:06X}",
            "label": self.label,
            "name": self.name,
            "text": self.text,
            "status": f"0x{self.status:02X}",
            "status_bits": self.status_names,
        }

    def describe(self) -> str:
        """``P1A41-92 heater_circuit_failure [test_failed, confirmed]``."""
        return f"{self.label} {self.name} [{', '.join(self.status_names) or 'no status bits'}]"


@dataclass(frozen=True)
class DidValue:
    """One data record of a ReadDataByIdentifier response, decoded by the catalog's codec."""

    id: int
    name: str
    value: float | str | None
    unit: str = ""
    raw: bytes = b""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": f"0x{self.id:04X}",
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "raw": self.raw.hex(" ").upper(),
        }

    def display(self) -> str:
        if isinstance(self.value, str) or self.value is None:
            return f"{self.name} = {self.value!r}"
        shown = f"{self.value:g}"
        return f"{self.name} = {shown} {self.unit}".rstrip()


@dataclass(frozen=True)
class Exchange:
    """One UDS request and its response (times in seconds, bus clock).

    ``request_time``: the request's first frame; ``response_time``: the response's last frame
    (None without one). ``problem``: why an exchange is not a plain positive one (the NRC, the
    missing response, the broken message), one line.
    """

    ecu: str
    service: str
    sid: int
    request_time: float
    request: bytes
    outcome: Outcome
    subfunction: int | None = None
    response_time: float | None = None
    response: bytes | None = None
    problem: str | None = None
    nrc: int | None = None
    nrc_name: str | None = None
    status_mask: int | None = None
    dtcs: tuple[DtcEntry, ...] | None = None
    dtc_count: int | None = None
    requested_dids: tuple[int, ...] = ()
    dids: tuple[DidValue, ...] = ()
    pending: int = 0  # responsePending answers before the final one

    @property
    def failed(self) -> bool:
        return self.outcome in FAILED_OUTCOMES

    @property
    def time(self) -> float:
        """When it happened, for step windows: the request's first frame."""
        return self.request_time

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "ecu": self.ecu,
            "service": self.service,
            "sid": f"0x{self.sid:02X}",
            "subfunction": self.subfunction,
            "request_time": self.request_time,
            "request": self.request.hex(" ").upper(),
            "outcome": self.outcome,
            "response_time": self.response_time,
            "response": None if self.response is None else self.response.hex(" ").upper(),
        }
        optional = {
            "problem": self.problem,
            "nrc": None if self.nrc is None else f"0x{self.nrc:02X}",
            "nrc_name": self.nrc_name,
            "status_mask": None if self.status_mask is None else f"0x{self.status_mask:02X}",
            "status_mask_bits": None
            if self.status_mask is None
            else status_names(self.status_mask),
            "dtc_count": self.dtc_count,
            "pending": self.pending or None,
        }
        data.update({k: v for k, v in optional.items() if v is not None})
        if self.dtcs is not None:
            data["dtcs"] = [d.to_dict() for d in self.dtcs]
        if self.requested_dids:
            data["requested_dids"] = [f"0x{i:04X}" for i in self.requested_dids]
        if self.dids:
            data["dids"] = [d.to_dict() for d in self.dids]
        return data

    def describe(self) -> str:
        """One line: ``BMS ReadDTCInformation at 12.300 s: positive, 1 DTC: P1A41-92 …``."""
        head = f"{self.ecu} {self.service} at {self.request_time:.3f} s"
        if self.outcome != "positive":
            return f"{head}: {self.outcome}: {self.problem}"
        parts = []
        if self.dtcs is not None:
            parts.append(f"{len(self.dtcs)} DTC(s)")
            parts += [d.describe() for d in self.dtcs]
        if self.dtc_count is not None:
            parts.append(f"{self.dtc_count} DTC(s) counted")
        parts += [d.display() for d in self.dids]
        return f"{head}: positive" + (f": {'; '.join(parts)}" if parts else "")


@dataclass
class DiagLog:
    """Every exchange of a log, per ECU and in time order, and what was odd on the way."""

    exchanges: list[Exchange] = field(default_factory=list)
    stray_frames: dict[str, int] = field(default_factory=dict)  # ECU -> ignored CFs

    def of(self, ecu: str) -> list[Exchange]:
        return [e for e in self.exchanges if e.ecu == ecu]

    def to_list(self) -> list[dict[str, Any]]:
        return [e.to_dict() for e in self.exchanges]


def diagnostic_ids(ecus: Mapping[str, Ecu]) -> set[tuple[int, bool]]:
    """``(arbitration_id, is_extended_id)`` of every request and response id of ``ecus``."""
    ids = set()
    for ecu in ecus.values():
        ids.add((ecu.request_id, ecu.is_extended_id))
        ids.add((ecu.response_id, ecu.is_extended_id))
    return ids


def read_exchanges(
    frames: pa.Table,
    ecus: Mapping[str, Ecu],
    *,
    log_end: float | None = None,
    p2_star: float = P2_STAR,
    n_cr: float = N_CR,
) -> DiagLog:
    """Every UDS exchange with ``ecus`` in a frame table (:mod:`bench.frames`).

    ``log_end``: when the recording stopped (default: its last diagnostic frame); a request
    still waiting then is ``no_response`` saying the log ended. Never raises on bad data.
    """
    wanted = diagnostic_ids(ecus)
    messages = reassemble(select_frames(frames, wanted), log_end=log_end, n_cr=n_cr)
    end = log_end if log_end is not None else max((m.end for m in messages), default=0.0)
    result = DiagLog()
    for ecu in ecus.values():
        ext = ecu.is_extended_id
        requests = [
            m for m in messages if (m.arbitration_id, m.is_extended_id) == (ecu.request_id, ext)
        ]
        responses = [
            m for m in messages if (m.arbitration_id, m.is_extended_id) == (ecu.response_id, ext)
        ]
        result.exchanges += _pair(ecu, requests, responses, end, p2_star)
    result.exchanges.sort(key=lambda e: (e.request_time, e.ecu))
    return result


# -- pairing ---------------------------------------------------------------------------------------


def _pair(
    ecu: Ecu,
    requests: Sequence[IsoTpMessage],
    responses: Sequence[IsoTpMessage],
    log_end: float,
    p2_star: float,
) -> list[Exchange]:
    out: list[Exchange] = []
    taken = [False] * len(responses)
    j = 0  # both lists are in log order: one pass over the responses
    for index, request in enumerate(requests):
        # log order, not just time: on a lockstep bus a response and the next request share a
        # 10 ms tick, and the recorder keeps their order of arrival
        until = requests[index + 1].start_key if index + 1 < len(requests) else (math.inf, 0)
        while j < len(responses) and responses[j].start_key < request.end_key:
            j += 1  # before this request ended: answers nothing (unsolicited)
        final, pending, clock = None, 0, request.end
        while j < len(responses) and responses[j].start_key < until:
            response = responses[j]
            taken[j], j = True, j + 1
            if _is_pending(response):  # the server asks for more time: P2* from here
                pending, clock = pending + 1, response.end
                continue
            final = response
            break  # later ones before the next request answer nothing: unsolicited
        following = requests[index + 1].start if index + 1 < len(requests) else None
        out.append(_exchange(ecu, request, final, pending, clock, log_end, p2_star, following))
    for i, response in enumerate(responses):
        if not taken[i]:
            out.append(_unsolicited(ecu, response))
    return out


def _is_pending(message: IsoTpMessage) -> bool:
    p = message.payload
    return message.complete and len(p) >= 3 and p[0] == 0x7F and p[2] == RESPONSE_PENDING


def _unsolicited(ecu: Ecu, response: IsoTpMessage) -> Exchange:
    payload = response.payload
    service, sid = _service_of_response(payload)
    return Exchange(
        ecu=ecu.name,
        service=service,
        sid=sid,
        request_time=response.start,
        request=b"",
        outcome="unsolicited",
        response_time=response.end,
        response=payload,
        problem=response.problem or "a response no request asked for",
    )


def _service_of_response(payload: bytes) -> tuple[str, int]:
    if not payload:
        return "unknown", 0
    parsed = Response.from_payload(payload)
    sid = payload[1] if payload[0] == 0x7F and len(payload) > 1 else (payload[0] - 0x40) & 0xFF
    name = parsed.service.get_name() if parsed.service is not None else f"service 0x{sid:02X}"
    return name, sid


def _exchange(
    ecu: Ecu,
    request: IsoTpMessage,
    response: IsoTpMessage | None,
    pending: int,
    clock: float,
    log_end: float,
    p2_star: float,
    next_request: float | None = None,
) -> Exchange:
    payload = request.payload
    parsed = Request.from_payload(payload) if payload else Request()
    sid = payload[0] if payload else 0
    service = parsed.service.get_name() if parsed.service is not None else f"service 0x{sid:02X}"
    base: dict[str, Any] = {
        "ecu": ecu.name,
        "service": service,
        "sid": sid,
        "request_time": request.start,
        "request": payload,
        "subfunction": parsed.subfunction,
        "pending": pending,
    }
    base.update(_request_fields(parsed, payload))
    if not request.complete:
        return Exchange(**base, outcome="invalid", problem=f"request: {request.problem}")
    suppress = bool(parsed.suppress_positive_response)
    if response is None or response.start - clock > p2_star:
        late = response is not None
        if suppress and not late:
            return Exchange(**base, outcome="suppressed")
        waited = (log_end - clock) if not late else (response.start - clock)
        if not late and next_request is not None and next_request - clock < p2_star:
            gap = next_request - clock
            why = f"no response before the tester's next request ({gap:.3f} s after the request)"
        elif not late and waited < p2_star:
            why = f"no response before the log ended ({waited:.3f} s after the request)"
        else:
            why = f"no response within P2* ({p2_star:g} s)" + (
                f"; one came {waited:.3f} s after the request" if late else ""
            )
        return Exchange(**base, outcome="no_response", problem=why)
    base["response_time"] = response.end
    base["response"] = response.payload
    if not response.complete:
        return Exchange(**base, outcome="invalid", problem=f"response: {response.problem}")
    return _decode_response(ecu, parsed, base, response.payload)


def _request_fields(parsed: Request, payload: bytes) -> dict[str, Any]:
    """What the request asked for: the status mask of a DTC read, the DIDs of a DID read."""
    service = parsed.service
    data = payload[1:]
    if service is ReadDTCInformation and parsed.subfunction in (
        REPORT_DTC_BY_STATUS_MASK,
        REPORT_NUMBER_OF_DTC_BY_STATUS_MASK,
    ):
        return {"status_mask": payload[2]} if len(payload) >= 3 else {}
    if service is ReadDataByIdentifier:
        ids = tuple(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data) - 1, 2))
        return {"requested_dids": ids}
    return {}


def _decode_response(ecu: Ecu, request: Request, base: dict[str, Any], payload: bytes) -> Exchange:
    response = Response.from_payload(payload)
    if not response.valid:
        return Exchange(**base, outcome="invalid", problem=f"response: {response.invalid_reason}")
    if response.service is not request.service:
        got = response.service.get_name() if response.service is not None else "?"
        return Exchange(
            **base, outcome="invalid", problem=f"response to {got}, not {base['service']}"
        )
    if not response.positive:
        name = response.code_name or "unknown NRC"
        return Exchange(
            **base,
            outcome="negative",
            nrc=response.code,
            nrc_name=name,
            problem=f"negative response 0x{response.code:02X} {name}",
        )
    try:
        decoded = _interpret(ecu, request, response, base)
    except (InvalidResponseException, ConfigError, ValueError, IndexError) as exc:
        return Exchange(**base, outcome="invalid", problem=f"response: {exc}")
    return Exchange(**base, **decoded, outcome="positive")


def _interpret(
    ecu: Ecu, request: Request, response: Response, base: dict[str, Any]
) -> dict[str, Any]:
    """The decoded payload of a positive response, by udsoncan's ``interpret_response``."""
    service = request.service
    if service is ReadDTCInformation:
        subfunction = request.subfunction
        if subfunction not in (REPORT_DTC_BY_STATUS_MASK, REPORT_NUMBER_OF_DTC_BY_STATUS_MASK):
            return {}
        # DTC 0x000000 is a real code to nobody; udsoncan drops it as padding by default
        data = ReadDTCInformation.interpret_response(response, subfunction).service_data
        if subfunction == REPORT_NUMBER_OF_DTC_BY_STATUS_MASK:
            return {"dtc_count": int(data.dtc_count)}
        entries = []
        for dtc in data.dtcs:
            known = ecu.describe_dtc(dtc.id)
            status = dtc.status.get_byte_as_int()
            entries.append(DtcEntry(dtc.id, known.label, known.name, known.text, status))
        return {"dtcs": tuple(entries)}
    if service is ReadDataByIdentifier:
        ids = list(base.get("requested_dids") or ())
        if not ids:
            raise ValueError("ReadDataByIdentifier request without a DID")
        config = {i: _codec(ecu, i) for i in ids}
        values = ReadDataByIdentifier.interpret_response(response, ids, config).service_data
        found = []
        for did_id, value in values.values.items():
            did = _catalog_did(ecu, did_id)
            if did is None:
                found.append(DidValue(did_id, f"0x{did_id:04X}", None, "", bytes(value)))
            else:
                found.append(DidValue(did_id, did.name, value[0], did.unit, value[1]))
        return {"dids": tuple(found)}
    if service is ClearDiagnosticInformation:
        ClearDiagnosticInformation.interpret_response(response)
    return {}


def _catalog_did(ecu: Ecu, did_id: int) -> Did | None:
    try:
        return ecu.did(did_id)
    except KeyError:
        return None


class _CatalogCodec(DidCodec):
    """A catalog DID as udsoncan's codec: decodes to ``(physical value, raw record)``."""

    def __init__(self, did: Did) -> None:
        super().__init__()
        self.did = did

    def decode(self, did_payload: bytes) -> Any:
        return self.did.decode(did_payload), bytes(did_payload)

    def encode(self, *did_value: Any) -> bytes:
        return self.did.encode(did_value[0])

    def __len__(self) -> int:
        return self.did.length


class _RawCodec(DidCodec):
    """A DID the catalog does not know: the rest of the response, undecoded."""

    def decode(self, did_payload: bytes) -> Any:
        return bytes(did_payload)

    def __len__(self) -> int:
        raise DidCodec.ReadAllRemainingData


def _codec(ecu: Ecu, did_id: int) -> DidCodec:
    did = _catalog_did(ecu, did_id)
    return _CatalogCodec(did) if did is not None else _RawCodec()


__all__ = [
    "FAILED_OUTCOMES",
    "P2_STAR",
    "DiagLog",
    "DidValue",
    "DtcEntry",
    "Exchange",
    "diagnostic_ids",
    "read_exchanges",
]
