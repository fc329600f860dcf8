"""Diagnostics from the log: what reassembling UDS exchanges costs an evaluation.

    .venv/bin/python benchmarks/bench_diag.py                      # 10 M frames, 2,000 exchanges
    .venv/bin/python benchmarks/bench_diag.py --frames 1e6 --exchanges 200

A synthetic restbus log (all DBC messages at their cycle times) with ``--exchanges`` DTC reads on
the BMS interleaved (each: a request, a 3-frame response with 4 DTCs, a flow control), then:

* ``read_exchanges``: select the diagnostic frames (one vectorized pass over the id column),
  reassemble ISO-TP, pair, decode with udsoncan — the evaluator's added work per log;
* ``decode_frames`` with and without the diagnostic ids (the decoder counts those frames apart
  from unknown ids).

CPU seconds of the process (one core) and wall seconds; the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.dbc import DbcSet  # noqa: E402
from bench.decode import decode_frames  # noqa: E402
from bench.diag.catalog import virtual_vehicle_ecus  # noqa: E402
from bench.diag.log import diagnostic_ids, read_exchanges  # noqa: E402
from bench.frames import FRAME_SCHEMA  # noqa: E402
from benchmarks._synthetic import restbus_frames  # noqa: E402
from tests import diagframes as uds  # noqa: E402


def _with_exchanges(table: pa.Table, count: int) -> pa.Table:
    ecus = virtual_vehicle_ecus()
    bms = ecus["BMS"]
    dtcs = [(d.code, 0x2F) for d in bms.dtcs[:4]]
    t = np.asarray(table.column("timestamp").to_numpy())
    starts = np.linspace(t[0], t[-1], count + 2)[1:-1]
    rows = []
    for start in starts:
        response = uds.read_dtc_response(dtcs)
        rows += uds.exchange_rows(bms, float(start), uds.read_dtc_request(), response)
    n = len(rows)
    extra = pa.Table.from_pydict(
        {
            "timestamp": [r[0] for r in rows],
            "channel": ["0"] * n,
            "arbitration_id": [r[1] for r in rows],
            "is_extended_id": [False] * n,
            "is_remote_frame": [False] * n,
            "is_error_frame": [False] * n,
            "is_fd": [False] * n,
            "bitrate_switch": [False] * n,
            "dlc": [8] * n,
            "data": [r[2] for r in rows],
            "direction": ["rx"] * n,
        },
        schema=FRAME_SCHEMA,
    )
    merged = pa.concat_tables([table.cast(FRAME_SCHEMA), extra])
    order = np.argsort(merged.column("timestamp").to_numpy(), kind="stable")
    return merged.take(pa.array(order))


def _best(repeat: int, work) -> tuple[float, float, object]:
    best = (float("inf"), float("inf"), None)
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = work()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if cpu < best[1]:
            best = (wall, cpu, result)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=float, default=10e6)
    parser.add_argument("--exchanges", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    dbcs = DbcSet.load()
    table = _with_exchanges(restbus_frames(int(args.frames), dbcs), args.exchanges)
    ecus = virtual_vehicle_ecus()
    ids = diagnostic_ids(ecus)
    rows = []
    wall, cpu, diag = _best(args.repeat, lambda: read_exchanges(table, ecus))
    assert len(diag.exchanges) == args.exchanges and all(
        e.outcome == "positive" for e in diag.exchanges
    )
    rows.append(("read_exchanges", wall, cpu))
    wall, cpu, _ = _best(args.repeat, lambda: decode_frames(table, dbcs))
    rows.append(("decode_frames", wall, cpu))
    wall, cpu, decoded = _best(args.repeat, lambda: decode_frames(table, dbcs, diagnostic=ids))
    assert decoded.stats.unknown_ids == {}
    rows.append(("decode_frames, diagnostic ids", wall, cpu))
    print(f"{table.num_rows:,} frames, {args.exchanges:,} UDS exchanges "
          f"({decoded.stats.diagnostic_frames:,} diagnostic frames)")  # fmt: skip
    print(f"{'stage':32} {'wall s':>8} {'CPU s':>8}")
    for name, wall, cpu in rows:
        print(f"{name:32} {wall:8.3f} {cpu:8.3f}")


if __name__ == "__main__":
    main()
