"""Fault injection: the grammar, its errors, and each kind's exact symptom on the bus.

Most tests compare a run with the fault against the same seed without it: everything outside
the symptom must be byte-identical.
"""

from __future__ import annotations

import itertools
import statistics

import pytest

from bench.e2e import crc8_j1850
from bench.errors import InputError
from virtual_bus.ecus import bms as bms_mod
from virtual_bus.ecus import mcu as mcu_mod
from virtual_bus.faults import KINDS, FaultSpec, describe_faults, parse_fault
from virtual_bus.lockstep import Lockstep

DRIVE = {"KeyOn": 1, "HvRequest": 1, "DriveMode": 3, "TorqueRequest": 120}


def _run(dbcs, faults=(), until=4.0, commands=None, **kwargs):
    bench = Lockstep(dbcs, {"seed": 11, "faults": faults, **kwargs})
    for name, values in (commands or {"VCU_Command": DRIVE}).items():
        bench.send(name, values, t=0.0)
    bench.run(until, step=0.5)
    bench.close()
    return bench


def _of(bench, name):
    message = bench.dbcs.message(name)
    return [
        f
        for f in bench.frames
        if f.arbitration_id == message.frame_id
        and f.is_extended_id == message.is_extended_frame
        and not f.is_error_frame
    ]


def _inside(frame, start, end):
    return start <= frame.timestamp < end


@pytest.fixture(scope="module")
def baseline(dbcs):
    return _run(dbcs)


# -- grammar ----------------------------------------------------------------------------------


def test_parse_the_examples_of_the_issue(dbcs):
    assert parse_fault("stop:BMS_PackStatus@300s+5s", dbcs) == FaultSpec(
        "stop", "BMS_PackStatus", None, 300.0, 5.0
    )
    assert parse_fault("stretch:MCU_Status=2.0@60s", dbcs) == FaultSpec(
        "stretch", "MCU_Status", 2.0, 60.0, None
    )
    assert parse_fault("stuck:BMS_Temps.MaxCellTemp@10min", dbcs).start == 600.0
    offset = parse_fault("offset:BMS_Temps.MaxCellTemp=15@5min+1min", dbcs)
    assert (offset.value, offset.start, offset.duration) == (15.0, 300.0, 60.0)
    assert parse_fault("counter_skip:BMS_PackStatus", dbcs).value == 1
    assert parse_fault("dlc:BMS_Cells=4", dbcs).value == 4
    assert parse_fault("bad_crc:MCU_Status", dbcs).kind == "bad_crc"
    assert parse_fault("error_frames:bus=50@1s+2s", dbcs).value == 50
    assert parse_fault("cell_overtemp", dbcs) == FaultSpec("cell_overtemp", "1", 70.0)
    assert parse_fault("cell_overtemp:17=80@2min", dbcs).target == "17"
    assert parse_fault("insulation_fault=30", dbcs).value == 30
    assert parse_fault("heater_fail@1h", dbcs).start == 3600.0
    assert parse_fault("coolant_pump_fail:MCU", dbcs).target == "MCU"
    assert parse_fault("noise:MCU_Power.DcLinkVoltage=0.5", dbcs).value == 0.5


def test_str_round_trips(dbcs):
    for text in (
        "stop:BMS_PackStatus@300s+5s",
        "offset:BMS_Temps.MaxCellTemp=-3@1s",
        "dlc:BMS_Cells=4",
    ):
        spec = parse_fault(text, dbcs)
        assert parse_fault(str(spec), dbcs) == spec


