"""A log read from object storage: ``bench evaluate s3://…/log.parquet`` against the local path.

    .venv/bin/python benchmarks/bench_remote.py                    # 3 M frames
    .venv/bin/python benchmarks/bench_remote.py --frames 3e6 10e6  # others

One Parquet file of the synthetic restbus (``benchmarks/_synthetic.py``, 1 M-frame row groups) is
built once in ``--cache``, then judged with the 23-check plan of ``bench_evaluate.py`` twice by
``bench evaluate FILE --plan P --out DIR`` as a subprocess: from its local path, and as
``s3://bench/log.parquet`` from a moto S3 server (``moto_server``, a separate process on
127.0.0.1, so its memory is not the evaluator's). Wall around the subprocess; CPU seconds and peak
RSS of the evaluator from ``os.wait4``. The S3 figure shows what reading row groups through
fsspec costs over the loopback (the server's own work shares the machine's cores), and that
memory stays flat: the file is never downloaded whole.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.dbc import DbcSet  # noqa: E402
from benchmarks._synthetic import restbus_chunks  # noqa: E402
from benchmarks.bench_evaluate import PLAN  # noqa: E402

ROW_GROUP = 1_000_000


def build(cache: Path, n_frames: int) -> Path:
    """``cache/<n>.parquet`` (built once, one row group at a time, then reused)."""
    path = cache / f"{n_frames}.parquet"
    if path.is_file():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    writer = None
    for chunk in restbus_chunks(n_frames, DbcSet.load(), seed=1, chunk_frames=ROW_GROUP):
        writer = writer or pq.ParquetWriter(tmp, chunk.schema)
        writer.write_table(chunk, row_group_size=ROW_GROUP)
    assert writer is not None
    writer.close()
    tmp.replace(path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(log: str, plan: Path, env: dict[str, str]) -> dict[str, float]:
    out = Path(tempfile.mkdtemp(prefix="bench-remote-out-"))
    shutil.rmtree(out)
    command = [sys.executable, "-m", "bench.cli", "evaluate", log, "--plan", str(plan),
               "--out", str(out)]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise SystemExit(f"{' '.join(command)}: exit {code}: {process.stderr.read().decode()}")
    summary = json.loads((out / "summary.json").read_text())
    shutil.rmtree(out, ignore_errors=True)
    return {
        "frames": summary["frames"],
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss": usage.ru_maxrss / 1024.0,
        "verdict": summary["verdict"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=float, nargs="+", default=[3e6])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/bench-remote-cache"))
    args = parser.parse_args()
    server = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if server is None:
        raise SystemExit("moto_server not found: pip install 'moto[server]'")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AWS_ACCESS_KEY_ID": "bench",
           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}  # fmt: skip
    moto = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    rows = []
    try:
        os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
        import s3fs

        deadline = time.monotonic() + 30
        while True:
            try:
                fs = s3fs.S3FileSystem(skip_instance_cache=True)
                fs.mkdir("bench")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        plan = args.cache / "plan.yaml"
        args.cache.mkdir(parents=True, exist_ok=True)
        plan.write_text(PLAN.replace("../dbc/", f"{ROOT / 'dbc'}/"))
        for frames in args.frames:
            path = build(args.cache, int(frames))
            fs.put_file(str(path), f"bench/{path.name}")
            for where, log in (
                ("local path", str(path)),
                ("s3:// (moto)", f"s3://bench/{path.name}"),
            ):
                row = measure(log, plan, env) | {"where": where}
                rows.append(row)
                figures = f"{row['wall']:.1f} s wall, {row['cpu']:.1f} s CPU, {row['rss']:.0f} MB"
                print(f"  {row['frames']:,} frames from {where}: {figures} peak RSS", flush=True)
            fs.rm(f"bench/{path.name}")
    finally:
        moto.terminate()
        moto.wait(10)
    print("\n| frames | log read from | wall s | CPU s | peak RSS MB | verdict |")
    print("|---:|---|---:|---:|---:|---|")
    for row in rows:
        print(f"| {row['frames'] / 1e6:g} M | {row['where']} | {row['wall']:.1f} | "
              f"{row['cpu']:.1f} | {row['rss']:.0f} | {row['verdict']} |")  # fmt: skip
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{os.cpu_count()} CPUs; load average {load} (1, 5, 15 min) at the end")


if __name__ == "__main__":
    main()
