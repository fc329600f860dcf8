"""Import speed of each log format: ``read_frames`` against python-can's reader alone.

Writes the synthetic restbus (``--frames`` frames, default 300 k) once per format, then times
``bench.logfiles.read_frames`` (reader, line tracking, checks, sort) and python-can's reader
building ``can.Message`` objects and nothing else, best of ``--repeat`` runs. Prints a table.

    PYTHONPATH=. python benchmarks/bench_import.py --frames 300000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import can
from _synthetic import restbus_frames  # first: puts the repository on sys.path

from bench.logfiles import read_frames, write_frames

FORMATS = (".blf", ".asc", ".log", ".trc", ".mf4", ".parquet")


def python_can_read(path: Path) -> int:
    if path.suffix == ".parquet":
        return 0
    if path.suffix == ".asc":
        reader = can.ASCReader(str(path), relative_timestamp=True)
    else:
        reader = can.LogReader(str(path))
    with reader:
        return sum(1 for _ in reader)


def best(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    table = restbus_frames(args.frames, seed=1)
    # TRC (as python-can writes it) holds classic data frames only
    print("| format | bench read_frames | frames/s | python-can reader alone | frames/s |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in FORMATS:
            path = Path(tmp) / f"log{suffix}"
            frames = table
            if suffix == ".trc":
                frames = table.filter(table.column("is_fd").is_valid())
                frames = frames.filter(frames.column("is_fd").to_numpy(zero_copy_only=False) == 0)
            write_frames(frames, path)
            n = frames.num_rows
            ours = best(lambda p=path: read_frames(p), args.repeat)
            theirs = best(lambda p=path: python_can_read(p), args.repeat)
            their_rate = f"{n / theirs / 1000:,.0f} k" if suffix != ".parquet" else "–"
            their_time = f"{theirs:.2f} s" if suffix != ".parquet" else "–"
            print(
                f"| {suffix} ({n:,} frames) | {ours:.2f} s | {n / ours / 1000:,.0f} k "
                f"| {their_time} | {their_rate} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
