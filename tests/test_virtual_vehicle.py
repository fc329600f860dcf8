"""The virtual vehicle on the bus: restbus from the DBC, lockstep timing, determinism, HV states."""

from __future__ import annotations

import itertools
from statistics import median

import can
import pytest

from bench.dbc import DbcSet
from bench.e2e import Protector, crc8_j1850, crc_byte_index
from bench.errors import InputError
from virtual_bus import RealClock, SimClock, VirtualVehicle
from virtual_bus.ecus import bms as bms_mod
from virtual_bus.faults import vehicle_messages
from virtual_bus.lockstep import Lockstep
from virtual_bus.physics import motor

DRIVE = {"KeyOn": 1, "HvRequest": 1, "DriveMode": 3, "TorqueRequest": 0}


def _frames_of(frames, message):
    return [
        f
        for f in frames
        if f.arbitration_id == message.frame_id and f.is_extended_id == message.is_extended_frame
    ]


@pytest.fixture(scope="module")
def idle_run(dbcs):
    """Ten seconds of a parked car, HV off: the plain restbus."""
    with Lockstep(dbcs) as bench:
        bench.run(10.0)
        yield bench


def test_every_vehicle_message_is_broadcast_at_its_dbc_cycle_time(dbcs, idle_run):
    for name in vehicle_messages(dbcs):
        message = dbcs.message(name)
        frames = _frames_of(idle_run.frames, message)
        assert frames, name
        period = DbcSet.cycle_time_s(message)
        if not DbcSet.is_cyclic(message):
            continue
        gaps = [b.timestamp - a.timestamp for a, b in itertools.pairwise(frames)]
        assert median(gaps) == pytest.approx(period, abs=1e-9), name
        assert len(frames) == pytest.approx(10.0 / period, abs=1), name


def test_frames_carry_the_dbc_format(dbcs, idle_run):
    for name in vehicle_messages(dbcs):
        message = dbcs.message(name)
        for frame in _frames_of(idle_run.frames, message)[:20]:
            assert frame.is_fd == message.is_fd
            assert frame.dlc == message.length
            assert len(frame.data) == message.length
    assert dbcs.message("BMS_Energy").is_extended_frame
    assert _frames_of(idle_run.frames, dbcs.message("BMS_Energy"))[0].is_extended_id


def test_protected_messages_count_and_seal(dbcs, idle_run):
    protected = [n for n in vehicle_messages(dbcs) if crc_byte_index(dbcs.message(n)) is not None]
    assert set(protected) == {"BMS_PackStatus", "BMS_Status", "MCU_Status", "MCU_State"}
    for name in protected:
        decoded = idle_run.decoded(name)
        counters = [v["AliveCounter"] for _, v in decoded]
        assert all((b - a) % 16 == 1 for a, b in itertools.pairwise(counters)), name
        index = crc_byte_index(dbcs.message(name))
        for frame in _frames_of(idle_run.frames, dbcs.message(name)):
            data = bytes(frame.data)
            assert data[index] == crc8_j1850(data[:index] + data[index + 1 :]), name


def test_multiplexed_messages_cycle_through_their_pages(idle_run):
    modules = [v["ModuleIndex"] for _, v in idle_run.decoded("BMS_ModuleData")]
    assert len(modules) == 100
    assert sorted(set(modules)) == list(range(12))
    assert all((b - a) % 12 == 1 for a, b in itertools.pairwise(modules))
    pages = [v["InfoPage"] for _, v in idle_run.decoded("BMS_Identity")]
    assert sorted(set(pages)) == [0, 1, 2]
    ratings = next(v for _, v in idle_run.decoded("BMS_Identity") if v["InfoPage"] == 1)
    assert ratings["CellsInSeries"] == 192 and ratings["ModuleCount"] == 12
    assert 90 <= ratings["NominalEnergy"] <= 110


