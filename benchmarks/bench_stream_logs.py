"""``bench evaluate`` of BLF and ASC files: wall, CPU and peak RSS by log length, beside the
throughput of python-can's own reader over the same file (the anchor: bench cannot read a
format faster than the library it reads it with).

    .venv/bin/python benchmarks/bench_stream_logs.py                        # 1 M and 5 M frames
    .venv/bin/python benchmarks/bench_stream_logs.py --frames 1e6 --formats .blf
    .venv/bin/python benchmarks/bench_stream_logs.py --tree /work/main      # another source tree

Each log is the synthetic restbus run directory of ``benchmarks/bench_streaming.py`` (built
once into ``--cache``, default ``/tmp/bench-stream-logs-cache``), converted with ``bench convert``
to ``N.blf`` / ``N.asc`` beside it (once; the conversion to BLF/ASC reads the log whole, see the
README). Then, each as a subprocess (CPU = ``ru_utime + ru_stime`` from ``os.wait4``; peak RSS =
the child's own ``VmHWM``, read from ``/proc/self/status`` as it exits: ``ru_maxrss`` of a child
counts the parent's memory at the fork, which here is several hundred MB):

* ``bench evaluate N.blf --plan plan.yaml --out TMP`` (the 23-check plan of
  ``benchmarks/bench_evaluate.py`` with the run directory's DBCs; the run directory it makes,
  with its Parquet copy of the frames, signals and report, is deleted after);
* python-can alone: ``sum(1 for _ in can.BLFReader(path))`` (``can.ASCReader`` for ASC).

The machine is shared: the load average is printed beside the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_streaming import build  # noqa: E402

READERS = {".blf": "BLFReader", ".asc": "ASCReader"}
#: Runs ``-m MODULE ARGS`` or ``-c CODE`` and writes the process's peak RSS (VmHWM, kB) to
#: the file named by BENCH_HWM_FILE as it exits.
WRAP = """
import atexit, os, runpy, sys
def _hwm():
    with open("/proc/self/status") as status:
        line = next(x for x in status if x.startswith("VmHWM"))
    with open(os.environ["BENCH_HWM_FILE"], "w") as out:
        out.write(line.split()[1])
atexit.register(_hwm)
mode, target, *rest = sys.argv[1:]
sys.argv = [target, *rest]
if mode == "-c":
    exec(compile(target, "<bench>", "exec"))
else:
    runpy.run_module(target, run_name="__main__", alter_sys=True)
"""


def _run(command: list[str], tree: Path) -> dict[str, float]:
    """Wall, CPU and peak RSS (MB) of a subprocess; exit 0/1 expected (1: checks failed)."""
    hwm = Path(tempfile.mkstemp(prefix="bench-hwm-")[1])
    env = {**os.environ, "PYTHONPATH": str(tree), "BENCH_HWM_FILE": str(hwm)}
    command = [sys.executable, "-c", WRAP, *command]
    started = time.perf_counter()
    # run in ``tree``: ``-c`` and ``-m`` put the working directory first on sys.path
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tree
    )
    out = process.stdout.read() if process.stdout else b""
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        err = process.stderr.read().decode() if process.stderr else ""
        raise SystemExit(f"{' '.join(command[3:])}: exit {code}: {err}")
    rss = int(hwm.read_text() or 0) / 1024.0
    hwm.unlink()
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss": rss,
        "out": out.decode().strip(),
    }


def log_file(cache: Path, frames: int, suffix: str, tree: Path) -> Path:
    """``cache/N.blf`` (or ``.asc``) converted once from the synthetic run directory."""
    run = build(cache, frames)
    path = cache / f"{frames}{suffix}"
    if not path.is_file():
        started = time.perf_counter()
        _run(["-m", "bench.cli", "convert", str(run / "frames"), str(path)], tree)
        print(f"converted {frames:,} frames to {path} in {time.perf_counter() - started:.0f} s")
    return path


def evaluate(path: Path, plan: Path, tree: Path) -> dict[str, float]:
    out = Path(tempfile.mkdtemp(prefix="bench-stream-logs-"))
    try:
        dbcs = [arg for dbc in sorted((plan.parent / "dbc").glob("*.dbc"))
                for arg in ("--dbc", str(dbc))]  # fmt: skip
        result = _run(["-m", "bench.cli", "evaluate", str(path), "--plan",
                       str(plan), *dbcs, "--out", str(out / "run")], tree)  # fmt: skip
        summary = json.loads((out / "run" / "summary.json").read_text())
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return result | {"frames": summary["frames"], "verdict": summary["verdict"]}


def python_can(path: Path, tree: Path) -> dict[str, float]:
    code = (f"import can; r = can.{READERS[path.suffix]}({str(path)!r}); "
            "print(sum(1 for _ in r)); r.stop()")  # fmt: skip
    result = _run(["-c", code], tree)
    return result | {"frames": int(result["out"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=float, nargs="+", default=[1e6, 5e6])
    parser.add_argument("--formats", nargs="+", default=list(READERS), choices=list(READERS))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/bench-stream-logs-cache"))
    parser.add_argument("--tree", type=Path, default=ROOT, help="bench source tree to measure")
    args = parser.parse_args()
    rows = []
    for frames in (int(f) for f in args.frames):
        for suffix in args.formats:
            path = log_file(args.cache, frames, suffix, args.tree)
            anchor = python_can(path, args.tree)
            judged = evaluate(path, build(args.cache, frames) / "plan.yaml", args.tree)
            rows.append((suffix, path.stat().st_size, judged, anchor))
            print(f"  {suffix} {frames:,}: evaluate {judged['wall']:.1f} s "
                  f"{judged['rss']:.0f} MB; python-can {anchor['wall']:.1f} s "
                  f"{anchor['rss']:.0f} MB", flush=True)  # fmt: skip
    print(f"\n| log | file MB | `bench evaluate` wall s | CPU s | peak RSS MB | k frames/s "
          f"| python-can reader wall s | CPU s | peak RSS MB | k frames/s | evaluate / reader CPU |"
          f"  (batch {os.environ.get('BENCH_EVAL_BATCH', 'default')})")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for suffix, size, judged, anchor in rows:
        print(f"| {judged['frames'] / 1e6:g} M {suffix} | {size / 1e6:.0f} | "
              f"{judged['wall']:.1f} | {judged['cpu']:.1f} | {judged['rss']:.0f} | "
              f"{judged['frames'] / judged['wall'] / 1e3:.0f} | {anchor['wall']:.1f} | "
              f"{anchor['cpu']:.1f} | {anchor['rss']:.0f} | "
              f"{anchor['frames'] / anchor['wall'] / 1e3:.0f} | "
              f"{judged['cpu'] / anchor['cpu']:.2f} |")  # fmt: skip
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{os.cpu_count()} CPUs; load average {load} (1, 5, 15 min) at the end")


if __name__ == "__main__":
    main()
