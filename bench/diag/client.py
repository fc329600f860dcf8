"""UDS (ISO 14229-1) client: operations, their decoded exchanges, and two ways to run them.

An :class:`Operation` is one request to one ECU (clear DTCs, read DTCs by status mask, count
them, read one DID, session control, tester present), built and interpreted with udsoncan's
service classes and the catalog's DID codecs. Running it gives an :class:`Exchange`: request,
response, times, and either the decoded result or an error naming the reason — the negative
response code by name (``negative response 0x31 requestOutOfRange``), ``no response within P2
(0.300 s)``, an ISO-TP failure (a truncated or out-of-sequence multi-frame message), or an invalid
response. Nothing here ever waits longer than the standard's timeouts.

Two runners:

- :class:`UdsClient` — udsoncan's ``Client`` over can-isotp's ``NotifierBasedCanStack`` on a
  python-can bus, on the wall clock: ``bench diag`` against a real ECU, ``python -m virtual_bus``
  or vcan. It owns the bus's reading (a ``can.Notifier``) while it is open.
- :class:`SteppedClient` — the same operations over :class:`~bench.diag.transport.ClockedIsoTp`,
  advanced by its owner: the runner's ``diag:`` step (frames go through the run's frame pump, so
  they are recorded, and in lockstep they are answered in simulated time while the pump keeps
  running) and ``bench diag`` on the in-process virtual vehicle. It never blocks.

Timing (ISO 14229-2): P2server_max 50 ms and P2*server_max 5000 ms (what the virtual ECUs report
in their DiagnosticSessionControl response), and the client waits P2client = P2server + ΔP2 and
P2*client = P2*server + ΔP2 with ΔP2 = 250 ms: the standard leaves ΔP2 (the network and
transport delays) to the system, and a USB adapter on a loaded bench PC needs that much. For a
multi-frame response P2 runs to its first frame; ISO-TP's N_Cr (1000 ms) then bounds the rest.
A response pending (NRC 0x78) restarts the wait with P2*, at most :data:`MAX_PENDING` times.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import can
from udsoncan import DidCodec, Request, Response, services

from .catalog import Did, Ecu, dtc_label, status_names
from .transport import ISOTP_PARAMS, ClockedIsoTp, isotp_address

P2_SERVER_S = 0.050
P2_STAR_SERVER_S = 5.0
DELTA_P2_S = 0.250
P2_CLIENT_S = P2_SERVER_S + DELTA_P2_S
P2_STAR_CLIENT_S = P2_STAR_SERVER_S + DELTA_P2_S
MAX_PENDING = 10
RESPONSE_PENDING = 0x78

CLEAR_ALL = 0xFFFFFF


class CatalogCodec(DidCodec):
    """udsoncan's DID codec for a catalog :class:`~bench.diag.catalog.Did`."""

    def __init__(self, did: Did) -> None:
        super().__init__()
        self.did = did

    def encode(self, *values: Any) -> bytes:
        return self.did.encode(values[0])

    def decode(self, payload: bytes) -> float | str:
        return self.did.decode(payload)

    def __len__(self) -> int:
        return self.did.length


@dataclass
class Exchange:
    """One request and its outcome. ``error`` is None when a positive response was decoded."""

    ecu: str
    operation: str
    request: bytes
    response: bytes | None = None
    t_request: float | None = None
    t_response: float | None = None
    error: str | None = None
    nrc: int | None = None
    dtcs: list[tuple[int, int]] | None = None
    count: int | None = None
    did: str | None = None
    value: float | str | None = None
    unit: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None and self.response is not None

    def to_json(self, ecu: Ecu | None = None) -> dict[str, Any]:
        """A JSON-ready record: hex payloads, DTCs with labels, names and status bits."""
        out: dict[str, Any] = {
            "ecu": self.ecu,
            "operation": self.operation,
            "request": self.request.hex(),
            "response": None if self.response is None else self.response.hex(),
            "t_request": _rounded(self.t_request),
            "t_response": _rounded(self.t_response),
            "ok": self.ok,
            "error": self.error,
        }
        if self.nrc is not None:
            out["nrc"] = self.nrc
        if self.dtcs is not None:
            out["dtcs"] = [dtc_json(code, status, ecu) for code, status in self.dtcs]
        if self.count is not None:
            out["count"] = self.count
        if self.did is not None:
            out.update({"did": self.did, "value": self.value, "unit": self.unit})
        return out

    def summary(self) -> str:
        """One line for the console: what was asked and what came back."""
        head = f"{self.ecu} {self.operation}" + (f" {self.did}" if self.did else "")
        if self.error:
            return f"{head}: ERROR {self.error}"
        if self.dtcs is not None:
            shown = ", ".join(f"{dtc_label(c)} 0x{s:02X}" for c, s in self.dtcs) or "none"
            return f"{head}: {len(self.dtcs)} DTC(s) {shown}"
        if self.count is not None:
            return f"{head}: {self.count}"
        if self.did is not None:
            value = self.value if isinstance(self.value, str) else f"{self.value:g}"
            return f"{head} = {value}{' ' + self.unit if self.unit else ''}"
        return f"{head}: ok"


