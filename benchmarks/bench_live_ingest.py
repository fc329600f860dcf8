"""Live ingest: frames/s the runner records and live-checks in real time, and frames lost.

A sender thread blasts restbus frames (real DBC encodings, counters and CRCs valid) onto a
python-can ``virtual`` channel at a fixed rate while ``bench run --realtime`` on the same channel
records everything and judges its abort rules on every frame. Afterwards the recorded rx frames
are counted against what was sent: the figure is the highest rate with zero frames lost.

Sender and runner share one process (python-can's virtual bus is in-process), so they also share
the GIL: the figure is a floor for a runner whose frames come from a real adapter.

    .venv/bin/python benchmarks/bench_live_ingest.py [--seconds 10] [--rates 10000 40000 60000]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import can
import numpy as np

from bench.liveview import NullStream
from bench.logfiles import read_frames
from bench.plan import load_plan
from bench.run import RunOptions, run_plan

ROOT = Path(__file__).resolve().parent.parent
PLAN = """\
name: Live ingest benchmark
dbc: [{dbc}/battery.dbc, {dbc}/motor.dbc, {dbc}/vehicle.dbc]
bus: {{interface: virtual, channel: {channel}}}
steps:
  - {{name: listen, duration: {seconds}s}}
checks:
  - {{name: No BMS fault, signal: BMS_Status.FaultLevel, max: 1, abort: true}}
  - {{name: Cell temperature, signal: BMS_Temps.MaxCellTemp, max: 80, abort: true}}
  - {{name: Pack status alive counter, counter: BMS_PackStatus.AliveCounter, max_errors: 1000000,
     abort: true}}
  - {{name: Pack status CRC, crc: BMS_PackStatus, abort: true}}
"""


def restbus_payloads() -> list[can.Message]:
    """One second of the vehicle's restbus, encoded by the virtual vehicle itself."""
    from virtual_bus import VirtualVehicle

    frames: list[can.Message] = []
    bus = can.Bus(interface="virtual", channel=f"ingest-src-{time.monotonic_ns()}")
    vehicle = VirtualVehicle(bus, on_frame=frames.append)
    vehicle.advance_to(1.0)
    bus.shutdown()
    return frames


def blast(channel: str, frames: list[can.Message], rate: float, seconds: float,
          sent: list[int], start: threading.Event) -> None:  # fmt: skip
    bus = can.Bus(interface="virtual", channel=channel)
    start.wait()
    begin = time.perf_counter()
    count = 0
    total = int(rate * seconds)
    while count < total:
        due = begin + count / rate
        now = time.perf_counter()
        if due > now:
            time.sleep(min(due - now, 0.001))
            continue
        # send whatever is due now in one go (a real adapter delivers bursts too)
        burst = min(total - count, int((now - begin) * rate) - count + 1)
        for i in range(burst):
            bus.send(frames[(count + i) % len(frames)])
        count += burst
    sent.extend([count, time.perf_counter() - begin])
    bus.shutdown()


def measure(rate: float, seconds: float, frames: list[can.Message]) -> dict[str, float]:
    channel = f"ingest-{int(rate)}-{time.monotonic_ns()}"
    with tempfile.TemporaryDirectory() as tmp:
        plan_path = Path(tmp) / "ingest.yaml"
        plan_path.write_text(PLAN.format(dbc=ROOT / "dbc", channel=channel, seconds=seconds + 2))
        plan = load_plan(plan_path)
        sent: list[int] = []
        start = threading.Event()
        sender = threading.Thread(target=blast, args=(channel, frames, rate, seconds, sent, start))
        sender.start()
        timer = threading.Timer(1.0, start.set)  # let the runner open its bus first
        timer.start()
        options = RunOptions(realtime=True, out_dir=Path(tmp) / "run", stream=NullStream(),
                             handle_signals=False)  # fmt: skip
        wall = time.perf_counter()
        result = run_plan(plan, options)
        wall = time.perf_counter() - wall
        sender.join()
        recorded = read_frames(result.run_dir / "frames").frames
        direction = recorded.column("direction").to_numpy(zero_copy_only=False)
        received = int(np.count_nonzero(direction == "rx"))
    return {
        "rate": rate,
        "achieved": sent[0] / sent[1],
        "sent": sent[0],
        "received": received,
        "lost": sent[0] - received,
        "verdict": result.summary.verdict,
        "wall": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rates", type=float, nargs="+", default=[10_000, 20_000, 40_000, 60_000])
    args = parser.parse_args()
    frames = restbus_payloads()
    print(f"live ingest, python-can virtual bus, {args.seconds:g} s per rate, recording + "
          f"4 live abort rules; restbus mix of {len(frames)} frames")  # fmt: skip
    print(f"{'target frames/s':>16} {'sent frames/s':>14} {'sent':>9} {'recorded':>9} {'lost':>6}")
    for rate in args.rates:
        row = measure(rate, args.seconds, frames)
        print(f"{row['rate']:>16,.0f} {row['achieved']:>14,.0f} {row['sent']:>9,} "
              f"{row['received']:>9,} {row['lost']:>6,}")  # fmt: skip


if __name__ == "__main__":
    main()
