"""Virtual vehicle in lockstep: simulated seconds per wall second for the full restbus.

    .venv/bin/python benchmarks/bench_virtual_vehicle.py                # 120 s simulated per row
    .venv/bin/python benchmarks/bench_virtual_vehicle.py --seconds 600

Each row runs :class:`virtual_bus.VirtualVehicle` on python-can's in-process ``virtual`` bus
(``preserve_timestamps=True``), the way the runner does: a second bus on the channel sends the
bench's commands stamped with simulated time, advances the vehicle in 10 ms ticks and drains
everything the vehicle sent after each tick. Every row sends VCU_Command every 10 ms (the MCU and
BMS monitor it: sent once, the vehicle would see the VCU lost after 0.8 s and switch HV off); the
last also sends VCU_Thermal every 100 ms and VCU_Ambient every second, encoded and sealed, as a
plan's periodic sends would. Both sides run in this one thread, so the figures include
python-can's per-frame copy into the receiver's queue.

"x real time" is simulated seconds per second; CPU time (of this process, i.e. one core,
unaffected by other processes on the machine) is shown beside wall time. Goal: >= 100x.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import can  # noqa: E402

from bench.dbc import DbcSet  # noqa: E402
from bench.e2e import Protector  # noqa: E402
from virtual_bus import VirtualVehicle  # noqa: E402

TICK_S = 0.01
PARKED = {"KeyOn": 0, "HvRequest": 0, "DriveMode": 0, "TorqueRequest": 0}
IDLE = {"KeyOn": 1, "HvRequest": 1, "DriveMode": 3, "TorqueRequest": 0}
DRIVING = {"KeyOn": 1, "HvRequest": 1, "DriveMode": 3, "TorqueRequest": 200}
SCENARIOS = {  # name: (VCU_Command, bench frames repeated at their cycle times?)
    "parked (HV off)": (PARKED, False),
    "HV ready, idle": (IDLE, False),
    "driving, 200 Nm": (DRIVING, False),
    "driving + VCU frames": (DRIVING, True),
}


def run(
    dbcs: DbcSet, command: dict[str, float], periodic: bool, seconds: float, channel: str
) -> dict:
    vehicle_bus = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
    bench_bus = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
    vehicle = VirtualVehicle(vehicle_bus, dbcs, seed=1, ambient_c=25.0)
    stimuli = [
        (dbcs.message("VCU_Command"), command, 0.01),
        (dbcs.message("VCU_Thermal"), {"CoolantPumpRequest": 1}, 0.1),
        (dbcs.message("VCU_Ambient"), {"AmbientTemp": 25.0}, 1.0),
    ]
    protectors = [Protector(m) for m, _, _ in stimuli]
    next_due = [0.0] * len(stimuli)
    received = sent = 0
    wall, cpu = time.perf_counter(), time.process_time()
    steps = round(seconds / TICK_S)
    for step in range(1, steps + 1):
        t = step * TICK_S
        for i, (message, values, period) in enumerate(stimuli):
            if next_due[i] <= t:
                bench_bus.send(
                    can.Message(
                        timestamp=next_due[i],
                        arbitration_id=message.frame_id,
                        is_extended_id=False,
                        data=protectors[i].encode(values),
                    )
                )
                sent += 1
                next_due[i] += period if periodic or i == 0 else float("inf")
        vehicle.advance_to(t)
        while bench_bus.recv(timeout=0) is not None:
            received += 1
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    vehicle_bus.shutdown()
    bench_bus.shutdown()
    return {"wall": wall, "cpu": cpu, "received": received, "sent": sent, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="simulated s per scenario")
    args = parser.parse_args()
    dbcs = DbcSet.load()
    run(dbcs, IDLE, True, 2.0, "warm-up")  # imports, caches
    header = (
        f"| {'scenario':<20} | sim s | wall s | CPU s | x real time (wall) | x real time (CPU) "
        "| frames from vehicle | frames/s (wall) |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for i, (name, (command, periodic)) in enumerate(SCENARIOS.items()):
        r = run(dbcs, command, periodic, args.seconds, f"bench-{i}")
        print(
            f"| {name:<20} | {r['seconds']:5.0f} | {r['wall']:6.2f} | {r['cpu']:5.2f} "
            f"| {r['seconds'] / r['wall']:18.0f} | {r['seconds'] / r['cpu']:17.0f} "
            f"| {r['received']:19d} | {r['received'] / r['wall']:15.0f} |"
        )
    print(
        f"(restbus: {r['received'] / r['seconds']:.0f} frames per simulated second; "
        f"the bench sent {r['sent'] / r['seconds']:.0f} per simulated second)"
    )


if __name__ == "__main__":
    main()