def _rounded(t: float | None) -> float | None:
    return None if t is None else round(t, 6)  # µs: what a CAN timestamp resolves


def dtc_json(code: int, status: int, ecu: Ecu | None = None) -> dict[str, Any]:
    dtc = ecu.describe_dtc(code) if ecu is not None else None
    return {
        "code": code,
        "label": dtc_label(code),
        "name": dtc.name if dtc else dtc_label(code),
        "text": dtc.text if dtc else "",
        "status": status,
        "status_bits": status_names(status),
    }


@dataclass(frozen=True)
class Operation:
    """One UDS request to one ECU and how to read its positive response."""

    ecu: Ecu
    kind: str
    request: Request
    did: Did | None = None
    subfunction: int | None = None

    @property
    def payload(self) -> bytes:
        return self.request.get_payload()

    def new_exchange(self) -> Exchange:
        return Exchange(
            self.ecu.name,
            self.kind,
            self.payload,
            did=self.did.name if self.did else None,
            unit=self.did.unit if self.did else "",
        )

    def interpret(self, payload: bytes, exchange: Exchange) -> bool:
        """Fill ``exchange`` from a response payload; False for a response pending (0x78)."""
        exchange.response = bytes(payload)
        response = Response.from_payload(payload)
        expected = self.request.service.response_id()  # type: ignore[union-attr]
        if not response.valid:
            exchange.error = f"invalid response {payload.hex()}: {response.invalid_reason}"
            return True
        if not response.positive:
            sid = payload[1] if len(payload) > 1 else None
            if sid != self.payload[0]:
                exchange.error = f"negative response for another service (0x{sid or 0:02X})"
                return True
            if response.code == RESPONSE_PENDING:
                return False
            exchange.nrc = response.code
            exchange.error = f"negative response 0x{response.code:02X} {response.code_name}"
            return True
        if response.service is None or response.service.response_id() != expected:
            exchange.error = f"unexpected response 0x{payload[0]:02X} (expected 0x{expected:02X})"
            return True
        try:
            self._positive(response, exchange)
        except Exception as exc:  # udsoncan raises ValueError/InvalidResponseException …
            exchange.error = f"invalid response {payload.hex()}: {exc}"
        return True

    def _positive(self, response: Response, exchange: Exchange) -> None:
        if self.kind in ("read_dtcs", "count_dtcs"):
            data = services.ReadDTCInformation.interpret_response(
                response, subfunction=self.subfunction or 0x02
            ).service_data
            if self.kind == "count_dtcs":
                exchange.count = int(data.dtc_count or 0)
            else:
                exchange.dtcs = [(d.id, d.status.get_byte_as_int()) for d in data.dtcs]
        elif self.kind == "read_did":
            assert self.did is not None
            codec = {self.did.id: CatalogCodec(self.did)}
            data = services.ReadDataByIdentifier.interpret_response(
                response, didlist=[self.did.id], didconfig=codec
            ).service_data
            exchange.value = data.values[self.did.id]
        elif self.kind == "session":
            services.DiagnosticSessionControl.interpret_response(response)
        elif self.kind == "clear_dtcs":
            services.ClearDiagnosticInformation.interpret_response(response)


# -- the operations ------------------------------------------------------------------------------


def clear_dtcs(ecu: Ecu, group: int = CLEAR_ALL) -> Operation:
    return Operation(
        ecu, "clear_dtcs", services.ClearDiagnosticInformation.make_request(group=group)
    )


