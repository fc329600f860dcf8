"""Battery pack: 800 V-class NMC, 192 cells in series x 2 in parallel, ~100 kWh (see battery.dbc).

Electrical model (first-order equivalent circuit, no RC branch; the bench reads 10-100 ms frames
where the ohmic drop dominates):

- Cell: 70 Ah prismatic NMC (2P -> 140 Ah pack; 192 x 3.7 V x 140 Ah = 99.5 kWh), the class of
  cell in 800 V packs such as the Hyundai E-GMP and Porsche J1 (Samsung SDI / SK On / LG NMC
  prismatics and pouches of 60-78 Ah).
- Open-circuit voltage: a typical NMC-graphite OCV(SOC) curve, 3.0 V at 0 % to 4.18 V at 100 %
  (shape after Plett, "Battery Management Systems Vol. I", 2015, ch. 2, and the LG/Samsung NMC
  data-sheet curves), with a small entropic coefficient of +0.1 mV/K.
- Internal resistance: 1.0 mOhm DC resistance per cell at 25 °C (typical 10 s DCIR of 60-70 Ah NMC
  prismatics, 0.6-1.2 mOhm) rising with Arrhenius law, activation energy 25 kJ/mol (electrolyte and
  charge-transfer values in the literature span 20-50 kJ/mol, e.g. Waag et al., J. Power Sources
  237, 2013): x3 at 0 °C, x10 at -30 °C. Pack resistance adds 15 mOhm of busbars and contactors.
- Cell spread: each cell has a seeded SOC offset (capacity/self-discharge mismatch, sigma 0.4 %)
  and resistance factor (sigma 4 %); each of the 48 sensors a calibration offset (sigma 0.3 K) and a
  position relative to the cold plate, so min/max differ as in field data (a few tens of mV,
  1-4 K when heating or cooling).

Thermal model (two lumped nodes):

- Cells + structure: 500 kJ/K (about 400 kg of cells at ~1000 J/kgK plus the aluminium housing;
  Bergman/Incropera values for Al, Taheri & Bahrami / Maleki et al. for NMC cell cp 0.9-1.1 kJ/kgK).
- Coolant loop + cold plate: 40 kJ/K (about 10 L of 50/50 water-glycol at 3.4 kJ/kgK + plate).
- Cells <-> coolant: 400 W/K with the pump running, 15 W/K without flow.
- Cells <-> ambient: 8 W/K (insulated underfloor pack: time constant ~17 h, matching the
  "overnight cold soak" behaviour of real packs).
- Coolant <-> ambient through the front radiator: 150 W/K when the loop runs through it, 5 W/K
  when bypassed (heating) or stopped.
- PTC coolant heater: 7 kW rated (typical 800 V HV-PTC heaters are 5-10 kW), 95 % of its power
  reaches the coolant; self-limited at 65 °C coolant.
- Chiller: up to 6 kW removed from the coolant towards 18 °C when requested.
- Joule heat I^2 R in the cells.

With the heater at 6 kW on a pack at -30 °C this gives about 0.65 K/min, inside the 0.3-1 K/min of
published winter pre-conditioning data.

BMS limits (``charge_current_limit`` / ``discharge_current_limit``) follow the C-rate-versus-
temperature tables cell makers publish for NMC (no or trickle charge below 0 °C because of
lithium plating, full fast charge 25-45 °C, derating above 45 °C to a cut-off at 60 °C), tapered
near full (charge) and empty (discharge). The charge limit follows the coldest and the hottest
sensor, whichever allows less.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from dataclasses import dataclass, field

import numpy as np

CELLS_SERIES = 192
CELLS_PARALLEL = 2
MODULES = 12
CELLS_PER_MODULE = CELLS_SERIES // MODULES
SENSORS = 48
SENSORS_PER_MODULE = SENSORS // MODULES
CELL_AH = 70.0
PACK_AH = CELL_AH * CELLS_PARALLEL
NOMINAL_CELL_V = 3.7
NOMINAL_KWH = CELLS_SERIES * NOMINAL_CELL_V * PACK_AH / 1000.0
CELL_V_MAX = 4.2
CELL_V_MIN = 2.8

_SOC_POINTS = (0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
_OCV_POINTS = (3.00, 3.40, 3.50, 3.59, 3.65, 3.70, 3.75, 3.82, 3.90, 3.98, 4.07, 4.18)
_ENTROPIC_V_PER_K = 0.0001

R_CELL_25 = 0.0010
R_BUSBARS = 0.015
_EA_OVER_R = 25_000.0 / 8.314

C_CELLS_J_PER_K = 500_000.0
C_COOLANT_J_PER_K = 40_000.0
UA_CELLS_COOLANT_PUMP = 400.0
UA_CELLS_COOLANT_STILL = 15.0
UA_CELLS_AMBIENT = 8.0
UA_RADIATOR = 150.0
UA_RADIATOR_BYPASSED = 5.0
HEATER_RATED_W = 7000.0
HEATER_DEFAULT_W = 6000.0
HEATER_EFFICIENCY = 0.95
HEATER_CUTOFF_C = 65.0
CHILLER_MAX_W = 6000.0
CHILLER_TARGET_C = 18.0
CHILLER_UA = 500.0

# C-rate the cells accept / deliver versus cell temperature (min over all sensors for charge).
_CHARGE_T = (-30.0, -20.0, -10.0, 0.0, 10.0, 15.0, 25.0, 45.0, 50.0, 55.0, 60.0)
_CHARGE_C = (0.0, 0.02, 0.05, 0.1, 0.5, 1.0, 2.5, 2.5, 1.5, 0.5, 0.0)
_DISCHARGE_T = (-40.0, -30.0, -20.0, -10.0, 0.0, 10.0, 25.0, 45.0, 55.0, 60.0)
_DISCHARGE_C = (0.5, 0.8, 1.2, 2.0, 3.0, 4.0, 5.0, 5.0, 2.0, 0.0)
CHARGE_POWER_MAX_KW = 350.0
DISCHARGE_POWER_MAX_KW = 400.0


def interp(x: float, xs: tuple[float, ...], ys: tuple[float, ...]) -> float:
    """Piecewise-linear interpolation clamped at the ends (scalar, faster than np.interp)."""
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    i = bisect_right(xs, x) - 1
    x0, x1 = xs[i], xs[i + 1]
    return ys[i] + (ys[i + 1] - ys[i]) * (x - x0) / (x1 - x0)


def ocv_cell(soc_pct: float, temp_c: float) -> float:
    """Open-circuit voltage of one cell (V)."""
    return interp(soc_pct, _SOC_POINTS, _OCV_POINTS) + _ENTROPIC_V_PER_K * (temp_c - 25.0)


def cell_resistance(temp_c: float) -> float:
    """DC internal resistance of one cell (Ohm), Arrhenius in temperature."""
    t_k = max(temp_c, -50.0) + 273.15
    return R_CELL_25 * math.exp(_EA_OVER_R * (1.0 / t_k - 1.0 / 298.15))


def pack_resistance(temp_c: float) -> float:
    return CELLS_SERIES * cell_resistance(temp_c) / CELLS_PARALLEL + R_BUSBARS


def charge_c_rate(temp_c: float) -> float:
    return interp(temp_c, _CHARGE_T, _CHARGE_C)


def discharge_c_rate(temp_c: float) -> float:
    return interp(temp_c, _DISCHARGE_T, _DISCHARGE_C)


@dataclass
class Battery:
    """State of the pack. Current is positive when discharging (as in BMS_PackStatus)."""

    soc: float
    cell_c: float
    coolant_c: float
    rng: random.Random
    current_a: float = 0.0
    heater_w: float = 0.0
    hot_spot: dict[int, float] = field(default_factory=dict)
    _soc_offsets: np.ndarray = field(init=False, repr=False)
    _r_factors: np.ndarray = field(init=False, repr=False)
    _sensor_offsets: np.ndarray = field(init=False, repr=False)
    _sensor_plate: np.ndarray = field(init=False, repr=False)
    _ocv: float = field(init=False, default=0.0, repr=False)
    _resistance: float = field(init=False, default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._refresh()
        gauss = self.rng.gauss
        self._soc_offsets = np.array([gauss(0.0, 0.4) for _ in range(CELLS_SERIES)])
        self._r_factors = np.array([1.0 + gauss(0.0, 0.04) for _ in range(CELLS_SERIES)])
        self._sensor_offsets = np.array([gauss(0.0, 0.3) for _ in range(SENSORS)])
        # 1 = sensor on the cold plate, 0.2 = top of the module, far from it.
        self._sensor_plate = np.array([self.rng.uniform(0.2, 1.0) for _ in range(SENSORS)])

    # -- electrical ------------------------------------------------------------------------------

    def _refresh(self) -> None:
        # OCV and resistance depend only on SOC and temperature, which change only in step():
        # computed once per step instead of at every use.
        self._ocv = CELLS_SERIES * ocv_cell(self.soc, self.cell_c)
        self._resistance = pack_resistance(self.cell_c)

    def ocv(self) -> float:
        return self._ocv

    def resistance(self) -> float:
        return self._resistance

    def voltage(self) -> float:
        """Terminal voltage at the present current."""
        return self.ocv() - self.current_a * self.resistance()

    def cell_voltages(self) -> np.ndarray:
        """Terminal voltage of each of the 192 series cells (V)."""
        socs = np.clip(self.soc + self._soc_offsets, 0.0, 100.0)
        ocv = np.interp(socs, _SOC_POINTS, _OCV_POINTS) + _ENTROPIC_V_PER_K * (self.cell_c - 25.0)
        drop = (self.current_a / CELLS_PARALLEL) * cell_resistance(self.cell_c) * self._r_factors
        return ocv - drop

    def sensor_temps(self) -> np.ndarray:
        """Temperature at each of the 48 sensors (°C): gradient towards the coolant, offsets."""
        temps = (
            self.cell_c
            + 0.25 * self._sensor_plate * (self.coolant_c - self.cell_c)
            + self._sensor_offsets
        )
        for sensor, extra in self.hot_spot.items():
            temps[sensor] += extra
        return temps

    # -- limits ----------------------------------------------------------------------------------

    def charge_current_limit(self, min_temp_c: float, max_temp_c: float) -> float:
        rate = min(charge_c_rate(min_temp_c), charge_c_rate(max_temp_c))
        taper = 1.0 if self.soc <= 80.0 else max(0.04, (100.0 - self.soc) / 20.0)
        return rate * PACK_AH * taper

    def discharge_current_limit(self, min_temp_c: float, max_temp_c: float) -> float:
        rate = min(discharge_c_rate(min_temp_c), discharge_c_rate(max_temp_c))
        taper = 1.0 if self.soc >= 10.0 else max(0.0, self.soc / 10.0)
        # Keep the loaded cell voltage above the 2.8 V floor.
        r_cell = cell_resistance(self.cell_c) / CELLS_PARALLEL
        by_voltage = max(0.0, (ocv_cell(self.soc, self.cell_c) - CELL_V_MIN) / r_cell)
        return min(rate * PACK_AH * taper, by_voltage)

    # -- stepping --------------------------------------------------------------------------------

    def step(
        self,
        dt: float,
        *,
        ambient_c: float,
        pump_on: bool,
        heating: bool,
        chiller_on: bool,
    ) -> None:
        """Advance charge and temperatures by ``dt`` seconds at ``current_a`` and ``heater_w``."""
        self.soc -= self.current_a * dt / (3600.0 * PACK_AH) * 100.0
        self.soc = min(100.0, max(0.0, self.soc))
        joule = self.current_a * self.current_a * self.resistance()
        ua_cc = UA_CELLS_COOLANT_PUMP if pump_on else UA_CELLS_COOLANT_STILL
        q_cc = ua_cc * (self.coolant_c - self.cell_c)
        q_amb = UA_CELLS_AMBIENT * (ambient_c - self.cell_c)
        ua_rad = UA_RADIATOR if pump_on and not heating else UA_RADIATOR_BYPASSED
        q_rad = ua_rad * (ambient_c - self.coolant_c)
        q_chill = 0.0
        if chiller_on:
            q_chill = -min(
                CHILLER_MAX_W, max(0.0, CHILLER_UA * (self.coolant_c - CHILLER_TARGET_C))
            )
        q_heat = HEATER_EFFICIENCY * self.heater_w
        self.cell_c += (joule + q_cc + q_amb) * dt / C_CELLS_J_PER_K
        self.coolant_c += (q_heat - q_cc + q_rad + q_chill) * dt / C_COOLANT_J_PER_K
        self._refresh()
