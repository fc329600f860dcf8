"""DIDs, DTCs and addressing of the ECUs bench talks UDS to, described once.

Everything that names a diagnostic value (the runner's ``diag:`` step, the ``dtc:``/``did:``
checks, ``bench diag``, reports) goes through this catalog, so a report shows
``pack_soh = 97.5 %`` and ``P0AA6-1A insulation_resistance_low``, never ``0x4010`` or ``0x0AA61A``.

DTCs (ISO 14229-1 DTCFormatIdentifier ``SAE_J2012-DA_DTCFormat_00``: 3 bytes = the 2-byte
SAE J2012 / ISO 15031-6 code + a 1-byte failure type, FTB). The display form is ``P0AA6-1A``:
the letter is bits 15-14 of the code (P=0 powertrain, C=1 chassis, B=2 body, U=3 network),
then bits 13-12 as a digit, bits 11-0 as three hex digits, and the FTB in hex. Codes of the
virtual vehicle:

====  ==========  ==============================  ===========================================
ECU   label       name                            source
====  ==========  ==============================  ===========================================
BMS   P0A7E-4B    cell_overtemperature            SAE J2012 P0A7E "Hybrid/EV Battery Pack Over
                                                  Temperature"; FTB 0x4B "over temperature"
BMS   P0AA6-1A    insulation_resistance_low       SAE J2012 P0AA6 "Hybrid/EV Battery Voltage
                                                  System Isolation Fault"; FTB 0x1A "circuit
                                                  resistance below threshold"
BMS   P0C78-00    precharge_failure               SAE J2012 P0C78 "Hybrid/EV Battery Voltage
                                                  System Precharge Time Too Long"
BMS   U0293-87    lost_communication_vcu          SAE J2012 U0293 "Lost Communication With
                                                  Hybrid/EV Powertrain Control Module" (the
                                                  VCU); FTB 0x87 "missing message"
BMS   P1A41-92    heater_circuit_failure          bench's own, manufacturer-controlled range
                                                  P1xxx (1A41: BMS FaultCode 65 = 0x41); FTB
                                                  0x92 "performance or incorrect operation"
BMS   P1A12-00    cell_undertemperature           bench's own (P1xxx; BMS FaultCode 18 = 0x12)
BMS   P1A21-17    cell_overvoltage                bench's own (P1xxx; FaultCode 33 = 0x21); FTB
                                                  0x17 "circuit voltage above threshold"
BMS   P1A22-16    cell_undervoltage               bench's own (P1xxx; FaultCode 34 = 0x22); FTB
                                                  0x16 "circuit voltage below threshold"
MCU   P0A2F-4B    stator_overtemperature          SAE J2012 P0A2F "Drive Motor 'A' Over
                                                  Temperature"; FTB 0x4B
MCU   P0A3C-4B    inverter_overtemperature        SAE J2012 P0A3C "Drive Motor 'A' Inverter Over
                                                  Temperature"; FTB 0x4B
MCU   U0293-87    lost_communication_vcu          as for the BMS
MCU   P1C07-92    coolant_pump_failure            bench's own (P1xxx; MCU FaultCode 7); FTB 0x92
====  ==========  ==============================  ===========================================

The SAE titles are the ones commonly published for these codes; map a real ECU's codes from its
own diagnostic specification (give them in the plan's ``diagnostics:`` section only for
addressing; the virtual vehicle's codes are the defaults here).

DIDs (ISO 14229-1 Annex C: 0xF180-0xF19F identification, 0x0100-0xA5FF vehicle manufacturer
specific): ``software_version`` 0xF195 (VehicleManufacturerECUSoftwareVersionNumber),
``ecu_serial_number`` 0xF18C (ECUSerialNumber), ``hardware_version`` 0xF193
(SystemSupplierECUHardwareVersionNumber), and manufacturer DIDs 0x4000- (BMS) and 0x5000- (MCU).
Values are big-endian unsigned/signed integers (``u8``, ``u16``, ``s16``, ``u32``) with
``physical = raw * scale + offset``, or fixed-length ASCII (``ascii:N``, right-padded with
spaces, which decoding strips).

Addressing: physical request/response CAN ids, ``normal_11bit`` (ISO 15765-2 normal addressing,
the OBD-style 0x7E0-0x7E7 requests with the response 8 above) or ``normal_fixed_29bit``
(ISO 15765-2 normal fixed addressing: 0x18DA<TA><SA> requests, 0x18DA<SA><TA> responses; the
tester is SA 0xF1 by convention). The virtual BMS answers 0x7E4/0x7EC, the MCU 0x7E2/0x7EA.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Addressing = Literal["normal_11bit", "normal_fixed_29bit"]
ADDRESSINGS: tuple[str, ...] = ("normal_11bit", "normal_fixed_29bit")

# ISO 14229-1 DTCStatusMask bits, bit 0 first, spelled as udsoncan's Dtc.Status attributes.
STATUS_BITS: tuple[str, ...] = (
    "test_failed",
    "test_failed_this_operation_cycle",
    "pending",
    "confirmed",
    "test_not_completed_since_last_clear",
    "test_failed_since_last_clear",
    "test_not_completed_this_operation_cycle",
    "warning_indicator_requested",
)

_CODECS = {"u8": (1, False), "u16": (2, False), "s16": (2, True), "u32": (4, False)}
_ASCII = re.compile(r"^ascii:(\d+)$")
_LETTERS = "PCBU"
_LABEL = re.compile(r"^([PCBU])([0-3])([0-9A-F]{3})(?:-([0-9A-F]{2}))?$", re.IGNORECASE)


def status_names(status: int) -> list[str]:
    """Names of the bits set in a DTC status byte (0-255), bit 0 first."""
    return [name for bit, name in enumerate(STATUS_BITS) if status >> bit & 1]


def status_mask(names: list[str] | tuple[str, ...]) -> int:
    """The status byte with the named bits set; KeyError naming the valid names."""
    mask = 0
    for name in names:
        if name not in STATUS_BITS:
            raise KeyError(f"unknown DTC status bit {name!r}; valid: {', '.join(STATUS_BITS)}")
        mask |= 1 << STATUS_BITS.index(name)
    return mask


def dtc_label(code: int) -> str:
    """SAE J2012 display form of a 24-bit UDS DTC: ``0x0AA61A`` -> ``"P0AA6-1A"``."""
    if not 0 <= code <= 0xFFFFFF:
        raise ValueError(f"DTC 0x{code:X} is not a 24-bit value")
    high = code >> 8
    letter = _LETTERS[high >> 14]
    return f"{letter}{(high >> 12) & 0x3}{high & 0xFFF:03X}-{code & 0xFF:02X}"


def parse_dtc_label(text: str) -> int:
    """``"P0AA6-1A"`` -> ``0x0AA61A`` (FTB 00 when omitted); ValueError on another form."""
    match = _LABEL.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a DTC like P0AA6-1A")
    letter, digit, rest, ftb = match.groups()
    high = _LETTERS.index(letter.upper()) << 14 | int(digit) << 12 | int(rest, 16)
    return high << 8 | int(ftb or "00", 16)


@dataclass(frozen=True)
class Did:
    """One data identifier: 16-bit id, name, codec and the physical scaling.

    ``codec`` is ``"ascii:N"`` (N bytes) or ``"u8"``/``"u16"``/``"s16"``/``"u32"`` (big-endian,
    as ISO 14229 transmits), ``physical = raw * scale + offset`` in ``unit``.
    """

    id: int
    name: str
    codec: str
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.id <= 0xFFFF:
            raise ValueError(f"DID {self.name}: id 0x{self.id:X} is not 16-bit")
        self.length  # noqa: B018 — validates the codec

    @property
    def length(self) -> int:
        """Bytes of the data record."""
        match = _ASCII.match(self.codec)
        if match:
            return int(match[1])
        if self.codec not in _CODECS:
            raise ValueError(
                f"DID {self.name}: unknown codec {self.codec!r}; valid: ascii:N, "
                + ", ".join(_CODECS)
            )
        return _CODECS[self.codec][0]

    @property
    def is_text(self) -> bool:
        return self.codec.startswith("ascii:")

    def decode(self, payload: bytes) -> float | str:
        """The physical value of a data record; ValueError when its length is not the codec's."""
        payload = bytes(payload)
        if len(payload) != self.length:
            raise ValueError(
                f"DID {self.name} (0x{self.id:04X}): {len(payload)} bytes, expected {self.length}"
            )
        if self.is_text:
            return payload.decode("ascii", errors="replace").rstrip(" \x00")
        raw = int.from_bytes(payload, "big", signed=_CODECS[self.codec][1])
        value = raw * self.scale + self.offset
        return round(value, 9) if self.scale != 1.0 or self.offset else float(raw)

    def encode(self, value: float | str) -> bytes:
        """The data record of a physical value (rounded to the nearest raw step, saturated at
        the codec's range; text cut or space-padded to N bytes)."""
        if self.is_text:
            text = str(value).encode("ascii", errors="replace")[: self.length]
            return text.ljust(self.length, b" ")
        size, signed = _CODECS[self.codec]
        number = float(value)
        if math.isnan(number):
            raise ValueError(f"DID {self.name}: cannot encode NaN")
        raw = round((number - self.offset) / self.scale)
        low, high = (
            (-(1 << (8 * size - 1)), (1 << (8 * size - 1)) - 1) if signed else (0, 256**size - 1)
        )
        return int(min(high, max(low, raw))).to_bytes(size, "big", signed=signed)

    def display(self, value: float | str) -> str:
        """``"97.5 %"``: the value with its unit, for tables and reports."""
        if isinstance(value, str):
            return value
        text = f"{value:g}"
        return f"{text} {self.unit}" if self.unit else text