def test_module_data_agrees_with_the_cell_summary(idle_run):
    volts = []
    for _, v in idle_run.decoded("BMS_ModuleData")[-12:]:
        volts += [v[f"CellVolt{i:02d}"] for i in range(1, 17)]
    summary = idle_run.decoded("BMS_Cells")[-1][1]
    assert len(volts) == 192
    assert max(volts) == pytest.approx(summary["MaxCellVolt"], abs=0.002)
    assert min(volts) == pytest.approx(summary["MinCellVolt"], abs=0.002)
    assert 0.005 < summary["MaxCellVolt"] - summary["MinCellVolt"] < 0.1  # a realistic spread
    pack = idle_run.last("BMS_PackStatus.PackVoltage")
    assert pack == pytest.approx(sum(volts), rel=0.01)
    assert 700 < pack < 810  # 800 V class, 80 % SOC


def test_event_message_is_sent_at_power_up_and_on_change_only(dbcs):
    with Lockstep(dbcs) as bench:
        bench.run(5.0)
        assert len(bench.decoded("BMS_Contactors")) == 1
        bench.send("VCU_Command", DRIVE)
        bench.run(8.0)
        states = [v for _, v in bench.decoded("BMS_Contactors")]
    # power-up (all open), precharge (negative + precharge), ready (main +/-)
    assert [(s["MainPositive"], s["MainNegative"], s["Precharge"]) for s in states] == [
        (0, 0, 0),
        (0, 1, 1),
        (1, 1, 0),
    ]


def test_lockstep_stamps_frames_with_due_times_in_order(dbcs):
    with Lockstep(dbcs) as bench:
        vehicle = bench.vehicle
        due = vehicle.next_due()
        assert 0.0 <= due < 1.0
        vehicle.advance_to(due)
        bench.drain()
        assert bench.frames and bench.frames[-1].timestamp == due
        bench.run(3.0, step=0.0137)
        stamps = [f.timestamp for f in bench.frames]
        assert stamps == sorted(stamps)
        assert stamps[-1] <= 3.0
        assert vehicle.next_due() > 3.0
        assert all(round(s * 1000) == pytest.approx(s * 1000, abs=1e-6) for s in stamps)


def test_start_time_offsets_every_timestamp(dbcs):
    with Lockstep(dbcs, {"start_time": 1000.0}) as bench:
        bench.run(1001.0)
        stamps = [f.timestamp for f in bench.frames]
    assert min(stamps) >= 1000.0 and max(stamps) <= 1001.0


def _stream(dbcs, seed):
    with Lockstep(dbcs, {"seed": seed, "ambient_c": -10.0}) as bench:
        bench.send("VCU_Command", {**DRIVE, "TorqueRequest": 200})
        bench.run(4.0, step=0.25)
        return [(f.timestamp, f.arbitration_id, bytes(f.data)) for f in bench.frames]


def test_same_seed_gives_a_byte_identical_stream(dbcs):
    first, second = _stream(dbcs, 7), _stream(dbcs, 7)
    assert len(first) > 1000
    assert first == second
    assert _stream(dbcs, 8) != first


def test_hv_state_machine_precharge_ready_and_off(dbcs):
    with Lockstep(dbcs) as bench:
        bench.run(1.0)
        bench.send("VCU_Command", DRIVE)
        bench.run(4.0, step=0.1)
        states = bench.series("BMS_Status.HvState")
        link = bench.series("MCU_Power.DcLinkVoltage")
        bench.send("VCU_Command", {**DRIVE, "HvRequest": 0})
        bench.run(7.0)
        off = bench.last("BMS_Status.HvState")
        link_after = bench.last("MCU_Power.DcLinkVoltage")
    pre = [t for t, s in states if s == bms_mod.PRECHARGE]
    ready = [t for t, s in states if s == bms_mod.READY]
    assert pre and ready
    assert 0.3 <= ready[0] - 1.0 <= 1.0  # precharge takes a realistic fraction of a second
    assert min(t for t, v in link if v > 500) >= 1.0
    assert off == bms_mod.OFF
    assert link_after < 60.0  # active discharge