def read_dtcs(ecu: Ecu, status_mask: int = 0xFF) -> Operation:
    """reportDTCByStatusMask (0x19 0x02)."""
    request = services.ReadDTCInformation.make_request(subfunction=0x02, status_mask=status_mask)
    return Operation(ecu, "read_dtcs", request, subfunction=0x02)


def count_dtcs(ecu: Ecu, status_mask: int = 0xFF) -> Operation:
    """reportNumberOfDTCByStatusMask (0x19 0x01)."""
    request = services.ReadDTCInformation.make_request(subfunction=0x01, status_mask=status_mask)
    return Operation(ecu, "count_dtcs", request, subfunction=0x01)


def read_did(ecu: Ecu, did: str | int | Did) -> Operation:
    found = did if isinstance(did, Did) else ecu.did(did)
    codec = {found.id: CatalogCodec(found)}
    request = services.ReadDataByIdentifier.make_request(didlist=[found.id], didconfig=codec)
    return Operation(ecu, "read_did", request, did=found)


def session_control(ecu: Ecu, session: int = 0x01) -> Operation:
    return Operation(ecu, "session", services.DiagnosticSessionControl.make_request(session))


def tester_present(ecu: Ecu) -> Operation:
    return Operation(ecu, "tester_present", services.TesterPresent.make_request())


def raw_request(ecu: Ecu, payload: bytes) -> Operation:
    """Any payload (tests of the servers' negative responses)."""
    return Operation(ecu, "raw", Request.from_payload(payload) if payload else Request())


# -- stepped: on the owner's clock -----------------------------------------------------------------


@dataclass
class _Pending:
    operation: Operation
    exchange: Exchange
    deadline: float
    pending_count: int = 0
    sent: bool = False
    wait: str = "P2"


class SteppedClient:
    """Runs operations one after another over ISO-TP on ``clock``; never blocks.

    ``send_frame(frame)`` puts a tester frame on the bus (the owner stamps and records it). The
    owner calls :meth:`feed` with every frame it receives and :meth:`step` as time moves (each
    tick); :attr:`done` tells when every operation has its exchange in :attr:`exchanges`.
    ``on_exchange`` is called with each finished exchange.
    """

    def __init__(
        self,
        operations: Iterable[Operation],
        clock: Callable[[], float],
        send_frame: Callable[[can.Message], None],
        on_exchange: Callable[[Exchange], None] | None = None,
        p2: float = P2_CLIENT_S,
        p2_star: float = P2_STAR_CLIENT_S,
    ) -> None:
        self.queue = list(operations)
        self.clock = clock
        self.send_frame = send_frame
        self.on_exchange = on_exchange
        self.p2, self.p2_star = p2, p2_star
        self.exchanges: list[Exchange] = []
        self._transports: dict[str, ClockedIsoTp] = {}
        self._responses: dict[tuple[int, bool], str] = {}
        for op in self.queue:
            if op.ecu.name not in self._transports:
                address = isotp_address(op.ecu)
                self._transports[op.ecu.name] = ClockedIsoTp(address, clock, send_frame)
                self._responses[(op.ecu.response_id, op.ecu.is_extended_id)] = op.ecu.name
        self._current: _Pending | None = None

    @property
    def done(self) -> bool:
        return self._current is None and not self.queue

    def wants(self, frame: can.Message) -> bool:
        return (frame.arbitration_id, frame.is_extended_id) in self._responses

    def feed(self, frame: can.Message) -> None:
        name = self._responses.get((frame.arbitration_id, frame.is_extended_id))
        if name is not None:
            self._transports[name].feed(frame)

    def step(self) -> None:
        """Send, receive and time out. The next operation starts at the following step, not in
        the one that finished the last: a request never shares its timestamp with the response
        before it (a reader of the log sorting by time cannot swap them), as a tester's
        processing time would space them on a real bus."""
        if self._current is None:
            if not self.queue:
                return
            self._start(self.queue.pop(0))
        self._advance()

    def abandon(self, reason: str) -> None:
        """End every operation not finished with ``reason`` (the step ended first)."""
        if self._current is not None:
            self._finish(self._current, reason)
        for op in self.queue:
            exchange = op.new_exchange()
            exchange.error = reason
            self._record(exchange)
        self.queue = []

    def _start(self, op: Operation) -> None:
        transport = self._transports[op.ecu.name]
        transport.errors.clear()
        while transport.take() is not None:  # a late answer to an earlier request: not ours
            pass
        exchange = op.new_exchange()
        now = self.clock()
        exchange.t_request = now
        self._current = _Pending(op, exchange, now + self.p2)
        transport.send(op.payload)

    def _advance(self) -> bool:
        """Step the current operation; True when it finished."""
        pending = self._current
        assert pending is not None
        transport = self._transports[pending.operation.ecu.name]
        transport.step()
        now = self.clock()
        if transport.errors:
            self._finish(pending, f"ISO-TP: {transport.errors[0]}")
            return True
        payload = transport.take()
        if payload is not None:
            pending.exchange.t_response = now
            if pending.operation.interpret(payload, pending.exchange):
                self._finish(pending, None)
                return True
            pending.pending_count += 1
            pending.exchange.response = None
            if pending.pending_count > MAX_PENDING:
                self._finish(pending, f"response pending (0x78) more than {MAX_PENDING} times")
                return True
            pending.deadline, pending.wait = now + self.p2_star, "P2*"
            return False
        if now > pending.deadline and not transport.busy:
            limit = self.p2 if pending.wait == "P2" else self.p2_star
            self._finish(pending, f"no response within {pending.wait} ({limit:.3f} s)")
            return True
        return False

    def _finish(self, pending: _Pending, error: str | None) -> None:
        if error is not None:
            pending.exchange.error = error
        self._current = None
        self._transports[pending.operation.ecu.name].reset()
        self._record(pending.exchange)

    def _record(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)
        if self.on_exchange is not None:
            self.on_exchange(exchange)


