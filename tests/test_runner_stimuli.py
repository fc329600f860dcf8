"""Stimuli as the plan reference documents them, end to end on the in-process virtual vehicle."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from bench.dbc import DbcSet
from bench.liveview import NullStream
from bench.logfiles import read_frames
from bench.plan import load_plan
from bench.record import read_events
from bench.run import RunOptions, run_plan

from .conftest import DBC_DIR

PLANS = Path(__file__).parent / "runner_plans"
DATA = Path(__file__).parent / "data"
DRIVE = 3  # VAL_ 768 DriveMode 3 "DRIVE"


def _run(plan_path: Path, out: Path):
    options = RunOptions(out_dir=out, stream=NullStream(), handle_signals=False)
    return run_plan(load_plan(plan_path), options)


def _tx(run_dir: Path, frame_id: int):
    frames = read_frames(run_dir / "frames").frames
    direction = frames.column("direction").to_numpy(zero_copy_only=False)
    ids = frames.column("arbitration_id").to_numpy()
    return frames.filter((direction == "tx") & (ids == frame_id))


def _step_start(run_dir: Path, name: str) -> float:
    events = read_events(run_dir / "events.parquet").to_pylist()
    return next(e["timestamp"] for e in events if e["kind"] == "step_start" and e["name"] == name)


def test_once_only_send_merges_into_the_running_stream_from_its_next_cycle(tmp_path):
    result = _run(PLANS / "once.yaml", tmp_path / "run")
    run_dir = result.run_dir
    assert result.exit_code == 0, [(c.name, c.verdict, c.message) for c in result.summary.checks]
    dbcs = DbcSet.load([DBC_DIR / "vehicle.dbc"])
    command = dbcs.message("VCU_Command")
    frames = _tx(run_dir, command.frame_id)
    times = frames.column("timestamp").to_numpy()
    data = frames.column("data").to_pylist()
    modes = np.array([command.decode(bytes(d), decode_choices=False)["DriveMode"] for d in data])
    selected = _step_start(run_dir, "select_drive")
    # No frame out of cycle: the stream keeps its 10 ms period through the once-only send.
    assert np.allclose(np.diff(times), 0.01, atol=1e-6)
    # PARK up to the send, DRIVE from the next cycle on, to the end.
    assert (modes[times <= selected] == 0).all()
    assert (modes[times > selected] == DRIVE).all() and (times > selected).sum() > 500
    event = next(
        e
        for e in read_events(run_dir).to_pylist()
        if e["kind"] == "stimulus" and e["name"] == "VCU_Command" and e["timestamp"] == selected
    )
    assert json.loads(event["detail"])["merged"] is True


def test_once_only_send_of_a_message_nobody_sends_periodically_is_one_frame(tmp_path):
    result = _run(PLANS / "once.yaml", tmp_path / "run")
    thermal = DbcSet.load([DBC_DIR / "vehicle.dbc"]).message("VCU_Thermal")
    frames = _tx(result.run_dir, thermal.frame_id)
    assert frames.num_rows == 1
    decoded = thermal.decode(frames.column("data")[0].as_py(), decode_choices=False)
    assert decoded["CoolantPumpRequest"] == 1


@pytest.mark.slow  # the whole case plan; make test runs its twin test_plans/turpan_once_only_send
def test_the_turpan_once_only_send_plan_drives_the_car(tmp_path):
    """shared/cases/plans/once-only-send.yaml: `select_drive` used to add one frame while the
    10 ms VCU_Command stream went on in PARK; the car never moved and the plan failed.

    Nightly only (``slow``): ``make test`` proves the same on the site plan made from this case
    (test_site_plans: its select_drive, WOT and torque-response checks), and the merge itself on
    short plans above."""
    plan_dir = tmp_path / "plans"
    plan_dir.mkdir()
    shutil.copy(DATA / "once-only-send.yaml", plan_dir)
    shutil.copytree(DBC_DIR, tmp_path / "dbc")  # the plan names ../dbc/*.dbc
    result = _run(plan_dir / "once-only-send.yaml", tmp_path / "run")
    checks = {c.name: c.verdict for c in result.summary.checks}
    # The case's signal-vs-signal `reaches` already holds when wot_1 opens (0 Nm >= 0 Nm
    # requested): issue 10 makes that inconclusive, never a silent 0 ms pass. Everything else
    # passes now that the car drives (test_plans/turpan_once_only_send.yaml uses `responds`).
    vacuous = "Torque meets request within 500 ms (signal vs signal)"
    assert checks.pop(vacuous) == "inconclusive"
    assert set(checks.values()) <= {"pass", "marginal"}, checks
    speed = pq.read_table(
        result.run_dir / "signals" / "MCU_Power.parquet", columns=["timestamp", "VehicleSpeed"]
    )
    selected = _step_start(result.run_dir, "select_drive")
    after = speed.column("timestamp").to_numpy() > selected
    assert speed.column("VehicleSpeed").to_numpy()[after].max() > 50  # km/h: WOT accelerations
    assert checks["Torque response first WOT (90 % of 450 Nm within 150 ms)"] == "pass"
