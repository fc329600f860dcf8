"""``python -m virtual_bus``: runs alone, records frames, bad input exits 2, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from bench.frames import FRAME_SCHEMA
from virtual_bus.__main__ import main

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_runs_alone_and_records_every_frame_it_sent(tmp_path):
    out = tmp_path / "run.parquet"
    code, output = _cli("--duration", "5s", "--seed", "3", "--ambient", "-30", "--record", str(out))
    assert code == 0, output
    table = pq.read_table(out)
    assert table.schema.equals(FRAME_SCHEMA)
    assert 5 * 272 - 20 <= table.num_rows <= 5 * 272 + 20
    assert set(table.column("direction").to_pylist()) == {"tx"}
    stamps = table.column("timestamp").to_pylist()
    assert stamps == sorted(stamps) and stamps[-1] <= 5.0
    assert f"sent {table.num_rows} frames" in output
    assert 0x18FF14F3 in table.column("arbitration_id").to_pylist()  # the 29-bit BMS_Energy


def test_same_seed_same_recording(tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    for path in (a, b):
        assert _cli("--duration", "2s", "--seed", "9", "--record", str(path))[0] == 0
    assert pq.read_table(a).equals(pq.read_table(b))


def test_injected_fault_shows_in_the_recording(tmp_path):
    out = tmp_path / "run.parquet"
    code, output = _cli(
        "--duration", "3s", "--inject", "stop:BMS_PackStatus@1s+1s", "--record", str(out)
    )
    assert code == 0, output
    rows = pq.read_table(out).to_pylist()
    pack = [r["timestamp"] for r in rows if r["arbitration_id"] == 0x100]
    assert not [t for t in pack if 1.0 <= t < 2.0] and pack[-1] > 2.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "1s", "--inject", "stop:Nope"], "invalid target 'Nope'"),
        (["--duration", "1s", "--inject", "melt:BMS_Status"], "unknown kind 'melt'"),
        (["--duration", "soon"], "--duration: expected a duration"),
        ([], "--duration is needed"),
        (["--duration", "1s", "--record", "out.csv"], "expected a .parquet file"),
        (["--duration", "1s", "--dbc", "/nonexistent.dbc"], "DBC file not found"),
        (["--duration", "1s", "--soc", "120"], "soc must be 0-100"),
        (["--duration", "1s", "--ambient", "-80"], "ambient must be -50 to 70 °C, got -80"),
        (["--duration", "1s", "--initial-temp", "95"], "initial temperature must be -50 to 70"),
        (["--duration", "1s", "--cycle-jitter", "VCU=1"], "cycle_jitter_ms: unknown ECU 'VCU'"),
        (["--duration", "1s", "--startup-delay", "MCU"], "expected ECU=MILLISECONDS"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    code, output = _cli(*args)
    assert code == 2
    assert message in output
    assert output.strip().count("\n") == 0


def test_bad_interface_is_exit_3():
    code, output = _cli("--interface", "no_such_interface", "--duration", "1s")
    assert code == 3
    assert "cannot open CAN interface" in output


def test_realtime_on_an_interface_runs_on_the_wall_clock(tmp_path):
    out = tmp_path / "rt.parquet"
    start = time.time()
    code, output = _cli(
        "--interface", "virtual", "--channel", "cli-rt", "--duration", "0.5s", "--record", str(out)
    )
    assert code == 0, output
    stamps = pq.read_table(out).column("timestamp").to_pylist()
    assert stamps and start - 1.0 <= stamps[0] and stamps[-1] <= time.time() + 1.0


def test_sigterm_stops_cleanly_and_leaves_a_readable_recording(tmp_path):
    out = tmp_path / "term.parquet"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "virtual_bus", "--realtime", "--record", str(out)],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30.0
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # let it send (recorded rows are flushed when it stops)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "(stopped)" in stderr
    table = pq.read_table(out)
    assert table.num_rows > 0 and table.schema.equals(FRAME_SCHEMA)


def _vcan0_up() -> bool:
    return Path("/sys/class/net/vcan0").exists()


@pytest.mark.socketcan
@pytest.mark.skipif(not _vcan0_up(), reason="needs vcan0 (sudo scripts/vcan-up.sh --fd vcan0)")
def test_standalone_process_on_vcan0_is_heard_by_another_process():
    import can

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with can.Bus(interface="socketcan", channel="vcan0", fd=True) as bus:
        process = subprocess.Popen(
            [sys.executable, "-m", "virtual_bus", "--interface", "socketcan", "--channel", "vcan0",
             "--duration", "1.5s"],
            cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        frames = []
        # generous: under QEMU emulation (the CI fallback) Python starts about 17x slower
        deadline = time.monotonic() + 180.0
        while process.poll() is None and time.monotonic() < deadline:
            msg = bus.recv(timeout=0.1)
            if msg is not None:
                frames.append(msg)
        _, stderr = process.communicate(timeout=180)
    assert process.returncode == 0, stderr
    ids = {f.arbitration_id for f in frames}
    assert {0x100, 0x103, 0x200, 0x140} <= ids
    assert any(f.is_fd and f.dlc == 64 for f in frames)  # BMS_ModuleData, CAN FD
