"""``drive:`` holds a speed on a grade with the drive-cycle controller (lockstep, virtual car)."""

from __future__ import annotations

import pytest

from bench.drive_cycle import hold_profile
from bench.liveview import NullStream
from bench.plan import load_plan
from bench.run import RunOptions, run_plan

from .conftest import DBC_DIR

PLAN = """\
name: speed hold
dbc: [{dbc}/battery.dbc, {dbc}/motor.dbc, {dbc}/vehicle.dbc]
bus: {{interface: virtual, channel: drive-step}}
steps:
  - name: key_on
    send: {{message: VCU_Command, signals: {{KeyOn: 1, HvRequest: 1}}, every: 10ms}}
    until: BMS_Status.HvState == "READY"
    timeout: 10s
  - name: climb
    drive: {{speed_kmh: 50, grade_pct: 8, headwind_kmh: {wind}}}
    duration: 40s
checks:
  - {{name: Speed held, signal: MCU_Power.VehicleSpeed, min: 49, max: 51, during: [climb],
     when: MCU_Power.VehicleSpeed > 49}}
  - {{name: Reaches the speed, signal: MCU_Power.VehicleSpeed, reaches: ">= 49.5", within: 15s,
     after: climb}}
  - {{name: Grade sent, signal: VCU_Ambient.RoadGrade, min: 8, max: 8, during: [climb]}}
  - {{name: Headwind sent, signal: VCU_Ambient.Headwind, min: {wind}, max: {wind}, during: [climb]}}
"""


def test_hold_profile_ramps_then_holds():
    profile = hold_profile(80.0, 20.0, 2.0)
    ramp_s = 60.0 / 3.6 / 2.0
    assert profile.speed_at(0.0) == 20.0
    assert profile.speed_at(ramp_s / 2) == pytest.approx(50.0)
    assert profile.speed_at(ramp_s + 3600.0) == 80.0
    assert hold_profile(30.0, float("nan"), 1.0).speed_at(0.0) == 0.0


@pytest.mark.parametrize("wind", [0, 40])
def test_drive_step_holds_the_speed_on_a_grade(tmp_path, wind):
    path = tmp_path / "hold.yaml"
    path.write_text(PLAN.format(dbc=DBC_DIR, wind=wind))
    options = RunOptions(out_dir=tmp_path / "run", stream=NullStream(), handle_signals=False)
    result = run_plan(load_plan(path), options)
    verdicts = {c.name: (c.verdict, c.message) for c in result.summary.checks}
    assert all(v == "pass" for v, _ in verdicts.values()), verdicts