@dataclass(frozen=True)
class Dtc:
    """One diagnostic trouble code: the 24-bit UDS value, a name and a one-line text."""

    code: int
    name: str
    text: str

    @property
    def label(self) -> str:
        """SAE J2012 display form, e.g. ``"P0AA6-1A"``."""
        return dtc_label(self.code)


@dataclass(frozen=True)
class Ecu:
    """An ECU bench talks UDS to: its physical addressing, DIDs and DTCs."""

    name: str
    request_id: int
    response_id: int
    addressing: Addressing
    dids: tuple[Did, ...] = ()
    dtcs: tuple[Dtc, ...] = field(default=())

    @property
    def is_extended_id(self) -> bool:
        return self.addressing == "normal_fixed_29bit"

    @property
    def target_address(self) -> int:
        """ISO 15765-2 N_TA of a 29-bit normal-fixed request (bits 15-8 of the request id)."""
        return (self.request_id >> 8) & 0xFF

    @property
    def source_address(self) -> int:
        """ISO 15765-2 N_SA of a 29-bit normal-fixed request: the tester's address."""
        return self.request_id & 0xFF

    def did(self, name_or_id: str | int) -> Did:
        """The DID by name or id; KeyError naming the known ones."""
        for did in self.dids:
            if did.name == name_or_id or did.id == name_or_id:
                return did
        shown = name_or_id if isinstance(name_or_id, str) else f"0x{name_or_id:04X}"
        known = ", ".join(d.name for d in self.dids) or "(none)"
        raise KeyError(f"{self.name} has no DID {shown!r}; known: {known}")

    def dtc(self, name_or_code: str | int) -> Dtc:
        """The DTC by name, label (``P0AA6-1A``) or 24-bit code; KeyError naming the known ones."""
        for dtc in self.dtcs:
            if name_or_code in (dtc.name, dtc.code) or (
                isinstance(name_or_code, str) and name_or_code.upper() == dtc.label
            ):
                return dtc
        shown = name_or_code if isinstance(name_or_code, str) else dtc_label(name_or_code)
        known = ", ".join(f"{d.name} ({d.label})" for d in self.dtcs) or "(none)"
        raise KeyError(f"{self.name} has no DTC {shown!r}; known: {known}")

    def describe_dtc(self, code: int) -> Dtc:
        """The catalog's DTC for ``code``, or an unnamed one (``name`` = its label) if unknown."""
        try:
            return self.dtc(code)
        except KeyError:
            return Dtc(code, dtc_label(code), "not in the catalog")