def test_active_window():
    spec = FaultSpec("stop", "BMS_PackStatus", None, 10.0, 5.0)
    assert not spec.active(9.99) and spec.active(10.0) and spec.active(14.99)
    assert not spec.active(15.0)
    assert FaultSpec("stop", "X", start=1.0).active(1e9)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("frobnicate:BMS_PackStatus", "unknown kind 'frobnicate'; valid kinds: stop, stretch"),
        ("stop:BMS_PackStatu", "invalid target 'BMS_PackStatu' (did you mean 'BMS_PackStatus'?)"),
        ("stop:VCU_Command", "valid targets: BMS_PackStatus"),
        ("bad_crc:VCU_Command", "valid targets: BMS_PackStatus, BMS_Status, MCU_Status, MCU_State"),
        ("bad_crc:BMS_Cells", "invalid target 'BMS_Cells'"),
        ("stuck:BMS_Temps.Nope", "invalid target 'BMS_Temps.Nope'"),
        ("stuck:BMS_Temps", "invalid target 'BMS_Temps'"),
        ("offset:BMS_Temps.MaxCellTemp", "offset needs a value"),
        ("offset:BMS_Temps.MaxCellTemp=hot", "value 'hot' is not a number"),
        ("stop:BMS_PackStatus=3", "stop takes no value"),
        ("stretch:MCU_Status=0", "must be more than 0"),
        ("counter_skip:BMS_PackStatus=1.5", "whole number"),
        ("counter_skip:BMS_Cells", "invalid target 'BMS_Cells'"),
        ("dlc:BMS_Cells=9", "dlc 9 not valid for BMS_Cells"),
        ("dlc:BMS_ModuleData=13", "dlc 13 not valid for BMS_ModuleData: 0, 1, 2"),
        ("stop:BMS_PackStatus@soon", "bad start"),
        ("stop:BMS_PackStatus@1s+0s", "duration must be more than 0"),
        ("cell_overtemp:49", "invalid sensor '49'; valid targets: 1-48"),
        ("heater_fail:MCU", "valid targets: BMS"),
        ("stop", "stop needs a target"),
        ("", "expected KIND[:TARGET][=VALUE][@START[+DURATION]]"),
    ],
)
def test_bad_faults_are_one_line_input_errors(dbcs, text, expected):
    with pytest.raises(InputError) as info:
        parse_fault(text, dbcs)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.exit_code == 2


def test_describe_faults_lists_every_kind():
    text = describe_faults()
    for kind in KINDS:
        assert kind in text
    assert "KIND[:TARGET][=VALUE][@START[+DURATION]]" in text


def test_vehicle_accepts_fault_strings_and_rejects_bad_ones(dbcs):
    with pytest.raises(InputError, match="unknown kind"):
        _run(dbcs, ["nope:X"], until=0.1)


# -- frame faults -----------------------------------------------------------------------------


def test_stop_leaves_a_gap_and_nothing_else(dbcs, baseline):
    bench = _run(dbcs, ["stop:BMS_PackStatus@1s+1.5s"])
    frames = _of(bench, "BMS_PackStatus")
    assert not [f for f in frames if _inside(f, 1.0, 2.5)]
    gaps = [b.timestamp - a.timestamp for a, b in itertools.pairwise(frames)]
    assert max(gaps) == pytest.approx(1.5 + 0.02, abs=0.021)
    assert sum(1 for g in gaps if g > 0.021) == 1
    # the counter continues where it stopped: the ECU was silent, not reset
    counters = [bench.dbcs.message("BMS_PackStatus").decode(f.data)["AliveCounter"] for f in frames]
    assert all((b - a) % 16 == 1 for a, b in itertools.pairwise(counters))
    for name in ("BMS_Cells", "MCU_Status"):
        assert [bytes(f.data) for f in _of(bench, name)] == [
            bytes(f.data) for f in _of(baseline, name)
        ]


def test_stretch_multiplies_the_cycle_time_in_its_window(dbcs):
    bench = _run(dbcs, ["stretch:MCU_Status=2.0@1s+2s"])
    stamps = [f.timestamp for f in _of(bench, "MCU_Status")]
    inside = [b - a for a, b in itertools.pairwise(stamps) if 1.05 <= a < 2.95]
    outside = [b - a for a, b in itertools.pairwise(stamps) if a < 0.95 or a > 3.05]
    assert inside and set(round(g, 6) for g in inside) == {0.02}
    assert set(round(g, 6) for g in outside) == {0.01}


def test_stuck_freezes_the_signal_only(dbcs, baseline):
    bench = _run(dbcs, ["stuck:MCU_Power.VehicleSpeed@2s"])
    message = dbcs.message("MCU_Power")
    faulty = [message.decode(f.data) for f in _of(bench, "MCU_Power")]
    clean = [message.decode(f.data) for f in _of(baseline, "MCU_Power")]
    stamps = [f.timestamp for f in _of(bench, "MCU_Power")]
    after = [v["VehicleSpeed"] for v, t in zip(faulty, stamps, strict=True) if t >= 2.0]
    assert len(set(after)) == 1 and after[0] > 0
    assert len({v["VehicleSpeed"] for v, t in zip(clean, stamps, strict=True) if t >= 2.0}) > 10
    for got, want in zip(faulty, clean, strict=True):
        assert got["DcLinkVoltage"] == want["DcLinkVoltage"]
        assert got["MechanicalPower"] == want["MechanicalPower"]


