"""`repeat:` groups: expanded names, problems at the lines where steps are written, runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.errors import InputError
from bench.liveview import NullStream
from bench.plan import load_plan, validate_plan
from bench.record import read_events
from bench.run import RunOptions, run_plan

from .conftest import DBC_DIR

HEAD = f"""name: repeat
dbc: [{DBC_DIR}/battery.dbc, {DBC_DIR}/motor.dbc, {DBC_DIR}/vehicle.dbc]
vehicle: {{ambient_c: 20, soc: 60}}
safe_state:
  - {{message: VCU_Command, signals: {{TorqueRequest: 0, HvRequest: 0, DriveMode: PARK}}}}
"""
STEPS = """steps:
  - name: key_on
    send: {message: VCU_Command, signals: {KeyOn: 1, HvRequest: 1, DriveMode: DRIVE}, every: 10ms}
    until: BMS_Status.HvState == "READY"
    timeout: 10s
  - repeat: 3
    steps:
      - {name: wot, send: {message: VCU_Command, signals: {TorqueRequest: 300}}, duration: 2s}
      - repeat: 2
        steps:
          - {name: coast, send: {message: VCU_Command, signals: {TorqueRequest: 0}}, duration: 1s}
  - {name: end, duration: 1s}
"""


def _plan(tmp_path: Path, steps: str = STEPS, checks: str = "checks: []\n") -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(HEAD + steps + checks, encoding="utf-8")
    return path


def test_steps_get_the_index_of_their_repetition_outermost_first(tmp_path):
    names = [step.name for step in load_plan(_plan(tmp_path)).steps]
    assert names == [
        "key_on",
        *[n for i in (1, 2, 3) for n in (f"wot[{i}]", f"coast[{i}][1]", f"coast[{i}][2]")],
        "end",
    ]


def test_checks_name_indexed_steps_and_unknown_indexes_are_refused(tmp_path):
    good = "checks:\n  - {name: c, signal: MCU_Power.VehicleSpeed, max: 300, during: ['wot[3]']}\n"
    assert validate_plan(_plan(tmp_path, checks=good)) == []
    bad = good.replace("wot[3]", "wot[4]")
    (problem,) = validate_plan(_plan(tmp_path, checks=bad))
    assert "unknown step 'wot[4]'" in problem and problem.split(":")[1] == "19"


def test_a_problem_in_a_repeated_step_is_reported_once_at_its_line(tmp_path):
    steps = STEPS.replace("TorqueRequest: 300", "TorqueRequst: 300")
    problems = validate_plan(_plan(tmp_path, steps))
    assert len(problems) == 1
    line = (
        (HEAD + steps)
        .splitlines()
        .index(next(s for s in steps.splitlines() if "TorqueRequst" in s))
    )
    assert problems[0].startswith(f"{tmp_path / 'plan.yaml'}:{line + 1}:")
    assert "TorqueRequst" in problems[0]


@pytest.mark.parametrize(
    ("group", "message"),
    [
        ("{repeat: 0, steps: [{name: a, duration: 1s}]}", "repeat must be 1 to 10,000, got 0"),
        ("{repeat: two, steps: [{name: a, duration: 1s}]}", "expected a whole number"),
        ("{repeat: 2}", "missing key 'steps' in a repeat group"),
        ("{repeat: 2, steps: []}", "needs at least one step"),
        ("{repeat: 2, name: x, steps: [{name: a, duration: 1s}]}", "unknown key 'name'"),
    ],
)
def test_a_broken_group_is_one_line_at_its_place(tmp_path, group, message):
    problems = validate_plan(_plan(tmp_path, f"steps:\n  - {group}\n"))
    assert len(problems) == 1 and message in problems[0], problems
    assert problems[0].split(":")[1] == "7"  # the group's line
    with pytest.raises(InputError):
        load_plan(_plan(tmp_path, f"steps:\n  - {group}\n"))


def test_a_run_records_the_indexed_steps(tmp_path):
    options = RunOptions(out_dir=tmp_path / "run", stream=NullStream(), handle_signals=False)
    checks = (
        "checks:\n  - {name: moves, signal: MCU_Power.VehicleSpeed, reaches: '> 5', within: 2s,"
        " after: 'wot[1]'}\n  - {name: in range, signal: MCU_Power.VehicleSpeed, max: 250,"
        " during: ['wot[3]', 'coast[2][1]']}\n"
    )
    result = run_plan(load_plan(_plan(tmp_path, checks=checks)), options)
    assert result.exit_code == 0, result.summary.checks
    started = [
        e["name"] for e in read_events(result.run_dir).to_pylist() if e["kind"] == "step_start"
    ]
    assert started == [step.name for step in load_plan(_plan(tmp_path)).steps]
    assert [s.status for s in result.summary.steps] == ["done"] * len(started)
