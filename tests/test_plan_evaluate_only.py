"""A plan for `bench evaluate` only (name, dbc, checks) may scope checks to the log's steps."""

from __future__ import annotations

from bench.plan import load_plan, validate_plan

from .conftest import DBC_DIR


def test_evaluate_only_plan_may_name_steps_of_the_recorded_run(tmp_path):
    plan = tmp_path / "evaluate_only.yaml"
    plan.write_text(
        f"name: evaluate only\n"
        f"dbc: [{DBC_DIR / 'battery.dbc'}]\n"
        "checks:\n"
        "  - {name: warm, signal: BMS_Temps.MinCellTemp, reaches: '>= -15', within: 30min,"
        " after: key_on}\n"
        "  - {name: volt, signal: BMS_Cells.MinCellVolt, min: 2.8, during: [drive]}\n"
    )
    assert validate_plan(plan) == []
    assert [c.name for c in load_plan(plan).checks] == ["warm", "volt"]


def test_a_plan_with_steps_still_checks_step_names(tmp_path):
    plan = tmp_path / "with_steps.yaml"
    plan.write_text(
        f"name: with steps\n"
        f"dbc: [{DBC_DIR / 'battery.dbc'}]\n"
        "steps:\n  - {name: soak, duration: 1s}\n"
        "checks:\n  - {name: volt, signal: BMS_Cells.MinCellVolt, min: 2.8, during: [drive]}\n"
    )
    (error,) = validate_plan(plan)
    assert error.startswith(f"{plan}:6:") and "unknown step 'drive'" in error
