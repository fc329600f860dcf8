"""Crash loss: kill -9 real `bench run` processes at random moments; frames on the bus vs recovered.

Each trial starts ``bench run tests/runner_plans/long.yaml`` in a process of its own, waits a
random time (uniform in ``[0, --max-delay]`` seconds after the run's first line), kills it with
SIGKILL and recovers the run directory with the code ``bench evaluate``/``bench report`` run
(:func:`bench.record.recover_run`). The figure is the wall time whose frames were lost:

* **real time** — the vehicle is ``python -m virtual_bus`` in another process on python-can's
  ``udp_multicast`` bus (a random group), and this process listens on the same group as an
  independent witness, stamping every frame with its own wall clock. *Frames on the bus* are the
  witness's frames between the run's first recorded frame and the kill; *seconds lost* is the
  kill time minus the last recovered frame's timestamp (wall-clock time in real-time mode).
  Both counts leave out the ids the runner sends itself: ``udp_multicast`` loops a sender's
  frames back to it, so the runner records those twice (as ``tx`` and as an ``rx`` echo).
* **lockstep** — the vehicle runs in the killed process, so no one outside can hear its bus.
  Seconds lost is the kill time minus the wall time the last journal batch that survived was
  written (each batch holds every frame produced up to its hand-over, so that interval is
  exactly the wall time whose frames are gone); *frames on the bus* is estimated from the run's
  frame rate over that interval.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_crash_loss.py [--trials 10] [--max-delay 12]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.logfiles import read_frames  # noqa: E402
from bench.record import read_journal, recover_run  # noqa: E402
from bench.rundir import FRAMES_DIR, list_journals, list_segments  # noqa: E402

PLAN = ROOT / "tests" / "runner_plans" / "long.yaml"
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}


@dataclass
class Trial:
    mode: str
    delay: float
    on_bus: float  # frames on the bus up to the kill (estimated in lockstep)
    recovered: int
    lost_s: float


class Lines:
    """Read a process's stdout in a thread, stamping when the first line arrived."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.first: float | None = None
        self.first_event = threading.Event()
        self.text: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            if self.first is None:
                self.first = time.time()
                self.first_event.set()
            self.text.append(line)


class Witness:
    """Every frame on a udp_multicast group, stamped with this process's wall clock."""

    def __init__(self, group: str) -> None:
        import can

        self.bus = can.Bus(interface="udp_multicast", channel=group)
        self.times: list[float] = []
        self.ids: list[int] = []
        self._stop = False
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop:
            msg = self.bus.recv(0.1)
            if msg is not None:
                self.ids.append(msg.arbitration_id)
                self.times.append(time.time())

    def count(self, start: float, end: float, without: set[int]) -> int:
        n = min(len(self.times), len(self.ids))
        times, ids = np.asarray(self.times[:n]), np.asarray(self.ids[:n])
        keep = (times >= start) & (times <= end) & ~np.isin(ids, list(without))
        return int(np.count_nonzero(keep))

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.bus.shutdown()


def last_write(frames_dir: Path) -> float | None:
    """Wall time the newest data that survived reached the disk (journal batch or segment)."""
    times = [read_journal(j).written_at for j in list_journals(frames_dir)]
    segments = list_segments(frames_dir)
    if segments:
        times.append(segments[-1].stat().st_mtime)
    times = [t for t in times if t is not None]
    return max(times) if times else None


