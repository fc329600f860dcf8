"""Climate: the air around the vehicle (climate chamber or site), solar load and road grade.

Assumptions and sources:

- The bench imposes the environment through ``VCU_Ambient`` (AmbientTemp, SolarLoad, RoadGrade).
  A climate chamber does not jump: walk-in automotive chambers ramp at about 1-5 K/min
  (e.g. Weiss/Votsch and Espec vehicle-chamber data sheets quote 1-3 K/min loaded). The air here
  approaches the set point at :data:`CHAMBER_RAMP_K_PER_MIN` = 2 K/min.
- Solar load is turned into an equivalent "sol-air" temperature seen by a component
  (ASHRAE Handbook Fundamentals, ch. 18: T_sa = T_air + alpha * G / h_o, with alpha ~ 0.6-0.9 and
  h_o ~ 15-25 W/m2K, i.e. up to +30-50 K on a sun-facing dark surface). The pack sits under the
  floor and the motor in the shaded drivetrain bay, so only a small fraction applies:
  +4 K (pack) and +6 K (motor bay) at 1000 W/m2. Heihe winter ~0-300 W/m2, Turpan summer
  ~1000-1100 W/m2.
- Road grade comes from the chassis dynamometer (percent, positive uphill), and so does the
  headwind (km/h, negative: tailwind): a dyno simulates both as road load.
"""

from __future__ import annotations

from dataclasses import dataclass

CHAMBER_RAMP_K_PER_MIN = 2.0
PACK_SOLAR_K_PER_W_M2 = 0.004
MOTOR_SOLAR_K_PER_W_M2 = 0.006


@dataclass
class Climate:
    """Ambient air temperature approaching its set point at a finite ramp rate."""

    air_c: float
    target_c: float | None = None
    solar_w_m2: float = 0.0
    road_grade_pct: float = 0.0
    headwind_kmh: float = 0.0
    ramp_k_per_s: float = CHAMBER_RAMP_K_PER_MIN / 60.0

    def __post_init__(self) -> None:
        if self.target_c is None:
            self.target_c = self.air_c

    def step(self, dt: float) -> None:
        gap = self.target_c - self.air_c
        limit = self.ramp_k_per_s * dt
        self.air_c += max(-limit, min(limit, gap))

    def pack_ambient_c(self) -> float:
        """Effective (sol-air) temperature around the underfloor pack."""
        return self.air_c + PACK_SOLAR_K_PER_W_M2 * self.solar_w_m2

    def motor_ambient_c(self) -> float:
        """Effective temperature of the air reaching the motor bay and the radiator."""
        return self.air_c + MOTOR_SOLAR_K_PER_W_M2 * self.solar_w_m2