def test_charging_state_and_current(dbcs):
    with Lockstep(dbcs, {"soc": 50.0}) as bench:
        bench.send("VCU_Charge", {"ChargeRequest": 1, "ChargeMode": 2, "ChargeCurrentRequest": 200})
        bench.run(5.0)
        assert bench.last("BMS_Status.HvState") == bms_mod.CHARGING
        assert bench.last("BMS_Status.ChargerConnected") == 1
        current = bench.last("BMS_PackStatus.PackCurrent")
        assert current == pytest.approx(-200.0, abs=1.0)
        contactors = bench.decoded("BMS_Contactors")[-1][1]
        assert contactors["DcChargePositive"] == 1 and contactors["DcChargeNegative"] == 1
        soc0 = bench.last("BMS_PackStatus.SOC")
        bench.run(65.0)
        # 200 A for 60 s into 140 Ah: +2.4 % SOC
        assert bench.last("BMS_PackStatus.SOC") - soc0 == pytest.approx(2.4, abs=0.25)


def test_driving_speed_follows_motor_speed_through_the_gear(dbcs):
    with Lockstep(dbcs) as bench:
        bench.send("VCU_Command", {**DRIVE, "TorqueRequest": 150})
        bench.run(12.0)
        rpm = bench.last("MCU_Status.MotorSpeed")
        kmh = bench.last("MCU_Power.VehicleSpeed")
        assert rpm > 1000
        assert kmh == pytest.approx(motor.vehicle_speed_kmh(rpm), abs=0.5)
        ratio = rpm / (kmh / 3.6 / motor.WHEEL_RADIUS_M * 60 / (2 * 3.141592653589793))
        assert 9.0 <= ratio <= 11.0
        assert bench.last("MCU_Status.MotorState") == 2  # RUNNING
        assert bench.last("BMS_PackStatus.PackCurrent") > 10


def test_no_torque_outside_drive(dbcs):
    with Lockstep(dbcs) as bench:
        bench.send("VCU_Command", {**DRIVE, "DriveMode": 0, "TorqueRequest": 300})
        bench.run(5.0)
        assert bench.last("MCU_Status.MotorTorque") == 0
        assert bench.last("MCU_Power.VehicleSpeed") == 0


def test_commands_with_a_bad_crc_are_ignored(dbcs):
    message = dbcs.message("VCU_Command")
    data = bytearray(Protector(message).encode(DRIVE))
    data[crc_byte_index(message)] ^= 0x5A
    with Lockstep(dbcs) as bench:
        frame = can.Message(
            timestamp=0.0, arbitration_id=message.frame_id, is_extended_id=False, data=data
        )
        bench.bench_bus.send(frame)
        bench.run(3.0)
        assert bench.last("BMS_Status.HvState") == bms_mod.OFF
        assert bench.vehicle.frames_rejected == 1
        bench.send("VCU_Command", DRIVE)  # the same command, sealed correctly, is obeyed
        bench.run(5.0)
        assert bench.last("BMS_Status.HvState") == bms_mod.READY


def test_a_command_takes_effect_at_its_timestamp(dbcs):
    with Lockstep(dbcs) as bench:
        bench.send("VCU_Command", DRIVE, t=2.0)
        bench.vehicle.advance_to(5.0)
        bench.drain()
        first = min(t for t, s in bench.series("BMS_Status.HvState") if s != bms_mod.OFF)
    assert 2.0 <= first <= 2.1


