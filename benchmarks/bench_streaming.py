"""Streaming evaluation: wall, CPU and peak RSS of ``bench evaluate RUN_DIR`` by log length.

    .venv/bin/python benchmarks/bench_streaming.py                      # 3 M, 30 M, 100 M frames
    .venv/bin/python benchmarks/bench_streaming.py --frames 3e6 10e6    # others
    BENCH_EVAL_BATCH=262144 .venv/bin/python benchmarks/bench_streaming.py  # another batch size

Each log is the synthetic full restbus of ``benchmarks/_synthetic.py`` (17 messages at their cycle
times, valid counters and CRCs) with the 23-check plan of ``benchmarks/bench_evaluate.py``,
written once as a run directory of 1 M-frame segments into ``--cache`` (default
``/tmp/bench-streaming-cache``; 100 M frames take about 4 GB there and a few minutes to build, one
chunk at a time — the generator never holds the log). ``bench evaluate RUN_DIR`` then runs as a
subprocess, in place (what ``bench run`` does at its end and an engineer re-judging a run does);
wall time is measured around it, CPU seconds and peak RSS come from ``os.wait4`` (the child's
``ru_utime + ru_stime`` and ``ru_maxrss``). ``report.html`` is part of the figure (it is part of
``bench evaluate``). Other work on the machine inflates wall time more than CPU time: the load
average is printed beside the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.dbc import DbcSet, default_dbc_paths  # noqa: E402
from bench.record import SegmentWriter  # noqa: E402
from benchmarks._synthetic import restbus_chunks  # noqa: E402
from benchmarks.bench_evaluate import PLAN, events_table  # noqa: E402

SEGMENT_FRAMES = 1_000_000


def build(cache: Path, n_frames: int) -> Path:
    """The run directory of ``n_frames`` frames in ``cache`` (built once, then reused)."""
    run = cache / f"{n_frames}"
    if (run / "events.parquet").is_file():
        return run
    shutil.rmtree(run, ignore_errors=True)
    (run / "dbc").mkdir(parents=True)
    for path in default_dbc_paths():
        shutil.copyfile(path, run / "dbc" / path.name)
    (run / "plan.yaml").write_text(PLAN)
    first = last = None
    with SegmentWriter(
        run / "frames", max_frames=SEGMENT_FRAMES, max_seconds=1e12, fsync=False, journal=False
    ) as writer:
        for chunk in restbus_chunks(n_frames, DbcSet.load(), seed=1, chunk_frames=SEGMENT_FRAMES):
            ts = chunk.column("timestamp")
            first = float(ts[0].as_py()) if first is None else first
            last = float(ts[-1].as_py())
            writer.write_table(chunk)
    pq.write_table(events_table(first, last), run / "events.parquet")  # last: marks it complete
    return run


def measure(run: Path, tree: Path = ROOT) -> dict[str, float]:
    command = [sys.executable, "-m", "bench.cli", "evaluate", str(run), "--plan",
               str(run / "plan.yaml")]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tree)}
    started = time.perf_counter()
    # run in ``tree``: ``-m`` puts the working directory first on sys.path, before PYTHONPATH
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=tree
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise SystemExit(f"{' '.join(command)}: exit {code}: {process.stderr.read().decode()}")
    summary = json.loads((run / "summary.json").read_text())
    return {
        "frames": summary["frames"],
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss": usage.ru_maxrss / 1024.0,
        "verdict": summary["verdict"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=float, nargs="+", default=[3e6, 30e6, 100e6])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/bench-streaming-cache"))
    parser.add_argument("--tree", type=Path, default=ROOT, help="bench source tree to measure")
    args = parser.parse_args()
    rows = []
    for frames in args.frames:
        started = time.perf_counter()
        run = build(args.cache, int(frames))
        built = time.perf_counter() - started
        if built > 1:
            print(f"built {int(frames):,} frames in {built:.0f} s: {run}", flush=True)
        rows.append(measure(run, args.tree))
        row = rows[-1]
        print(f"  {row['frames']:,} frames: {row['wall']:.1f} s wall, {row['cpu']:.1f} s CPU, "
              f"{row['rss']:.0f} MB peak RSS, {row['verdict']}", flush=True)  # fmt: skip
    print(f"\n| frames | wall s | CPU s | peak RSS MB | M frames/s (wall) |  (batch "
          f"{os.environ.get('BENCH_EVAL_BATCH', 'default')})")  # fmt: skip
    print("|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['frames'] / 1e6:g} M | {row['wall']:.1f} | {row['cpu']:.1f} | "
              f"{row['rss']:.0f} | {row['frames'] / row['wall'] / 1e6:.2f} |")  # fmt: skip
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{os.cpu_count()} CPUs; load average {load} (1, 5, 15 min) at the end")


if __name__ == "__main__":
    main()
