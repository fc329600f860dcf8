"""Battery management system: HV state machine, contactors, limits, faults and its frames.

State machine (BMS_Status.HvState): OFF -> PRECHARGE -> READY, or -> CHARGING, and FAULT.

- HV is wanted when ``KeyOn and HvRequest`` (driving) or ``ChargeRequest`` (charging).
- PRECHARGE closes the main negative and the precharge contactor: the DC link capacitor charges
  through the precharge resistor with a 150 ms time constant; at 95 % of the pack voltage (about
  0.45 s, typical values are 0.2-1 s) the main positive closes and the precharge relay opens.
  No 95 % within 2 s is PRECHARGE_FAILURE.
- READY: main contactors closed. CHARGING: additionally the DC charge contactors, the charger
  delivers ``min(ChargeCurrentRequest, ChargeCurrentLimit + heater current)`` (a request of 0
  means "what the BMS allows"; AC mode is capped at 11 kW) until ``TargetSOC`` (0 means 100 %);
  the charger also feeds the heater, so a cold pack is heated from the grid.
- A SHUTDOWN-level fault opens every contactor and latches FAULT. The BMS leaves FAULT for OFF
  once the fault is gone and the bench has dropped both HvRequest and ChargeRequest.
- With the contactors open the DC link discharges (active discharge, tau 0.3 s: below 60 V within
  about 2 s as ISO 6469-3 / UN R100 require).

Loss of the VCU: when VCU_Command has not arrived for its timeout (``GenMsgTimeoutTime`` of
VCU_Command in the DBC, 300 ms shipped) plus :data:`COMM_LOSS_OPEN_DELAY_S` (0.5 s, the time the
MCU has to ramp its torque to zero: contactors opened under load weld) while in PRECHARGE or
READY, the BMS opens the contactors: HvState FAULT, FaultLevel SHUTDOWN, FaultCode
COMMUNICATION_LOSS (113), latched like any SHUTDOWN fault (a new key-on: HvRequest 0, then 1).
A charging session (CHARGING) follows VCU_Charge, not VCU_Command, and is not affected. The
``no_timeout[:all|BMS|MCU]`` fault disables the reaction.

Fault levels and codes (BMS_Status.FaultLevel / FaultCode; the highest level wins, latched in
FAULT): cell > 55 °C WARNING / > 60 °C SHUTDOWN (CELL_OVERTEMP); cell < -35 °C WARNING
(CELL_UNDERTEMP); cell > 4.25 V SHUTDOWN (CELL_OVERVOLT); cell < 2.7 V WARNING, < 2.5 V SHUTDOWN
(CELL_UNDERVOLT); isolation < 400 kOhm (500 Ohm/V) WARNING, < 80 kOhm (100 Ohm/V, ISO 6469-3 /
UN R100 for DC circuits) SHUTDOWN (INSULATION_LOW); heater requested but failed WARNING
(HEATER_FAILURE). The BMS evaluates them every 100 ms, its monitoring cycle.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..faults import FaultSpec
from ..physics import battery as bat
from ..physics.battery import Battery
from .commands import CHARGE_MODE_AC, Commands

OFF, PRECHARGE, READY, CHARGING, FAULT = range(5)
NONE, WARNING, DERATE, SHUTDOWN, EMERGENCY = range(5)
CELL_OVERTEMP, CELL_UNDERTEMP, CELL_OVERVOLT, CELL_UNDERVOLT = 17, 18, 33, 34
INSULATION_LOW, HEATER_FAILURE, PRECHARGE_FAILURE, COMMUNICATION_LOSS = 49, 65, 97, 113
COMMAND_MESSAGE = "VCU_Command"
COMM_LOSS_OPEN_DELAY_S = 0.5

PRECHARGE_TAU_S = 0.15
PRECHARGE_DONE = 0.95
PRECHARGE_TIMEOUT_S = 2.0
DISCHARGE_TAU_S = 0.3
AC_CHARGE_MAX_W = 11_000.0
HEALTHY_ISOLATION_KOHM = 20_000.0
OVERTEMP_RISE_K_PER_S = 1.0
HOT_SPOT_DECAY_TAU_S = 60.0
MONITOR_PERIOD_S = 0.1
SW_VERSION = (2, 4, 1)
HW_REVISION = 3
STATE_OF_HEALTH = 97.5
CYCLE_COUNT = 143

Values = dict[str, float]
CONTACTORS = ("MainPositive", "MainNegative", "Precharge", "DcChargePositive", "DcChargeNegative")


@dataclass
class Bms:
    battery: Battery
    commands: Commands
    faults: list[FaultSpec]
    rng: random.Random
    state: int = OFF
    link_v: float = 0.0
    fault_level: int = NONE
    fault_code: int = 0
    heating: bool = False
    pump_on: bool = False
    charge_current: float = 0.0
    _pump_faults: list[FaultSpec] = field(default_factory=list)
    _heater_failed: bool = False
    active_codes: frozenset[int] = frozenset()
    now_s: float = 0.0
    isolation_kohm: float = HEALTHY_ISOLATION_KOHM
    _latched: tuple[int, int] | None = None
    _precharge_s: float = 0.0
    _monitor_s: float = 0.0
    _contactors: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    _cells: np.ndarray = field(init=False, repr=False)
    _temps: np.ndarray = field(init=False, repr=False)
    serial: int = 0
    monitor_period_s: float = MONITOR_PERIOD_S
    command_timeout_s: float = 0.3

    def __post_init__(self) -> None:
        self.serial = self.rng.randrange(10_000_000, 99_999_999)
        self._pump_faults = [
            f for f in self.faults if f.kind == "coolant_pump_fail" and f.target in ("all", "BMS")
        ]
        self._no_timeout = [
            f for f in self.faults if f.kind == "no_timeout" and f.target in ("all", "BMS")
        ]
        self._measure()
        self.sources: dict[str, Callable[[int | None], Values]] = {
            "BMS_PackStatus": self._pack_status,
            "BMS_Cells": self._cells_frame,
            "BMS_Temps": self._temps_frame,
            "BMS_Status": self._status,
            "BMS_Limits": self._limits,
            "BMS_Contactors": self._contactors_frame,
            "BMS_ModuleData": self._module_data,
            "BMS_Identity": self._identity,
            "BMS_Energy": self._energy,
        }

    # -- control, every simulation step ----------------------------------------------------------

    def control(self, t: float, dt: float, load_current: float) -> None:
        """Run the state machine and set the pack current (``load_current``: the MCU's draw)."""
        cmd = self.commands
        self.now_s = t
        self._physical_faults(t, dt)
        self._monitor_s += dt
        if self._monitor_s >= self.monitor_period_s - 1e-9:
            self._monitor_s = 0.0
            self._measure()
            self._evaluate_faults()
        wants_hv = (cmd.key_on and cmd.hv_request) or cmd.charge_request
        pack_v = self.battery.ocv()
        self._watch_command(t)
        self._run_state(dt, wants_hv, pack_v)
        self._update_link(dt, pack_v)
        self._update_heater(t)
        self._update_charging()
        heater_a = self.battery.heater_w / max(pack_v, 1.0)
        closed = self.state in (READY, CHARGING)
        self.battery.current_a = (load_current + heater_a - self.charge_current) if closed else 0.0

    def _run_state(self, dt: float, wants_hv: bool, pack_v: float) -> None:
        cmd = self.commands
        if self.fault_level >= SHUTDOWN and self.state != FAULT:
            self._latched = (self.fault_level, self.fault_code)
            self.state = FAULT
        if self.state == FAULT:
            clear = self.fault_level < SHUTDOWN and not cmd.hv_request and not cmd.charge_request
            if clear:
                self._latched = None
                self.state = OFF
        elif self.state == OFF:
            if wants_hv:
                self.state = PRECHARGE
                self._precharge_s = 0.0
        elif self.state == PRECHARGE:
            self._precharge_s += dt
            if not wants_hv:
                self.state = OFF
            elif self.link_v >= PRECHARGE_DONE * pack_v:
                self.state = CHARGING if cmd.charge_request else READY
            elif self._precharge_s > PRECHARGE_TIMEOUT_S:
                self._latched = (SHUTDOWN, PRECHARGE_FAILURE)
                self.state = FAULT
        elif not wants_hv:
            self.state = OFF
        elif self.state == READY and cmd.charge_request:
            self.state = CHARGING
        elif self.state == CHARGING and not cmd.charge_request:
            self.state = READY
        self._contactors = self._contactor_positions()

    def _watch_command(self, t: float) -> None:
        """Open the contactors when VCU_Command is lost in PRECHARGE or READY (latched)."""
        seen = self.commands.last_seen.get(COMMAND_MESSAGE)
        if seen is None or self.state not in (PRECHARGE, READY):
            return
        if t - seen <= self.command_timeout_s + COMM_LOSS_OPEN_DELAY_S:
            return
        if any(f.active(t) for f in self._no_timeout):
            return
        self._latched = (SHUTDOWN, COMMUNICATION_LOSS)
        self.state = FAULT

    def _contactor_positions(self) -> tuple[int, int, int, int, int]:
        """(MainPositive, MainNegative, Precharge, DcChargePositive, DcChargeNegative)."""
        if self.state == PRECHARGE:
            return (0, 1, 1, 0, 0)
        if self.state == READY:
            return (1, 1, 0, 0, 0)
        if self.state == CHARGING:
            return (1, 1, 0, 1, 1)
        return (0, 0, 0, 0, 0)

    def _update_link(self, dt: float, pack_v: float) -> None:
        if self.state == PRECHARGE:
            self.link_v += (pack_v - self.link_v) * (1.0 - math.exp(-dt / PRECHARGE_TAU_S))
        elif self.state in (READY, CHARGING):
            self.link_v = self.battery.voltage()
        else:
            self.link_v *= math.exp(-dt / DISCHARGE_TAU_S)

    def _update_heater(self, t: float) -> None:
        cmd = self.commands
        failed = self._fault_active("heater_fail", t)
        self.heating = (
            cmd.heater_request
            and self.state in (READY, CHARGING)
            and not failed
            and self.battery.coolant_c < bat.HEATER_CUTOFF_C
        )
        requested_w = cmd.heater_power_request or bat.HEATER_DEFAULT_W
        self.battery.heater_w = min(requested_w, bat.HEATER_RATED_W) if self.heating else 0.0
        self._heater_failed = failed and cmd.heater_request
        wanted = cmd.coolant_pump_request or self.heating or self.chilling
        self.pump_on = wanted and not any(f.active(t) for f in self._pump_faults)

    @property
    def chilling(self) -> bool:
        return self.commands.chiller_request and self.state in (READY, CHARGING)

    def _update_charging(self) -> None:
        cmd = self.commands
        if self.state != CHARGING:
            self.charge_current = 0.0
            return
        pack_v = max(self.battery.ocv(), 1.0)
        # The BMS asks the charger for what the cells accept plus what the heater draws, so a
        # cold pack is heated from the grid rather than from its own charge.
        heater_a = self.battery.heater_w / pack_v
        limit = self.charge_limit() + heater_a
        wanted = cmd.charge_current_request or limit
        if cmd.charge_mode == CHARGE_MODE_AC:
            wanted = min(wanted, AC_CHARGE_MAX_W / pack_v)
        full = self.battery.soc >= (cmd.target_soc or 100.0)
        self.charge_current = heater_a if full else min(wanted, limit)

    def step_thermal(self, dt: float, ambient_c: float) -> None:
        self.battery.step(
            dt,
            ambient_c=ambient_c,
            pump_on=self.pump_on,
            heating=self.heating,
            chiller_on=self.chilling,
        )

    # -- physical faults and monitoring ----------------------------------------------------------

    def _fault_active(self, kind: str, t: float) -> FaultSpec | None:
        for fault in self.faults:
            if fault.kind == kind and fault.active(t):
                return fault
        return None

    def _physical_faults(self, t: float, dt: float) -> None:
        hot = self.battery.hot_spot
        for fault in self.faults:
            if fault.kind != "cell_overtemp":
                continue
            sensor = int(fault.target) - 1
            extra = hot.get(sensor, 0.0)
            if fault.active(t):
                base = self.battery.cell_c
                goal = max(0.0, float(fault.value) - base)
                extra = min(goal, extra + OVERTEMP_RISE_K_PER_S * dt)
            else:
                extra *= math.exp(-dt / HOT_SPOT_DECAY_TAU_S)
            hot[sensor] = extra
        insulation = self._fault_active("insulation_fault", t)
        self.isolation_kohm = float(insulation.value) if insulation else HEALTHY_ISOLATION_KOHM

    def _measure(self) -> None:
        self._cells = self.battery.cell_voltages()
        self._temps = self.battery.sensor_temps()
        # The limits follow the 100 ms measurement, as in a real BMS (and it saves the MCU from
        # recomputing them every 10 ms step).
        self._min_t, self._max_t = float(self._temps.min()), float(self._temps.max())
        self._discharge_power_w = self._discharge_power_limit()
        self._charge_a = self.charge_limit()
        self._discharge_a = self.discharge_limit()

    def _evaluate_faults(self) -> None:
        max_t, min_t = self._max_t, self._min_t
        max_v, min_v = float(self._cells.max()), float(self._cells.min())
        found: list[tuple[int, int]] = []
        if max_t > 60.0:
            found.append((SHUTDOWN, CELL_OVERTEMP))
        elif max_t > 55.0:
            found.append((WARNING, CELL_OVERTEMP))
        if min_t < -35.0:
            found.append((WARNING, CELL_UNDERTEMP))
        if max_v > 4.25:
            found.append((SHUTDOWN, CELL_OVERVOLT))
        if min_v < 2.5:
            found.append((SHUTDOWN, CELL_UNDERVOLT))
        elif min_v < 2.7:
            found.append((WARNING, CELL_UNDERVOLT))
        if self.isolation_kohm < 80.0:
            found.append((SHUTDOWN, INSULATION_LOW))
        elif self.isolation_kohm < 400.0:
            found.append((WARNING, INSULATION_LOW))
        if self._heater_failed:
            found.append((WARNING, HEATER_FAILURE))
        level, code = max(found, key=lambda lc: lc[0]) if found else (NONE, 0)
        self.fault_level, self.fault_code = level, code
        self.active_codes = frozenset(c for _, c in found)

    def reported_fault(self) -> tuple[int, int]:
        if self._latched is not None:
            return max(self._latched, (self.fault_level, self.fault_code), key=lambda lc: lc[0])
        return self.fault_level, self.fault_code

    # -- diagnostics (the UDS server's view: virtual_bus.ecus.uds) -------------------------------

    def dtc_monitors(self) -> dict[str, tuple[Callable[[], bool | None], bool]]:
        """DTC name (bench.diag.catalog) -> (monitor, lights a lamp). A monitor says whether its
        test failed (True), passed (False) or did not run (None) at this monitoring cycle."""

        def code(which: int) -> Callable[[], bool]:
            return lambda: which in self.active_codes

        def heater() -> bool:
            # The heater circuit check (relay feedback and circuit current, tested with a short
            # pulse) runs every monitoring cycle whether or not heat is requested.
            return self._fault_active("heater_fail", self.now_s) is not None

        def precharge() -> bool | None:
            if self._latched == (SHUTDOWN, PRECHARGE_FAILURE):
                return True
            return False if self.state in (READY, CHARGING) else None

        def vcu_lost() -> bool | None:
            # The BMS's own comm-loss reaction (so no_timeout, which disables it, sets no DTC).
            if self._latched == (SHUTDOWN, COMMUNICATION_LOSS):
                return True
            seen = self.commands.last_seen.get(COMMAND_MESSAGE)
            if seen is None or self.now_s - seen > self.command_timeout_s:
                return None
            return False

        return {
            "cell_overtemperature": (code(CELL_OVERTEMP), True),
            "insulation_resistance_low": (code(INSULATION_LOW), True),
            "precharge_failure": (precharge, True),
            "lost_communication_vcu": (vcu_lost, True),
            "heater_circuit_failure": (heater, False),
            "cell_undertemperature": (code(CELL_UNDERTEMP), False),
            "cell_overvoltage": (code(CELL_OVERVOLT), True),
            "cell_undervoltage": (code(CELL_UNDERVOLT), True),
        }

    def did_sources(self) -> dict[str, Callable[[], float | str]]:
        """DID name (bench.diag.catalog) -> its physical value now (the last 100 ms measurement)."""
        return {
            "software_version": lambda: ".".join(f"{n:02d}" for n in SW_VERSION),
            "ecu_serial_number": lambda: str(self.serial),
            "hardware_version": lambda: f"HW{HW_REVISION:02d}",
            "pack_soh": lambda: STATE_OF_HEALTH,
            "pack_soc": lambda: self.battery.soc,
            "pack_voltage": lambda: self.battery.voltage(),
            "min_cell_voltage": lambda: float(self._cells.min()),
            "max_cell_voltage": lambda: float(self._cells.max()),
            "min_cell_temp": lambda: self._min_t,
            "max_cell_temp": lambda: self._max_t,
            "insulation_resistance": lambda: self.isolation_kohm,
            "cycle_count": lambda: CYCLE_COUNT,
            "hv_state": lambda: self.state,
        }

    # -- limits -----------------------------------------------------------------------------------

    def charge_limit(self) -> float:
        return self.battery.charge_current_limit(self._min_t, self._max_t)

    def discharge_limit(self) -> float:
        return self.battery.discharge_current_limit(self._min_t, self._max_t)

    def charge_power_limit_w(self) -> float:
        """Charge power the pack allows (W): BMS_Limits.ChargePowerLimit, as of the last 100 ms."""
        max_charge_v = bat.CELLS_SERIES * bat.CELL_V_MAX
        return min(bat.CHARGE_POWER_MAX_KW * 1000.0, self._charge_a * max_charge_v)

    def current_limits(self) -> tuple[float, float]:
        """(discharge, charge) current limits in A, both >= 0, as of the last 100 ms measurement.

        What the MCU reads from BMS_Limits (DischargeCurrentLimit, ChargeCurrentLimit).
        """
        return self._discharge_a, self._charge_a

    def discharge_power_limit_w(self) -> float:
        """Discharge power the pack allows (W), as of the last 100 ms measurement."""
        return self._discharge_power_w

    def _discharge_power_limit(self) -> float:
        b = self.battery
        limit = self.discharge_limit()
        loaded_v = b.ocv() - limit * b.resistance()
        return min(bat.DISCHARGE_POWER_MAX_KW * 1000.0, max(0.0, limit * loaded_v))

    # -- frames -----------------------------------------------------------------------------------

    def _pack_status(self, _mux: int | None) -> Values:
        b = self.battery
        return {
            "PackVoltage": b.voltage(),
            "PackCurrent": b.current_a,
            "SOC": b.soc,
            "MainContactorsClosed": 1 if self.state in (READY, CHARGING) else 0,
        }

    def _cells_frame(self, _mux: int | None) -> Values:
        cells = self._cells
        return {
            "MaxCellVolt": float(cells.max()),
            "MinCellVolt": float(cells.min()),
            "MaxCellVoltId": int(cells.argmax()) + 1,
            "MinCellVoltId": int(cells.argmin()) + 1,
            "AvgCellVolt": float(cells.mean()),
        }

    def _temps_frame(self, _mux: int | None) -> Values:
        temps = self._temps
        return {
            "MaxCellTemp": float(temps.max()),
            "MinCellTemp": float(temps.min()),
            "AvgCellTemp": float(temps.mean()),
            "MaxTempSensorId": int(temps.argmax()) + 1,
            "MinTempSensorId": int(temps.argmin()) + 1,
            "CoolantInletTemp": self.battery.coolant_c,
        }

    def _status(self, _mux: int | None) -> Values:
        level, code = self.reported_fault()
        return {
            "HvState": self.state,
            "FaultLevel": level,
            "HeaterActive": 1 if self.heating else 0,
            "ChargerConnected": 1 if self.commands.charge_request else 0,
            "FaultCode": code,
            "HeaterPower": self.battery.heater_w,
            "InsulationResistance": self.isolation_kohm,
        }

    def _limits(self, _mux: int | None) -> Values:
        b = self.battery
        # The limits of the last 100 ms measurement: the values the MCU is obeying.
        discharge, charge = self.current_limits()
        max_charge_v = bat.CELLS_SERIES * bat.CELL_V_MAX
        return {
            "ChargeCurrentLimit": charge,
            "DischargeCurrentLimit": discharge,
            "ChargePowerLimit": min(bat.CHARGE_POWER_MAX_KW, charge * max_charge_v / 1000.0),
            "DischargePowerLimit": self.discharge_power_limit_w() / 1000.0,
            "MaxChargeVoltage": max_charge_v if b.soc < 100.0 else b.ocv(),
        }

    def _contactors_frame(self, _mux: int | None) -> Values:
        names = (
            "MainPositive",
            "MainNegative",
            "Precharge",
            "DcChargePositive",
            "DcChargeNegative",
        )
        return dict(zip(names, self._contactors, strict=True))

    def _module_data(self, mux: int | None) -> Values:
        module = int(mux or 0)
        first = module * bat.CELLS_PER_MODULE
        cells = self._cells[first : first + bat.CELLS_PER_MODULE]
        temps = self._temps[module * bat.SENSORS_PER_MODULE : (module + 1) * bat.SENSORS_PER_MODULE]
        values: Values = {f"CellVolt{i + 1:02d}": float(v) for i, v in enumerate(cells)}
        values.update({f"ModuleTemp{i + 1}": float(t) for i, t in enumerate(temps)})
        values["ModuleVoltage"] = float(cells.sum())
        mask = 0
        if self.state == CHARGING:  # passive balancing bleeds the cells 5 mV above the lowest
            floor = float(self._cells.min()) + 0.005
            mask = sum(1 << i for i, v in enumerate(cells) if v > floor)
        values["BalancingMask"] = mask
        return values

    def _identity(self, mux: int | None) -> Values:
        return {
            "SwMajor": SW_VERSION[0],
            "SwMinor": SW_VERSION[1],
            "SwPatch": SW_VERSION[2],
            "HwRevision": HW_REVISION,
            "NominalCapacity": bat.PACK_AH,
            "NominalEnergy": bat.NOMINAL_KWH,
            "CellsInSeries": bat.CELLS_SERIES,
            "ModuleCount": bat.MODULES,
            "SerialNumber": self.serial,
        }

    def _energy(self, _mux: int | None) -> Values:
        capacity = bat.NOMINAL_KWH * STATE_OF_HEALTH / 100.0
        return {
            "EnergyRemaining": capacity * self.battery.soc / 100.0,
            "EnergyCapacity": capacity,
            "StateOfHealth": STATE_OF_HEALTH,
            "CycleCount": CYCLE_COUNT,
        }
