"""`bench validate` rejects, with file:line:column, what evaluation could only call `error`
(issue 10 item 6), and understands every `after:`/`during:` form."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.test_plan_loader import BASE, at, errors_of, only_error


def with_check(line: str) -> str:
    return BASE + f"  - {line}\n"


@pytest.mark.parametrize(
    ("check", "needle", "reason"),
    [
        ("{name: c, crc: BMS_Temps}", "BMS_Temps}",
         "BMS_Temps has no byte-aligned 8-bit 'CRC' signal to check"),
        ("{name: c, crc: VCU_Thermal}", "VCU_Thermal}",
         "VCU_Thermal has no byte-aligned 8-bit 'CRC' signal to check"),
        ("{name: c, counter: BMS_Temps.MaxCellTemp}", "BMS_Temps.MaxCellTemp}",
         "BMS_Temps.MaxCellTemp is not an alive counter"),
        ("{name: c, cycle_time: BMS_Contactors}", "BMS_Contactors}",
         "BMS_Contactors has no cycle time in its DBC"),
        ("{name: c, timeout: BMS_Contactors, max_gap: 1s}", "BMS_Contactors,",
         "BMS_Contactors has no cycle time in its DBC"),
    ],
)  # fmt: skip
def test_checks_evaluation_could_not_judge_are_refused_at_their_key(
    tmp_path, check, needle, reason
):
    text = with_check(check)
    error = only_error(tmp_path, text)
    assert error.startswith(f"{at(text, needle, text.count(needle))}: ")
    assert reason in error


def test_cycle_time_with_an_explicit_period_is_accepted(tmp_path):
    assert (
        errors_of(tmp_path, with_check("{name: c, cycle_time: BMS_Contactors, period: 1s}")) == []
    )


def test_responds_with_an_unknown_signal_is_refused_at_the_token(tmp_path):
    text = with_check(
        "{name: r, stimulus: VCU_Command.TorqueRequest > 100, "
        "responds: MCU_Status.MotorTorq >= 95, within: 200ms}"
    )
    error = only_error(tmp_path, text)
    assert error.startswith(f"{at(text, 'MCU_Status.MotorTorq ')}: ") and "MotorTorq" in error


@pytest.mark.parametrize(
    "after", ["key_on", "key_on.end", "run_start", 'BMS_Status.HvState == "READY"', "ke*"]
)
def test_after_forms_validate(tmp_path, after):
    text = BASE.replace("after: key_on}", f"after: '{after}'}}")
    assert errors_of(tmp_path, text) == []


@pytest.mark.parametrize(
    ("after", "reason"),
    [
        ("kee_on", "unknown step or event 'kee_on'"),
        ("kee_on.end", "unknown step 'kee_on'"),
        ('BMS_Status.HvState == "READDY"', "no choice 'READDY'"),
        ("BMS_Status.HvState ==", "condition ends too early"),
    ],
)
def test_bad_after_is_refused(tmp_path, after, reason):
    text = BASE.replace("after: key_on}", f"after: '{after}'}}")
    error = only_error(tmp_path, text)
    line = at(text, "after: '").split(":")[0]
    assert reason in error and error.startswith(f"{line}:")


@pytest.mark.parametrize(("during", "ok"), [("[soak]", True), ("['k*']", True), ("['x*']", False)])
def test_during_accepts_globs_that_select_a_step(tmp_path, during, ok):
    text = with_check(f"{{name: c, signal: BMS_Temps.MaxCellTemp, max: 60, during: {during}}}")
    assert (errors_of(tmp_path, text) == []) is ok


def test_bench_validate_exits_2_with_one_line(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(with_check("{name: c, crc: BMS_Temps}"), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "bench.cli", "validate", str(path)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert (
        f"{path}:" in done.stderr + done.stdout and "no byte-aligned" in done.stderr + done.stdout
    )


# -- diagnostic checks (issue 15): unknown ECU, DID, DTC or step at their key ----------------------


@pytest.mark.parametrize(
    ("check", "needle", "reason"),
    [
        ("{name: d, dtc: {ecu: CHARGER, none_with_status: [confirmed]}}", "CHARGER,",
         "unknown ECU 'CHARGER'; known: BMS, MCU"),
        ("{name: d, dtc: {ecu: BMX, none_with_status: [confirmed]}}", "BMX,",
         "unknown ECU 'BMX' (did you mean 'BMS'?); known: BMS, MCU"),
        ("{name: d, dtc: {ecu: BMS, present: heater_failure}}", "heater_failure}",
         "BMS has no DTC 'heater_failure' and it is no DTC label like P0AA6-1A; known: "
         "cell_overtemperature (P0A7E-4B)"),
        ("{name: d, dtc: {ecu: BMS, none_new_since: clear}}", "clear}",
         "unknown step 'clear'"),
        ("{name: d, did: {ecu: MCU, did: pack_soh, min: 80}}", "pack_soh,",
         "MCU has no DID 'pack_soh'; known: ecu_serial_number"),
        ("{name: d, did: {ecu: BMS, did: software_version, min: 1}}", "software_version,",
         "software_version is text (ascii:8): judge it with equals:"),
        ("{name: d, did: {ecu: BMS, did: pack_soh, min: 1}, after: warmup}", "warmup}",
         "unknown step or event 'warmup'"),
    ],
)  # fmt: skip
def test_diagnostic_checks_naming_unknown_things_are_refused_at_their_key(
    tmp_path, check, needle, reason
):
    text = with_check(check)
    error = only_error(tmp_path, text)
    assert error.startswith(f"{at(text, needle)}: "), error
    assert reason in error


def test_diagnostic_checks_of_known_names_are_accepted(tmp_path):
    text = with_check("{name: d, dtc: {ecu: BMS, none_new_since: key_on}}")
    text += "  - {name: e, did: {ecu: BMS, did: pack_soh, min: 80, max: 100}, during: [drive]}\n"
    text += "  - {name: f, dtc: {ecu: MCU, present: P0A3C-4B, with_status: [confirmed]}}\n"
    assert errors_of(tmp_path, text) == []


def test_bench_validate_exits_2_on_an_unknown_ecu(tmp_path):
    from tests.test_plan_loader import write

    path = write(tmp_path, with_check("{name: d, dtc: {ecu: VCU, none_with_status: [confirmed]}}"))
    done = subprocess.run([sys.executable, "-m", "bench.cli", "validate", str(path)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "unknown ECU 'VCU'" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