# -- wall clock: udsoncan's Client over can-isotp's NotifierBasedCanStack --------------------------


@dataclass
class UdsClient:
    """udsoncan's ``Client`` for one ECU on a python-can bus (wall clock). A context manager.

    While open it reads the bus through a ``can.Notifier`` (nothing else may call ``recv``).
    """

    bus: can.BusABC
    ecu: Ecu
    p2: float = P2_CLIENT_S
    p2_star: float = P2_STAR_CLIENT_S
    _stack: Any = field(default=None, init=False)
    _notifier: Any = field(default=None, init=False)
    _client: Any = field(default=None, init=False)

    def __enter__(self) -> UdsClient:
        import isotp
        from udsoncan.client import Client
        from udsoncan.connections import PythonIsoTpConnection

        self._notifier = can.Notifier(self.bus, [], timeout=0.05)
        self._stack = isotp.NotifierBasedCanStack(
            self.bus, self._notifier, address=isotp_address(self.ecu), params=dict(ISOTP_PARAMS)
        )
        config = {
            "p2_timeout": self.p2,
            "p2_star_timeout": self.p2_star,
            # Bounds every request whatever the server says (P2* after a pending, N_Cr …).
            "request_timeout": self.p2_star * 2,
            "use_server_timing": False,
            "data_identifiers": {did.id: CatalogCodec(did) for did in self.ecu.dids},
        }
        self._client = Client(PythonIsoTpConnection(self._stack), config=config)
        self._client.open()
        return self

    def __exit__(self, *_exc: object) -> None:
        try:
            if self._client is not None:
                self._client.close()
        finally:
            if self._notifier is not None:
                self._notifier.stop()

    def run(self, op: Operation) -> Exchange:
        """Send ``op`` and wait for its response (at most P2 / P2* as the module says)."""
        import time

        from udsoncan.exceptions import (
            InvalidResponseException,
            NegativeResponseException,
            TimeoutException,
            UnexpectedResponseException,
        )

        exchange = op.new_exchange()
        exchange.t_request = time.time()
        try:
            response = self._client.send_request(op.request)
        except NegativeResponseException as exc:
            response = exc.response
        except (InvalidResponseException, UnexpectedResponseException) as exc:
            response = exc.response
        except TimeoutException as exc:
            exchange.error = _timeout_reason(str(exc), self.p2, self.p2_star)
            return exchange
        exchange.t_response = time.time()
        if response is None:
            exchange.error = "no response (suppressed)"
            return exchange
        op.interpret(response.get_payload(), exchange)
        return exchange

    def run_all(self, operations: Iterable[Operation]) -> list[Exchange]:
        return [self.run(op) for op in operations]


def _timeout_reason(text: str, p2: float, p2_star: float) -> str:
    if "P2*" in text:
        return f"no response within P2* ({p2_star:.3f} s)"
    if "P2" in text:
        return f"no response within P2 ({p2:.3f} s)"
    return f"no response: {text}"
