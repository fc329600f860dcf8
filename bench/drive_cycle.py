"""Drive cycles: speed profiles as data, and the speed controller that follows them.

The harness drives like a dynamometer driver robot: it reads the vehicle speed from the bus
(``MCU_Power.VehicleSpeed``) and sets ``VCU_Command.TorqueRequest``. The controller is a PI on the
speed error plus a feed-forward of the road-load force (mass × acceleration of the profile, rolling
resistance, aerodynamic drag) through the wheel radius and gear ratio. The feed-forward uses
nominal vehicle figures from the plan; the PI term absorbs the difference to the real vehicle.

A speed hold (a plan's ``drive:`` step) is the same controller on a profile of its own
(:func:`hold_profile`): from the present speed to the target at a set acceleration, then level for
as long as the step lasts, with the grade and the dynamometer's headwind in the feed-forward.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError

DATA_DIR = Path(__file__).resolve().parent / "data"
BUILTIN_PROFILES = {"CLTC-P": DATA_DIR / "cltc_p.csv"}
GRAVITY = 9.81
AIR_DENSITY = 1.2


@dataclass(frozen=True)
class SpeedProfile:
    """Vehicle speed (km/h) against time (s) from the start of the profile."""

    name: str
    time_s: np.ndarray
    speed_kmh: np.ndarray

    @property
    def duration(self) -> float:
        return float(self.time_s[-1])

    @property
    def distance_km(self) -> float:
        return float(np.trapezoid(self.speed_kmh, self.time_s) / 3600.0)

    def speed_at(self, t: float) -> float:
        return float(np.interp(t, self.time_s, self.speed_kmh))

    def acceleration_at(self, t: float, dt: float = 0.5) -> float:
        """m/s² by central difference over ``dt``."""
        return (self.speed_at(t + dt) - self.speed_at(t - dt)) / 3.6 / (2 * dt)

    def repeated(self, times: int, scale: float = 1.0) -> SpeedProfile:
        if times < 1:
            raise ValueError("repeat must be at least 1")
        step = self.duration + (self.time_s[1] - self.time_s[0])
        time = np.concatenate([self.time_s + i * step for i in range(times)])
        speed = np.tile(self.speed_kmh, times) * scale
        return SpeedProfile(self.name, time, speed)


def load_profile(name_or_path: str, base_dir: Path | None = None) -> SpeedProfile:
    """A built-in profile by name (``CLTC-P``) or a CSV of ``time_s,speed_kmh`` rows."""
    path = BUILTIN_PROFILES.get(name_or_path.upper())
    if path is None:
        path = Path(name_or_path)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
    if not path.is_file():
        known = ", ".join(BUILTIN_PROFILES)
        raise InputError(f"{path}: drive cycle not found (built-in: {known}, or a CSV file)")
    try:
        table = pd.read_csv(path, comment="#")
        time = table.iloc[:, 0].to_numpy(dtype=float)
        speed = table.iloc[:, 1].to_numpy(dtype=float)
    except (ValueError, IndexError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(
            f"{path}: not a time_s,speed_kmh CSV: {' '.join(str(exc).split())}"
        ) from None
    if len(time) < 2 or np.any(np.diff(time) <= 0) or np.any(speed < 0):
        raise InputError(f"{path}: times must increase and speeds be >= 0, with two rows or more")
    return SpeedProfile(path.stem if name_or_path not in BUILTIN_PROFILES else name_or_path,
                        time, speed)  # fmt: skip


HOLD_S = 1.0e7
"""How long a hold profile stays at its target: longer than any run (the step ends it)."""


def hold_profile(target_kmh: float, from_kmh: float, accel_mps2: float) -> SpeedProfile:
    """Speed from ``from_kmh`` to ``target_kmh`` at ``accel_mps2`` (m/s²), then held."""
    start = max(0.0, from_kmh) if np.isfinite(from_kmh) else 0.0
    ramp_s = max(abs(target_kmh - start) / 3.6 / accel_mps2, 0.1)
    time = np.array([0.0, ramp_s, ramp_s + HOLD_S])
    speed = np.array([start, target_kmh, target_kmh])
    return SpeedProfile(f"hold {target_kmh:g} km/h", time, speed)


@dataclass
class VehicleFigures:
    """Nominal figures for the feed-forward: an 800 V D-segment EV on a chassis dynamometer.

    They only shape the feed-forward; the PI term corrects whatever the real vehicle differs by.
    """

    mass_kg: float = 2250.0
    wheel_radius_m: float = 0.33
    gear_ratio: float = 10.5
    rolling_resistance: float = 0.011
    drag_area_m2: float = 0.67  # Cd × A
    max_torque_nm: float = 450.0


@dataclass
class SpeedController:
    """Torque request that makes the vehicle follow a speed profile."""

    profile: SpeedProfile
    start_time: float
    vehicle: VehicleFigures = field(default_factory=VehicleFigures)
    kp: float = 60.0  # Nm per km/h of error
    ki: float = 8.0  # Nm per (km/h · s)
    headwind_kmh: float = 0.0
    _integral: float = 0.0
    _last_t: float | None = None

    def finished(self, t: float) -> bool:
        return t - self.start_time >= self.profile.duration

    def target_kmh(self, t: float) -> float:
        return self.profile.speed_at(t - self.start_time)

    def torque(self, t: float, speed_kmh: float, grade_pct: float = 0.0) -> float:
        """Torque request (Nm) at ``t`` for the measured ``speed_kmh``."""
        local = t - self.start_time
        target = self.profile.speed_at(local)
        error = target - (speed_kmh if np.isfinite(speed_kmh) else 0.0)
        dt = 0.0 if self._last_t is None else max(t - self._last_t, 0.0)
        self._last_t = t
        feed_forward = self._road_load_torque(
            target, self.profile.acceleration_at(local), grade_pct
        )
        unclamped = feed_forward + self.kp * error + self.ki * self._integral
        limit = self.vehicle.max_torque_nm
        # Anti-windup: integrate only while the output is not saturated in the error's direction.
        if -limit < unclamped < limit or (unclamped >= limit) != (error > 0):
            self._integral += error * dt
        if target <= 0.0 and speed_kmh <= 0.5:
            self._integral = 0.0
            return 0.0  # standstill: hold, no creep torque
        return float(np.clip(unclamped, -limit, limit))

    def _road_load_torque(self, speed_kmh: float, accel: float, grade_pct: float) -> float:
        v = speed_kmh / 3.6
        air = v + self.headwind_kmh / 3.6
        fig = self.vehicle
        slope = np.arctan(grade_pct / 100.0)
        force = fig.mass_kg * accel + fig.mass_kg * GRAVITY * np.sin(slope)
        if v > 0.1:
            force += fig.mass_kg * GRAVITY * fig.rolling_resistance * np.cos(slope)
            force += 0.5 * AIR_DENSITY * fig.drag_area_m2 * air * abs(air)
        return float(force * fig.wheel_radius_m / fig.gear_ratio)
