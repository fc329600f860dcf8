"""Fault injection: one grammar for the command line and for plans.

    KIND[:TARGET][=VALUE][@START[+DURATION]]

START is when the fault begins (simulated time since the vehicle started, default 0) and DURATION
how long it lasts (default: to the end of the run). Both take the durations of plans: ``300s``,
``5min``, ``100ms``, ``2h``. Frame faults act only on messages the vehicle sends (BMS and MCU
senders in the DBC set); the bench's own ``VCU_*`` frames are never touched.

Frame and signal faults (TARGET is a message, or ``Message.Signal``):

``stop:MSG``
    The message is not transmitted while the fault is active (a gap on the bus). Its alive
    counter does not advance either: the ECU is silent, not broken.
``stretch:MSG=FACTOR``
    The cycle time is multiplied by FACTOR (> 0, default 2.0), e.g. ``stretch:MCU_Status=2.0``
    sends every 20 ms instead of 10 ms.
``stuck:MSG.SIG``
    The signal keeps the value it had when the fault started.
``offset:MSG.SIG=DELTA``
    DELTA (physical units) is added to the signal, e.g. ``offset:BMS_Temps.MaxCellTemp=15``.
``noise:MSG.SIG=SIGMA``
    Gaussian noise of standard deviation SIGMA (physical units, seeded) is added to the signal.

    For these three the ECU itself sends the wrong value: the alive counter and CRC stay valid,
    and the value saturates at the DBC range of the signal.
``counter_skip:MSG[=N]``
    The alive counter jumps by 1 + N (default N = 1) per frame instead of 1. MSG must carry an
    ``AliveCounter``.
``bad_crc:MSG``
    The CRC byte is inverted (every other byte stays right). MSG must be a protected message (with
    ``CRC``) the vehicle sends: BMS_PackStatus, BMS_Status, MCU_Status, MCU_State in the shipped
    DBCs. (The vehicle does not send the bench's ``VCU_*`` frames, so it cannot corrupt them.)
``dlc:MSG=N``
    Frames are sent with data length N: cut short, or zero-padded. N is 0-8 for classic CAN and a
    valid CAN FD length (0-8, 12, 16, 20, 24, 32, 48, 64) for FD messages.
``error_frames:bus[=RATE]`` / ``error_frames:MSG``
    ``bus``: RATE error frames per second (default 10) appear on the bus. ``MSG``: every
    transmission of MSG is preceded by an error frame (the first attempt destroyed, then
    retransmitted), at the same timestamp.

Physical events (TARGET optional, shown with its default):

``cell_overtemp[:SENSOR]=TEMP``
    The cells at temperature sensor SENSOR (1-48, default 1) heat at 1 K/s to TEMP °C
    (default 70) and cool back afterwards. Above 60 °C the BMS raises CELL_OVERTEMP (FaultCode 17)
    at SHUTDOWN level, goes to HvState FAULT and opens the contactors.
``insulation_fault[:BMS]=KOHM``
    The HV isolation resistance drops to KOHM kOhm (default 50). Below 80 kOhm (100 Ohm/V) the BMS
    raises INSULATION_LOW (FaultCode 49) at SHUTDOWN level, HvState FAULT, contactors open.
``heater_fail[:BMS]``
    The battery heater produces no heat: HeaterActive 0 and HeaterPower 0 even when requested, and
    while it is requested the BMS reports HEATER_FAILURE (FaultCode 65) at WARNING level. The
    BMS's heater circuit check runs every monitoring cycle, requested or not: the DTC P1A41-92
    heater_circuit_failure fails (confirmed after 1 s; see :mod:`virtual_bus.ecus.uds_dtc`).
``coolant_pump_fail[:all|BMS|MCU]``
    The coolant pumps stop: ``all`` (default; VCU_Thermal.CoolantPumpRequest goes to both loops),
    only the battery loop's (``BMS``) or only the motor loop's (``MCU``). Battery loop: the
    cells lose their cold plate (the chiller cools stagnant coolant, CoolantInletTemp drops while
    the cells heat up when charging or driving; the heater's heat stays in the coolant). Motor
    loop: MCU_State.CoolantPumpActive 0 even when requested, motor and inverter heat up under load,
    and while cooling is wanted the MCU reports COOLANT_LOSS (FaultCode 7) at WARNING level.

ECU software defects (what a bench must be able to catch):

``no_derate[:MCU]``
    The MCU's thermal derating is disabled: the torque limit stays at the machine's envelope
    however hot stator, inverter and coolant get, DerateActive stays 0 for them; the hard limits
    (stator > 180 °C, inverter > 125 °C: SHUTDOWN) still act.
``no_timeout[:all|BMS|MCU]``
    The ECU ignores a missing VCU_Command: no comm-loss reaction (the MCU goes on applying the
    last torque request, the BMS keeps its contactors closed). ``all`` (default) or one ECU.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from bench.dbc import DbcSet, suggest
from bench.durations import parse_duration
from bench.e2e import COUNTER_SIGNAL, crc_byte_index
from bench.errors import InputError

VEHICLE_SENDERS = ("BMS", "MCU")
FD_LENGTHS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64)
SENSOR_COUNT = 48
PUMP_TARGETS = ("all", "BMS", "MCU")


@dataclass(frozen=True)
class KindInfo:
    syntax: str
    summary: str
    # "message" | "signal" | "counter" | "crc" | "error" | "sensor" | "pump" (all|BMS|MCU) | an ECU
    target: str
    value: str  # "none" | "required" | "optional"
    default: float | None = None


KINDS: dict[str, KindInfo] = {
    "stop": KindInfo("stop:MSG", "message not sent", "message", "none"),
    "stretch": KindInfo("stretch:MSG=FACTOR", "cycle time x FACTOR", "message", "optional", 2.0),
    "stuck": KindInfo("stuck:MSG.SIG", "signal frozen at its value", "signal", "none"),
    "offset": KindInfo("offset:MSG.SIG=DELTA", "DELTA added to the signal", "signal", "required"),
    "noise": KindInfo("noise:MSG.SIG=SIGMA", "gaussian noise on the signal", "signal", "required"),
    "counter_skip": KindInfo(
        "counter_skip:MSG[=N]", "alive counter jumps by 1+N", "counter", "optional", 1.0
    ),
    "bad_crc": KindInfo("bad_crc:MSG", "CRC byte inverted", "crc", "none"),
    "dlc": KindInfo("dlc:MSG=N", "frames sent with data length N", "message", "required"),
    "error_frames": KindInfo(
        "error_frames:bus[=RATE] | error_frames:MSG",
        "error frames on the bus (RATE/s) or before each MSG frame",
        "error",
        "optional",
        10.0,
    ),
    "cell_overtemp": KindInfo(
        "cell_overtemp[:SENSOR][=TEMP]",
        "cells at SENSOR heat to TEMP °C",
        "sensor",
        "optional",
        70.0,
    ),
    "insulation_fault": KindInfo(
        "insulation_fault[:BMS][=KOHM]", "HV isolation drops to KOHM", "BMS", "optional", 50.0
    ),
    "heater_fail": KindInfo("heater_fail[:BMS]", "battery heater gives no heat", "BMS", "none"),
    "coolant_pump_fail": KindInfo(
        "coolant_pump_fail[:all|BMS|MCU]", "coolant pumps stop (both loops or one)", "pump", "none"
    ),
    "no_derate": KindInfo("no_derate[:MCU]", "MCU thermal derating disabled", "MCU", "none"),
    "no_timeout": KindInfo(
        "no_timeout[:all|BMS|MCU]", "no reaction to a missing VCU_Command", "pump", "none"
    ),
}

_DEFAULT_TARGET = {
    "cell_overtemp": "1",
    "insulation_fault": "BMS",
    "heater_fail": "BMS",
    "coolant_pump_fail": "all",
    "no_derate": "MCU",
    "no_timeout": "all",
}
PHYSICAL_KINDS = frozenset(_DEFAULT_TARGET)

_GRAMMAR = re.compile(
    r"^(?P<kind>[A-Za-z_]+)"
    r"(?::(?P<target>[^=@]+))?"
    r"(?:=(?P<value>[^@]+))?"
    r"(?:@(?P<start>[^+]+)(?:\+(?P<duration>.+))?)?$"
)


@dataclass(frozen=True)
class FaultSpec:
    """One parsed fault: what, on what, how much, from when, for how long (seconds)."""

    kind: str
    target: str
    value: float | None = None
    start: float = 0.0
    duration: float | None = None

    @property
    def end(self) -> float:
        return float("inf") if self.duration is None else self.start + self.duration

    def active(self, t: float) -> bool:
        """True while the fault acts, ``t`` in seconds since the vehicle started."""
        return self.start <= t < self.end

    @property
    def message(self) -> str:
        """The message part of the target (``MSG`` of ``MSG.SIG``)."""
        return self.target.partition(".")[0]

    @property
    def signal(self) -> str | None:
        return self.target.partition(".")[2] or None

    def __str__(self) -> str:
        """The fault in the grammar; parsing it gives this FaultSpec back exactly."""
        text = f"{self.kind}:{self.target}"
        if self.value is not None:
            text += f"={_exact(self.value)}"
        if self.start or self.duration is not None:
            text += f"@{_seconds(self.start)}"
            if self.duration is not None:
                text += f"+{_seconds(self.duration)}"
        return text


def _exact(number: float) -> str:
    """Shortest text that reads back as the same float (``15`` rather than ``15.0``)."""
    return str(int(number)) if float(number).is_integer() else repr(float(number))


def _seconds(number: float) -> str:
    # parse_duration reads "1e-05" as bare seconds but not "1e-05s": no unit after an exponent.
    text = _exact(number)
    return text if "e" in text else f"{text}s"


def describe_faults() -> str:
    """The fault grammar and every kind, one line each, for ``--help`` texts."""
    lines = ["Faults: KIND[:TARGET][=VALUE][@START[+DURATION]]  e.g. stop:BMS_PackStatus@300s+5s"]
    width = max(len(info.syntax) for info in KINDS.values())
    lines += [f"  {info.syntax:<{width}}  {info.summary}" for info in KINDS.values()]
    return "\n".join(lines)


@cache
def _default_dbcs() -> DbcSet:
    return DbcSet.load()


def vehicle_messages(dbcs: DbcSet) -> list[str]:
    """Names of the messages the virtual vehicle sends (BMS and MCU senders)."""
    return [m.name for m in dbcs.messages if set(m.senders) & set(VEHICLE_SENDERS)]


def parse_fault(text: str, dbcs: DbcSet | None = None) -> FaultSpec:
    """Parse and validate one fault; :class:`InputError` naming what is wrong and the valid ones."""
    dbcs = dbcs or _default_dbcs()
    source = str(text).strip()
    match = _GRAMMAR.match(source)
    if not match:
        raise InputError(
            f"fault {source!r}: expected KIND[:TARGET][=VALUE][@START[+DURATION]], "
            "e.g. stop:BMS_PackStatus@300s+5s"
        )
    kind = match["kind"]
    if kind not in KINDS:
        raise InputError(
            f"fault {source!r}: unknown kind {kind!r}{suggest(kind, KINDS)}; "
            f"valid kinds: {', '.join(KINDS)}"
        )
    info = KINDS[kind]
    target = _check_target(source, kind, info, (match["target"] or "").strip(), dbcs)
    value = _check_value(source, kind, info, match["value"], target, dbcs)
    start = _duration(source, "start", match["start"]) if match["start"] else 0.0
    duration = _duration(source, "duration", match["duration"]) if match["duration"] else None
    if duration is not None and duration <= 0:
        raise InputError(f"fault {source!r}: duration must be more than 0")
    return FaultSpec(kind, target, value, start, duration)


def parse_faults(texts: Iterable[str | FaultSpec], dbcs: DbcSet | None = None) -> list[FaultSpec]:
    return [t if isinstance(t, FaultSpec) else parse_fault(t, dbcs) for t in texts]


def _duration(source: str, what: str, text: str) -> float:
    try:
        return parse_duration(text.strip())
    except ValueError as exc:
        raise InputError(f"fault {source!r}: bad {what}: {exc}") from None


def _bad_target(source: str, target: str, valid: list[str]) -> InputError:
    shown = ", ".join(valid) if valid else "(none in this DBC set)"
    return InputError(
        f"fault {source!r}: invalid target {target!r}{suggest(target, valid)}; "
        f"valid targets: {shown}"
    )


def _check_target(source: str, kind: str, info: KindInfo, target: str, dbcs: DbcSet) -> str:
    if not target:
        if kind in _DEFAULT_TARGET:
            return _DEFAULT_TARGET[kind]
        raise InputError(f"fault {source!r}: {kind} needs a target: {info.syntax}")
    sent = vehicle_messages(dbcs)
    if info.target == "message":
        valid = sent
    elif info.target == "signal":
        valid = [f"{m}.{s.name}" for m in sent for s in dbcs.message(m).signals]
    elif info.target == "counter":
        valid = [m for m in sent if _has_signal(dbcs, m, COUNTER_SIGNAL)]
    elif info.target == "crc":
        valid = [m for m in sent if crc_byte_index(dbcs.message(m)) is not None]
    elif info.target == "error":
        valid = ["bus", *sent]
    elif info.target == "pump":
        valid = list(PUMP_TARGETS)
    elif info.target == "sensor":
        valid = [str(i) for i in range(1, SENSOR_COUNT + 1)]
    else:
        valid = [info.target]
    if target not in valid:
        if info.target == "sensor":
            raise InputError(
                f"fault {source!r}: invalid sensor {target!r}; valid targets: 1-{SENSOR_COUNT}"
            )
        raise _bad_target(source, target, valid)
    return target


def _has_signal(dbcs: DbcSet, message: str, signal: str) -> bool:
    return any(s.name == signal for s in dbcs.message(message).signals)


def _check_value(
    source: str, kind: str, info: KindInfo, text: str | None, target: str, dbcs: DbcSet
) -> float | None:
    if kind == "error_frames" and target != "bus":
        if text is not None:
            raise InputError(f"fault {source!r}: error_frames on a message takes no value")
        return None
    if text is None:
        if info.value == "required":
            raise InputError(f"fault {source!r}: {kind} needs a value: {info.syntax}")
        return None if info.value == "none" else info.default
    if info.value == "none":
        raise InputError(f"fault {source!r}: {kind} takes no value: {info.syntax}")
    try:
        value = float(text.strip())
    except ValueError:
        raise InputError(f"fault {source!r}: value {text.strip()!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise InputError(f"fault {source!r}: value must be a finite number")
    _check_range(source, kind, value, target, dbcs)
    return value


def _check_range(source: str, kind: str, value: float, target: str, dbcs: DbcSet) -> None:
    if kind in ("stretch", "error_frames") and value <= 0:
        raise InputError(f"fault {source!r}: {kind} value must be more than 0")
    if kind == "noise" and value < 0:
        raise InputError(f"fault {source!r}: noise sigma cannot be negative")
    if kind == "counter_skip" and (value != int(value) or value < 1):
        raise InputError(f"fault {source!r}: counter_skip N must be a whole number >= 1")
    if kind == "insulation_fault" and value < 0:
        raise InputError(f"fault {source!r}: insulation resistance cannot be negative")
    if kind == "dlc":
        message = dbcs.message(target)
        valid = FD_LENGTHS if message.is_fd else tuple(range(9))
        if value not in valid:
            shown = ", ".join(str(v) for v in valid)
            raise InputError(f"fault {source!r}: dlc {value:g} not valid for {target}: {shown}")