# -- the virtual vehicle's ECUs ------------------------------------------------------------------

IDENTIFICATION_DIDS: tuple[Did, ...] = (
    Did(0xF18C, "ecu_serial_number", "ascii:8"),
    Did(0xF193, "hardware_version", "ascii:4"),
    Did(0xF195, "software_version", "ascii:8"),
)

BMS_DIDS: tuple[Did, ...] = (
    *IDENTIFICATION_DIDS,
    Did(0x4001, "pack_soh", "u16", 0.01, unit="%"),
    Did(0x4002, "pack_soc", "u16", 0.01, unit="%"),
    Did(0x4003, "pack_voltage", "u16", 0.1, unit="V"),
    Did(0x4004, "min_cell_voltage", "u16", 0.001, unit="V"),
    Did(0x4005, "max_cell_voltage", "u16", 0.001, unit="V"),
    Did(0x4006, "min_cell_temp", "s16", 0.1, unit="°C"),
    Did(0x4007, "max_cell_temp", "s16", 0.1, unit="°C"),
    Did(0x4008, "insulation_resistance", "u16", 1.0, unit="kOhm"),
    Did(0x4009, "cycle_count", "u16"),
    Did(0x400A, "hv_state", "u8"),
)

MCU_DIDS: tuple[Did, ...] = (
    *IDENTIFICATION_DIDS,
    Did(0x5001, "stator_temp", "s16", 0.1, unit="°C"),
    Did(0x5002, "inverter_temp", "s16", 0.1, unit="°C"),
    Did(0x5003, "coolant_temp", "s16", 0.1, unit="°C"),
    Did(0x5004, "dc_link_voltage", "u16", 0.1, unit="V"),
    Did(0x5005, "motor_speed", "s16", 1.0, unit="rpm"),
    Did(0x5006, "torque_limit", "s16", 0.1, unit="Nm"),
)

