"""The plan loader: a valid plan gives the API others build on; each bad input gives one line
``file:line:column: message`` pointing at the exact place, never a traceback."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bench.errors import InputError
from bench.plan import Plan, load_plan, validate_plan
from bench.plan.checks import RangeCheck, ReachesCheck
from tests.conftest import DBC_DIR

GOOD = Path(__file__).parent / "plans" / "good.yaml"
DBCS = ", ".join(str(DBC_DIR / n) for n in ("battery.dbc", "motor.dbc", "vehicle.dbc"))

BASE = f"""\
name: t
dbc: [{DBCS}]
safe_state:
  - {{message: VCU_Command, signals: {{TorqueRequest: 0, HvRequest: 0}}}}
steps:
  - {{name: soak, ambient_c: -30, duration: 2h}}
  - name: key_on
    send: {{message: VCU_Command, signals: {{KeyOn: 1, HvRequest: 1}}, every: 100ms}}
    until: BMS_Status.HvState == "READY"
    timeout: 30s
  - {{name: drive, duration: 10min}}
checks:
  - {{name: Max cell temperature, signal: BMS_Temps.MaxCellTemp, max: 55, marginal_max: 50}}
  - {{name: Warm, signal: BMS_Temps.MinCellTemp, reaches: ">= 0", within: 25min, after: key_on}}
