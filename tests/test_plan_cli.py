"""``bench validate`` as a user runs it: a real subprocess, exit codes, one line per problem."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from bench.cli import cli
from tests.conftest import ROOT
from tests.test_plan_loader import BASE, GOOD, write


def bench(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_valid_plan_exits_0_with_a_summary():
    result = bench("validate", GOOD)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "valid" in result.stdout and "8 steps, 11 checks, 3 DBC files" in result.stdout
    assert "estimated duration" in result.stdout


def test_bad_plan_exits_2_with_one_line_per_problem(tmp_path):
    text = (
        BASE.replace("duration: 2h", "duraton: 2h")
        .replace("max: 55, marginal_max: 50", "max: fast")
        .replace("signal: BMS_Temps.MinCellTemp", "signal: BMS_Temps.MinCelTemp")
    )
    path = write(tmp_path, text)
    result = bench("validate", path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 3, result.stderr
    assert all(line.startswith(f"{path}:") for line in lines)
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert lines[2].endswith("unknown signal 'BMS_Temps.MinCelTemp' (did you mean 'MinCellTemp'?)")


def test_yaml_error_exits_2_without_traceback(tmp_path):
    result = bench("validate", write(tmp_path, "name: [oops\n"))
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert "invalid YAML" in result.stderr and "Traceback" not in result.stderr


# -- the rest in-process (click's runner): the same command, no interpreter start-up -------------


def invoke(*args: str | Path):
    return CliRunner().invoke(cli, ["validate", *map(str, args)])


def test_missing_file_exits_2(tmp_path):
    result = invoke(tmp_path / "nope.yaml")
    assert result.exit_code == 2 and result.output.strip().endswith("plan file not found")


def test_dbc_option_replaces_the_plans_list(tmp_path):
    path = write(
        tmp_path,
        "name: e\ndbc: [gone.dbc]\nchecks:\n"
        "  - {name: hot, signal: BMS_Temps.MaxCellTemp, max: 55}\n",
    )
    assert invoke(path).exit_code == 2
    result = invoke(path, "--dbc", ROOT / "dbc" / "battery.dbc")
    assert result.exit_code == 0, result.output


def test_schema_option_prints_the_committed_schema():
    result = invoke("--schema")
    assert result.exit_code == 0
    assert json.loads(result.output)["title"] == "bench test plan"
    assert result.output == (ROOT / "schemas" / "plan.schema.json").read_text(encoding="utf-8")


def test_no_plan_is_a_usage_error():
    result = invoke()
    assert result.exit_code == 2 and "PLAN" in result.output


def test_a_bad_expression_exits_2_naming_its_token(tmp_path):
    text = BASE.replace(
        "max: 55, marginal_max: 50}",
        "max: 55, when: 'abs(MCU_Status.MotorTorque - ) > 20'}",
    )
    plan = write(tmp_path, text)
    result = bench("validate", plan)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = text.splitlines().index(next(x for x in text.splitlines() if "abs(" in x)) + 1
    column = text.splitlines()[line - 1].index(") > 20") + 1
    assert result.stderr.strip().splitlines() == [
        f"{plan}:{line}:{column}: unexpected ')': expected a value (a number, "
        'Message.Signal, a "choice name", abs/min/max or "(")'
    ]
