"""The runner's diag: step: exchanges on the bus (recorded), events with decoded results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.liveview import NullStream
from bench.logfiles import read_frames
from bench.plan import load_plan
from bench.plan.loader import validate_plan
from bench.record import read_events
from bench.run import RunOptions, run_plan

PLANS = Path(__file__).parent / "runner_plans"


def _run(tmp_path: Path, plan: str = "diag.yaml", **options):
    options.setdefault("stream", NullStream())
    options.setdefault("handle_signals", False)
    return run_plan(load_plan(PLANS / plan), RunOptions(out_dir=tmp_path / "run", **options))


def _diag_events(run_dir: Path) -> list[dict]:
    events = read_events(run_dir).to_pylist()
    return [e for e in events if e["kind"] == "diag"]


@pytest.fixture(scope="module")
def heater_run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("diag"), inject=("heater_fail",))


def test_diag_step_reads_the_injected_dtc_in_simulated_time(heater_run) -> None:
    events = _diag_events(heater_run.run_dir)
    details = [
        json.loads(e["detail"]) if isinstance(e["detail"], str) else e["detail"] for e in events
    ]
    ops = [(d["ecu"], d["operation"], d.get("did")) for d in details]
    assert ops == [
        ("BMS", "clear_dtcs", None),
        ("MCU", "clear_dtcs", None),
        ("BMS", "read_dtcs", None),
        ("BMS", "read_did", "pack_soh"),
        ("BMS", "read_did", "software_version"),
        ("MCU", "read_dtcs", None),
        ("MCU", "read_did", "software_version"),
    ]
    assert all(d["ok"] for d in details), details
    bms = details[2]["dtcs"]
    heater = next(d for d in bms if d["name"] == "heater_circuit_failure")
    assert heater["label"] == "P1A41-92" and "confirmed" in heater["status_bits"]
    assert details[3]["value"] == pytest.approx(97.5) and details[3]["unit"] == "%"
    # answered within a tick or two of simulated time, after the 3 s key-on step
    assert all(d["t_response"] - d["t_request"] <= 0.03 for d in details)
    assert details[2]["t_request"] >= 3.0


def test_diag_frames_are_recorded_and_do_not_break_the_bus_check(heater_run) -> None:
    frames = read_frames(heater_run.run_dir / "frames").frames.to_pandas()
    ids = set(frames["arbitration_id"])
    assert {0x7E4, 0x7EC, 0x7E2, 0x7EA} <= ids
    requests = frames[frames["arbitration_id"] == 0x7E4]
    assert bytes(requests.iloc[0]["data"]) == bytes.fromhex(
        "04 14 ff ff ff cc cc cc".replace(" ", "")
    )
    bus = next(c for c in heater_run.summary.checks if c.name.startswith("Bus clean"))
    assert bus.verdict == "pass", bus.message


def test_unknown_ecu_and_did_are_exit_2_with_line_and_column(tmp_path) -> None:
    text = (PLANS / "diag.yaml").read_text()
    text = text.replace("ecu: [BMS, MCU], clear_dtcs", "ecu: [BMS, VCU], clear_dtcs")
    text = text.replace("[pack_soh, software_version]", "[pack_soh, sw_version]")
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace("../../dbc", str(PLANS.parent.parent / "dbc")))
    problems = validate_plan(path)
    assert any(p.startswith(f"{path}:11:") and "unknown ECU 'VCU'" in p for p in problems), problems
    assert any(
        p.startswith(f"{path}:16:") and "no DID 'sw_version'" in p and "software_version" in p
        for p in problems
    ), problems
