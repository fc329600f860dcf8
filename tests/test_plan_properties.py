"""Properties of the plan loader (hypothesis).

* Random valid plans, written as YAML in any style, load to the same model they were built from.
* One random mutation -- a key misspelt, a value of the wrong type, a signal name misspelt (as a
  check's subject, a sent signal or a token in a condition) -- always gives exactly one problem,
  one line ``file:L:C: …``, with L:C on the mutated text in the YAML; never another exception.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.dbc import DbcSet
from bench.e2e import crc_byte_index
from bench.errors import InputError
from bench.plan import Plan, load_plan, validate_plan
from tests.conftest import DBC_DIR

DBC_PATHS = [str(DBC_DIR / n) for n in ("battery.dbc", "motor.dbc", "vehicle.dbc")]
DBCS = DbcSet.load(DBC_PATHS)
SKIP = {"AliveCounter", "CRC"}
SIGNALS = [
    (m.name, s)
    for m in DBCS.messages
    for s in m.signals
    if not m.is_multiplexed() and s.name not in SKIP and s.minimum is not None
]
CHOICE_SIGNALS = [(m, s) for m, s in SIGNALS if s.choices]
CYCLIC = [m.name for m in DBCS.messages if DbcSet.is_cyclic(m)]
COUNTERS = [
    f"{m.name}.AliveCounter" for m in DBCS.messages if "AliveCounter" in [s.name for s in m.signals]
]
CRC_MESSAGES = [m.name for m in DBCS.messages if crc_byte_index(m) is not None]
VCU_COMMAND = DBCS.message("VCU_Command")

PROFILE = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

names = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789_- :#", min_size=1, max_size=12
).filter(
    lambda name: name != "run_start"  # reserved for the event
)
durations = st.sampled_from(["100ms", "2s", "1.5s", "25min", "2h", "1h30min", 30, 0.5])


def number_in(signal: Any) -> st.SearchStrategy[float]:
    return st.integers(int(signal.minimum), int(signal.maximum)).map(float)


@st.composite
def conditions(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        if CHOICE_SIGNALS and draw(st.booleans()):
            message, signal = draw(st.sampled_from(CHOICE_SIGNALS))
            choice = draw(st.sampled_from([str(c) for c in signal.choices.values()]))
            op = draw(st.sampled_from(["==", "!="]))
            parts.append(f'{message}.{signal.name} {op} "{choice}"')
        else:
            message, signal = draw(st.sampled_from(SIGNALS))
            op = draw(st.sampled_from(["<", "<=", ">", ">=", "=="]))
            parts.append(f"{message}.{signal.name} {op} {draw(number_in(signal)):g}")
    joiner = draw(st.sampled_from([" and ", " or "]))
    return joiner.join(parts)


@st.composite
def command_signals(draw: st.DrawFn) -> dict[str, Any]:
    chosen = draw(
        st.lists(
            st.sampled_from(["KeyOn", "HvRequest", "DriveMode", "TorqueRequest"]),
            min_size=1,
            max_size=4,
            unique=True,
        )
    )
    values: dict[str, Any] = {}
    for name in chosen:
        signal = VCU_COMMAND.get_signal_by_name(name)
        if signal.choices and draw(st.booleans()):
            values[name] = draw(st.sampled_from([str(c) for c in signal.choices.values()]))
        else:
            values[name] = draw(number_in(signal))
    return values


@st.composite
def steps(draw: st.DrawFn, name: str) -> dict[str, Any]:
    kind = draw(st.sampled_from(["wait", "until", "ramp", "drive", "charge", "chamber", "once"]))
    step: dict[str, Any] = {"name": name}
    if kind == "wait":
        step["duration"] = draw(durations)
        if draw(st.booleans()):
            step["ambient_c"] = draw(st.integers(-50, 70))
    elif kind == "until":
        step["send"] = {
            "message": "VCU_Command",
            "signals": draw(command_signals()),
            "every": "10ms",
        }
        step["until"] = draw(conditions())
        step["timeout"] = draw(durations)
        step["on_timeout"] = draw(st.sampled_from(["fail", "abort"]))
    elif kind == "ramp":
        step["ramp"] = {
            "message": "VCU_Command",
            "signal": "TorqueRequest",
            "from": draw(st.integers(-450, 450)),
            "to": draw(st.integers(-450, 450)),
            "over": "20s",
            "every": "100ms",
        }
    elif kind == "drive":
        step["drive_cycle"] = {
            "profile": "CLTC-P",
            "repeat": draw(st.integers(1, 3)),
            "speed_scale": draw(st.sampled_from([0.5, 1.0, 1.2])),
        }
    elif kind == "charge":
        step["charge"] = {
            "current_a": draw(st.integers(1, 600)),
            "voltage_limit_v": 820,
            "target_soc": draw(st.integers(10, 100)),
        }
        step["timeout"] = "2h"
    elif kind == "chamber":
        step["chamber"] = {"set_c": draw(st.integers(-40, 60)), "stable_within": 0.5, "for": "5min"}
    else:
        step["send"] = {"message": "VCU_Command", "signals": draw(command_signals())}
    return step


@st.composite
def checks(draw: st.DrawFn, name: str, step_names: list[str]) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(
            [
                "range",
                "reaches",
                "cycle_time",
                "counter",
                "statistic",
                "rate",
                "timeout",
                "crc",
                "bus",
            ]
        )
    )
    message, signal = draw(st.sampled_from(SIGNALS))
    reference = f"{message}.{signal.name}"
    check: dict[str, Any] = {"name": name}
    if kind in ("range", "statistic"):
        low, high = sorted(draw(st.lists(number_in(signal), min_size=2, max_size=2)))
        check.update({"signal": reference, "min": low, "max": high})
        if kind == "statistic":
            check["statistic"] = draw(st.sampled_from(["mean", "max", "median"]))
        elif draw(st.booleans()):
            check["when"] = draw(conditions())
        if step_names and draw(st.booleans()):
            check["during"] = draw(st.lists(st.sampled_from(step_names), min_size=1, max_size=2))
    elif kind == "reaches":
        check.update(
            {
                "signal": reference,
                "reaches": f">= {draw(number_in(signal)):g}",
                "within": draw(durations),
            }
        )
        check["after"] = draw(st.sampled_from([*step_names, "run_start"]))
    elif kind == "cycle_time":
        check.update({"cycle_time": draw(st.sampled_from(CYCLIC)), "tolerance": "10%"})
    elif kind == "rate":
        check.update({"signal": reference, "max_rate": draw(st.integers(1, 1000)), "over": "1s"})
    elif kind == "timeout":
        check.update({"timeout": draw(st.sampled_from(CYCLIC)), "max_gap": "500ms"})
    elif kind == "crc":
        check["crc"] = draw(st.sampled_from(CRC_MESSAGES))
    elif kind == "bus":
        check["bus"] = {"max_error_frames": draw(st.integers(0, 5)), "max_unknown_ids": 0}
    else:
        check["counter"] = draw(st.sampled_from(COUNTERS))
    if draw(st.booleans()):
        check["abort"] = draw(st.booleans())
    return check


@st.composite
def plans(draw: st.DrawFn) -> dict[str, Any]:
    step_names = draw(st.lists(names, min_size=0, max_size=5, unique_by=str.strip))
    check_names = draw(st.lists(names, min_size=1, max_size=5, unique=True))
    plan: dict[str, Any] = {"name": draw(names), "dbc": DBC_PATHS}
    if draw(st.booleans()):
        plan["site"] = draw(st.sampled_from(["Heihe", "Turpan"]))
    if draw(st.booleans()):
        plan["bus"] = {"interface": "virtual", "channel": "bench0", "bitrate": 500000}
    if draw(st.booleans()):
        plan["vehicle"] = {
            "ambient_c": draw(st.integers(-40, 50)),
            "soc": draw(st.integers(0, 100)),
        }
    if draw(st.booleans()):
        plan["seed"] = draw(st.integers(0, 2**31))
    if draw(st.booleans()):
        plan["safe_state"] = [{"message": "VCU_Command", "signals": {"TorqueRequest": 0}}]
    plan["steps"] = [draw(steps(name)) for name in step_names]
    plan["checks"] = [draw(checks(name, step_names)) for name in check_names]
    if draw(st.booleans()):
        plan["faults"] = [
            {
                "inject": draw(st.sampled_from(["heater_fail", "stop:BMS_Status@60s+5s"])),
                "expect_fail": [check_names[0]],
                "why": "the reason",
            }
        ]
    return plan


def dump(data: dict[str, Any], style: tuple[bool | None, int]) -> str:
    flow, width = style
    return yaml.safe_dump(
        data, sort_keys=False, default_flow_style=flow, width=width, allow_unicode=True
    )


styles = st.tuples(st.sampled_from([False, None, True]), st.sampled_from([40, 80, 1000]))


def write(text: str) -> Path:
    directory = Path(tempfile.mkdtemp(prefix="plan-prop-"))
    path = directory / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# -- round trip ------------------------------------------------------------------------------------


@PROFILE
@given(plans(), styles)
def test_valid_plans_round_trip(data, style):
    text = dump(data, style)
    path = write(text)
    assert validate_plan(path) == []
    plan = load_plan(path)
    expected = Plan.model_validate(data)
    assert plan.model_dump(mode="json") == expected.model_dump(mode="json")
    assert plan.source_text == text
    assert [s.name for s in plan.steps] == [s["name"] for s in data["steps"]]


# -- mutations -------------------------------------------------------------------------------------


def typo(word: str, draw: st.DrawFn) -> str:
    """Double one letter: close enough for a "did you mean", never the word itself."""
    index = draw(st.integers(0, len(word) - 1))
    return word[: index + 1] + word[index] + word[index + 1 :]


def mappings(data: Any, path: tuple = ()) -> list[tuple]:
    """Paths of the mappings whose keys belong to the plan format (not dut/bench/signals)."""
    found = []
    if isinstance(data, dict):
        found.append(path)
        for key, value in data.items():
            if key not in ("dut", "bench", "signals"):
                found += mappings(value, (*path, key))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            found += mappings(item, (*path, index))
    return found


def get(data: Any, path: tuple) -> Any:
    for part in path:
        data = data[part]
    return data


@st.composite
def renamed_key(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    data = draw(plans())
    mapping = get(data, draw(st.sampled_from(mappings(data))))
    key = draw(st.sampled_from(sorted(mapping)))
    new = typo(key, draw)
    items = [(new if k == key else k, v) for k, v in mapping.items()]
    mapping.clear()
    mapping.update(items)
    return data, new


WRONG = {
    # field: (replacement, what the error position must show)
    "duration": ("fast", "fast"),
    "timeout": ("fast", "fast"),
    "every": ("fast", "fast"),
    "min": ("fast", "fast"),
    "max": ("fast", "fast"),
    "ambient_c": ("warm", "warm"),
    "current_a": ("lots", "lots"),
    "repeat": (2.5, "2.5"),
    "seed": ("abc", "abc"),
    "bitrate": ("fast", "fast"),
    "soc": ("full", "full"),
    "abort": ("maybe", "maybe"),
    "on_timeout": ("later", "later"),
    "within": ("soon", "soon"),
    "message": ([1, 2], None),
    "signal": ([1, 2], None),
    "name": ([1, 2], None),
    "during": ("drive", "drive"),
    "profile": ([1], None),
    "max_gap": ("fast", "fast"),
    "max_rate": ("steep", "steep"),
    "max_error_frames": ("many", "many"),
    "set_c": ("cold", "cold"),
    "expect_fail": ("everything", "everything"),
    "inject": ([1], None),
    "why": ({"a": 1}, "a"),
}


def fields(data: Any, path: tuple = ()) -> list[tuple]:
    found = []
    if isinstance(data, dict):
        for key, value in data.items():
            if key in WRONG:
                found.append((*path, key))
            if key not in ("dut", "bench", "signals"):
                found += fields(value, (*path, key))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            found += fields(item, (*path, index))
    return found


@st.composite
def wrong_type(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    data = draw(plans())
    path = draw(st.sampled_from(fields(data)))
    value, shown = WRONG[path[-1]]
    get(data, path[:-1])[path[-1]] = value
    return data, shown if shown is not None else "["  # a list: flow "[" or block "-"


@st.composite
def misspelt_signal(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    data = draw(plans())
    places = [
        ("checks", i, k)
        for i, c in enumerate(data["checks"])
        for k in ("signal", "counter", "when")
        if k in c
    ]
    places += [("steps", i, "until") for i, s in enumerate(data["steps"]) if "until" in s]
    places += [("steps", i, "send", "signals") for i, s in enumerate(data["steps"]) if "send" in s]
    place = draw(st.sampled_from(places)) if places else None
    if place is None:  # no signal to misspell: add a check that has one
        data["checks"].append({"name": "extra check", "signal": "BMS_Temps.MaxCellTemp", "max": 9})
        place = ("checks", len(data["checks"]) - 1, "signal")
    parent = get(data, place[:-1])
    if place[-1] == "signals":  # a key of the signals mapping
        signals = parent["signals"]
        old = draw(st.sampled_from(sorted(signals)))
        new = typo(old, draw)
        parent["signals"] = {new if k == old else k: v for k, v in signals.items()}
        return data, new
    text = parent[place[-1]]
    references = re.findall(r"[A-Za-z_]\w*\.[A-Za-z_]\w*", text)
    old = draw(st.sampled_from(references))
    message, signal = old.split(".")
    new = f"{message}.{typo(signal, draw)}"
    parent[place[-1]] = text.replace(old, new, 1)
    return data, new


def assert_one_error_at(text: str, path: Path, shown: str) -> None:
    errors = validate_plan(path)
    assert len(errors) == 1, errors
    with_pos = re.fullmatch(rf"{re.escape(str(path))}:(\d+):(\d+): (.+)", errors[0])
    assert with_pos, errors[0]
    line, column = int(with_pos[1]), int(with_pos[2])
    source_line = text.splitlines()[line - 1]
    here = source_line[column - 1 :]
    assert here.lstrip("'\"-[{ ").startswith(shown.lstrip("[")) or here.startswith(shown), (
        errors[0],
        source_line,
    )
    try:
        load_plan(path)
    except InputError as exc:
        assert str(exc) == errors[0]
    else:
        raise AssertionError("load_plan accepted a mutated plan")


@PROFILE
@given(renamed_key(), styles)
def test_a_misspelt_key_is_one_error_at_the_key(mutation, style):
    data, new = mutation
    text = dump(data, style)
    path = write(text)
    errors = validate_plan(path)
    assert len(errors) == 1, errors
    assert f"unknown key {new!r}" in errors[0] and "did you mean" in errors[0]
    assert_one_error_at(text, path, new)


@PROFILE
@given(wrong_type(), styles)
def test_a_wrong_type_is_one_error_at_the_value(mutation, style):
    data, shown = mutation
    text = dump(data, style)
    assert_one_error_at(text, write(text), shown)


@PROFILE
@given(misspelt_signal(), styles)
def test_a_misspelt_signal_is_one_error_at_the_name(mutation, style):
    data, new = mutation
    text = dump(data, style)
    path = write(text)
    assert_one_error_at(text, path, new)
    assert "unknown signal" in validate_plan(path)[0]


GOOD_TEXT = (Path(__file__).parent / "plans" / "good.yaml").read_text(encoding="utf-8")
FUZZ_DIR = Path(tempfile.mkdtemp(prefix="plan-fuzz-"))
(FUZZ_DIR / "dbc").symlink_to(DBC_DIR)  # good.yaml names ../../dbc/*.dbc
(FUZZ_DIR / "tests" / "plans").mkdir(parents=True)


@PROFILE
@given(st.integers(0, len(GOOD_TEXT)), st.integers(0, 20), st.text(max_size=12))
def test_any_edit_of_a_plan_gives_lines_never_an_exception(start, cut, inserted):
    text = GOOD_TEXT[:start] + inserted + GOOD_TEXT[start + cut :]
    path = FUZZ_DIR / "tests" / "plans" / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    errors = validate_plan(path)
    for error in errors:
        assert "\n" not in error and "Traceback" not in error
        assert re.match(rf"{re.escape(str(path))}(:\d+:\d+)?: \S", error), error
