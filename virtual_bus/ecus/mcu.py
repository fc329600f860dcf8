"""Motor control unit (traction inverter): torque control, derating, faults, cooling, its frames.

- Torque is delivered when the BMS is READY, the DC link is up (> 500 V), KeyOn is set and
  DriveMode is DRIVE (3). In PARK, NEUTRAL or REVERSE the torque request is ignored (reverse
  driving is not simulated).
- Torque limits. Motoring (MCU_Status.TorqueLimit, "available now"): the machine's speed envelope
  (450 Nm up to 5,730 rpm, then 270 kW / omega) times the thermal derating factor, and no more than
  the BMS allows: the torque whose DC-link power stays within
  ``min(DischargePowerLimit, DischargeCurrentLimit x link voltage)``. Regenerating: the same
  envelope and derating, and the torque whose DC power fed back stays within
  ``min(ChargePowerLimit, ChargeCurrentLimit x link voltage)``, so at -30 °C (charge limit 0 A)
  regen only covers the machine's own losses and the pack takes no current. The torque for a DC
  power is the exact inverse of the loss model
  (:func:`~virtual_bus.physics.motor.torque_for_dc_power`), as a real inverter's power limiter
  works on its loss map. Sources: the BMS publishes charge/discharge current and power limits and
  the drive limits motoring and regen torque to stay within them (Plett, "Battery Management
  Systems", vol. II, ch. 7 "Power-limits estimation"; the CCL/DCL contract of commercial BMSs such
  as the Orion BMS 2 operation manual, "Current limits", used by motor controllers to limit
  regen and drive current).
- The limiter: the BMS limits are read as sent (BMS_Limits, refreshed every 100 ms); the MCU
  recomputes its limits every 10 ms step (its response time: one step); a falling limit applies at
  once, a rising one at most 2,000 Nm/s (:data:`LIMIT_RISE_NM_PER_S`, no torque jump when the pack
  recovers). The torque itself follows the limited request with a 20 ms first-order lag
  (:data:`~virtual_bus.physics.motor.TORQUE_TAU_S`): after a step down of a limit, the pack current
  exceeds it for at most about 60 ms (3 lag constants) — the documented transient. Within a 100 ms
  BMS cycle the limit the MCU obeys is up to 100 ms old; the current the pack sees then differs
  from the fresh limit by the change of the limit over that time (a few A at most, it moves with
  temperature and SOC).
- MCU_State.DerateActive / DerateReason name what limits the torque in the direction requested:
  a thermal cause (STATOR_TEMP, INVERTER_TEMP, COOLANT_TEMP) first, then BMS_LIMIT when the
  BMS limit is below the machine's envelope (motoring) or below the regen request (regenerating).
- Loss of the VCU: when VCU_Command has not arrived for longer than its timeout (the DBC attribute
  ``GenMsgTimeoutTime`` of VCU_Command, 300 ms in the shipped DBC; :data:`DEFAULT_TIMEOUT_S`
  without one) while KeyOn was set, the MCU ramps its torque to zero at
  :data:`COMM_LOSS_RAMP_NM_PER_S` (1,500 Nm/s: 450 Nm to 0 in 0.3 s) and reports FaultLevel
  SHUTDOWN, FaultCode VCU_COMM_LOSS (9). It stays so until a VCU_Command with KeyOn 0 arrives:
  driving again needs a new key-on. The ``no_timeout[:all|BMS|MCU]`` fault disables the reaction.
- Thermal derating, linear from 100 % to 20 %: stator 150-175 °C, inverter (IGBT/SiC module)
  100-115 °C, coolant 75-90 °C (to 50 %). Typical of class-H insulated PMSMs (180 °C insulation
  class, derating some 20-30 K below) and of power modules rated Tj 150-175 °C with sensor offset.
  DerateActive and DerateReason name the limiting cause (BMS_LIMIT when the pack limits).
  The ``no_derate[:MCU]`` fault disables the thermal derating (the torque limit stays at the
  envelope however hot the machine gets; the hard limits below still act).
- Hard limits: stator > 180 °C or inverter > 125 °C is a SHUTDOWN fault (torque off, MotorState
  FAULT), latched until KeyOn drops with the temperature back below the derating threshold.
- Coolant pump (MCU_State.CoolantPumpActive): runs when the bench requests it (at
  CoolantPumpSpeed, 0 meaning full speed) or on the MCU's own demand while HV is up and the
  machine is loaded or warm (torque, stator > 60 °C, inverter > 50 °C or coolant > 45 °C).
  The ``coolant_pump_fail`` fault (targets ``all`` or ``MCU``) stops it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..faults import FaultSpec
from ..physics import motor as mot
from ..physics.motor import Drivetrain
from .bms import READY, Bms
from .commands import DRIVE_MODE_DRIVE, Commands

STANDBY, MOTOR_READY, RUNNING, DERATED, MOTOR_FAULT = range(5)
NONE, WARNING, DERATE, SHUTDOWN = range(4)
REASON_NONE, REASON_STATOR, REASON_INVERTER, REASON_COOLANT, REASON_DC, REASON_BMS = range(6)
STATOR_OVERTEMP, INVERTER_OVERTEMP, COOLANT_LOSS, VCU_COMM_LOSS = 1, 2, 7, 9
COMMAND_MESSAGE = "VCU_Command"
DEFAULT_TIMEOUT_S = 0.3
COMM_LOSS_RAMP_NM_PER_S = 1500.0
LIMIT_RISE_NM_PER_S = 2000.0
SW_VERSION = (1, 7, 3)
HW_REVISION = 2

STATOR_DERATE = (150.0, 175.0, 0.2)
INVERTER_DERATE = (100.0, 115.0, 0.2)
COOLANT_DERATE = (75.0, 90.0, 0.5)
STATOR_TRIP_C = 180.0
INVERTER_TRIP_C = 125.0
MIN_LINK_V = 500.0

Values = dict[str, float]


def derate_factor(temp_c: float, spec: tuple[float, float, float]) -> float:
    start, end, floor = spec
    if temp_c <= start:
        return 1.0
    if temp_c >= end:
        return floor
    return 1.0 - (1.0 - floor) * (temp_c - start) / (end - start)


@dataclass
class Mcu:
    drive: Drivetrain
    commands: Commands
    bms: Bms
    faults: list[FaultSpec]
    command_timeout_s: float = DEFAULT_TIMEOUT_S
    torque_limit: float = mot.PEAK_TORQUE_NM
    regen_limit: float = mot.PEAK_TORQUE_NM
    applied_request: float = 0.0
    comm_lost: bool = False
    derate_active: bool = False
    derate_reason: int = REASON_NONE
    fault_level: int = NONE
    fault_code: int = 0
    pump_fraction: float = 0.0
    enabled: bool = False
    _tripped: int = 0
    _pump_wanted: bool = False
    _pump_failed: bool = False
    now_s: float = 0.0
    serial: int = 0
    _bms_limits: tuple[float, float] = (mot.PEAK_TORQUE_NM, mot.PEAK_TORQUE_NM)
    _no_derate: list[FaultSpec] = field(default_factory=list)
    _no_timeout: list[FaultSpec] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._no_derate = [f for f in self.faults if f.kind == "no_derate"]
        self._no_timeout = [
            f for f in self.faults if f.kind == "no_timeout" and f.target in ("all", "MCU")
        ]
        self._pump_faults = [
            f for f in self.faults if f.kind == "coolant_pump_fail" and f.target in ("all", "MCU")
        ]
        self.sources: dict[str, Callable[[int | None], Values]] = {
            "MCU_Status": self._status,
            "MCU_Temps": self._temps,
            "MCU_Power": self._power,
            "MCU_State": self._state,
        }

    def dc_current(self) -> float:
        """Current drawn from the DC link (A, positive when motoring)."""
        return self.drive.dc_power_w / max(self.bms.link_v, 1.0)

    def control(
        self, t: float, dt: float, ambient_c: float, grade_pct: float, headwind_kmh: float = 0.0
    ) -> None:
        cmd, d = self.commands, self.drive
        self.now_s = t
        self._check_trips(cmd.key_on)
        self._watch_command(t)
        self.enabled = (
            self.bms.state == READY
            and self.bms.link_v > MIN_LINK_V
            and cmd.key_on
            and cmd.drive_mode == DRIVE_MODE_DRIVE
            and not self._tripped
        )
        self._limit(t, dt)
        if self.comm_lost:
            # Ramp what is applied now down to zero (no step: the driveline would jerk).
            step = COMM_LOSS_RAMP_NM_PER_S * dt
            request = max(-step, min(step, -self.applied_request)) + self.applied_request
        else:
            request = cmd.torque_request
        request = max(-self.regen_limit, min(self.torque_limit, request))
        self.applied_request = request if self.enabled else 0.0
        self._pump(t)
        d.step(
            dt,
            torque_cmd=request,
            enabled=self.enabled,
            grade_pct=grade_pct,
            headwind_ms=headwind_kmh / 3.6,
            pump_fraction=self.pump_fraction,
            ambient_c=ambient_c,
        )

    def _watch_command(self, t: float) -> None:
        """Latch a loss of VCU_Command; a VCU_Command with KeyOn 0 clears it (a new key-on)."""
        cmd = self.commands
        seen = cmd.last_seen.get(COMMAND_MESSAGE)
        if seen is None:
            return
        silent = t - seen > self.command_timeout_s
        if self.comm_lost:
            if not silent and not cmd.key_on:
                self.comm_lost = False
        elif silent and cmd.key_on and not any(f.active(t) for f in self._no_timeout):
            self.comm_lost = True

    def _check_trips(self, key_on: bool) -> None:
        d = self.drive
        if d.stator_c > STATOR_TRIP_C:
            self._tripped = STATOR_OVERTEMP
        elif d.inverter_c > INVERTER_TRIP_C:
            self._tripped = INVERTER_OVERTEMP
        elif (
            self._tripped
            and not key_on
            and d.stator_c < STATOR_DERATE[0]
            and d.inverter_c < INVERTER_DERATE[0]
        ):
            self._tripped = 0

    def _limit(self, t: float, dt: float) -> None:
        d = self.drive
        factors = (
            (derate_factor(d.stator_c, STATOR_DERATE), REASON_STATOR),
            (derate_factor(d.inverter_c, INVERTER_DERATE), REASON_INVERTER),
            (derate_factor(d.coolant_c, COOLANT_DERATE), REASON_COOLANT),
        )
        factor, reason = min(factors, key=lambda fr: fr[0])
        if self._no_derate and any(f.active(t) for f in self._no_derate):
            factor, reason = 1.0, REASON_NONE
        machine = min(mot.torque_envelope(d.motor_rpm), mot.PEAK_TORQUE_NM * factor)
        drive_bms, regen_bms = self._follow_bms(dt)
        if self._tripped:
            self.torque_limit = self.regen_limit = 0.0
        else:
            self.torque_limit = min(machine, drive_bms)
            self.regen_limit = min(machine, regen_bms)
        request = self.commands.torque_request
        by_bms = regen_bms < min(machine, -request) if request < 0.0 else drive_bms < machine
        if factor < 1.0:
            self.derate_active, self.derate_reason = True, reason
        elif by_bms:
            self.derate_active, self.derate_reason = True, REASON_BMS
        else:
            self.derate_active, self.derate_reason = False, REASON_NONE
        self._set_fault(factor, reason)

    def _follow_bms(self, dt: float) -> tuple[float, float]:
        """(motoring, regenerating) torque the BMS limits allow, through the limiter."""
        bms, rpm = self.bms, self.drive.motor_rpm
        # PackVoltage (BMS_PackStatus) turns the current limits into powers: with the contactors
        # closed it is the link voltage, and it is there before they close.
        pack_v = bms.battery.voltage()
        discharge_a, charge_a = bms.current_limits()
        drive_w = min(bms.discharge_power_limit_w(), discharge_a * pack_v)
        charge_w = min(bms.charge_power_limit_w(), charge_a * pack_v)
        wanted = (
            min(mot.PEAK_TORQUE_NM, mot.torque_for_dc_power(drive_w, rpm)),
            min(mot.PEAK_TORQUE_NM, mot.torque_for_dc_power(charge_w, rpm, generating=True)),
        )
        rise = LIMIT_RISE_NM_PER_S * dt
        self._bms_limits = tuple(  # type: ignore[assignment]
            new if new <= old else min(new, old + rise)
            for new, old in zip(wanted, self._bms_limits, strict=True)
        )
        return self._bms_limits

    def _set_fault(self, factor: float, reason: int) -> None:
        if self._tripped:
            self.fault_level, self.fault_code = SHUTDOWN, self._tripped
        elif self.comm_lost:
            self.fault_level, self.fault_code = SHUTDOWN, VCU_COMM_LOSS
        elif factor < 1.0 and reason in (REASON_STATOR, REASON_INVERTER):
            code = STATOR_OVERTEMP if reason == REASON_STATOR else INVERTER_OVERTEMP
            self.fault_level, self.fault_code = DERATE, code
        elif self._pump_failed and self._pump_wanted:
            self.fault_level, self.fault_code = WARNING, COOLANT_LOSS
        else:
            self.fault_level, self.fault_code = NONE, 0

    def _pump(self, t: float) -> None:
        cmd, d = self.commands, self.drive
        hv_up = self.bms.state == READY
        auto = hv_up and (
            abs(d.torque_nm) > 1.0 or d.stator_c > 60.0 or d.inverter_c > 50.0 or d.coolant_c > 45.0
        )
        self._pump_wanted = cmd.coolant_pump_request or auto
        self._pump_failed = bool(self._pump_faults) and any(f.active(t) for f in self._pump_faults)
        if not self._pump_wanted or self._pump_failed:
            self.pump_fraction = 0.0
        elif cmd.coolant_pump_request and cmd.coolant_pump_speed > 0:
            self.pump_fraction = cmd.coolant_pump_speed / 100.0
        else:
            self.pump_fraction = 1.0

    # -- diagnostics (the UDS server's view: virtual_bus.ecus.uds) -------------------------------

    def dtc_monitors(self) -> dict[str, tuple[Callable[[], bool | None], bool]]:
        """DTC name (bench.diag.catalog) -> (monitor, lights a lamp); see Bms.dtc_monitors."""

        def overtemp(code: int) -> Callable[[], bool]:
            # The hard limit (trip), not the derating below it: derating is the machine
            # protecting itself as designed, no failure to store.
            return lambda: self._tripped == code

        def vcu_lost() -> bool | None:
            # The MCU's own comm-loss detection (so no_timeout, which disables it, sets no DTC).
            if self.comm_lost:
                return True
            seen = self.commands.last_seen.get(COMMAND_MESSAGE)
            if seen is None or self.now_s - seen > self.command_timeout_s:
                return None
            return False

        def pump() -> bool | None:
            return self._pump_failed if self._pump_wanted else None

        return {
            "stator_overtemperature": (overtemp(STATOR_OVERTEMP), True),
            "inverter_overtemperature": (overtemp(INVERTER_OVERTEMP), True),
            "lost_communication_vcu": (vcu_lost, True),
            "coolant_pump_failure": (pump, False),
        }

    def did_sources(self) -> dict[str, Callable[[], float | str]]:
        """DID name (bench.diag.catalog) -> its physical value now."""
        d = self.drive
        return {
            "software_version": lambda: ".".join(f"{n:02d}" for n in SW_VERSION),
            "ecu_serial_number": lambda: str(self.serial),
            "hardware_version": lambda: f"HW{HW_REVISION:02d}",
            "stator_temp": lambda: d.stator_c,
            "inverter_temp": lambda: d.inverter_c,
            "coolant_temp": lambda: d.coolant_c,
            "dc_link_voltage": lambda: self.bms.link_v,
            "motor_speed": lambda: d.motor_rpm,
            "torque_limit": lambda: self.torque_limit,
        }

    def clear_refused(self) -> bool:
        """ClearDiagnosticInformation is refused (conditionsNotCorrect) while the motor turns."""
        return abs(self.drive.motor_rpm) > 10.0

    def motor_state(self) -> int:
        d = self.drive
        if self._tripped:
            return MOTOR_FAULT
        if self.bms.state != READY or self.bms.link_v <= MIN_LINK_V:
            return STANDBY
        if abs(d.torque_nm) >= 1.0 or abs(d.motor_rpm) > 10.0:
            return DERATED if self.derate_active else RUNNING
        return MOTOR_READY

    # -- frames -----------------------------------------------------------------------------------

    def _status(self, _mux: int | None) -> Values:
        d = self.drive
        return {
            "MotorSpeed": d.motor_rpm,
            "MotorTorque": d.torque_nm,
            "TorqueLimit": self.torque_limit,
            "MotorState": self.motor_state(),
        }

    def _temps(self, _mux: int | None) -> Values:
        d = self.drive
        return {
            "StatorTemp": d.stator_c,
            "InverterTemp": d.inverter_c,
            "CoolantTemp": d.coolant_c,
            "RotorTempEstimate": d.rotor_c,
        }

    def _power(self, _mux: int | None) -> Values:
        d = self.drive
        return {
            "DcLinkVoltage": self.bms.link_v,
            "DcLinkCurrent": self.dc_current(),
            "MechanicalPower": d.mech_power_w / 1000.0,
            "VehicleSpeed": mot.vehicle_speed_kmh(d.motor_rpm),
        }

    def _state(self, _mux: int | None) -> Values:
        return {
            "DerateActive": 1 if self.derate_active else 0,
            "DerateReason": self.derate_reason,
            "FaultLevel": self.fault_level,
            "CoolantPumpActive": 1 if self.pump_fraction > 0 else 0,
            "FaultCode": self.fault_code,
            "TorqueAvailable": 100.0 * self.torque_limit / mot.PEAK_TORQUE_NM,
        }