def test_offset_adds_its_value_in_its_window(dbcs, baseline):
    bench = _run(dbcs, ["offset:BMS_Temps.MaxCellTemp=15@1s+2s"])
    message = dbcs.message("BMS_Temps")
    for got, want in zip(_of(bench, "BMS_Temps"), _of(baseline, "BMS_Temps"), strict=True):
        g, w = message.decode(got.data), message.decode(want.data)
        expected = w["MaxCellTemp"] + (15.0 if _inside(got, 1.0, 3.0) else 0.0)
        assert g["MaxCellTemp"] == pytest.approx(expected, abs=0.051)
        assert {k: v for k, v in g.items() if k != "MaxCellTemp"} == {
            k: v for k, v in w.items() if k != "MaxCellTemp"
        }


def test_noise_has_its_standard_deviation(dbcs, baseline):
    bench = _run(dbcs, ["noise:BMS_PackStatus.PackVoltage=2.0@1s"])
    message = dbcs.message("BMS_PackStatus")
    diffs = []
    for got, want in zip(
        _of(bench, "BMS_PackStatus"), _of(baseline, "BMS_PackStatus"), strict=True
    ):
        g, w = message.decode(got.data), message.decode(want.data)
        delta = g["PackVoltage"] - w["PackVoltage"]
        if got.timestamp < 1.0:
            assert delta == 0
        else:
            diffs.append(delta)
        assert g["PackCurrent"] == w["PackCurrent"] and g["SOC"] == w["SOC"]
    assert len(diffs) >= 140
    assert 1.5 < statistics.pstdev(diffs) < 2.5
    assert abs(statistics.mean(diffs)) < 0.5


def test_counter_skip_jumps_the_counter_and_keeps_the_crc_valid(dbcs):
    bench = _run(dbcs, ["counter_skip:BMS_PackStatus@1s+1s"])
    message = dbcs.message("BMS_PackStatus")
    frames = _of(bench, "BMS_PackStatus")
    counters = [(f.timestamp, message.decode(f.data)["AliveCounter"]) for f in frames]
    for (t0, a), (_, b) in itertools.pairwise(counters):
        assert (b - a) % 16 == (2 if 1.0 <= t0 < 2.0 else 1)
    for f in frames:
        data = bytes(f.data)
        assert data[7] == crc8_j1850(data[:7])


def test_bad_crc_inverts_the_crc_byte_only(dbcs, baseline):
    bench = _run(dbcs, ["bad_crc:MCU_Status@1s+1s"])
    for got, want in zip(_of(bench, "MCU_Status"), _of(baseline, "MCU_Status"), strict=True):
        g, w = bytes(got.data), bytes(want.data)
        assert g[:7] == w[:7]
        assert g[7] == (w[7] ^ 0xFF if _inside(got, 1.0, 2.0) else w[7])
        assert (g[7] == crc8_j1850(g[:7])) != _inside(got, 1.0, 2.0)


@pytest.mark.parametrize(("name", "dlc"), [("BMS_Cells", 4), ("BMS_ModuleData", 12)])
def test_dlc_changes_the_data_length(dbcs, baseline, name, dlc):
    bench = _run(dbcs, [f"dlc:{name}={dlc}@1s+2s"])
    for got, want in zip(_of(bench, name), _of(baseline, name), strict=True):
        if _inside(got, 1.0, 3.0):
            assert got.dlc == dlc and bytes(got.data) == bytes(want.data)[:dlc]
        else:
            assert got.dlc == want.dlc and bytes(got.data) == bytes(want.data)


def test_error_frames_on_the_bus_at_their_rate(dbcs, baseline):
    bench = _run(dbcs, ["error_frames:bus=10@1s+2s"])
    errors = [f for f in bench.frames if f.is_error_frame]
    assert len(errors) == 20
    assert all(1.0 <= f.timestamp < 3.0 for f in errors)
    regular = [bytes(f.data) for f in bench.frames if not f.is_error_frame]
    assert regular == [bytes(f.data) for f in baseline.frames]