def test_dbc_lacking_a_needed_message_or_signal_is_an_input_error(tmp_path):
    from tests.conftest import DBC_DIR

    with pytest.raises(InputError, match="lacks message 'VCU_Command'"):
        bus = can.Bus(interface="virtual", channel="lack1")
        try:
            VirtualVehicle(bus, DbcSet.load([DBC_DIR / "battery.dbc", DBC_DIR / "motor.dbc"]))
        finally:
            bus.shutdown()
    text = (DBC_DIR / "battery.dbc").read_text().replace(" SG_ SOC :", " SG_ StateOfCharge :")
    (tmp_path / "battery.dbc").write_text(text)
    paths = [tmp_path / "battery.dbc", DBC_DIR / "motor.dbc", DBC_DIR / "vehicle.dbc"]
    bus = can.Bus(interface="virtual", channel="lack2")
    try:
        with pytest.raises(InputError, match="'BMS_PackStatus' lacks signal 'SOC'") as info:
            VirtualVehicle(bus, DbcSet.load(paths))
        assert "\n" not in str(info.value)
    finally:
        bus.shutdown()


def test_run_realtime_on_a_sim_clock_jumps_event_to_event(dbcs):
    with Lockstep(dbcs) as bench:
        clock = SimClock()
        bench.vehicle.run_realtime(clock, duration=2.0)
        bench.drain()
        assert clock.now() == pytest.approx(2.0)
        assert len(bench.frames) == pytest.approx(2 * 272, abs=12)


def test_run_realtime_on_the_wall_clock_stops_on_event(dbcs):
    import threading

    with Lockstep(dbcs) as bench:
        stop = threading.Event()
        timer = threading.Timer(1.0, stop.set)
        timer.start()
        clock = RealClock()
        start = clock.now()
        bench.send("VCU_Command", DRIVE, t=0.0)
        bench.vehicle.run_realtime(clock, stop_event=stop)
        bench.drain()
        stamps = [f.timestamp for f in bench.frames]
        assert stamps and min(stamps) >= start - 1e-3
        assert stamps == sorted(stamps)
        # the command was applied on arrival: the BMS left OFF within the second
        states = {s for _, s in bench.series("BMS_Status.HvState")}
        assert states & {bms_mod.PRECHARGE, bms_mod.READY}


@pytest.mark.parametrize("name", ["BMS_PackStatus", "MCU_Status", "BMS_Cells", "BMS_ModuleData"])
def test_cached_encoding_is_byte_identical_to_the_protector(dbcs, name):
    """The transmitter's cache and counter table must give exactly cantools' bytes."""
    import random

    from virtual_bus.ecus.restbus import Transmitter

    message = dbcs.message(name)
    rng = random.Random(name)
    values: dict[str, float] = {}
    tx = Transmitter(message=message, source=lambda _mux: values, period_us=10_000, send=print)
    reference = Protector(message)
    mux_signals = [s for s in message.signals if s.multiplexer_ids]
    for i in range(300):
        if i % 3:  # two frames in three change some values, every third repeats them
            for signal in message.signals:
                if signal.name in ("AliveCounter", "CRC") or signal.is_multiplexer:
                    continue
                values[signal.name] = rng.uniform(signal.minimum, signal.maximum)
        mux = (i % 12) if mux_signals else None
        expected = reference.encode({**tx.values(0.0, mux)})
        assert tx.encode(0.0, mux) == expected, i


def _chunked(dbcs, steps):
    with Lockstep(dbcs, {"seed": 4}) as bench:
        bench.send("VCU_Command", {**DRIVE, "TorqueRequest": 250}, t=0.0)
        bench.run(2.0, step=steps)
        bench.send("VCU_Command", {**DRIVE, "TorqueRequest": -50}, t=2.0)
        bench.run(4.0, step=steps)
        return [(f.timestamp, f.arbitration_id, bytes(f.data)) for f in bench.frames]


def test_the_stream_does_not_depend_on_how_time_is_advanced(dbcs):
    assert _chunked(dbcs, 1.0) == _chunked(dbcs, 0.0137)