"""


def write(tmp_path: Path, text: str, name: str = "plan.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def at(text: str, needle: str, occurrence: int = 1) -> str:
    """``L:C`` (1-based) of the start of the n-th ``needle`` in ``text``."""
    index = -1
    for _ in range(occurrence):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    return f"{line}:{index - (text.rfind(chr(10), 0, index) + 1) + 1}"


def errors_of(tmp_path: Path, text: str) -> list[str]:
    return validate_plan(write(tmp_path, text))


def only_error(tmp_path: Path, text: str) -> str:
    errors = errors_of(tmp_path, text)
    assert len(errors) == 1, errors
    path = tmp_path / "plan.yaml"
    assert errors[0].startswith(f"{path}:")
    return errors[0][len(f"{path}:") :]


# -- the good path -------------------------------------------------------------------------------


def test_fixture_plan_loads_with_the_api_others_use():
    plan = load_plan(GOOD)
    assert isinstance(plan, Plan)
    assert plan.name == "Fixture cold start" and plan.site == "Heihe"
    assert plan.path == GOOD
    assert [p.name for p in plan.dbc_paths] == ["battery.dbc", "motor.dbc", "vehicle.dbc"]
    assert all(p.is_absolute() and p.is_file() for p in plan.dbc_paths)
    assert plan.dbcs.has_message("BMS_Status")
    assert plan.source_text == GOOD.read_text(encoding="utf-8")
    assert plan.seed == 7 and plan.bus.interface == "virtual" and plan.bus.bitrate == 500_000
    assert plan.vehicle.ambient_c == -30 and plan.vehicle.initial_temp == -30
    assert plan.vehicle.soc == 60
    assert plan.dut["vin"] == "LTEST000000000001"
    assert plan.safe_state[0].signals == {"TorqueRequest": 0, "HvRequest": 0, "DriveMode": "PARK"}
    assert [s.name for s in plan.steps][:3] == ["soak", "key_on", "warm_up"]
    assert len(plan.checks) == 11
    assert plan.faults[0].expect_fail == ["Pack warms to 0 °C within 25 min of key-on"]


def test_steps_are_typed_and_conditions_bound():
    plan = load_plan(GOOD)
    soak, key_on = plan.step("soak"), plan.step("key_on")
    assert soak.duration == 7200 and soak.environment == {"ambient_c": -30, "solar_w_m2": 0}
    assert key_on.send is not None and key_on.send.every == pytest.approx(0.01)
    assert key_on.until is not None and key_on.until.signals == ["BMS_Status.HvState"]
    assert key_on.until.evaluate({"BMS_Status.HvState": 2})  # "READY" bound to its code
    assert key_on.on_timeout == "abort" and key_on.ends_on == ["until"]
    ramp = plan.step("torque_ramp").ramp
    assert ramp is not None and (ramp.from_, ramp.to, ramp.over) == (0, 80, 20)
    assert plan.step("drive").drive_cycle.profile == "CLTC-P"  # type: ignore[union-attr]
    assert plan.step("park").stop == ["VCU_Thermal"] and plan.step("park").is_instant
    assert plan.step("charge").charge.target_soc == 80  # type: ignore[union-attr]
    assert plan.step("chamber_back").chamber.for_ == 300  # type: ignore[union-attr]
    kinds = [c.kind for c in plan.checks]
    assert set(kinds) == {
        "range",
        "reaches",
        "rate",
        "statistic",
        "cycle_time",
        "timeout",
        "counter",
        "crc",
        "bus",
    }
    warm = plan.check("Pack warms to 0 °C within 25 min of key-on")
    assert isinstance(warm, ReachesCheck) and warm.after == "key_on" and warm.within == 1500


def test_estimated_duration_counts_bounds():
    plan = load_plan(GOOD)
    seconds, exact = plan.estimated_duration()
    # 2h soak + 30s timeout + 25min + 20s ramp + CLTC-P + 1h charge timeout + 2h chamber
    from bench.drive_cycle import load_profile

    cltc = load_profile("CLTC-P").duration
    assert seconds == 7200 + 30 + 1500 + 20 + cltc + 0 + 3600 + 7200
    assert not exact


def test_evaluate_only_plan_and_dbc_override(tmp_path):
    path = write(
        tmp_path,
        "name: e\ndbc: [nowhere.dbc]\nchecks:\n"
        "  - {name: hot, signal: BMS_Temps.MaxCellTemp, max: 55}\n",
    )
    with pytest.raises(InputError, match="DBC file not found"):
        load_plan(path)
    plan = load_plan(path, dbc_paths=[DBC_DIR / "battery.dbc"])
    assert plan.steps == [] and isinstance(plan.checks[0], RangeCheck)
    assert [p.name for p in plan.dbc_paths] == ["battery.dbc"]
    no_dbc = write(tmp_path, "name: e\nchecks: []\n", "nodbc.yaml")
    assert load_plan(no_dbc, dbc_paths=[DBC_DIR / "battery.dbc"]).checks == []


def test_merge_keys_and_anchors_work(tmp_path):
    text = BASE.replace(
        "  - {name: drive, duration: 10min}",
        "  - &hold {name: drive, duration: 10min}\n  - {<<: *hold, name: drive2}",
    )
    plan = load_plan(write(tmp_path, text))
    assert plan.step("drive2").duration == 600


def test_base_plan_is_valid(tmp_path):
    assert errors_of(tmp_path, BASE) == []


# -- one line per problem, at the exact place ------------------------------------------------------


def test_unknown_signal_in_check_points_at_the_value(tmp_path):
    text = BASE.replace("signal: BMS_Temps.MaxCellTemp", "signal: BMS_Temps.MaxCelTemp")
    assert only_error(tmp_path, text) == (
        f"{at(text, 'BMS_Temps.MaxCelTemp')}: unknown signal 'BMS_Temps.MaxCelTemp' "
        "(did you mean 'MaxCellTemp'?)"
    )


def test_unknown_key_with_suggestion(tmp_path):
    text = BASE.replace("ambient_c: -30, duration: 2h", "ambient_c: -30, duraton: 2h")
    assert only_error(tmp_path, text) == (
        f"{at(text, 'duraton')}: unknown key 'duraton' in step 'soak' (did you mean 'duration'?)"
    )


def test_unknown_top_level_key(tmp_path):
    text = BASE + "sead: 3\n"
    assert only_error(tmp_path, text) == (
        f"{at(text, 'sead')}: unknown key 'sead' in the plan (did you mean 'seed'?)"
    )


def test_misspelt_required_key_is_one_error_not_two(tmp_path):
    text = BASE.replace("{name: drive, duration: 10min}", "{nmae: drive, duration: 10min}")
    assert only_error(tmp_path, text) == (
        f"{at(text, 'nmae')}: unknown key 'nmae' in step #3 (did you mean 'name'?)"
    )


def test_misspelt_check_kind_key_is_one_error(tmp_path):
    text = BASE + "  - {name: cyc, cycle_tme: BMS_PackStatus}\n"
    assert only_error(tmp_path, text) == (
        f"{at(text, 'cycle_tme')}: unknown key 'cycle_tme' in check 'cyc' "
        "(did you mean 'cycle_time'?)"
    )


def test_wrong_type_says_what_was_expected(tmp_path):
    text = BASE.replace("max: 55, marginal_max: 50", "max: fast, marginal_max: 50")
    assert only_error(tmp_path, text) == f"{at(text, 'fast')}: expected a number, got 'fast'"


def test_wrong_type_for_text_and_lists(tmp_path):
    text = BASE.replace("name: t", "name: 12")
    assert only_error(tmp_path, text) == f"{at(text, '12')}: expected text, got 12 (quote it: '12')"
    text = BASE.replace("  - {name: drive, duration: 10min}", "  - drive")
    assert only_error(tmp_path, text) == (
        f"{at(text, 'drive')}: expected a mapping (key: value), got 'drive'"
    )


def test_bad_duration(tmp_path):
    text = BASE.replace("duration: 10min", "duration: ten minutes")
    assert only_error(tmp_path, text) == (
        f"{at(text, 'ten minutes')}: expected a duration like 100ms, 2s, 25min or 2h, "
        "got 'ten minutes'"
    )


def test_literal_choice(tmp_path):
    text = BASE.replace("timeout: 30s", "timeout: 30s\n    on_timeout: stop")
    assert only_error(tmp_path, text) == (
        f"{at(text, 'stop')}: expected 'fail' or 'abort', got 'stop'"
    )


def test_missing_required_key_points_at_the_mapping(tmp_path):
    text = BASE.replace("name: t\n", "")
    assert only_error(tmp_path, text) == "1:1: missing key 'name' in the plan"
    text = BASE + "  - {name: cyc, cycle_time: BMS_PackStatus, max_violations: -1}\n"
    assert only_error(tmp_path, text) == f"{at(text, '-1')}: must be at least 0, got -1"


def test_yaml_syntax_error_has_its_position(tmp_path):
    text = BASE.replace("  - {name: drive, duration: 10min}", "  - {name: drive, duration: 10min")
    (error,) = errors_of(tmp_path, text)
    assert error.startswith(f"{tmp_path / 'plan.yaml'}:12:") and "invalid YAML" in error
    assert "Traceback" not in error and "\n" not in error


def test_tab_indentation_is_a_yaml_error(tmp_path):
    (error,) = errors_of(tmp_path, BASE + "\tseed: 3\n")
    assert f":{BASE.count(chr(10)) + 1}:1: invalid YAML" in error


def test_duplicate_key_is_an_error(tmp_path):
    text = BASE.replace("timeout: 30s", "timeout: 30s\n    timeout: 60s")
    assert only_error(tmp_path, text) == (
        f"{at(text, 'timeout', 2)}: duplicate key 'timeout' in step 'key_on' (first at line 10)"
    )


def test_duplicate_step_and_check_names(tmp_path):
    text = BASE.replace("name: drive,", "name: soak,")
    assert only_error(tmp_path, text) == (
        f"{at(text, 'soak', 2)}: duplicate step name 'soak' (first at line 6)"
    )
    text = BASE.replace("name: Warm,", "name: Max cell temperature,")
    assert only_error(tmp_path, text) == (
        f"{at(text, 'Max cell temperature', 2)}: duplicate check name 'Max cell temperature' "
        "(first at line 13)"
    )


def test_impossible_limits_point_at_the_check(tmp_path):
    text = BASE.replace("max: 55, marginal_max: 50", "min: 60, max: 55")
    assert only_error(tmp_path, text) == (
        f"{at(text, '{name: Max cell')}: check 'Max cell temperature': "
        "min (60) is greater than max (55)"
    )


def test_unknown_message_and_signal_in_send(tmp_path):
    text = BASE.replace(
        "{message: VCU_Command, signals: {KeyOn", "{message: VCU_Comand, signals: {KeyOn"
    )
    assert only_error(tmp_path, text) == (
        f"{at(text, 'VCU_Comand')}: unknown message 'VCU_Comand' (did you mean 'VCU_Command'?)"
    )
    text = BASE.replace("{KeyOn: 1, HvRequest: 1}", "{KeyOn: 1, HvReqest: 1}")
    assert only_error(tmp_path, text) == (
        f"{at(text, 'HvReqest')}: unknown signal 'VCU_Command.HvReqest' (did you mean 'HvRequest'?)"
    )


def test_choice_names_and_ranges_of_sent_values(tmp_path):
    text = BASE.replace("{KeyOn: 1, HvRequest: 1}", "{KeyOn: 1, DriveMode: DRVE}")
    assert only_error(tmp_path, text) == (
        f"{at(text, 'DRVE')}: VCU_Command.DriveMode has no choice 'DRVE' (did you mean 'DRIVE'?)"
    )
    text = BASE.replace("{TorqueRequest: 0, HvRequest: 0}", "{TorqueRequest: 900, HvRequest: 0}")
    assert only_error(tmp_path, text) == (
        f"{at(text, '900')}: 900 is outside the range of VCU_Command.TorqueRequest: -450 to 450 Nm"
    )
    text = BASE.replace("{KeyOn: 1, HvRequest: 1}", "{KeyOn: HIGH}")
    assert only_error(tmp_path, text) == (
        f"{at(text, 'HIGH')}: VCU_Command.KeyOn has no choices: expected a number, got 'HIGH'"
    )
    # YAML 1.1 booleans are 1 and 0 for one-bit flags
    plan = load_plan(write(tmp_path, BASE.replace("{KeyOn: 1, HvRequest: 1}", "{KeyOn: on}")))
    assert plan.step("key_on").send.signals == {"KeyOn": 1.0}  # type: ignore[union-attr]


def test_counter_and_crc_are_never_listed(tmp_path):
    text = BASE.replace("{KeyOn: 1, HvRequest: 1}", "{KeyOn: 1, CRC: 12}")
    assert only_error(tmp_path, text) == (
        f"{at(text, 'CRC')}: CRC is filled in automatically (alive counter / CRC8): leave it out"
    )


def test_condition_errors_point_at_the_token(tmp_path):
    # plain scalar
    text = BASE.replace(
        'until: BMS_Status.HvState == "READY"', 'until: BMS_Status.HvState == "REDY"'
    )
    assert only_error(tmp_path, text) == (
        f"{at(text, chr(34) + 'REDY')}: BMS_Status.HvState has no choice 'REDY' "
        "(did you mean 'READY'?)"
    )
    # quoted scalar: the column counts the quote
    text = BASE.replace(
        'until: BMS_Status.HvState == "READY"',
        'until: "BMS_Status.HvState == 2 and BMS_Temps.MaxCelTemp > 3"',
    )
    assert only_error(tmp_path, text).startswith(f"{at(text, 'BMS_Temps.MaxCelTemp')}: unknown")
    # parse error inside a single-quoted scalar with an escaped quote
    text = BASE.replace(
        'until: BMS_Status.HvState == "READY"', "until: 'BMS_Status.HvState == ''READY'' and ) '"
    )
    assert only_error(tmp_path, text) == f"{at(text, ') ')}: unexpected ')': expected a " + (
        'value (a number, Message.Signal, a "choice name", abs/min/max or "(")'
    )


def test_condition_in_a_folded_block_points_at_the_right_line(tmp_path):
    text = BASE.replace(
        'until: BMS_Status.HvState == "READY"',
        'until: >-\n      BMS_Status.HvState == "READY" and\n      BMS_Temps.MaxCelTemp > 3',
    )
    assert only_error(tmp_path, text).startswith(f"{at(text, 'BMS_Temps.MaxCelTemp')}: unknown")


def test_reaches_with_subject_points_into_the_value(tmp_path):
    # the offset is within the text as written, not within "Signal >= …" it stands for
    text = BASE.replace('reaches: ">= 0"', 'reaches: ">= 0 and %"')
    assert only_error(tmp_path, text) == f"{at(text, '%')}: unexpected character '%'"
    text = BASE.replace('reaches: ">= 0"', 'reaches: ">= 2 * (1 +"')
    assert only_error(tmp_path, text).startswith(
        f"{at(text, '+')[:-2]}{int(at(text, '+')[-2:]) + 1}: condition ends too early after '+'"
    )
    text = BASE.replace('reaches: ">= 0"', 'reaches: ">= ("')
    assert only_error(tmp_path, text).startswith(
        f"{at(text, '(')[:-2]}{int(at(text, '(')[-2:]) + 1}: condition ends too early after '('"
    )


def test_step_and_event_references(tmp_path):
    text = BASE.replace("after: key_on", "after: key_onn")
    assert only_error(tmp_path, text) == (
        f"{at(text, 'key_onn')}: unknown step or event 'key_onn' (did you mean 'key_on'?)"
    )
    assert errors_of(tmp_path, BASE.replace("after: key_on", "after: run_start")) == []
    text = BASE.replace("max: 55, marginal_max: 50", "max: 55, during: [soak, drve]")
    assert only_error(tmp_path, text) == (
        f"{at(text, 'drve')}: unknown step 'drve' (did you mean 'drive'?)"
    )


def test_step_end_rules(tmp_path):
    text = BASE.replace("  - {name: drive, duration: 10min}", "  - {name: drive}")
    assert only_error(tmp_path, text) == f"{at(text, '{name: drive}')}: step 'drive': " + (
        "does nothing: give it duration, until, send, ramp, drive_cycle, drive, charge, chamber, "
        "diag, ambient_c or stop"
    )
    text = BASE.replace("    timeout: 30s\n", "")
    assert only_error(tmp_path, text) == (
        f"{at(text, 'until')}: step 'key_on': until needs a timeout (e.g. timeout: 5min)"
    )
    text = BASE.replace(
        "{name: drive, duration: 10min}",
        "{name: drive, send: {message: VCU_Thermal, every: 100ms}}",
    )
    assert only_error(tmp_path, text) == f"{at(text, 'send: {message: VCU_Thermal')}: " + (
        "step 'drive': a periodic send needs a step that lasts: add duration or until"
    )
    text = BASE.replace(
        "{name: drive, duration: 10min}", "{name: drive, duration: 1s, timeout: 2s}"
    )
    assert "timeout bounds until" in only_error(tmp_path, text)
    # a step that only sends once, sets the environment or stops sends completes at once
    once = BASE.replace(
        "{name: drive, duration: 10min}",
        "{name: drive, send: {message: VCU_Thermal}, stop: [VCU_Command]}",
    )
    assert errors_of(tmp_path, once) == []


def test_stop_needs_a_running_periodic_send(tmp_path):
    text = BASE.replace("{name: drive, duration: 10min}", "{name: drive, stop: [VCU_Thermal]}")
    assert only_error(tmp_path, text) == (
        f"{at(text, 'VCU_Thermal')}: stop 'VCU_Thermal': no periodic send of it was started "
        "by an earlier step"
    )


def test_ramp_and_environment_ranges(tmp_path):
    text = BASE.replace(
        "{name: drive, duration: 10min}",
        "{name: drive, ramp: {message: VCU_Command, signal: TorqueRequest, from: 0, to: 500, "
        "over: 10s}}",
    )
    assert only_error(tmp_path, text) == (
        f"{at(text, '500')}: 500 is outside the range of VCU_Command.TorqueRequest: -450 to 450 Nm"
    )
    text = BASE.replace("ambient_c: -30", "ambient_c: -80")
    assert only_error(tmp_path, text) == (
        f"{at(text, '-80')}: -80 is outside the range of VCU_Ambient.AmbientTemp: -50 to 70 degC"
    )


def test_drive_cycle_profiles(tmp_path):
    text = BASE.replace(
        "{name: drive, duration: 10min}", "{name: drive, drive_cycle: {profile: CLTC}}"
    )
    assert only_error(tmp_path, text) == (
        f"{at(text, 'CLTC}')}: unknown drive cycle 'CLTC' (did you mean 'CLTC-P'?); "
        "built-in: CLTC-P, or a .csv file"
    )
    csv_text = BASE.replace(
        "{name: drive, duration: 10min}",
        "{name: drive, drive_cycle: {profile: hill.csv, repeat: 2}}",
    )
    assert "hill.csv: drive cycle not found" in only_error(tmp_path, csv_text)
    (tmp_path / "hill.csv").write_text("time_s,speed_kmh\n0,0\n10,30\n20,0\n")
    plan = load_plan(write(tmp_path, csv_text))
    assert plan.step("drive").estimated_duration(tmp_path) == (40, True)
    (tmp_path / "hill.csv").write_text("time_s,speed_kmh\n0,0\n10,30\n5,0\n")
    assert only_error(tmp_path, csv_text) == (
        f"{at(csv_text, 'hill.csv')}: {tmp_path / 'hill.csv'}: times must increase and speeds "
        "be >= 0, with two rows or more"
    )
    # any case for a built-in name, as the runner accepts it
    assert errors_of(tmp_path, csv_text.replace("hill.csv", "cltc-p")) == []


def test_faults_name_existing_checks(tmp_path):
    text = BASE + "faults:\n  - {inject: 'heater_fail', expect_fail: [Wram], why: no heat}\n"
    assert only_error(tmp_path, text) == (
        f"{at(text, 'Wram')}: unknown check 'Wram' (did you mean 'Warm'?)"
    )


def test_dbc_problems(tmp_path):
    text = BASE.replace(f"dbc: [{DBCS}]", "dbc: [../nowhere/battery.dbc]")
    assert only_error(tmp_path, text).startswith(f"{at(text, '../nowhere')}: DBC file not found")
    broken = tmp_path / "broken.dbc"
    broken.write_text('VERSION ""\n\nBO_ abc Broken: 8 X\n')
    (error,) = validate_plan(write(tmp_path, BASE.replace(f"dbc: [{DBCS}]", "dbc: [broken.dbc]")))
    assert error == f"{broken}:3:5: invalid DBC syntax near 'abc Broken: 8 X'"


def test_every_problem_is_listed_once(tmp_path):
    text = (
        BASE.replace("duration: 2h", "duraton: 2h")
        .replace("max: 55, marginal_max: 50", "max: fast")
        .replace("after: key_on", "after: nowhere")
    )
    errors = errors_of(tmp_path, text)
    assert [e.split(": ", 1)[1].split(" ")[0] for e in errors] == ["unknown", "expected", "unknown"]
    assert len(set(errors)) == len(errors)


def test_load_plan_raises_the_first_problem_as_one_line(tmp_path):
    text = BASE.replace("duration: 2h", "duraton: 2h").replace("max: 55", "max: fast")
    path = write(tmp_path, text)
    with pytest.raises(InputError) as caught:
        load_plan(path)
    assert str(caught.value) == validate_plan(path)[0]
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "the plan is empty"),
        ("- a\n- b\n", "expected a mapping of plan keys, got a list"),
        ("name: [unclosed\n", "invalid YAML"),
        ("a: &x [*x]\n", ""),
        ("name: !!python/object:os.system x\n", "invalid YAML"),
    ],
)
def test_odd_files_are_one_line_errors(tmp_path, content, expected):
    errors = validate_plan(write(tmp_path, content))
    assert errors and all("\n" not in e for e in errors)
    assert expected in errors[0]


def test_missing_and_unreadable_files(tmp_path):
    assert validate_plan(tmp_path / "none.yaml") == [
        f"{tmp_path / 'none.yaml'}: plan file not found"
    ]
    (tmp_path / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    assert validate_plan(tmp_path / "latin1.yaml") == [
        f"{tmp_path / 'latin1.yaml'}: not a UTF-8 text file"
    ]


def test_a_key_of_another_check_kind_says_which_kind(tmp_path):
    text = BASE.replace("max: 55, marginal_max: 50", "max: 55, within: 2s")
    assert only_error(tmp_path, text) == (
        f"{at(text, 'within')}: unknown key 'within' in check 'Max cell temperature': "
        "a range check has no 'within' (it goes with reaches and responds checks)"
    )


def test_misspelt_kind_key_hides_the_rest_of_that_check(tmp_path):
    text = BASE.replace('reaches: ">= 0"', 'reaches_: ">= 0"')
    assert only_error(tmp_path, text) == (
        f"{at(text, 'reaches_')}: unknown key 'reaches_' in check 'Warm' (did you mean 'reaches'?)"
    )


def test_unknown_signal_compared_with_a_choice(tmp_path):
    text = BASE.replace(
        'until: BMS_Status.HvState == "READY"', 'until: BMS_Statu.HvState == "READY"'
    )
    assert only_error(tmp_path, text) == (
        f"{at(text, 'BMS_Statu.')}: unknown message 'BMS_Statu' (did you mean 'BMS_Status'?)"
    )


def test_reaches_operator_form_needs_a_signal(tmp_path):
    text = BASE.replace("{name: Warm, signal: BMS_Temps.MinCellTemp,", "{name: Warm,")
    assert only_error(tmp_path, text) == (
        f"{at(text, '>= 0')}: '>= 0' compares nothing: add signal: Message.Signal"
    )
    text = BASE.replace("{name: Warm, signal: BMS_Temps.MinCellTemp,", "{name: Warm, signal: [1],")
    assert only_error(tmp_path, text) == f"{at(text, '[1]')}: expected text, got a list"


def test_fault_injections_use_the_run_grammar(tmp_path):
    text = BASE + "faults:\n  - {inject: 'heater_failure', expect_fail: [Warm], why: no heat}\n"
    error = only_error(tmp_path, text)
    assert error.startswith(f"{at(text, chr(39) + 'heater_failure')}: fault 'heater_failure': ")
    assert "unknown kind 'heater_failure' (did you mean 'heater_fail'?)" in error
    good = BASE + "faults:\n  - {inject: 'stop:BMS_Status@60s', expect_fail: [Warm], why: x}\n"
    assert errors_of(tmp_path, good) == []


def test_fd_frames_need_an_fd_bus(tmp_path):
    frame = "{message: BMS_ModuleData, signals: {ModuleIndex: 0, CellVolt01: 3.7}}"
    text = BASE.replace("{name: drive, duration: 10min}", f"{{name: drive, send: {frame}}}")
    assert only_error(tmp_path, text) == (
        f"{at(text, 'BMS_ModuleData')}: BMS_ModuleData is a CAN FD frame: set bus: {{fd: true}}"
    )
    assert errors_of(tmp_path, text + "bus: {fd: true}\n") == []


def test_multiplexed_frames_need_their_page(tmp_path):
    def step(signals: str) -> str:
        frame = f"{{message: BMS_Identity, signals: {{{signals}}}}}"
        return BASE.replace("{name: drive, duration: 10min}", f"{{name: drive, send: {frame}}}")

    assert errors_of(tmp_path, step("InfoPage: 0, SwMajor: 2")) == []
    text = step("InfoPage: 1, SwMajor: 2")
    assert only_error(tmp_path, text) == (
        f"{at(text, 'SwMajor')}: SwMajor is not on page InfoPage=1 of BMS_Identity (it is on 0)"
    )
    text = step("SwMajor: 2")
    assert only_error(tmp_path, text) == (
        f"{at(text, '{SwMajor')}: BMS_Identity is multiplexed: give InfoPage"
    )


def test_crlf_plans_keep_their_text_and_positions(tmp_path):
    text = BASE.replace("signal: BMS_Temps.MaxCellTemp", "signal: BMS_Temps.MaxCelTemp")
    path = tmp_path / "plan.yaml"
    path.write_bytes(text.replace("\n", "\r\n").encode())
    (error,) = validate_plan(path)
    assert error.startswith(f"{path}:{at(text, 'BMS_Temps.MaxCelTemp')}: unknown signal")
    path.write_bytes(BASE.replace("\n", "\r\n").encode())
    assert load_plan(path).source_text == BASE.replace("\n", "\r\n")


def test_unknown_keys_in_nested_mappings(tmp_path):
    text = BASE.replace("every: 100ms}", "evry: 100ms}")
    assert only_error(tmp_path, text) == (
        f"{at(text, 'evry')}: unknown key 'evry' in 'send' of step 'key_on' (did you mean 'every'?)"
    )
    text = BASE + "  - {name: Clean, bus: {max_error_framez: 1}}\n"
    assert only_error(tmp_path, text) == (
        f"{at(text, 'max_error_framez')}: unknown key 'max_error_framez' in 'bus' of check "
        "'Clean' (did you mean 'max_error_frames'?)"
    )
    text = BASE + "vehicle: {socc: 3}\n"
    assert only_error(tmp_path, text) == (
        f"{at(text, 'socc')}: unknown key 'socc' in 'vehicle' (did you mean 'soc'?)"
    )


def test_event_names_are_reserved(tmp_path):
    text = BASE.replace("name: drive,", "name: run_start,")
    assert only_error(tmp_path, text) == (
        f"{at(text, 'run_start')}: step name 'run_start' is reserved for an event"
    )


def test_arithmetic_conditions_load_and_point_at_their_bad_token(tmp_path):
    good = BASE.replace(
        "max: 55, marginal_max: 50}",
        "max: 55, marginal_max: 50, "
        "when: 'abs(MCU_Status.MotorTorque - VCU_Command.TorqueRequest) > 20'}",
    )
    assert errors_of(tmp_path, good) == []
    unknown = good.replace("VCU_Command.TorqueRequest)", "VCU_Command.TorqueRequst)")
    assert only_error(tmp_path, unknown).startswith(
        f"{at(unknown, 'VCU_Command.TorqueRequst')}: unknown signal"
    )
    dangling = good.replace("TorqueRequest) > 20", "TorqueRequest) > 20 *")
    assert only_error(tmp_path, dangling) == (
        f"{at(dangling, ''''}''')}: condition ends too early after '*': expected a value "
        '(a number, Message.Signal, a "choice name", abs/min/max or "(")'
    )
    chained = good.replace("> 20", "> 20 > 3")
    assert only_error(tmp_path, chained) == (
        f"{at(chained, '> 3')}: unexpected '>': comparisons do not chain (write 'a < b and b < c')"
    )
