"""The plan as pydantic models: what a plan may say, checked for shape before anything else.

These models check what can be checked from the plan alone (types, required keys, which keys go
together, impossible limits). Names are checked against the DBCs afterwards, by
:mod:`bench.plan.validate`, and the loader (:mod:`bench.plan.loader`) turns every problem into
``file:line:column: message``. A model validator that blames one key raises :class:`FieldError`
so the loader can point at that key rather than at the whole mapping.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from ..durations import format_duration
from .checks import AnyCheck, CheckSpec, ConditionText, Duration
from .drive_cycle import BUILTIN_NAMES, profile_length_s

if TYPE_CHECKING:
    from ..dbc import DbcSet

AMBIENT_MESSAGE = "VCU_Ambient"
AMBIENT_SIGNALS = {
    "ambient_c": "VCU_Ambient.AmbientTemp",
    "solar_w_m2": "VCU_Ambient.SolarLoad",
    "road_grade_pct": "VCU_Ambient.RoadGrade",
    "headwind_kmh": "VCU_Ambient.Headwind",
}
"""Where the runner broadcasts a step's environment keys (checked against their DBC ranges).

``headwind_kmh`` is set only through a ``drive:`` step (``drive.headwind_kmh``)."""

CHARGE_SIGNALS = {
    "current_a": "VCU_Charge.ChargeCurrentRequest",
    "voltage_limit_v": "VCU_Charge.ChargeVoltageLimit",
    "target_soc": "VCU_Charge.TargetSOC",
}
"""Where a ``charge:`` step's values go on the bus (checked against their DBC ranges)."""

RUN_EVENTS = ("run_start",)
"""Event names the runner emits that ``after:`` may name besides step names."""


