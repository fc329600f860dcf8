"""UDS exchanges with the virtual ECUs: response times in lockstep and in real time.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_uds_response.py [--n 200]

Lockstep: a :class:`~bench.diag.client.SteppedClient` asks the in-process vehicle (10 ms ticks, as
the runner's default) for the BMS's DTCs (a multi-frame response) and one DID, ``--n`` times;
prints the simulated response time (request to whole response) and the wall time per exchange.
Real time: udsoncan's Client over can-isotp's NotifierBasedCanStack on a python-can ``virtual``
bus, the vehicle running on the wall clock in a thread; prints the round trip (median, p99, max).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import can  # noqa: E402

from bench.diag import client as uds  # noqa: E402
from bench.diag.catalog import virtual_vehicle_ecus  # noqa: E402
from bench.diag.session import on_virtual_vehicle  # noqa: E402
from virtual_bus.clock import RealClock  # noqa: E402
from virtual_bus.vehicle import VirtualVehicle  # noqa: E402


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def lockstep(n: int) -> list[tuple[str, str]]:
    bms = virtual_vehicle_ecus()["BMS"]
    ops = [op for _ in range(n) for op in (uds.read_dtcs(bms), uds.read_did(bms, "pack_soh"))]
    start = time.perf_counter()
    exchanges = on_virtual_vehicle(ops, faults=["heater_fail", "insulation_fault"], at=2.0)
    wall = time.perf_counter() - start
    sim = [e.t_response - e.t_request for e in exchanges if e.ok]
    assert len(sim) == len(ops)
    return [
        ("lockstep: exchanges", f"{len(ops)}"),
        ("lockstep: simulated response time", f"{min(sim) * 1000:.0f}-{max(sim) * 1000:.0f} ms"),
        (
            "lockstep: wall time per exchange (incl. 2 s warm-up)",
            f"{wall / len(ops) * 1000:.2f} ms",
        ),
    ]


def realtime(n: int) -> list[tuple[str, str]]:
    channel = "bench-diag-benchmark"
    vehicle_bus = can.Bus(interface="virtual", channel=channel)
    tester_bus = can.Bus(interface="virtual", channel=channel)
    vehicle = VirtualVehicle(vehicle_bus)
    stop = threading.Event()
    thread = threading.Thread(
        target=vehicle.run_realtime, args=(RealClock(),), kwargs={"stop_event": stop}
    )
    thread.start()
    bms = virtual_vehicle_ecus()["BMS"]
    times: list[float] = []
    failed = 0
    try:
        with uds.UdsClient(tester_bus, bms) as client:
            for i in range(n):
                op = uds.read_dtcs(bms) if i % 2 else uds.read_did(bms, "pack_soh")
                start = time.perf_counter()
                exchange = client.run(op)
                times.append(time.perf_counter() - start)
                failed += not exchange.ok
    finally:
        stop.set()
        thread.join()
        vehicle_bus.shutdown()
        tester_bus.shutdown()
    return [
        ("real time (udsoncan, virtual bus): requests / failed", f"{n} / {failed}"),
        ("real time: round trip median", f"{statistics.median(times) * 1000:.1f} ms"),
        (
            "real time: round trip p99 / max",
            f"{_quantile(times, 0.99) * 1000:.1f} / {max(times) * 1000:.1f} ms",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    rows = lockstep(args.n) + realtime(args.n)
    width = max(len(name) for name, _ in rows)
    print(f"| {'figure':<{width}} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for name, value in rows:
        print(f"| {name:<{width}} | {value} |")


if __name__ == "__main__":
    main()
