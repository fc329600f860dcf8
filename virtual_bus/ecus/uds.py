"""A virtual ECU's UDS server (ISO 14229-1) on ISO-TP (ISO 15765-2), stepped with the vehicle.

Services, per session (default 0x01, extended 0x03):

====  ===============================  =======  ========  ========================================
SID   service                          default  extended  notes
====  ===============================  =======  ========  ========================================
0x10  DiagnosticSessionControl         yes      yes       0x01 / 0x03; P2 50 ms, P2* 5000 ms
0x3E  TesterPresent                    yes      yes       0x00 (0x80: no response); keeps S3
0x19  ReadDTCInformation               yes      yes       0x01 count by status mask, 0x02 DTCs by
                                                          status mask; DTC format 0x00 (J2012)
0x14  ClearDiagnosticInformation       yes      yes       0xFFFFFF or one DTC; 0x22 when the
                                                          ECU's conditions say no (MCU turning)
0x22  ReadDataByIdentifier             yes      yes       one or more DIDs; unknown ones are
                                                          left out, none known: 0x31
0x85  ControlDTCSetting                0x7F     yes       0x01 on / 0x02 off
====  ===============================  =======  ========  ========================================

Negative responses (0x7F SID NRC): 0x11 serviceNotSupported, 0x12 subFunctionNotSupported,
0x13 incorrectMessageLengthOrInvalidFormat, 0x22 conditionsNotCorrect, 0x31 requestOutOfRange,
0x7F serviceNotSupportedInActiveSession. The extended session falls back to the default after
S3server (5 s) without a request, and DTC setting goes back on with it.

The transport is :class:`bench.diag.transport.ClockedIsoTp` (can-isotp's logic on the vehicle's
clock): responses go out at the physics step after the request's last frame, stamped with its
simulated time in lockstep, on the wall clock in real time. Requests and responses are parsed and
built with udsoncan's ``Request``/``Response``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import can
from udsoncan import Request, Response

from bench.diag.catalog import Ecu
from bench.diag.transport import ClockedIsoTp, isotp_address

from .uds_dtc import AVAILABILITY_MASK, DtcMemory

DEFAULT_SESSION, EXTENDED_SESSION = 0x01, 0x03
P2_SERVER_MS = 50
P2_STAR_SERVER_MS = 5000
S3_SERVER_S = 5.0
DTC_FORMAT_J2012 = 0x00  # ISO 14229-1 DTCFormatIdentifier SAE_J2012-DA_DTCFormat_00

_EXTENDED_ONLY = {0x85}
_SUPPORTED = {0x10, 0x3E, 0x19, 0x14, 0x22, 0x85}

Code = Response.Code


class NegativeResponse(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(Code.get_name(code))
        self.code = code


class UdsServer:
    """One ECU's diagnostic server: ISO-TP endpoint, session, DTC memory and DID values.

    ``dids`` maps a DID name of ``ecu`` to a function giving its physical value now;
    ``clear_refused`` returns a reason (conditionsNotCorrect) or None.
    """

    def __init__(
        self,
        ecu: Ecu,
        memory: DtcMemory,
        dids: Mapping[str, Callable[[], float | str]],
        clock: Callable[[], float],
        send_frame: Callable[[can.Message], None],
        clear_refused: Callable[[], bool] = lambda: False,
    ) -> None:
        self.ecu = ecu
        self.memory = memory
        self.dids = {ecu.did(name).id: (ecu.did(name), value) for name, value in dids.items()}
        self.clock = clock
        self.clear_refused = clear_refused
        self.session = DEFAULT_SESSION
        self.last_request = 0.0
        self.transport = ClockedIsoTp(isotp_address(ecu, server=True), clock, send_frame)
        self.requests = 0

    @property
    def request_key(self) -> tuple[int, bool]:
        """(arbitration id, extended) of the requests this server takes."""
        return self.ecu.request_id, self.ecu.is_extended_id

    def feed(self, frame: can.Message) -> None:
        self.transport.feed(frame)

    def step(self) -> None:
        """Take the frames fed so far, answer whole requests, send what is due (never blocks)."""
        now = self.clock()
        if self.session != DEFAULT_SESSION and now - self.last_request > S3_SERVER_S:
            self._enter(DEFAULT_SESSION)
        if self.transport.idle:
            # No frame since the last answer went out: nothing to take, send or time out. This
            # runs at every physics step for a request that comes a few times per run.
            return
        self.transport.step()
        while (payload := self.transport.take()) is not None:
            self.last_request = now
            self.requests += 1
            response = self.respond(payload)
            if response:
                self.transport.send(response)
        if self.transport.busy or not self.transport.tx_queue.empty():
            self.transport.step()

    # -- services ---------------------------------------------------------------------------------

    def respond(self, payload: bytes) -> bytes | None:
        """The response to one request payload (None: suppressed positive response)."""
        if not payload:
            return None
        sid = payload[0]
        try:
            if sid not in _SUPPORTED:
                raise NegativeResponse(Code.ServiceNotSupported)
            if sid in _EXTENDED_ONLY and self.session == DEFAULT_SESSION:
                raise NegativeResponse(Code.ServiceNotSupportedInActiveSession)
            request = Request.from_payload(payload)
            handler = {
                0x10: self._session_control,
                0x3E: self._tester_present,
                0x19: self._read_dtc,
                0x14: self._clear,
                0x22: self._read_did,
                0x85: self._dtc_setting,
            }[sid]
            data = handler(request, payload)
        except NegativeResponse as nrc:
            return bytes([0x7F, sid, nrc.code])
        if data is None:
            return None
        return bytes([sid + 0x40]) + data

    def _subfunction(self, payload: bytes, valid: set[int], length: int) -> tuple[int, bool]:
        if len(payload) < 2:
            raise NegativeResponse(Code.IncorrectMessageLengthOrInvalidFormat)
        sub, suppress = payload[1] & 0x7F, bool(payload[1] & 0x80)
        if sub not in valid:
            raise NegativeResponse(Code.SubFunctionNotSupported)
        if len(payload) != length:
            raise NegativeResponse(Code.IncorrectMessageLengthOrInvalidFormat)
        return sub, suppress

    def _session_control(self, _request: Request, payload: bytes) -> bytes | None:
        sub, suppress = self._subfunction(payload, {DEFAULT_SESSION, EXTENDED_SESSION}, 2)
        self._enter(sub)
        timing = P2_SERVER_MS.to_bytes(2, "big") + (P2_STAR_SERVER_MS // 10).to_bytes(2, "big")
        return None if suppress else bytes([sub]) + timing

    def _enter(self, session: int) -> None:
        self.session = session
        if session == DEFAULT_SESSION:
            self.memory.setting_on = True

    def _tester_present(self, _request: Request, payload: bytes) -> bytes | None:
        _, suppress = self._subfunction(payload, {0x00}, 2)
        return None if suppress else b"\x00"

    def _read_dtc(self, _request: Request, payload: bytes) -> bytes | None:
        sub, _ = self._subfunction(payload, {0x01, 0x02}, 3)
        mask = payload[2]
        found = self.memory.matching(mask)
        if sub == 0x01:
            return bytes([0x01, AVAILABILITY_MASK, DTC_FORMAT_J2012]) + len(found).to_bytes(
                2, "big"
            )
        records = b"".join(code.to_bytes(3, "big") + bytes([status]) for code, status in found)
        return bytes([0x02, AVAILABILITY_MASK]) + records

    def _clear(self, _request: Request, payload: bytes) -> bytes | None:
        if len(payload) != 4:
            raise NegativeResponse(Code.IncorrectMessageLengthOrInvalidFormat)
        group = int.from_bytes(payload[1:4], "big")
        if self.clear_refused():
            raise NegativeResponse(Code.ConditionsNotCorrect)
        if not self.memory.clear(None if group == 0xFFFFFF else group):
            raise NegativeResponse(Code.RequestOutOfRange)
        return b""

    def _read_did(self, _request: Request, payload: bytes) -> bytes | None:
        body = payload[1:]
        if not body or len(body) % 2:
            raise NegativeResponse(Code.IncorrectMessageLengthOrInvalidFormat)
        out = b""
        for i in range(0, len(body), 2):
            did_id = int.from_bytes(body[i : i + 2], "big")
            if did_id in self.dids:
                did, value = self.dids[did_id]
                out += body[i : i + 2] + did.encode(value())
        if not out:
            raise NegativeResponse(Code.RequestOutOfRange)
        return out

    def _dtc_setting(self, _request: Request, payload: bytes) -> bytes | None:
        sub, suppress = self._subfunction(payload, {0x01, 0x02}, 2)
        self.memory.setting_on = sub == 0x01
        return None if suppress else bytes([sub])