def test_error_frames_before_each_frame_of_a_message(dbcs):
    bench = _run(dbcs, ["error_frames:MCU_State@1s+1s"])
    mcu_state = dbcs.message("MCU_State").frame_id
    errors = [f for f in bench.frames if f.is_error_frame]
    assert len(errors) == 10
    for error in errors:
        index = bench.frames.index(error)
        following = bench.frames[index + 1]
        assert following.arbitration_id == mcu_state and following.timestamp == error.timestamp


# -- physical events --------------------------------------------------------------------------


def test_cell_overtemp_raises_a_shutdown_and_opens_the_contactors(dbcs):
    bench = Lockstep(dbcs, {"seed": 2, "faults": ["cell_overtemp:17=75@10s+90s"]})
    bench.send("VCU_Command", DRIVE)
    bench.run(12.0)
    assert bench.last("BMS_Status.HvState") == bms_mod.READY
    bench.vehicle.fast_forward(58.0)
    bench.run(62.0)
    temps = bench.decoded("BMS_Temps")[-1][1]
    assert temps["MaxTempSensorId"] == 17
    assert temps["MaxCellTemp"] == pytest.approx(75.0, abs=0.2)
    assert temps["MinCellTemp"] < 30.0  # one hot spot, not a hot pack
    status = bench.decoded("BMS_Status")[-1][1]
    assert (status["HvState"], status["FaultLevel"], status["FaultCode"]) == (
        bms_mod.FAULT,
        bms_mod.SHUTDOWN,
        bms_mod.CELL_OVERTEMP,
    )
    contactors = bench.decoded("BMS_Contactors")[-1][1]
    assert contactors["MainPositive"] == 0 and contactors["MainNegative"] == 0
    assert bench.last("BMS_PackStatus.MainContactorsClosed") == 0
    assert bench.last("MCU_Status.MotorTorque") == 0
    # after the event has cooled down and the bench dropped HV, the BMS can start again
    bench.send("VCU_Command", {**DRIVE, "HvRequest": 0})
    bench.vehicle.fast_forward(400.0)
    bench.run(401.0)
    assert bench.last("BMS_Status.HvState") == bms_mod.OFF
    assert bench.last("BMS_Status.FaultLevel") == bms_mod.NONE
    bench.close()


def test_insulation_fault(dbcs):
    bench = Lockstep(dbcs, {"faults": ["insulation_fault=50@2s"]})
    bench.send("VCU_Command", DRIVE)
    bench.run(1.9)
    assert bench.last("BMS_Status.InsulationResistance") > 1000
    bench.run(3.0)
    status = bench.decoded("BMS_Status")[-1][1]
    assert status["InsulationResistance"] == 50
    assert (status["HvState"], status["FaultLevel"], status["FaultCode"]) == (
        bms_mod.FAULT,
        bms_mod.SHUTDOWN,
        bms_mod.INSULATION_LOW,
    )
    bench.close()


def test_heater_fail(dbcs):
    commands = {"VCU_Command": DRIVE, "VCU_Thermal": {"HeaterRequest": 1}}
    bench = _run(dbcs, ["heater_fail@2s"], until=4.0, commands=commands, ambient_c=-30.0)
    status = [(t, v) for t, v in bench.decoded("BMS_Status") if t > 1.0]
    before = [v for t, v in status if t < 2.0]
    after = [v for t, v in status if t >= 2.2]
    assert all(v["HeaterActive"] == 1 and v["HeaterPower"] > 0 for v in before)
    assert all(v["HeaterActive"] == 0 and v["HeaterPower"] == 0 for v in after)
    assert all(
        (v["FaultLevel"], v["FaultCode"]) == (bms_mod.WARNING, bms_mod.HEATER_FAILURE)
        for v in after
    )
    assert all(v["HvState"] == bms_mod.READY for v in after)  # a warning, not a shutdown


