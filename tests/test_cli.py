"""The command line as a user runs it: a real subprocess, real exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys


def bench(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_help_lists_commands():
    result = bench("--help")
    assert result.returncode == 0
    assert "dbc" in result.stdout


def test_dbc_table_and_json():
    table = bench("dbc")
    assert table.returncode == 0, table.stderr
    assert "BMS_PackStatus" in table.stdout and "MotorSpeed" in table.stdout
    data = json.loads(bench("dbc", "--json").stdout)
    names = {m["name"] for m in data["messages"]}
    assert {"BMS_PackStatus", "MCU_Status", "VCU_Command"} <= names
    status = next(m for m in data["messages"] if m["name"] == "BMS_Status")
    hv = next(s for s in status["signals"] if s["name"] == "HvState")
    assert hv["choices"]["2"] == "READY"


def test_dbc_option_chooses_files():
    from tests.conftest import DBC_DIR

    data = json.loads(bench("dbc", "--json", "--dbc", str(DBC_DIR / "motor.dbc")).stdout)
    assert {m["name"] for m in data["messages"]} == {
        "MCU_Status",
        "MCU_Temps",
        "MCU_Power",
        "MCU_State",
    }


def test_bad_dbc_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "broken.dbc"
    bad.write_text("this is not a dbc\n")
    result = bench("dbc", "--dbc", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "broken.dbc:1:1" in lines[0]
    missing = bench("dbc", "--dbc", str(tmp_path / "missing.dbc"))
    assert missing.returncode == 2 and "missing.dbc: DBC file not found" in missing.stderr
