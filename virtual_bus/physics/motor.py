"""Traction motor, inverter and road load: torque -> speed, losses -> temperatures.

Motor (motor.dbc): permanent-magnet synchronous machine, 450 Nm peak, 21,000 rpm, 270 kW peak
(the class of the Porsche Taycan / Hyundai E-GMP rear machines: 16,000-21,000 rpm, 350-610 Nm,
160-335 kW). The torque envelope is min(450 Nm, P_peak / omega), falling to zero at 21,000 rpm.
Torque follows the command with a 20 ms first-order lag (current-loop and ramp limits of a
field-oriented inverter are a few ms; the VCU ramp dominates).

Vehicle (road load, Gillespie, "Fundamentals of Vehicle Dynamics", ch. 4):
m = 2,250 kg (+5 % rotating inertia), cd*A = 0.28 * 2.4 m2, rolling resistance 0.011,
air 1.2 kg/m3, single-speed reduction 10.5:1 at 97 %, dynamic wheel radius 0.33 m
(245/45 R20). Grade force m g sin(atan(grade)). Drag on the air speed (vehicle speed plus the
dynamometer's headwind). The brakes hold the car at standstill: it does not
roll back when the net force is negative at zero speed. Reverse is not simulated beyond the sign
of the motor speed: the bench drives forward.

Losses (a lumped efficiency map; real maps reach 95-97 % peak, 85-90 % at low speed/high torque):
copper k_cu * T^2 (8 kW at 450 Nm), iron k_fe * omega^1.5 (1.5 kW at 21,000 rpm), AC/eddy losses
6 % of mechanical power; inverter 150 W + 1.5 % of electrical power (SiC at 800 V, 98-99 %).
This gives about 18 kW of stator losses at full power, so full power can be held for tens of seconds
up to a minute or two, like real machines whose continuous rating is about half the peak power.

Thermal (three lumped nodes, values of the order used in lumped-parameter motor thermal networks,
e.g. Boglietti et al., IEEE Trans. Ind. Electron. 56(3), 2009):
stator 15 kJ/K (about 30 kg of copper and iron), inverter 2 kJ/K, motor coolant loop 25 kJ/K.
Stator <-> coolant 20 + 100 * pump W/K, inverter <-> coolant 10 + 120 * pump W/K, radiator to
ambient 10 + (250 + 25 * v[m/s]) * pump W/K (ram air grows with speed). The rotor temperature is an
estimate lagging the stator (time constant 5 min), as a real inverter's thermal observer reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PEAK_TORQUE_NM = 450.0
PEAK_POWER_W = 270_000.0
MAX_RPM = 21_000.0
RPM_PER_RAD_S = 60.0 / (2.0 * math.pi)

MASS_KG = 2250.0
ROTATING_MASS_FACTOR = 1.05
CD_A = 0.28 * 2.4
AIR_DENSITY = 1.2
CRR = 0.011
GEAR_RATIO = 10.5
GEAR_EFFICIENCY = 0.97
WHEEL_RADIUS_M = 0.33
G = 9.81
TORQUE_TAU_S = 0.02

K_CU = 8000.0 / PEAK_TORQUE_NM**2
K_FE = 1500.0 / (MAX_RPM / RPM_PER_RAD_S) ** 1.5
K_AC = 0.06
INVERTER_IDLE_W = 150.0
INVERTER_FRACTION = 0.015

C_STATOR = 15_000.0
C_INVERTER = 2_000.0
C_COOLANT = 25_000.0
ROTOR_TAU_S = 300.0


def torque_envelope(rpm: float) -> float:
    """Largest torque the machine can give at ``rpm`` (Nm), before any derating."""
    omega = abs(rpm) / RPM_PER_RAD_S
    if abs(rpm) >= MAX_RPM:
        return 0.0
    by_power = PEAK_POWER_W / omega if omega > 1e-6 else PEAK_TORQUE_NM
    # Fade out over the last 500 rpm instead of a cliff at the speed limit.
    fade = min(1.0, (MAX_RPM - abs(rpm)) / 500.0)
    return min(PEAK_TORQUE_NM, by_power) * fade


def vehicle_speed_kmh(motor_rpm: float) -> float:
    """Road speed from motor speed through the reduction gear and wheel radius."""
    return abs(motor_rpm) / RPM_PER_RAD_S / GEAR_RATIO * WHEEL_RADIUS_M * 3.6


@dataclass
class Drivetrain:
    """Motor, inverter, motor coolant loop and the vehicle on the road (or chassis dyno)."""

    stator_c: float
    inverter_c: float
    coolant_c: float
    rotor_c: float
    speed_ms: float = 0.0
    torque_nm: float = 0.0
    mech_power_w: float = 0.0
    dc_power_w: float = 0.0

    @property
    def motor_rpm(self) -> float:
        return self.speed_ms / WHEEL_RADIUS_M * GEAR_RATIO * RPM_PER_RAD_S

    def step(
        self,
        dt: float,
        *,
        torque_cmd: float,
        enabled: bool,
        grade_pct: float,
        pump_fraction: float,
        ambient_c: float,
        headwind_ms: float = 0.0,
    ) -> None:
        """Advance torque, speed and temperatures by ``dt`` seconds."""
        target = torque_cmd if enabled else 0.0
        self.torque_nm += (target - self.torque_nm) * dt / (TORQUE_TAU_S + dt)
        if abs(self.torque_nm) < 1e-3 and target == 0.0:
            self.torque_nm = 0.0
        self._road(dt, grade_pct, headwind_ms)
        omega = self.speed_ms / WHEEL_RADIUS_M * GEAR_RATIO
        self.mech_power_w = self.torque_nm * omega
        motor_loss = K_CU * self.torque_nm**2 + K_FE * omega**1.5 + K_AC * abs(self.mech_power_w)
        electrical = self.mech_power_w + motor_loss
        inverter_loss = (INVERTER_IDLE_W + INVERTER_FRACTION * abs(electrical)) if enabled else 0.0
        self.dc_power_w = electrical + inverter_loss if enabled else 0.0
        self._thermal(dt, motor_loss, inverter_loss, pump_fraction, ambient_c)

    def _road(self, dt: float, grade_pct: float, headwind_ms: float = 0.0) -> None:
        v = self.speed_ms
        air = v + headwind_ms  # air speed: drag pushes back with the wind, forward with a tailwind
        wheel_force = self.torque_nm * GEAR_RATIO * GEAR_EFFICIENCY / WHEEL_RADIUS_M
        angle = math.atan(grade_pct / 100.0)
        resist = MASS_KG * G * math.sin(angle) + 0.5 * AIR_DENSITY * CD_A * air * abs(air)
        if v > 0.01:
            resist += CRR * MASS_KG * G * math.cos(angle)
        net = wheel_force - resist
        if v <= 0.01 and net <= 0.0:
            self.speed_ms = 0.0  # brakes / standstill: no roll-back
            return
        self.speed_ms = max(0.0, v + net * dt / (MASS_KG * ROTATING_MASS_FACTOR))

    def _thermal(
        self, dt: float, motor_loss: float, inverter_loss: float, pump: float, ambient_c: float
    ) -> None:
        ua_stator = 20.0 + 100.0 * pump
        ua_inverter = 10.0 + 120.0 * pump
        ua_radiator = 10.0 + (250.0 + 25.0 * self.speed_ms) * pump
        q_s = ua_stator * (self.stator_c - self.coolant_c)
        q_i = ua_inverter * (self.inverter_c - self.coolant_c)
        q_r = ua_radiator * (self.coolant_c - ambient_c)
        self.stator_c += (motor_loss - q_s) * dt / C_STATOR
        self.inverter_c += (inverter_loss - q_i) * dt / C_INVERTER
        self.coolant_c += (q_s + q_i - q_r) * dt / C_COOLANT
        self.rotor_c += (self.stator_c - self.rotor_c) * dt / ROTOR_TAU_S


def torque_for_dc_power(limit_w: float, rpm: float, *, generating: bool = False) -> float:
    """Largest torque magnitude (Nm) whose DC-link power stays within ``limit_w`` (W, >= 0).

    Motoring, ``limit_w`` bounds the power drawn from the pack; ``generating``, the power pushed
    back into it. The inverse of the loss model of :meth:`Drivetrain.step`, in closed form: the
    electrical power is quadratic in the torque magnitude T,
    ``E = K_cu T² ± (1 ∓ K_ac) ω T + K_fe ω^1.5`` (``+`` motoring, ``-`` generating), and the
    inverter adds ``idle + 1.5 % |E|``. Returns ``inf`` when no torque reaches the bound (a
    generator at standstill only heats its copper: it pushes no current into the pack).
    """
    omega = abs(rpm) / RPM_PER_RAD_S
    iron = K_FE * omega**1.5
    limit_w = max(0.0, limit_w)
    if not generating:
        budget = (limit_w - INVERTER_IDLE_W) / (1.0 + INVERTER_FRACTION)
        b = (1.0 + K_AC) * omega
        c = iron - budget
        if c >= 0.0:
            return 0.0
        return (-b + math.sqrt(b * b - 4.0 * K_CU * c)) / (2.0 * K_CU)
    floor = (-limit_w - INVERTER_IDLE_W) / (1.0 - INVERTER_FRACTION)  # lowest E allowed (< 0)
    b = (1.0 - K_AC) * omega
    c = iron - floor
    disc = b * b - 4.0 * K_CU * c
    if disc < 0.0:
        return math.inf
    return (b - math.sqrt(disc)) / (2.0 * K_CU)