def test_a_new_dbc_signal_and_model_value_is_all_it_takes(dbcs, tmp_path, monkeypatch):
    from tests.conftest import DBC_DIR
    from virtual_bus.ecus.bms import Bms

    text = (DBC_DIR / "battery.dbc").read_text()
    text = text.replace(
        ' SG_ InsulationResistance : 24|16@1+ (1,0) [0|50000] "kOhm" VCU\n',
        ' SG_ InsulationResistance : 24|16@1+ (1,0) [0|50000] "kOhm" VCU\n'
        ' SG_ Bar : 40|8@1+ (1,0) [0|255] "" VCU\n',
    )
    text = text.replace(
        "BO_ 262 BMS_Contactors:",
        'BO_ 261 BMS_Extra: 2 BMS\n SG_ Foo : 0|8@1+ (1,0) [0|255] "" VCU\n\n'
        "BO_ 262 BMS_Contactors:",
    )
    text = text.replace(
        'BA_ "GenMsgSendType" BO_ 262 1;',
        'BA_ "GenMsgSendType" BO_ 262 1;\nBA_ "GenMsgCycleTime" BO_ 261 50;\n'
        'BA_ "GenMsgSendType" BO_ 261 0;\nBA_ "GenSigStartValue" SG_ 261 Foo 42;',
    )
    (tmp_path / "battery.dbc").write_text(text)
    extended = DbcSet.load(
        [tmp_path / "battery.dbc", DBC_DIR / "motor.dbc", DBC_DIR / "vehicle.dbc"]
    )
    original = Bms._status
    monkeypatch.setattr(Bms, "_status", lambda self, mux: {**original(self, mux), "Bar": 7})
    bench = Lockstep(extended)
    bench.run(1.0)
    bench.close()
    assert {v["Bar"] for _, v in bench.decoded("BMS_Status")} == {7}
    # a message the model does not know goes out at its cycle time with its DBC start values
    extra = bench.decoded("BMS_Extra")
    assert len(extra) == 20 and {v["Foo"] for _, v in extra} == {42}


class _StallingClock:
    """A wall clock that jumps 1 s each time it is read: a process stalled again and again."""

    realtime = True

    def __init__(self) -> None:
        self.t = 100.0

    def now(self) -> float:
        self.t += 1.0
        return self.t

    def sleep_until(self, t: float) -> None:
        self.t = max(self.t, t)


def test_on_the_wall_clock_a_stalled_vehicle_does_not_burst_missed_frames(dbcs):
    with Lockstep(dbcs) as bench:
        bench.vehicle.run_realtime(_StallingClock(), duration=10.0)
        bench.drain()
        pack = [f for f in bench.frames if f.arbitration_id == 0x100]
        assert 5 <= len(pack) <= 12  # about one per wake-up, not 50 per second
        assert bench.vehicle.frames_skipped > 300
        stamps = [f.timestamp for f in bench.frames]
        assert stamps == sorted(stamps)


def test_frames_reach_receivers_as_plain_equal_messages(dbcs):
    import copy

    from virtual_bus.ecus.restbus import Frame

    frame = Frame(timestamp=1.5, arbitration_id=0x140, is_fd=True, dlc=64, data=bytes(range(64)))
    twin = copy.deepcopy(frame)
    assert type(twin) is can.Message
    assert twin.equals(frame, timestamp_delta=None) and twin.data is not frame.data
    with Lockstep(dbcs) as bench:
        bench.run(0.5)
        assert all(type(f) is can.Message for f in bench.frames)


def test_volatile_bits_cover_exactly_the_counter_and_crc(dbcs):
    from virtual_bus.vehicle import _volatile_bits

    # VCU_Command: AliveCounter bits 48-51, CRC byte 7
    assert _volatile_bits(dbcs.message("VCU_Command")) == (0xF << 48) | (0xFF << 56)
    assert _volatile_bits(dbcs.message("VCU_Ambient")) == 0


def test_repeated_commands_with_new_values_are_all_taken(dbcs):
    with Lockstep(dbcs) as bench:
        for step, torque in enumerate([0, 0, 0, 100, 100, 0, 250]):
            bench.send("VCU_Command", {**DRIVE, "TorqueRequest": torque})
            bench.run(2.0 + step * 0.5)
            assert bench.vehicle.commands.torque_request == torque
