"""Whole `bench run`s of a plan on several source trees: wall and CPU seconds, same outputs or not.

    .venv/bin/python benchmarks/bench_plan_runs.py --tree after=. --runs 3
    git worktree add /tmp/old a9dc311
    .venv/bin/python benchmarks/bench_plan_runs.py --tree old=/tmp/old --tree after=. \\
        --plan test_plans/heihe_cold_soak_start.yaml --runs 3 --reference after

Each run is `bench run PLAN --out NEW_DIR --plain` in a new process with ``PYTHONPATH=TREE`` and
the tree as working directory (so the plan is that tree's copy), the trees taking turns run by
run so that the machine's load falls on each alike. CPU seconds are the child's user + system time
(``resource.getrusage(RUSAGE_CHILDREN)``, as ``/usr/bin/time`` shows them): on a machine shared
with other work they move much less than wall time. "same as reference" compares every run, once
all are done, with the first run of the ``--reference`` tree (default: the first): summary.json
without its timing fields, every recorded frame (the virtual channel's per-run suffix aside),
every signal table and every event (run-directory names and wall-clock times aside). A tree whose
runs differ from each other is not deterministic.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

SUMMARY_VOLATILE = {"started_at", "ended_at", "software", "channel"}
EVENT_VOLATILE = {"run_dir", "started_at", "ended_at", "wall_s"}


def run_once(tree: Path, plan: str, out: Path) -> tuple[float, float, int]:
    """(wall s, CPU s, exit code) of one `bench run` with ``tree`` first on the path."""
    bench = Path(sys.executable).with_name("bench")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [str(bench), "run", plan, "--out", str(out), "--plain"],
        cwd=tree,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode


def fingerprint(run_dir: Path) -> tuple:
    """What must not change between equivalent runs (see the module docstring)."""
    summary = json.loads((run_dir / "summary.json").read_text())
    summary = {k: v for k, v in summary.items() if k not in SUMMARY_VOLATILE}
    parts = sorted((run_dir / "frames").glob("*.parquet"))
    frames = pd.concat([pq.read_table(p).to_pandas() for p in parts], ignore_index=True)
    frames["channel"] = frames["channel"].map(lambda c: c.rsplit("-", 1)[0] if c else c)
    signals = {
        p.name: pq.read_table(p).to_pandas() for p in sorted((run_dir / "signals").glob("*"))
    }
    events = pq.read_table(run_dir / "events.parquet").to_pandas()
    events["detail"] = events["detail"].map(_event_detail)
    return summary, frames, signals, events


def _event_detail(text: str) -> str:
    try:
        detail = json.loads(text)
    except (TypeError, ValueError):
        return text
    if isinstance(detail, dict):
        detail = {k: v for k, v in detail.items() if k not in EVENT_VOLATILE}
    return json.dumps(detail, sort_keys=True)


def same(a: tuple, b: tuple) -> bool:
    summary_a, frames_a, signals_a, events_a = a
    summary_b, frames_b, signals_b, events_b = b
    return (
        summary_a == summary_b
        and frames_a.equals(frames_b)
        and signals_a.keys() == signals_b.keys()
        and all(signals_a[k].equals(signals_b[k]) for k in signals_a)
        and events_a.equals(events_b)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", default="test_plans/heihe_cold_soak_start.yaml")
    parser.add_argument(
        "--tree", action="append", required=True, metavar="LABEL=PATH", help="repeatable"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--reference", metavar="LABEL", help="tree to compare with (the first)")
    args = parser.parse_args()
    trees = [
        (label, Path(path).resolve()) for label, _, path in (t.partition("=") for t in args.tree)
    ]
    reference = args.reference or trees[0][0]
    timings: dict[str, list[tuple[float, float, int]]] = {label: [] for label, _ in trees}
    rows: dict[str, list[tuple[float, float, int, bool]]] = {label: [] for label, _ in trees}
    with tempfile.TemporaryDirectory(prefix="bench-plan-runs-") as scratch:
        for i in range(args.runs):
            for label, tree in trees:
                wall, cpu, code = run_once(tree, args.plan, Path(scratch) / f"{label}-{i}")
                timings[label].append((wall, cpu, code))
                sys.stderr.write(f"{label} run {i + 1}: {wall:.1f} s wall, {cpu:.1f} s CPU\n")
        # Compared afterwards, two runs in memory at a time (a Heihe run's frames are 100 MB).
        first = Path(scratch) / f"{reference}-0"
        expected = fingerprint(first) if (first / "summary.json").exists() else None
        for label, runs in timings.items():
            for i, (wall, cpu, code) in enumerate(runs):
                out = Path(scratch) / f"{label}-{i}"
                found = fingerprint(out) if (out / "summary.json").exists() else None
                equal = expected is not None and found is not None and same(expected, found)
                rows[label].append((wall, cpu, code, equal))
    print_table(args.plan, reference, rows)


def print_table(
    plan: str, reference: str, rows: dict[str, list[tuple[float, float, int, bool]]]
) -> None:
    print(f"plan: {plan}; load average now: {os.getloadavg()[0]:.1f}; reference: {reference}")
    print(
        f"{'tree':<10} {'wall s (median; all)':<32} {'CPU s (median; all)':<32} "
        "exit  same as reference"
    )
    for label, runs in rows.items():
        walls = [r[0] for r in runs]
        cpus = [r[1] for r in runs]
        wall = f"{statistics.median(walls):.1f}; " + " ".join(f"{w:.1f}" for w in walls)
        cpu = f"{statistics.median(cpus):.1f}; " + " ".join(f"{c:.1f}" for c in cpus)
        codes = ",".join(str(r[2]) for r in runs)
        equal = ",".join("yes" if r[3] else "no" for r in runs)
        print(f"{label:<10} {wall:<32} {cpu:<32} {codes:<5} {equal}")


if __name__ == "__main__":
    main()