def kill_one(command: list[str], out: Path, delay: float) -> tuple[float, float, float | None]:
    """Run, kill -9 after ``delay`` s from its first line; returns (started, killed, last write)."""
    process = subprocess.Popen([*command, "--out", str(out), "--plain"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, env=ENV, cwd=ROOT)  # fmt: skip
    lines = Lines(process)
    if not lines.first_event.wait(120):
        process.kill()
        raise RuntimeError("the run printed nothing in 120 s")
    time.sleep(max(0.0, lines.first + delay - time.time()))
    killed = time.time()
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    written = last_write(out / FRAMES_DIR)  # before recovery rewrites the journal as a segment
    assert lines.first is not None
    return lines.first, killed, written


def recovered_frames(
    out: Path, vehicle_only: bool = False
) -> tuple[int, float | None, float | None, set[int]]:
    """Frames recovered (without the ids the runner sent, if ``vehicle_only``), first and last
    timestamp, and the ids the runner sent."""
    recover_run(out)
    if not list_segments(out / FRAMES_DIR):
        return 0, None, None, set()
    frames = read_frames(out / FRAMES_DIR).frames
    sent = set(frames.filter(pc.equal(frames.column("direction"), "tx"))
               .column("arbitration_id").to_pylist())  # fmt: skip
    if vehicle_only:
        ids = pa.array(sorted(sent), pa.uint32())
        frames = frames.filter(pc.invert(pc.is_in(frames.column("arbitration_id"), ids)))
    if frames.num_rows == 0:
        return 0, None, None, sent
    stamps = frames.column("timestamp")
    return frames.num_rows, pc.min(stamps).as_py(), pc.max(stamps).as_py(), sent


def lockstep_trial(tmp: Path, index: int, delay: float) -> Trial:
    out = tmp / f"lockstep-{index}"
    started, killed, written = kill_one([sys.executable, "-m", "bench.cli", "run", str(PLAN)],
                                        out, delay)  # fmt: skip
    count, _, _, _ = recovered_frames(out)
    if written is None:
        return Trial("lockstep", delay, float("nan"), count, killed - started)
    lost_s = killed - written
    rate = count / max(written - started, 1e-3)  # frames per wall second of this run
    return Trial("lockstep", delay, count + rate * lost_s, count, lost_s)


def realtime_trial(tmp: Path, index: int, delay: float, group: str, witness: Witness) -> Trial:
    out = tmp / f"realtime-{index}"
    command = [sys.executable, "-m", "bench.cli", "run", str(PLAN), "--realtime",
               "--interface", "udp_multicast", "--channel", group]  # fmt: skip
    started, killed, _ = kill_one(command, out, delay)
    time.sleep(0.3)  # frames in flight at the kill reach the witness
    count, first, last, sent = recovered_frames(out, vehicle_only=True)
    if first is None or last is None:
        on_bus = witness.count(started, killed, sent)
        return Trial("realtime", delay, on_bus, 0, killed - started)
    return Trial("realtime", delay, witness.count(first, killed, sent), count, killed - last)


def summarize(trials: list[Trial]) -> None:
    print(f"{'mode':<9} {'kill at':>8} {'on bus':>9} {'recovered':>10} {'lost':>7} {'s lost':>7}")
    for t in trials:
        est = "~" if t.mode == "lockstep" else " "
        print(f"{t.mode:<9} {t.delay:>7.2f}s {est}{t.on_bus:>8,.0f} {t.recovered:>10,} "
              f"{t.on_bus - t.recovered:>7,.0f} {t.lost_s:>7.3f}")  # fmt: skip
    print()
    print(f"{'mode':<9} {'trials':>6} {'p50 s lost':>10} {'p95 s lost':>10} {'max s lost':>10} "
          f"{'on bus':>10} {'recovered':>10}")  # fmt: skip
    for mode in sorted({t.mode for t in trials}):
        rows = [t for t in trials if t.mode == mode]
        lost = np.array([t.lost_s for t in rows])
        on_bus = sum(t.on_bus for t in rows if np.isfinite(t.on_bus))
        print(f"{mode:<9} {len(rows):>6} {np.percentile(lost, 50):>10.3f} "
              f"{np.percentile(lost, 95):>10.3f} {lost.max():>10.3f} {on_bus:>10,.0f} "
              f"{sum(t.recovered for t in rows):>10,}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="kills per mode")
    parser.add_argument("--max-delay", type=float, default=12.0, help="latest kill, s")
    parser.add_argument("--modes", nargs="+", default=["lockstep", "realtime"])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    trials: list[Trial] = []
    with tempfile.TemporaryDirectory(prefix="bench-crash-") as tmp_name:
        tmp = Path(tmp_name)
        if "lockstep" in args.modes:
            for i in range(args.trials):
                trials.append(lockstep_trial(tmp, i, rng.uniform(0, args.max_delay)))
        if "realtime" in args.modes:
            group = f"239.74.{rng.randrange(1, 250)}.{rng.randrange(1, 250)}"
            vehicle = subprocess.Popen(
                [sys.executable, "-m", "virtual_bus", "--interface", "udp_multicast",
                 "--channel", group],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, cwd=ROOT,
            )  # fmt: skip
            witness = Witness(group)
            try:
                time.sleep(2.0)
                for i in range(args.trials):
                    delay = rng.uniform(0, args.max_delay)
                    trials.append(realtime_trial(tmp, i, delay, group, witness))
            finally:
                witness.close()
                vehicle.terminate()
                vehicle.wait(timeout=30)
    print(f"crash loss: kill -9 of `bench run` at random moments (0-{args.max_delay:g} s after "
          f"its first line), {args.trials} per mode")  # fmt: skip
    print("~ = estimated (lockstep has no outside bus); real time counts vehicle frames only")
    summarize(trials)


if __name__ == "__main__":
    main()
