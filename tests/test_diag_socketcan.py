"""Diagnostics over real SocketCAN (vcan0): ``python -m virtual_bus`` answers UDS in its own
process; ``bench diag`` (udsoncan over can-isotp) and a plan's ``diag:`` steps ask it.

Skips here (no AF_CAN); runs in the VM: ``make test-socketcan-vm``, or this file alone with
``../shared/tools/run-in-vcan-vm.sh python -m pytest -m socketcan tests/test_diag_socketcan.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import cli
from bench.liveview import NullStream
from bench.plan import load_plan
from bench.record import read_events
from bench.run import RunOptions, run_plan

from .conftest import ROOT
from .test_socketcan import _skip_reason

PLANS = Path(__file__).parent / "runner_plans"
DEADLINE_S = 120.0  # bounds on waiting (QEMU emulation is slow), never figures

pytestmark = [
    pytest.mark.socketcan,
    pytest.mark.skipif(_skip_reason("vcan0") is not None, reason=str(_skip_reason("vcan0"))),
]


@pytest.fixture
def vehicle_process():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "virtual_bus", "--interface", "socketcan", "--channel", "vcan0",
         "--inject", "heater_fail", "--duration", "10min"],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        yield process
    finally:
        process.terminate()
        process.communicate(timeout=60)


def _read_dtcs() -> tuple[int, str]:
    result = CliRunner().invoke(
        cli,
        ["diag", "--ecu", "BMS", "--interface", "socketcan", "--channel", "vcan0", "--json",
         "read-dtc", "--mask", "0x08"],
    )  # fmt: skip
    return result.exit_code, result.output


def test_bench_diag_reads_the_injected_dtc_over_vcan0(vehicle_process) -> None:
    deadline = time.monotonic() + DEADLINE_S
    found: list[dict] = []
    while time.monotonic() < deadline and not found:
        code, output = _read_dtcs()  # the process may still be starting: no response yet
        if code == 0:
            found = [d for d in json.loads(output)[0]["dtcs"] if d["label"] == "P1A41-92"]
        if not found:
            time.sleep(0.5)
    assert found, output
    assert "confirmed" in found[0]["status_bits"]


def test_plan_diag_steps_over_vcan0_in_real_time(vehicle_process, tmp_path) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline and _read_dtcs()[0] != 0:
        time.sleep(0.5)  # wait until the vehicle answers
    result = run_plan(
        load_plan(PLANS / "diag.yaml"),
        RunOptions(interface="socketcan", channel="vcan0", out_dir=tmp_path / "run",
                   stream=NullStream(), handle_signals=False),
    )  # fmt: skip
    events = read_events(result.run_dir / "events.parquet").to_pylist()
    details = [json.loads(e["detail"]) for e in events if e["kind"] == "diag"]
    assert [d["operation"] for d in details][:2] == ["clear_dtcs", "clear_dtcs"]
    assert all(d["ok"] for d in details), details
    bms = next(d for d in details if d["ecu"] == "BMS" and d["operation"] == "read_dtcs")
    heater = next(d for d in bms["dtcs"] if d["label"] == "P1A41-92")
    assert "test_failed" in heater["status_bits"]
    bus = next(c for c in result.summary.checks if c.name.startswith("Bus clean"))
    assert bus.verdict == "pass", bus.message