class FieldError(ValueError):
    """A model-level problem that one key of the mapping is to blame for."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _signal_value(value: Any) -> float | str:
    # A value is a number, a choice name of the signal, or true/false (1/0) for one-bit flags.
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {value!r}")
        return float(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ValueError(f"expected a number or a choice name, got {describe_value(value)}")


def describe_value(value: Any) -> str:
    """A YAML value as an error message names it: ``a mapping``, ``a list``, ``'fast'`` …"""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


SignalValue = Annotated[
    float | str,
    BeforeValidator(_signal_value),
    WithJsonSchema(
        {
            "anyOf": [{"type": "number"}, {"type": "boolean"}, {"type": "string", "minLength": 1}],
            "description": "A physical value, or a choice name of the signal (e.g. READY).",
        }
    ),
]

Name = Annotated[str, Field(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# -- frames and stimuli ------------------------------------------------------------------------


class Frame(_Strict):
    """A message with signal values; signals not listed take their DBC start value (else 0)."""

    message: Name = Field(description="Message name from the DBCs.")
    signals: dict[str, SignalValue] = Field(
        default_factory=dict,
        description="Signal: value or choice name. AliveCounter and CRC are filled in for you.",
    )


class SendSpec(Frame):
    """Send a message once, or every ``every`` until a later step stops or replaces it."""

    every: Duration | None = Field(
        None, description="Period; without it the message is sent once at the step start."
    )

    @model_validator(mode="after")
    def _positive_period(self) -> SendSpec:
        if self.every is not None and self.every <= 0:
            raise FieldError("every", "every must be longer than 0")
        return self


class SafeStateFrame(Frame):
    """A frame sent (in plan order) on abort, Ctrl-C, SIGTERM or error."""


class RampSpec(_Strict):
    """Move one signal linearly from ``from`` to ``to`` over ``over``, sent every ``every``."""

    message: Name
    signal: Name = Field(description="Signal name within the message.")
    from_: float = Field(alias="from")
    to: float
    over: Duration
    every: Duration | None = Field(
        None, description="Period of the ramp frames. Default: the message's DBC cycle time."
    )

    @model_validator(mode="after")
    def _positive(self) -> RampSpec:
        if self.over <= 0:
            raise FieldError("over", "over must be longer than 0")
        if self.every is not None and self.every <= 0:
            raise FieldError("every", "every must be longer than 0")
        if self.every is not None and self.every > self.over:
            raise FieldError("every", "every is longer than the ramp (over)")
        return self


class DriveCycleSpec(_Strict):
    """Follow a speed profile: a built-in name (CLTC-P) or a CSV file relative to the plan."""

    profile: Name = Field(
        description=f"Built-in: {', '.join(BUILTIN_NAMES)}; or a CSV file (time_s, speed_kmh)."
    )
    repeat: int = Field(1, ge=1)
    speed_scale: float = Field(1.0, gt=0, le=2.0, description="Multiplies every speed.")


class DriveSpec(_Strict):
    """Hold a vehicle speed, optionally on a grade and against a headwind (a chassis dyno's job)."""

    speed_kmh: float = Field(ge=0, le=250, description="Target vehicle speed, km/h.")
    grade_pct: float | None = Field(
        None, description="Road grade, % (sets the environment's road_grade_pct)."
    )
    headwind_kmh: float | None = Field(
        None, description="Headwind, km/h (negative: tailwind), sent as VCU_Ambient.Headwind."
    )
    accel_mps2: float = Field(
        1.5, gt=0, le=5, description="The target moves from the present speed at this rate, m/s²."
    )


class ChargeSpec(_Strict):
    """Charge at up to ``current_a`` until ``target_soc`` or for ``duration`` (the first)."""

    current_a: float = Field(gt=0)
    voltage_limit_v: float = Field(gt=0)
    target_soc: float | None = Field(None, ge=0, le=100, description="Percent.")
    duration: Duration | None = None

    @model_validator(mode="after")
    def _has_end(self) -> ChargeSpec:
        if self.target_soc is None and self.duration is None:
            raise ValueError("charge needs target_soc or duration (or both: the first ends it)")
        return self


class ChamberSpec(_Strict):
    """Set the climate chamber; the step waits until it is within ``stable_within`` for ``for``."""

    set_c: float = Field(ge=-80, le=200, description="Set point, °C.")
    stable_within: float = Field(0.5, gt=0, description="Kelvin around the set point.")
    for_: Duration = Field(600.0, alias="for", description="How long it must stay stable.")


class ReadDtcsSpec(_Strict):
    """ReadDTCInformation reportDTCByStatusMask (0x19 0x02) with this DTCStatusMask."""

    status_mask: int = Field(
        0xFF, ge=0, le=0xFF, description="ISO 14229-1 DTCStatusMask, e.g. 0xFF (all), 0x08."
    )


class DiagSpec(_Strict):
    """UDS on one or more ECUs, in this order per ECU: clear DTCs, read DTCs, read DIDs."""

    ecu: list[Name] = Field(
        min_length=1, description="ECU names (BMS, MCU or the plan's diagnostics: section)."
    )
    clear_dtcs: bool = Field(False, description="ClearDiagnosticInformation, all groups.")
    read_dtcs: ReadDtcsSpec | None = Field(
        None, description="reportDTCByStatusMask; `true` means status_mask 0xFF."
    )
    read_dids: list[Name] = Field(
        default_factory=list,
        description="DID names from the catalog, read one by one on each ECU that has them.",
    )

    @field_validator("ecu", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("read_dtcs", mode="before")
    @classmethod
    def _true_is_all(cls, value: Any) -> Any:
        if value is True:
            return {}
        if value is False:
            return None
        return value

    @model_validator(mode="after")
    def _does_something(self) -> DiagSpec:
        if not self.clear_dtcs and self.read_dtcs is None and not self.read_dids:
            raise ValueError("diag does nothing: give clear_dtcs, read_dtcs or read_dids")
        return self

    @property
    def operation_count(self) -> int:
        per_ecu = int(self.clear_dtcs) + int(self.read_dtcs is not None) + len(self.read_dids)
        return per_ecu * len(self.ecu)


class DiagEcuSpec(_Strict):
    """An ECU's UDS addressing (over the catalog's default for BMS/MCU; required for others)."""

    request_id: int | None = Field(None, ge=0, le=0x1FFFFFFF, description="Tester -> ECU id.")
    response_id: int | None = Field(None, ge=0, le=0x1FFFFFFF, description="ECU -> tester id.")
    addressing: Literal["normal_11bit", "normal_fixed_29bit"] | None = Field(
        None, description="ISO 15765-2 normal (11-bit ids) or normal fixed (0x18DA<TA><SA>)."
    )


# -- steps -------------------------------------------------------------------------------------


class Step(_Strict):
    """One step of a plan: its stimuli start together; it ends as described in the reference."""

    name: Name = Field(description="Unique within the plan; checks name it in during/after.")
    description: str | None = None
    ambient_c: float | None = Field(None, description="Ambient temperature, °C.")
    solar_w_m2: float | None = Field(None, ge=0, description="Solar load, W/m².")
    road_grade_pct: float | None = Field(None, description="Road grade, %.")
    duration: Duration | None = Field(None, description="The step lasts exactly this long.")
    until: ConditionText | None = Field(None, description="The step ends when this holds.")
    timeout: Duration | None = Field(
        None, description="Bound on until / charge to target / chamber stability."
    )
    on_timeout: Literal["fail", "abort"] = Field(
        "fail", description="fail: record a failed step and go on; abort: safe state, exit 3."
    )
    send: SendSpec | None = None
    ramp: RampSpec | None = None
    drive_cycle: DriveCycleSpec | None = None
    drive: DriveSpec | None = None
    charge: ChargeSpec | None = None
    chamber: ChamberSpec | None = None
    stop: list[Name] = Field(
        default_factory=list, description="Periodic sends (message names) to end."
    )
    diag: DiagSpec | None = Field(
        None, description="UDS: clear/read DTCs, read DIDs; the step lasts until answered."
    )

    @property
    def environment(self) -> dict[str, float]:
        """The environment keys this step sets (others keep their previous values)."""
        keys = ("ambient_c", "solar_w_m2", "road_grade_pct")
        found = {key: getattr(self, key) for key in keys if getattr(self, key) is not None}
        if self.drive is not None:
            for key, value in (
                ("road_grade_pct", self.drive.grade_pct),
                ("headwind_kmh", self.drive.headwind_kmh),
            ):
                if value is not None:
                    found[key] = value
        return found

    @property
    def ends_on(self) -> list[str]:
        """What ends the step: ``duration`` | ``until`` | or, without them, its activities."""
        if self.duration is not None:
            return ["duration"]
        if self.until is not None:
            return ["until"]
        keys = ("ramp", "drive_cycle", "charge", "chamber", "diag")
        return [key for key in keys if getattr(self, key)]

    @property
    def is_instant(self) -> bool:
        """True for a step that only sends once / sets the environment / stops sends."""
        return not self.ends_on

    def estimated_duration(self, base: Path | None = None) -> tuple[float, bool]:
        """(seconds, exact): a step ending on a condition counts at its bound (timeout)."""
        if self.duration is not None:
            return self.duration, True
        if self.until is not None:
            return self.timeout or 0.0, False
        parts: list[tuple[float, bool]] = [(0.0, True)]
        if self.ramp is not None:
            parts.append((self.ramp.over, True))
        if self.drive_cycle is not None:
            parts.append((self._cycle_length(base) * self.drive_cycle.repeat, True))
        if self.charge is not None:
            parts.append(self._charge_estimate())
        if self.chamber is not None:
            parts.append((self.timeout or self.chamber.for_, False))
        if self.diag is not None:  # tens of ms per request, up to P2 each: about, not exact
            parts.append((0.02 * self.diag.operation_count, False))
        return max(p[0] for p in parts), all(p[1] for p in parts)

    def _cycle_length(self, base: Path | None) -> float:
        assert self.drive_cycle is not None
        return profile_length_s(self.drive_cycle.profile, base)

    def _charge_estimate(self) -> tuple[float, bool]:
        assert self.charge is not None
        if self.charge.target_soc is None:
            return self.charge.duration or 0.0, True
        bound = min(b for b in (self.timeout, self.charge.duration, float("inf")) if b is not None)
        return (0.0 if bound == float("inf") else bound), False

    @model_validator(mode="after")
    def _coherent(self) -> Step:
        self._check_waits()
        self._check_timeout()
        self._check_activities()
        return self

    def _check_waits(self) -> None:
        if self.duration is not None and self.until is not None:
            raise FieldError(
                "until", "a step waits a duration or until a condition, not both "
                "(bound until with timeout)",
            )  # fmt: skip
        if self.until is not None and self.timeout is None:
            raise FieldError("until", "until needs a timeout (e.g. timeout: 5min)")

    def _check_timeout(self) -> None:
        open_ended = self.until is not None or (
            self.duration is None
            and (self.chamber is not None or (self.charge and self.charge.target_soc is not None))
        )
        if self.timeout is not None and not open_ended:
            raise FieldError(
                "timeout", "timeout bounds until, charge to target_soc or chamber stability; "
                "this step has none of them",
            )  # fmt: skip
        if "on_timeout" in self.model_fields_set and self.timeout is None:
            raise FieldError("on_timeout", "on_timeout goes with timeout")

    def _check_drive(self) -> None:
        if self.drive_cycle is not None:
            raise FieldError("drive", "drive and drive_cycle both set the speed: use one")
        if self.duration is None and self.until is None:
            raise FieldError(
                "drive", "drive holds a speed until the step ends: give the step duration or until"
            )
        if self.drive.grade_pct is not None and self.road_grade_pct is not None:
            raise FieldError(
                "drive", "grade set twice: drive.grade_pct or road_grade_pct, not both"
            )
        sets_torque = {"TorqueRequest"} & set(self.send.signals if self.send else ())
        if self.send and self.send.message == "VCU_Command" and sets_torque:
            raise FieldError("drive", "TorqueRequest is both sent and set by drive in this step")

    def _check_activities(self) -> None:
        if self.drive is not None:
            self._check_drive()
        if self.ambient_c is not None and self.chamber is not None:
            raise FieldError("chamber", "ambient_c and chamber both set the chamber: use one")
        if self.ramp and self.duration is not None and self.ramp.over > self.duration:
            raise FieldError(
                "ramp", f"the ramp lasts {format_duration(self.ramp.over)}, longer than the "
                f"step's duration ({format_duration(self.duration)})",
            )  # fmt: skip
        if (
            self.ramp
            and self.send
            and self.send.message == self.ramp.message
            and self.ramp.signal in self.send.signals
        ):
            raise FieldError("ramp", f"{self.ramp.signal} is both sent and ramped in this step")
        acts = self.send or self.stop or self.environment
        if self.is_instant and not acts:
            raise ValueError(
                "does nothing: give it duration, until, send, ramp, drive_cycle, drive, charge, "
                "chamber, diag, ambient_c or stop"
            )
        if self.is_instant and self.send and self.send.every is not None:
            raise FieldError(
                "send", "a periodic send needs a step that lasts: add duration or until"
            )


# -- settings ----------------------------------------------------------------------------------


class BusSettings(_Strict):
    """Defaults for ``bench run``; its --interface/--channel/--bitrate flags override them."""

    interface: str = Field("virtual", description="python-can interface: virtual, socketcan, …")
    channel: str | int = Field("bench0", description="e.g. bench0, vcan0, can0, PCAN_USBBUS1, 0")
    bitrate: int = Field(500_000, gt=0)
    fd: bool = False
    data_bitrate: int | None = Field(None, gt=0, description="CAN FD data phase bitrate.")

    @model_validator(mode="after")
    def _fd(self) -> BusSettings:
        if self.data_bitrate is not None and not self.fd:
            raise FieldError("data_bitrate", "data_bitrate goes with fd: true")
        return self


class JudgeSettings(_Strict):
    """Which frames of a log the checks read (bench.channels): a logger's channel(s), a direction.

    ``bench evaluate --channel/--direction`` override it for one evaluation (recorded in the run
    directory). Frames outside are neither decoded nor judged; summary.json counts them."""

    channels: list[Annotated[str, BeforeValidator(lambda v: _channel_name(v))]] = Field(
        default_factory=list,
        description="Channels as the frame table holds them (BLF/ASC: 0 is CAN 1; a bench "
        "profile's bus name). Empty: every channel.",
    )
    direction: Literal["rx", "tx"] | None = Field(
        None, description="rx: frames received; tx: the logger's own sends. Default: both."
    )


def _channel_name(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip():
        raise ValueError(f"a channel is a number or a name, got {describe_value(value)}")
    return str(value).strip()


class VehicleState(_Strict):
    """Initial state of the in-process virtual vehicle (ignored on hardware)."""

    ambient_c: float = Field(25.0, ge=-60, le=80)
    initial_temp_c: float | None = Field(
        None, ge=-60, le=80, description="Pack, motor and coolant; default: ambient_c (soaked)."
    )
    soc: float = Field(80.0, ge=0, le=100, description="Percent.")
    cycle_jitter_ms: dict[Literal["BMS", "MCU"], Annotated[float, Field(ge=0, le=1000)]] = Field(
        default_factory=dict,
        description="Per ECU: each cyclic frame within ± this of its nominal time (seeded).",
    )
    startup_delay_ms: dict[Literal["BMS", "MCU"], Annotated[float, Field(ge=0, le=1000)]] = Field(
        default_factory=dict, description="Per ECU: its first frames come this much later."
    )

    @property
    def initial_temp(self) -> float:
        return self.ambient_c if self.initial_temp_c is None else self.initial_temp_c


class FaultSpec(_Strict):
    """A fault injection that must make this plan fail, and why (applied only on request)."""

    inject: str = Field(
        pattern=r"^\s*[A-Za-z_][\w-]*\s*(:.*)?$", description="KIND:TARGET… for bench run --inject"
    )
    expect_fail: list[Name] = Field(min_length=1, description="Names of checks that must fail.")
    why: Name = Field(description="The reason a test engineer would give.")


# -- the plan ----------------------------------------------------------------------------------


class Plan(_Strict):
    """A test plan. Use :func:`bench.plan.load_plan` to get one validated against its DBCs."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        title="bench test plan",
        json_schema_extra={"description": "A bench test plan (see docs/plan-reference.md)."},
    )

    name: Name
    site: str | None = Field(None, description="e.g. Heihe, Turpan")
    description: str | None = None
    dut: dict[str, Any] = Field(
        default_factory=dict, description="Device under test: VIN, pack serial, SW versions …"
    )
    bench: dict[str, Any] = Field(default_factory=dict, description="Bench identification.")
    dbc: list[Name] = Field(min_length=1, description="DBC files, relative to the plan file.")
    bus: BusSettings = Field(default_factory=BusSettings)
    judge: JudgeSettings | None = Field(
        None, description="Which channel(s) and direction the checks read (default: all)."
    )
    vehicle: VehicleState = Field(default_factory=VehicleState)
    seed: int | None = Field(None, description="Seed of the virtual vehicle; --seed overrides.")
    safe_state: list[SafeStateFrame] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    checks: list[AnyCheck] = Field(default_factory=list)
    faults: list[FaultSpec] = Field(default_factory=list)
    diagnostics: dict[Name, DiagEcuSpec] = Field(
        default_factory=dict,
        description="UDS addressing per ECU name, over bench.diag.catalog's (BMS, MCU).",
    )

    _path: Path | None = PrivateAttr(None)
    _dbc_paths: list[Path] = PrivateAttr(default_factory=list)
    _dbcs: DbcSet | None = PrivateAttr(None)
    _source_text: str = PrivateAttr("")

    # -- what the loader attaches --------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The plan's YAML file."""
        if self._path is None:
            raise AttributeError("this plan was not loaded from a file (use load_plan)")
        return self._path

    @property
    def dbc_paths(self) -> list[Path]:
        """The DBC files in use, resolved (the plan's list, or the one given to load_plan)."""
        return list(self._dbc_paths)

    @property
    def dbcs(self) -> DbcSet:
        if self._dbcs is None:
            raise AttributeError("this plan was not loaded from a file (use load_plan)")
        return self._dbcs

    @property
    def source_text(self) -> str:
        """The YAML as read; the runner copies it into the run directory."""
        return self._source_text

    def attach(self, path: Path, source_text: str, dbc_paths: list[Path], dbcs: DbcSet) -> Plan:
        self._path, self._source_text = path, source_text
        self._dbc_paths, self._dbcs = list(dbc_paths), dbcs
        return self

    # -- lookups -------------------------------------------------------------------------------

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"no step {name!r}")

    def check(self, name: str) -> CheckSpec:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(f"no check {name!r}")

    def estimated_duration(self) -> tuple[float, bool]:
        """(seconds, exact) of all steps; not exact when some step ends on a condition."""
        base = self._path.parent if self._path is not None else None
        estimates = [step.estimated_duration(base) for step in self.steps]
        return sum(e[0] for e in estimates), all(e[1] for e in estimates)

    @property
    def abort_checks(self) -> list[CheckSpec]:
        return [check for check in self.checks if check.abort]