_VCU_LOST = Dtc(0xC29387, "lost_communication_vcu", "Lost communication with the VCU")

BMS_DTCS: tuple[Dtc, ...] = (
    Dtc(0x0A7E4B, "cell_overtemperature", "Cell over-temperature (> 60 °C)"),
    Dtc(0x0AA61A, "insulation_resistance_low", "HV insulation resistance low (< 400 kOhm)"),
    Dtc(0x0C7800, "precharge_failure", "Precharge time too long (95 % not reached in 2 s)"),
    _VCU_LOST,
    Dtc(0x1A4192, "heater_circuit_failure", "Battery heater circuit check failed: no heat"),
    Dtc(0x1A1200, "cell_undertemperature", "Cell under-temperature (< -35 °C)"),
    Dtc(0x1A2117, "cell_overvoltage", "Cell over-voltage (> 4.25 V)"),
    Dtc(0x1A2216, "cell_undervoltage", "Cell under-voltage (< 2.7 V)"),
)

MCU_DTCS: tuple[Dtc, ...] = (
    Dtc(0x0A2F4B, "stator_overtemperature", "Drive motor stator over-temperature"),
    Dtc(0x0A3C4B, "inverter_overtemperature", "Drive motor inverter over-temperature"),
    _VCU_LOST,
    Dtc(0x1C0792, "coolant_pump_failure", "Motor coolant pump not running when needed"),
)


