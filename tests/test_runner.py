"""The runner on the in-process virtual vehicle: run directory, determinism, aborts, signals."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bench.errors import HarnessError, InputError
from bench.liveview import NullStream
from bench.logfiles import read_frames
from bench.plan import load_plan
from bench.record import read_events
from bench.run import RunOptions, run_plan

from .conftest import ROOT

PLANS = Path(__file__).parent / "runner_plans"


def _run(plan: str, tmp_path: Path, **options):
    options.setdefault("stream", NullStream())
    options.setdefault("handle_signals", False)
    return run_plan(load_plan(PLANS / plan), RunOptions(out_dir=tmp_path / "run", **options))


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    return _run("short.yaml", tmp_path_factory.mktemp("short"))


def test_short_plan_passes_and_fills_the_run_directory(short_run):
    run_dir = short_run.run_dir
    assert short_run.summary.verdict == "pass", [
        (c.name, c.verdict, c.message) for c in short_run.summary.checks
    ]
    assert short_run.exit_code == 0
    for name in ("plan.yaml", "events.parquet", "summary.json", "junit.xml", "run.log"):
        assert (run_dir / name).is_file(), name
    assert sorted(p.name for p in (run_dir / "dbc").iterdir()) == [
        "battery.dbc",
        "motor.dbc",
        "vehicle.dbc",
    ]
    assert list((run_dir / "frames").glob("part-*.parquet"))
    assert list((run_dir / "signals").glob("*.parquet"))


def test_every_frame_sent_and_received_is_recorded(short_run):
    frames = read_frames(short_run.run_dir / "frames").frames
    directions = set(frames.column("direction").to_pylist())
    assert directions == {"rx", "tx"}
    ids = frames.filter(frames.column("direction").to_numpy(zero_copy_only=False) == "tx")
    assert set(ids.column("arbitration_id").to_pylist()) >= {0x300, 0x303}  # VCU_Command, Ambient
    # 10 ms VCU_Command for ~65 s simulated, 20 ms BMS_PackStatus: both in the log
    summary = json.loads((short_run.run_dir / "summary.json").read_text())
    assert summary["frames"] == frames.num_rows > 20_000


def test_events_hold_run_metadata_and_steps(short_run):
    events = read_events(short_run.run_dir / "events.parquet").to_pylist()
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    started = json.loads(events[0]["detail"])
    assert started["mode"] == "lockstep" and started["seed"] == 7
    steps = [e["name"] for e in events if e["kind"] == "step_start"]
    assert steps == ["settle", "key_on", "drive", "key_off"]
    assert [s.status for s in short_run.summary.steps] == ["done"] * 4


def test_lockstep_runs_are_deterministic(short_run, tmp_path):
    again = _run("short.yaml", tmp_path)
    first = read_frames(short_run.run_dir / "frames").frames
    second = read_frames(again.run_dir / "frames").frames
    columns = ["timestamp", "arbitration_id", "data", "direction"]
    assert first.select(columns).equals(second.select(columns))


def test_a_different_seed_gives_different_frames(short_run, tmp_path):
    other = _run("short.yaml", tmp_path, seed=99)
    first = read_frames(short_run.run_dir / "frames").frames.column("data")
    second = read_frames(other.run_dir / "frames").frames.column("data")
    assert not first.equals(second)


def test_breach_of_an_abort_check_sends_the_safe_state(tmp_path):
    result = _run("abort.yaml", tmp_path)
    summary = result.summary
    assert summary.verdict == "aborted" and result.exit_code == 3
    assert summary.aborted is not None and "Speed limit" in summary.aborted.reason
    events = read_events(result.run_dir / "events.parquet").to_pylist()
    abort = next(e for e in events if e["kind"] == "abort")
    safe = [e for e in events if e["kind"] == "safe_state"]
    assert [e["name"] for e in safe] == ["VCU_Command"]
    assert safe[0]["timestamp"] == pytest.approx(abort["timestamp"])
    # The safe-state frame is on the bus: torque 0 and HV off right after the breach.
    frames = read_frames(result.run_dir / "frames").frames.to_pylist()
    from bench.dbc import DbcSet

    command = DbcSet.load().message("VCU_Command")
    commands = [
        (f["timestamp"], command.decode(f["data"], decode_choices=False))
        for f in frames
        if f["arbitration_id"] == 0x300 and f["timestamp"] >= abort["timestamp"]
    ]
    safe_now = [v for t, v in commands if t == abort["timestamp"] and v["HvRequest"] == 0]
    later = [v for t, v in commands if t > abort["timestamp"]]
    assert safe_now, "no safe-state frame at the moment of the breach"
    assert later and all(v["TorqueRequest"] == 0 and v["HvRequest"] == 0 for v in later)
    # and the vehicle reacted: HV goes off within the recorded hold time
    hv = pq.read_table(result.run_dir / "signals" / "BMS_Status.parquet").to_pylist()
    assert hv[-1]["HvState"] == 0


def test_fault_injection_makes_the_run_fail_for_the_right_reason(tmp_path):
    # BMS_PackStatus stops for 300 ms: the live timeout check (abort: true) must catch it.
    result = _run("short.yaml", tmp_path, inject=("stop:BMS_PackStatus@20s+300ms",))
    assert result.summary.verdict == "aborted"
    assert "Pack status not lost" in result.summary.aborted.reason


def test_bad_fault_is_an_input_error_before_anything_runs(tmp_path):
    with pytest.raises(InputError, match=r"unknown kind 'explode'; valid kinds: stop"):
        _run("short.yaml", tmp_path, inject=("explode:BMS_PackStatus",))
    assert not (tmp_path / "run").exists()


def test_socketcan_without_kernel_support_is_one_line_exit_3(tmp_path):
    from bench.bus import kernel_has_socketcan

    if kernel_has_socketcan():
        pytest.skip("this kernel has SocketCAN; the message is for kernels without it")
    result = subprocess.run(
        [sys.executable, "-m", "bench.cli", "run", str(PLANS / "short.yaml"),
         "--interface", "socketcan", "--channel", "vcan0", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 3
    assert "kernel lacks SocketCAN" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_open_bus_reports_unknown_and_missing_interfaces():
    from bench.bus import BusSettings, open_bus

    with pytest.raises(InputError, match="unknown CAN interface 'nope'"):
        open_bus(BusSettings(interface="nope"))
    with pytest.raises(HarnessError, match="cannot open pcan"):
        open_bus(BusSettings(interface="pcan", channel="PCAN_USBBUS1"))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_sends_safe_state_and_leaves_a_readable_log(tmp_path, signum):
    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "run", str(PLANS / "long.yaml"), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    for line in process.stdout:  # wait until the long step runs
        if "'wait' started" in line or time.monotonic() > deadline:
            break
    time.sleep(1.0)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 3, stderr
    assert "Traceback" not in stderr
    name = signal.Signals(signum).name
    assert f"received {name}" in stdout and "safe state sent" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "aborted" and name in summary["aborted"]["reason"]
    assert read_frames(out / "frames").frames.num_rows > 1000
    assert f"received {name}" in (out / "run.log").read_text()


def test_plain_output_when_not_a_terminal(short_run):
    log = (short_run.run_dir / "run.log").read_text().splitlines()
    assert any("step 1/4 'settle' started" in line for line in log)
    assert all(line[:4].isdigit() and "T" in line[:20] for line in log)  # ISO timestamps


def test_pytest_plugin_reports_each_check(tmp_path):
    junit = tmp_path / "junit.xml"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(PLANS / "short.yaml"), f"--junitxml={junit}",
         f"--bench-out={tmp_path / 'reports'}", "-q", "-p", "no:cacheprovider"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "7 passed" in result.stdout
    text = junit.read_text()
    assert text.count("<testcase") == 7 and "Pack status alive counter" in text


def test_pytest_plugin_fails_the_checks_that_fail(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(PLANS / "abort.yaml"),
         f"--bench-out={tmp_path / 'reports'}", "-q", "-p", "no:cacheprovider"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Speed limit" in result.stdout and "failed" in result.stdout


def test_a_step_that_times_out_fails_the_run_and_the_plan_goes_on(tmp_path):
    result = _run("timeout.yaml", tmp_path)
    assert [(s.name, s.status) for s in result.summary.steps] == [
        ("key_on_without_hv", "timeout"),
        ("after", "done"),
    ]
    step = next(c for c in result.summary.checks if c.kind == "step")
    assert step.verdict == "fail" and step.name == "Step 'key_on_without_hv' completes"
    assert result.summary.verdict == "fail" and result.exit_code == 1


def test_duration_steps_end_exactly_on_time(short_run):
    events = read_events(short_run.run_dir / "events.parquet").to_pylist()
    settle_end = next(e for e in events if e["kind"] == "step_end" and e["name"] == "settle")
    assert settle_end["timestamp"] == pytest.approx(5.0, abs=1e-9)


def test_a_ramp_retimes_a_message_already_being_sent(tmp_path):
    result = _run("ramp.yaml", tmp_path)
    check = next(c for c in result.summary.checks if c.kind == "cycle_time")
    assert check.verdict == "pass", check.message
    rows = pq.read_table(result.run_dir / "signals" / "VCU_Thermal.parquet").to_pylist()
    ramping = [row for row in rows if row["timestamp"] >= 1.0]
    speeds = [row["CoolantPumpSpeed"] for row in ramping]
    assert speeds == sorted(speeds) and speeds[0] <= 1 and speeds[-1] >= 99  # 1 % per 20 ms
    assert all(row["CoolantPumpRequest"] == 1 for row in rows)  # the sent value is kept


def test_a_run_ends_listing_what_did_not_pass_and_the_report(tmp_path):
    from bench.console import check_lines

    out = io.StringIO()
    result = _run("timeout.yaml", tmp_path, stream=out)
    failed = [c for c in result.summary.checks if c.verdict != "pass"]
    assert failed and any(c.verdict == "pass" for c in result.summary.checks)
    expected = check_lines(failed)  # the same words as `bench evaluate`: one function
    tail = out.getvalue().splitlines()[-(len(expected) + 2) :]
    assert [line.split(" ", 1)[1] for line in tail[:-2]] == expected  # after the clock
    assert tail[-2].endswith(f"verdict: FAIL — {result.run_dir}")
    assert tail[-1].endswith(f"report: {result.run_dir / 'report.html'}")
    assert (result.run_dir / "report.html").is_file()
    assert tail[-1] in (result.run_dir / "run.log").read_text()


def test_an_arithmetic_until_ends_a_step_live(tmp_path):
    # the live (scalar) evaluation of an arithmetic condition, on real frames of the vehicle
    text = (PLANS / "short.yaml").read_text()
    text = text.replace("../../dbc/", f"{ROOT / 'dbc'}/").replace(
        "    drive_cycle: {profile: CLTC-P}\n    duration: 60s",
        "    drive_cycle: {profile: CLTC-P}\n"
        "    until: 'MCU_Power.VehicleSpeed * 1000 / 3600 > 5"
        " and abs(-MCU_Power.VehicleSpeed) > 0'\n"
        "    timeout: 60s",
    )
    plan_file = tmp_path / "arith.yaml"
    plan_file.write_text(text)
    result = run_plan(
        load_plan(plan_file),
        RunOptions(out_dir=tmp_path / "run", stream=NullStream(), handle_signals=False),
    )
    drive = next(s for s in result.summary.steps if s.name == "drive")
    assert drive.status == "done" and drive.end is not None and drive.end - drive.start < 60
    speed = pq.read_table(result.run_dir / "signals" / "MCU_Power.parquet").to_pydict()
    at_end = [v for t, v in zip(speed["timestamp"], speed["VehicleSpeed"], strict=True)
              if t <= drive.end + 1e-9][-1]  # fmt: skip
    assert at_end * 1000 / 3600 > 5  # 18 km/h: the condition held when the step ended
    before = [v for t, v in zip(speed["timestamp"], speed["VehicleSpeed"], strict=True)
              if drive.start <= t < drive.end - 0.1]  # fmt: skip
    assert before and max(before) * 1000 / 3600 <= 5  # and not earlier
