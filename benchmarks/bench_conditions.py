"""Condition evaluation speed: scalars (the runner, once per frame/tick) and columns (evaluate).

Prints a table: per condition, microseconds per scalar evaluation (plain Python floats, as
``LiveMonitor.latest`` holds them) and nanoseconds per sample over a 1 M-sample column.

    PYTHONPATH=. python benchmarks/bench_conditions.py
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.plan.conditions import parse_condition  # noqa: E402

CONDITIONS = [
    "BMS_PackStatus.SOC < 80",
    "BMS_Status.HvState == 2 and (BMS_PackStatus.SOC < 80 or not BMS_Status.HeaterActive)",
    "abs(MCU_Status.MotorTorque - VCU_Command.TorqueRequest) > 20",
    "max(BMS_Temps.MaxCellTemp - BMS_Temps.MinCellTemp, MCU_Temps.CoolantTemp / 2) >= 8",
    "BMS_PackStatus.PackVoltage * BMS_PackStatus.PackCurrent / 1000 > 150",
]
SAMPLES = 1_000_000


def main() -> None:
    rng = np.random.default_rng(1)
    print(f"{'condition':<88} {'scalar µs':>10} {'column ns/sample':>17}")
    for text in CONDITIONS:
        condition = parse_condition(text)
        columns = {name: rng.uniform(-50, 200, SAMPLES) for name in condition.signals}
        scalars = {name: float(values[0]) for name, values in columns.items()}
        loops = 20_000
        scalar = (
            timeit.timeit(lambda c=condition, env=scalars: c.evaluate(env), number=loops) / loops
        )
        runs = 5
        column = min(
            timeit.repeat(lambda c=condition, env=columns: c.evaluate(env), number=1, repeat=runs)
        )
        print(f"{text:<88} {scalar * 1e6:>10.2f} {column / SAMPLES * 1e9:>17.2f}")


if __name__ == "__main__":
    main()