def virtual_vehicle_ecus() -> dict[str, Ecu]:
    """The BMS and MCU of ``virtual_bus``, by name (a new dict each call)."""
    return {
        "BMS": Ecu("BMS", 0x7E4, 0x7EC, "normal_11bit", BMS_DIDS, BMS_DTCS),
        "MCU": Ecu("MCU", 0x7E2, 0x7EA, "normal_11bit", MCU_DIDS, MCU_DTCS),
    }


def _field(spec: Any, name: str) -> Any:
    if isinstance(spec, Mapping):
        return spec.get(name)
    return getattr(spec, name, None)


def with_addressing(ecus: Mapping[str, Ecu], overrides: Mapping[str, Any] | None) -> dict[str, Ecu]:
    """``ecus`` with the addressing of ``overrides`` (ECU name -> mapping or object with any of
    ``request_id``, ``response_id``, ``addressing``). An ECU not in ``ecus`` is added with the
    identification DIDs only and no named DTCs (its codes show as labels); it then needs both ids.
    ValueError naming the ECU when the ids do not fit the addressing.
    """
    result = dict(ecus)
    for name, spec in (overrides or {}).items():
        base = result.get(name)
        request = _field(spec, "request_id")
        response = _field(spec, "response_id")
        addressing = _field(spec, "addressing")
        if base is None:
            if request is None or response is None:
                raise ValueError(
                    f"diagnostics: ECU {name!r} is new and needs request_id and response_id"
                )
            base = Ecu(name, request, response, addressing or "normal_11bit", IDENTIFICATION_DIDS)
        ecu = replace(
            base,
            request_id=base.request_id if request is None else int(request),
            response_id=base.response_id if response is None else int(response),
            addressing=addressing or base.addressing,
        )
        check_addressing(ecu)
        result[name] = ecu
    return result


def check_addressing(ecu: Ecu) -> None:
    """ValueError naming the ECU when its ids do not fit its addressing."""
    if ecu.addressing not in ADDRESSINGS:
        raise ValueError(
            f"ECU {ecu.name}: unknown addressing {ecu.addressing!r}; "
            f"valid: {', '.join(ADDRESSINGS)}"
        )
    limit = 0x1FFFFFFF if ecu.is_extended_id else 0x7FF
    for what, value in (("request_id", ecu.request_id), ("response_id", ecu.response_id)):
        if not 0 <= value <= limit:
            raise ValueError(f"ECU {ecu.name}: {what} 0x{value:X} does not fit {ecu.addressing}")
    if ecu.request_id == ecu.response_id:
        raise ValueError(
            f"ECU {ecu.name}: request_id and response_id are both 0x{ecu.request_id:X}"
        )
    if ecu.is_extended_id:
        request, response = ecu.request_id, ecu.response_id
        if request >> 16 & 0xFF != 0xDA or response >> 16 & 0xFF != 0xDA:
            raise ValueError(
                f"ECU {ecu.name}: normal_fixed_29bit ids are 0x18DA<TA><SA> (physical), "
                f"got 0x{request:X}/0x{response:X}"
            )
        if (request >> 8 & 0xFF, request & 0xFF) != (response & 0xFF, response >> 8 & 0xFF):
            raise ValueError(
                f"ECU {ecu.name}: response 0x{response:X} must swap the request's "
                f"target and source addresses (0x{request:X})"
            )


def plan_ecus(plan: Any) -> dict[str, Ecu]:
    """The plan's ``diagnostics:`` section (ECU name -> addressing) over the virtual vehicle's
    ECUs. ``plan`` is a :class:`bench.plan.model.Plan` (or anything with a ``diagnostics``
    mapping, or None)."""
    overrides = getattr(plan, "diagnostics", None) if plan is not None else None
    return with_addressing(virtual_vehicle_ecus(), overrides)