def test_coolant_pump_fail(dbcs):
    commands = {
        "VCU_Command": {**DRIVE, "TorqueRequest": 400},
        "VCU_Thermal": {"CoolantPumpRequest": 1},
    }
    clean = _run(dbcs, (), until=20.0, commands=commands)
    bench = _run(dbcs, ["coolant_pump_fail@1s"], until=20.0, commands=commands)
    state = [(t, v) for t, v in bench.decoded("MCU_State")]
    assert all(v["CoolantPumpActive"] == 1 for t, v in state if 0.05 < t < 1.0)
    after = [v for t, v in state if t >= 1.1]
    assert all(v["CoolantPumpActive"] == 0 for v in after)
    assert all((v["FaultLevel"], v["FaultCode"]) == (1, mcu_mod.COOLANT_LOSS) for v in after)
    assert bench.last("MCU_Temps.StatorTemp") > clean.last("MCU_Temps.StatorTemp") + 0.5
    assert bench.last("MCU_Temps.InverterTemp") > clean.last("MCU_Temps.InverterTemp") + 0.5


def test_coolant_pump_fail_on_the_battery_loop(dbcs):
    charging = {
        "VCU_Command": {**DRIVE, "TorqueRequest": 0},
        "VCU_Charge": {"ChargeRequest": 1, "ChargeMode": 2, "ChargeCurrentRequest": 300},
        "VCU_Thermal": {"CoolantPumpRequest": 1, "ChillerRequest": 1},
    }
    runs = {}
    for label, faults in (("clean", ()), ("failed", ["coolant_pump_fail:BMS@1s"])):
        bench = Lockstep(dbcs, {"seed": 11, "faults": faults, "ambient_c": 40.0, "soc": 20.0})
        for name, values in charging.items():
            bench.send(name, values, t=0.0)
        bench.vehicle.fast_forward(598.0)
        bench.run(600.0)
        bench.close()
        runs[label] = bench
    clean, failed = runs["clean"], runs["failed"]
    # the cells lose their cold plate: hotter cells, colder (stagnant, chilled) coolant
    assert failed.last("BMS_Temps.MaxCellTemp") > clean.last("BMS_Temps.MaxCellTemp") + 3.0
    assert failed.last("BMS_Temps.CoolantInletTemp") < clean.last("BMS_Temps.CoolantInletTemp")
    # the motor loop is not affected by a battery-loop fault
    assert failed.last("MCU_State.CoolantPumpActive") == 1
    assert failed.last("MCU_State.FaultCode") == 0


def _fault_texts(dbcs):
    """Valid fault texts built from the grammar's parts (for the round-trip property)."""
    from hypothesis import strategies as st

    from virtual_bus.faults import vehicle_messages

    messages = vehicle_messages(dbcs)
    signals = [f"{m}.{s.name}" for m in messages for s in dbcs.message(m).signals]
    when = st.one_of(
        st.just(""),
        st.integers(0, 7200).map(lambda s: f"@{s}s"),
        st.tuples(st.integers(0, 600), st.integers(1, 600)).map(lambda p: f"@{p[0]}s+{p[1]}s"),
        st.tuples(st.floats(0, 1e4), st.floats(1e-3, 1e4)).map(lambda p: f"@{p[0]!r}+{p[1]!r}"),
        st.integers(1, 120).map(lambda m: f"@{m}min"),
    )
    number = st.floats(-1000, 1000, allow_nan=False).map(repr)
    body = st.one_of(
        st.sampled_from(messages).map(lambda m: f"stop:{m}"),
        st.sampled_from(messages).map(lambda m: f"stretch:{m}=1.5"),
        st.sampled_from(signals).map(lambda s: f"stuck:{s}"),
        st.tuples(st.sampled_from(signals), number).map(lambda p: f"offset:{p[0]}={p[1]}"),
        st.sampled_from(["BMS_PackStatus", "MCU_Status"]).map(lambda m: f"bad_crc:{m}"),
        st.integers(1, 48).map(lambda s: f"cell_overtemp:{s}=80"),
        st.sampled_from(["all", "BMS", "MCU"]).map(lambda t: f"coolant_pump_fail:{t}"),
    )
    return st.tuples(body, when).map("".join)


def test_every_valid_fault_round_trips_through_its_text(dbcs):
    from hypothesis import given, settings

    @settings(max_examples=300, deadline=None)
    @given(_fault_texts(dbcs))
    def check(text):
        spec = parse_fault(text, dbcs)
        assert parse_fault(str(spec), dbcs) == spec

    check()
