"""Memory over a run: peak RSS of `bench run` for runs of growing length must stay flat.

Runs the same plan (key on, then wait with the full restbus and the bench's periodic frames) for
several simulated lengths, each in a fresh process, and prints the peak resident set size of each
next to its frame count. Flat memory means the peak does not grow with the run's length: frames
stream to Parquet segments, the live monitor keeps only latest values, and evaluation afterwards
streams the log in batches (``bench_streaming.py`` measures it alone up to 100 M frames); the run
without its evaluation is shown beside it.

    .venv/bin/python benchmarks/bench_memory.py [--minutes 5 20 60]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLAN = """\
name: Memory benchmark
dbc: [{dbc}/battery.dbc, {dbc}/motor.dbc, {dbc}/vehicle.dbc]
steps:
  - name: key_on
    send: {{message: VCU_Command, signals: {{KeyOn: 1, HvRequest: 1}}, every: 10ms}}
    until: BMS_Status.HvState == "READY"
    timeout: 10s
  - {{name: wait, duration: {minutes}min}}
checks:
  - {{name: Cell temperature, signal: BMS_Temps.MaxCellTemp, max: 55, abort: true}}
"""
RUN_ONLY = """
import sys
from pathlib import Path
import bench.run.executor as executor
from bench.liveview import NullStream
from bench.plan import load_plan
executor.Executor._evaluate = lambda self, run_dir, stop: None  # record only: the live part
executor.Executor(load_plan(Path(sys.argv[1])),
                  executor.RunOptions(out_dir=Path(sys.argv[2]), stream=NullStream())).run()
"""


def peak_rss_mb(command: list[str]) -> float:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed: {process.stderr.read().decode()[-500:]}")
    return usage.ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[5, 20, 60])
    args = parser.parse_args()
    header = ("simulated", "frames", "peak RSS, run only", "peak RSS, run + evaluate")
    print(f"{header[0]:>10} {header[1]:>11} {header[2]:>19} {header[3]:>25}")
    for minutes in args.minutes:
        with tempfile.TemporaryDirectory() as tmp:
            plan = Path(tmp) / "memory.yaml"
            plan.write_text(PLAN.format(dbc=ROOT / "dbc", minutes=minutes))
            run_only = peak_rss_mb([sys.executable, "-c", RUN_ONLY, str(plan), f"{tmp}/a"])
            full = peak_rss_mb([sys.executable, "-m", "bench.cli", "run", str(plan), "--out",
                                f"{tmp}/b", "--plain"])  # fmt: skip
            frames = json.loads((Path(tmp) / "b" / "summary.json").read_text())["frames"]
        print(f"{minutes:>8g} min {frames:>11,} {run_only:>16.0f} MB {full:>22.0f} MB")


if __name__ == "__main__":
    main()
