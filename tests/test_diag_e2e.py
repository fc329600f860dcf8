"""Diagnostics end to end on the virtual vehicle (issue 15): a plan clears DTCs at the start and
reads them at the end; the DTC checks pass, fail naming the DTC under ``--inject heater_fail``,
and re-evaluating the run directory from its frames alone gives the same verdicts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.evaluate import evaluate_path
from bench.liveview import NullStream
from bench.plan import load_plan
from bench.run import RunOptions, run_plan

PLAN = Path(__file__).parent / "runner_plans" / "diag_checks.yaml"


def _run(out: Path, inject: tuple[str, ...] = ()):
    options = RunOptions(out_dir=out, stream=NullStream(), handle_signals=False, inject=inject)
    return run_plan(load_plan(PLAN), options)


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("diag") / "run")


@pytest.fixture(scope="module")
def heater_run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("diag-heater") / "run", ("heater_fail",))


def _verdicts(summary) -> dict[str, str]:
    return {c.name: c.verdict for c in summary.checks}


def test_clean_run_passes_every_diagnostic_check(clean_run):
    verdicts = _verdicts(clean_run.summary)
    assert verdicts == {
        "No confirmed DTC on the BMS": "pass",
        "No confirmed DTC on the MCU": "pass",
        "No new BMS DTC since clear": "pass",
        "Pack SOH": "pass",
        "No bus errors": "pass",  # ISO-TP frames are diagnostics, not unknown ids
    }
    services = [(e["ecu"], e["service"], e["outcome"]) for e in clean_run.summary.diagnostics]
    assert ("BMS", "ClearDiagnosticInformation", "positive") in services
    assert ("MCU", "ReadDTCInformation", "positive") in services
    assert clean_run.summary.bus["diagnostic_frames"] > 0
    assert clean_run.summary.bus["unknown_ids"] == {}


def test_heater_fail_fails_the_dtc_checks_naming_the_code(heater_run):
    checks = {c.name: c for c in heater_run.summary.checks}
    confirmed = checks["No confirmed DTC on the BMS"]
    assert confirmed.verdict == "fail"
    assert "P1A41-92 heater_circuit_failure" in confirmed.message
    assert "confirmed" in confirmed.message
    assert checks["No new BMS DTC since clear"].verdict == "fail"
    assert checks["No confirmed DTC on the MCU"].verdict == "pass"
    junit = (heater_run.run_dir / "junit.xml").read_text()
    assert "P1A41-92" in junit
    report = (heater_run.run_dir / "report.html").read_text()
    assert "Diagnostics" in report and "P1A41-92 heater_circuit_failure" in report
    # on the step timeline: a diamond per exchange, on the row of the step that sent it
    start = report.index('data-plot="plot-timeline">') + len('data-plot="plot-timeline">')
    figure = json.loads(report[start : report.index("</script>", start)])
    (diamonds,) = [t for t in figure["data"] if t.get("name") == "UDS"]
    assert len(diamonds["x"]) == len(heater_run.summary.diagnostics)
    assert {y.split(". ", 1)[1] for y in diamonds["y"]} == {"clear_dtcs", "read_dtcs_end"}
    assert any("P1A41-92 heater_circuit_failure [test_failed" in t for t in diamonds["text"])


@pytest.mark.parametrize("which", ["clean_run", "heater_run"])
def test_reevaluating_the_archived_run_reproduces_the_verdicts(which, request, tmp_path):
    result = request.getfixturevalue(which)
    archive = tmp_path / "archive"
    shutil.copytree(result.run_dir, archive)
    before = json.loads((archive / "summary.json").read_text())
    for name in ("summary.json", "report.html", "junit.xml"):
        (archive / name).unlink()
    shutil.rmtree(archive / "signals")
    summary, _ = evaluate_path(archive)
    assert _verdicts(summary) == _verdicts(result.summary)
    after = json.loads((archive / "summary.json").read_text())
    assert after["checks"] == before["checks"]
    assert after["diagnostics"] == before["diagnostics"]


def test_an_ecu_that_never_answers_makes_its_check_an_error(tmp_path):
    dbc = Path(__file__).resolve().parents[1] / "dbc"
    text = PLAN.read_text().replace("../../dbc", str(dbc))
    text = text.replace("seed: 7\n", "seed: 7\ndiagnostics: {BCM: {request_id: 0x7E5, "
                        "response_id: 0x7ED}}\n")  # fmt: skip
    text = text.replace("checks:\n", "  - {name: ask_bcm, diag: {ecu: [BCM], read_dtcs: true}}\n"
                        "checks:\n  - {name: BCM DTCs, dtc: {ecu: BCM, none_with_status: "
                        "[confirmed]}}\n")  # fmt: skip
    plan = tmp_path / "silent.yaml"
    plan.write_text(text)
    options = RunOptions(out_dir=tmp_path / "run", stream=NullStream(), handle_signals=False)
    result = run_plan(load_plan(plan), options)
    check = next(c for c in result.summary.checks if c.name == "BCM DTCs")
    assert check.verdict == "error"
    assert "BCM ReadDTCInformation" in check.message and "no_response" in check.message


def test_judged_on_the_addressing_the_run_recorded_not_only_the_plans(clean_run):
    """A run made with a bench profile's [diagnostics.*] ids records them in run_start; judging it
    again elsewhere (no profile) must look for the exchanges on those ids."""
    import pyarrow as pa

    from bench.diag.catalog import plan_ecus
    from bench.evaluate import log_ecus
    from bench.rundir import read_events

    plan = load_plan(PLAN)
    events = read_events(clean_run.run_dir)
    assert log_ecus(plan, events)["BMS"].request_id == 0x7E4  # what the run used
    rows = events.to_pylist()
    for row in rows:
        if row["kind"] == "run_start":
            detail = json.loads(row["detail"])
            detail["diagnostics"]["BMS"] = {
                "request_id": 0x18DA40F1,
                "response_id": 0x18DAF140,
                "addressing": "normal_fixed_29bit",
            }
            row["detail"] = json.dumps(detail)
    moved = log_ecus(plan, pa.Table.from_pylist(rows, schema=events.schema))
    assert (moved["BMS"].request_id, moved["BMS"].addressing) == (0x18DA40F1, "normal_fixed_29bit")
    assert moved["MCU"] == log_ecus(plan, events)["MCU"]
    for row in rows:  # a damaged record: the plan's addressing, never an exception
        if row["kind"] == "run_start":
            row["detail"] = json.dumps(
                {"diagnostics": {"BMS": {"request_id": 0x7E4, "addressing": "x"}}}
            )
    damaged = pa.Table.from_pylist(rows, schema=events.schema)
    assert log_ecus(plan, damaged)["BMS"] == plan_ecus(plan)["BMS"]
