"""Real-time cycle times of the virtual vehicle on SocketCAN, with and without a CPU hog beside it.

    ../shared/tools/run-in-vcan-vm.sh .venv/bin/python benchmarks/bench_cycle_times.py
    .venv/bin/python benchmarks/bench_cycle_times.py --seconds 20 --hog 1    # on a host with vcan0

Each row starts ``python -m virtual_bus --interface socketcan --channel vcan0`` as a process of its
own (the way the nightly runs it), keys it on by sending VCU_Command every 10 ms, and listens on
vcan0 for ``--seconds``. ``kernel`` rows are the default (cyclic messages as kernel BCM cyclic send
tasks, payloads replaced with ``modify_data``); ``python`` rows pass ``--no-kernel-cyclic`` (the
absolute-deadline scheduler in Python sends everything). ``hog`` rows run ``--hog`` CPU-bound
processes (``while True: pass``) beside it, started first, at the same priority.

Per cyclic message: the gap between consecutive frames (kernel receive timestamps, SO_TIMESTAMP,
so the listener's own delays do not count; a 16 MB receive buffer, so a listener starved of CPU
drops nothing) minus its ``GenMsgCycleTime``; the table shows the 99th
percentile and the maximum of ``|gap - cycle time|``, over every cyclic message the vehicle sends.
Goal: p99 <= 1 ms on vcan0 with the host loaded.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import can  # noqa: E402
import numpy as np  # noqa: E402

from bench.dbc import DbcSet  # noqa: E402
from bench.e2e import Protector  # noqa: E402
from virtual_bus.faults import VEHICLE_SENDERS  # noqa: E402

DRIVE = {"KeyOn": 1, "HvRequest": 1, "DriveMode": 3, "TorqueRequest": 40}
HOG = "while True: pass"
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


def _listen(bus: can.BusABC, seconds: float, dbcs: DbcSet) -> dict[int, list[float]]:
    command = dbcs.message("VCU_Command")
    protector = Protector(command)
    stamps: dict[int, list[float]] = {}
    end = time.monotonic() + seconds
    next_send = time.monotonic()
    while (now := time.monotonic()) < end:
        if now >= next_send:
            data = protector.encode(DRIVE)
            bus.send(can.Message(arbitration_id=command.frame_id, data=data, is_extended_id=False))
            next_send += 0.01
        msg = bus.recv(timeout=max(0.0, min(0.002, next_send - time.monotonic())))
        if msg is not None and not msg.is_error_frame:
            stamps.setdefault(msg.arbitration_id, []).append(msg.timestamp)
    return stamps


def _wait_for_vehicle(bus: can.BusABC, vehicle: subprocess.Popen) -> None:
    """Until the vehicle's first frame (its start-up is slow in a VM), plus 2 s to key on."""
    end = time.monotonic() + 60.0
    while time.monotonic() < end:
        if vehicle.poll() is not None:
            raise SystemExit(
                f"the vehicle exited: {vehicle.stderr.read() if vehicle.stderr else ''}"
            )
        if bus.recv(timeout=0.1) is not None:
            time.sleep(2.0)
            while bus.recv(timeout=0) is not None:  # what queued meanwhile is not measured
                pass
            return
    raise SystemExit("no frame from the vehicle within 60 s")


def _row(mode: str, hogs: int, seconds: float, channel: str, dbcs: DbcSet) -> list[str]:
    hog_procs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(hogs)]
    args = [sys.executable, "-m", "virtual_bus", "--interface", "socketcan", "--channel", channel]
    if mode == "python":
        args.append("--no-kernel-cyclic")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (read after the vehicle ends)
    vehicle = subprocess.Popen(args, cwd=ROOT, env=env, stderr=log, text=True)
    stamps: dict[int, list[float]] = {}
    try:
        with can.Bus(interface="socketcan", channel=channel, fd=True) as bus:
            # A large receive buffer: a listener starved of CPU must not drop frames (a dropped
            # frame would show as a doubled gap, charged to the vehicle). SO_RCVBUFFORCE: root.
            bus.socket.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 * 1024 * 1024)
            _wait_for_vehicle(bus, vehicle)
            stamps = _listen(bus, seconds, dbcs)
    finally:
        vehicle.terminate()
        try:
            vehicle.wait(30)
        except subprocess.TimeoutExpired:
            vehicle.kill()
            vehicle.wait()
            print("the vehicle did not stop within 30 s of SIGTERM: killed", file=sys.stderr)
        log.seek(0)
        print(log.read()[-2000:], file=sys.stderr, end="")
        for proc in hog_procs:
            proc.kill()
            proc.wait()
    deviations = []
    worst_name, worst = "-", 0.0
    for message in dbcs.messages:
        if not set(message.senders) & set(VEHICLE_SENDERS) or not DbcSet.is_cyclic(message):
            continue
        period = DbcSet.cycle_time_s(message)
        times = np.array(stamps.get(message.frame_id, []))
        if period is None or len(times) < 3:
            continue
        dev = np.abs(np.diff(times) - period) * 1000.0
        deviations.append(dev)
        if dev.max() > worst:
            worst_name, worst = message.name, float(dev.max())
    every = np.concatenate(deviations) if deviations else np.array([np.nan])
    return [
        mode,
        str(hogs),
        str(len(every)),
        f"{np.percentile(every, 50):.3f}",
        f"{np.percentile(every, 99):.3f}",
        f"{every.max():.3f}",
        worst_name,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--hog", type=int, default=1, help="CPU hogs in the loaded rows")
    parser.add_argument("--channel", default="vcan0")
    parser.add_argument("--modes", default="kernel,python")
    options = parser.parse_args()
    dbcs = DbcSet.load()
    header = ["sender", "hogs", "gaps", "p50 |dev| ms", "p99 |dev| ms", "max ms", "worst message"]
    rows = []
    for mode in options.modes.split(","):
        for hogs in (0, options.hog):
            rows.append(_row(mode, hogs, options.seconds, options.channel, dbcs))
            print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


if __name__ == "__main__":
    main()
