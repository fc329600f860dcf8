"""The runner at a bench: profiles with several buses, the chamber, and interfaces failing mid-run.

Real parts wherever this machine has them: the chamber and the slcan adapter are simulators on
pseudo-terminals (pyserial and python-can's slcan driver run unchanged), buses are python-can
``virtual``. SocketCAN/vcan cases are in tests/test_socketcan*.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import can
import pytest

from bench.bus import (
    CAN_ERR_BUSOFF,
    BusFault,
    BusGroup,
    BusSettings,
    NamedBus,
    kernel_has_socketcan,
)
from bench.dbc import DbcSet
from bench.e2e import crc8_j1850
from bench.errors import InputError
from bench.instruments.simulator import SimulatedChamber, SimulatedSlcanAdapter
from bench.logfiles import read_frames
from bench.plan import load_plan
from bench.profile import parse_profile
from bench.record import read_events
from bench.run import RunOptions, run_plan
from bench.stimuli import StimulusScheduler

from .conftest import ROOT

PLANS = Path(__file__).parent / "runner_plans"
DBC = ROOT / "dbc"
DEADLINE_S = 10.0  # a bound on waiting for a thread or process, never a measured figure


class _Quiet:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _profile(tmp_path: Path, text: str):
    path = tmp_path / "bench.toml"
    path.write_text(text)
    return parse_profile(text, path)


def _run(plan: str, tmp_path: Path, **options):
    options.setdefault("stream", _Quiet())
    options.setdefault("handle_signals", False)
    return run_plan(load_plan(PLANS / plan), RunOptions(out_dir=tmp_path / "run", **options))


def _events(run_dir: Path) -> list[dict]:
    return read_events(run_dir / "events.parquet").to_pylist()


def _detail(event: dict) -> dict:
    return json.loads(event["detail"]) if event["detail"] else {}


TWO_BUSES = f"""
name = "two buses"
[buses.battery]
interface = "virtual"
channel = "{{battery}}"
dbc = ["{DBC}/battery.dbc"]
[buses.motor]
interface = "virtual"
channel = "{{motor}}"
dbc = ["{DBC}/motor.dbc", "{DBC}/vehicle.dbc"]
"""


def _two_buses(tmp_path: Path, battery: str = "battery0", motor: str = "motor0"):
    return _profile(tmp_path, TWO_BUSES.format(battery=battery, motor=motor))


# -- profiles and several buses ------------------------------------------------------------------


def test_two_profile_buses_in_lockstep_route_frames_by_their_dbcs(tmp_path):
    result = _run("short.yaml", tmp_path, bench=_two_buses(tmp_path))
    assert result.summary.verdict == "pass", [
        (c.name, c.verdict, c.message) for c in result.summary.checks
    ]
    frames = read_frames(result.run_dir / "frames").frames.to_pylist()
    dbcs = DbcSet.load([DBC / "battery.dbc", DBC / "motor.dbc", DBC / "vehicle.dbc"])
    seen: dict[tuple[str, str], set[str]] = {}
    for frame in frames:
        message = dbcs.message_by_id(frame["arbitration_id"], frame["is_extended_id"])
        name = message.name if message else hex(frame["arbitration_id"])
        seen.setdefault((frame["channel"], frame["direction"]), set()).add(name)
    assert set(seen) == {("battery", "rx"), ("motor", "rx"), ("motor", "tx")}
    assert all(name.startswith("BMS_") for name in seen["battery", "rx"])
    assert all(name.startswith("MCU_") for name in seen["motor", "rx"])
    assert seen["motor", "tx"] == {"VCU_Command", "VCU_Ambient"}
    start = _detail(_events(result.run_dir)[0])
    assert [bus["name"] for bus in start["buses"]] == ["battery", "motor"]
    assert start["bench"]["name"] == "two buses"


def test_a_message_the_plan_sends_must_be_on_some_bus(tmp_path):
    profile = _profile(
        tmp_path,
        f"""
        [buses.battery]
        interface = "virtual"
        channel = "a"
        dbc = ["{DBC}/battery.dbc"]
        [buses.motor]
        interface = "virtual"
        channel = "b"
        dbc = ["{DBC}/motor.dbc"]
        """,
    )
    with pytest.raises(InputError, match="sends VCU_Command but no bus's DBCs define it"):
        _run("short.yaml", tmp_path, bench=profile)
    assert not (tmp_path / "run").exists()  # nothing was run


def test_a_bus_without_dbcs_carries_the_messages_no_other_bus_defines(tmp_path):
    profile = _profile(
        tmp_path,
        f"""
        [buses.battery]
        interface = "virtual"
        channel = "a"
        dbc = ["{DBC}/battery.dbc"]
        [buses.rest]
        interface = "virtual"
        channel = "b"
        """,
    )
    from bench.run.wiring import plan_wiring

    wiring = plan_wiring(load_plan(PLANS / "short.yaml"), RunOptions(bench=profile))
    assert wiring.default_buses == ["rest"]
    status = DbcSet.load([DBC / "battery.dbc"]).message("BMS_Status")
    assert wiring.routes[(status.frame_id, False)] == ("battery",)


def test_command_line_bus_flags_are_refused_with_several_profile_buses(tmp_path):
    with pytest.raises(InputError, match="every bus of the bench profile"):
        _run("short.yaml", tmp_path, bench=_two_buses(tmp_path), channel="vcan0")


# -- the bus group ---------------------------------------------------------------------------------


class _BrokenBus:
    def send(self, frame: can.Message) -> None:
        raise can.CanOperationError("Failed to transmit: [Errno 100] Network is down")

    def recv(self, timeout: float | None = None) -> can.Message | None:
        raise can.CanOperationError("Error receiving: [Errno 100] Network is down")

    def shutdown(self) -> None:
        pass


def _virtual(name: str, channel: str) -> NamedBus:
    settings = BusSettings(interface="virtual", channel=channel)
    return NamedBus(name, settings, can.Bus(interface="virtual", channel=channel), name)


def test_a_failing_bus_is_named_marked_and_skipped_while_the_others_still_send():
    good = _virtual("good", "group-good")
    bad = NamedBus("bad", BusSettings(interface="socketcan", channel="can9"), _BrokenBus(), "bad")
    listener = can.Bus(interface="virtual", channel="group-good")
    group = BusGroup([bad, good], routes={}, default=["bad", "good"])
    try:
        frame = can.Message(arbitration_id=0x300, data=b"\x00" * 8, is_extended_id=False)
        with pytest.raises(BusFault, match=r"CAN bus 'bad' \(socketcan:can9.*\): send failed"):
            group.send(frame)
        assert group.failures.keys() == {"bad"}
        got = listener.recv(timeout=DEADLINE_S)
        assert got is not None and got.arbitration_id == 0x300
        # From now on the dead bus is skipped on receive; the live one still delivers.
        listener.send(can.Message(arbitration_id=0x123, data=b"\x01", is_extended_id=False))
        received = group.recv(timeout=DEADLINE_S)
        assert received is not None and received.channel == "good"
    finally:
        group.shutdown()
        listener.shutdown()


def test_frames_of_several_buses_arrive_in_time_order_labelled_with_their_bus():
    one, two = _virtual("one", "order-1"), _virtual("two", "order-2")
    senders = [can.Bus(interface="virtual", channel=c, preserve_timestamps=True)
               for c in ("order-1", "order-2")]  # fmt: skip
    for bus in (one, two):
        bus.bus.shutdown()
        bus.bus = can.Bus(
            interface="virtual", channel=bus.settings.channel, preserve_timestamps=True
        )
    group = BusGroup([one, two])
    try:
        for t, sender in ((3.0, 0), (1.0, 1), (2.0, 0), (4.0, 1)):
            senders[sender].send(can.Message(timestamp=t, arbitration_id=int(t), data=b""))
        got = []
        while (frame := group.recv(timeout=0.2)) is not None:
            got.append((frame.timestamp, frame.channel))
        # Per bus the order is the bus's; across buses the earlier head goes first.
        assert got == [(1.0, "two"), (3.0, "one"), (2.0, "one"), (4.0, "two")]
    finally:
        group.shutdown()
        for sender in senders:
            sender.shutdown()


# -- stimuli for the kernel's periodic send --------------------------------------------------------


def test_cycle_frames_cover_every_alive_counter_value_with_a_valid_crc():
    dbcs = DbcSet.load()
    scheduler = StimulusScheduler(dbcs)
    scheduler.periodic("VCU_Command", {"KeyOn": 1, "HvRequest": 1}, 0.01, 0.0)
    frames = scheduler.cycle_frames("VCU_Command", 0.0)
    message = dbcs.message("VCU_Command")
    decoded = [message.decode(f.data, decode_choices=False) for f in frames]
    assert [d["AliveCounter"] for d in decoded] == list(range(len(frames))) and len(frames) == 16
    assert all(d["KeyOn"] == 1 and d["HvRequest"] == 1 for d in decoded)
    crc_index = 7
    for frame in frames:
        payload = bytes(frame.data)
        assert payload[crc_index] == crc8_j1850(payload[:crc_index] + payload[crc_index + 1 :])


def test_an_offloaded_stimulus_is_not_sent_by_the_scheduler_until_reclaimed():
    scheduler = StimulusScheduler(DbcSet.load())
    scheduler.periodic("VCU_Command", {"KeyOn": 1}, 0.01, 0.0)
    scheduler.periodic("VCU_Ambient", {"AmbientTemp": 20}, 1.0, 0.0)
    assert scheduler.is_constant("VCU_Command")
    scheduler.offload("VCU_Command")
    assert {f.arbitration_id for f in scheduler.due(0.5)} == {0x303}
    scheduler.reclaim("VCU_Command", 0.6)
    ids = [f.arbitration_id for f in scheduler.due(0.65)]
    assert ids.count(0x300) == 6  # 0.60 … 0.65 every 10 ms
    scheduler.update("VCU_Command", modifiers={"TorqueRequest": lambda t: t})
    assert not scheduler.is_constant("VCU_Command")


# -- the chamber --------------------------------------------------------------------------------

CHAMBER = """
name = "chamber bench"
[instruments.chamber]
driver = "chamber"
port = "{port}"
timeout_s = 0.5
retries = 1
"""


def _bench(args: list[str]) -> subprocess.Popen:
    """``bench ARGS --plain`` in a process of its own, as a bench engineer would run it."""
    command = [str(Path(sys.executable).parent / "bench"), *args, "--plain"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_chamber_step_through_bench_run_sets_waits_until_stable_and_broadcasts(tmp_path):
    with SimulatedChamber(ambient_c=20.0, ramp_c_per_min=600.0) as chamber:  # 10 °C/s
        (tmp_path / "bench.toml").write_text(CHAMBER.format(port=chamber.port))
        out = tmp_path / "run"
        process = _bench(["run", str(PLANS / "chamber.yaml"), "--bench",
                          str(tmp_path / "bench.toml"), "--out", str(out)])  # fmt: skip
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stdout + stderr
        assert chamber.setpoint_c == 12.0 and chamber.running  # the ambient_c step set it too
    events = _events(out)
    steps = {e["name"]: _detail(e)["status"] for e in events if e["kind"] == "step_end"}
    assert steps == {"cool": "done", "colder": "done"}
    readings = [_detail(e) for e in events if e["kind"] == "instrument" and e["name"] == "chamber"]
    assert [r["set_c"] for r in readings if "temperature_c" not in r] == [15.0, 12.0]
    assert any(r.get("stable") for r in readings)
    cool_end = next(e["timestamp"] for e in events if e["kind"] == "step_end")
    cool_start = next(e["timestamp"] for e in events if e["kind"] == "step_start")
    assert cool_end - cool_start >= 1.0  # held stable for `for: 1s`, not just reached
    ambient = DbcSet.load().message("VCU_Ambient")
    sent = [
        ambient.decode(f["data"])["AmbientTemp"]
        for f in read_frames(out / "frames").frames.to_pylist()
        if f["arbitration_id"] == ambient.frame_id
    ]
    assert sent[0] == 15.0 and sent[-1] == 12.0


def test_chamber_port_gone_mid_run_aborts_with_one_line_and_a_readable_log(tmp_path):
    chamber = SimulatedChamber(ambient_c=20.0, ramp_c_per_min=0.5).start()  # never settles
    try:
        (tmp_path / "bench.toml").write_text(CHAMBER.format(port=chamber.port))
        out = tmp_path / "run"
        process = _bench(["run", str(PLANS / "chamber.yaml"), "--bench",
                          str(tmp_path / "bench.toml"), "--out", str(out)])  # fmt: skip
        assert _wait_for(lambda: chamber.count("TEMP?") >= 1)  # the step is polling it
    finally:
        chamber.close()
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 3, stdout + stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error: chamber on "), stderr
    events = _events(out)  # readable
    abort = next(e for e in events if e["kind"] == "abort")
    assert "chamber" in _detail(abort)["reason"]
    assert [e["name"] for e in events if e["kind"] == "safe_state"] == ["VCU_Command"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "aborted"


def _wait_for(condition, deadline_s: float = DEADLINE_S) -> bool:
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


# -- CAN interfaces failing mid-run ------------------------------------------------------------


def test_slcan_adapter_unplugged_mid_run_aborts_with_exit_3(tmp_path):
    adapter = SimulatedSlcanAdapter().start()
    try:
        (tmp_path / "bench.toml").write_text(
            f'[buses.diag]\ninterface = "slcan"\nchannel = "{adapter.port}"\n'
            "bitrate = 500000\noptions = {sleep_after_open = 0}\n"
        )
        out = tmp_path / "run"
        process = _bench(["run", str(PLANS / "hold.yaml"), "--bench",
                          str(tmp_path / "bench.toml"), "--out", str(out)])  # fmt: skip
        assert _wait_for(lambda: adapter.transmitted.qsize() >= 10)  # frames are flowing
    finally:
        adapter.close()  # the USB adapter is pulled
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 3, stdout + stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("bench: error: CAN bus 'diag' (slcan:"), stderr
    events = _events(out)
    end = _detail(events[-1])
    assert events[-1]["kind"] == "run_end" and "diag" in end["failed_buses"]
    notes = [_detail(e)["reason"] for e in events if e["kind"] == "note"]
    assert any(n.startswith("safe state NOT sent") for n in notes)  # said, not pretended
    frames = read_frames(out / "frames").frames
    assert frames.num_rows >= 10 and set(frames.column("channel").to_pylist()) == {"diag"}


def test_bus_off_on_one_bus_stops_the_run_and_the_safe_state_goes_out_on_the_other(tmp_path):
    profile = _two_buses(tmp_path, battery="busoff-bat", motor="busoff-mot")
    controller = can.Bus(interface="virtual", channel="busoff-bat")
    motor_side = can.Bus(interface="virtual", channel="busoff-mot")

    def bus_off_soon() -> None:
        # The battery bus's controller reports bus-off once the run is under way.
        if motor_side.recv(timeout=DEADLINE_S) is not None:
            time.sleep(0.2)
            controller.send(
                can.Message(is_error_frame=True, arbitration_id=CAN_ERR_BUSOFF, data=bytes(8))
            )

    thread = threading.Thread(target=bus_off_soon, daemon=True)
    thread.start()
    try:
        result = _run("hold.yaml", tmp_path, bench=profile, realtime=True)
    finally:
        thread.join(DEADLINE_S)
        controller.shutdown()
    try:
        assert result.exit_code == 3 and result.stopped is not None
        assert result.stopped.kind == "error" and "bus-off" in result.stopped.reason
        assert "'battery'" in result.stopped.reason
        events = _events(result.run_dir)
        errors = [_detail(e) for e in events if e["kind"] == "bus_error"]
        assert errors == [{"bus": "battery", "classes": ["bus-off"], "data": "00" * 8}]
        assert [e["name"] for e in events if e["kind"] == "safe_state"] == ["VCU_Command"]
        assert _detail(events[-1])["failed_buses"].keys() == {"battery"}
        # The safe state really is on the motor bus: torque 0, HV off, after the bus-off.
        command = DbcSet.load().message("VCU_Command")
        last = None
        while (frame := motor_side.recv(timeout=0.0)) is not None:
            if frame.arbitration_id == command.frame_id:
                last = command.decode(frame.data, decode_choices=False)
        assert last is not None and last["HvRequest"] == 0 and last["TorqueRequest"] == 0
        recorded = read_frames(result.run_dir / "frames").frames.to_pylist()
        error_rows = [f for f in recorded if f["is_error_frame"]]
        assert len(error_rows) == 1 and error_rows[0]["channel"] == "battery"
    finally:
        motor_side.shutdown()


@pytest.mark.skipif(kernel_has_socketcan(), reason="this kernel has SocketCAN")
def test_socketcan_without_af_can_exits_3_with_one_line_and_sends_nothing(tmp_path):
    process = _bench(["run", str(PLANS / "vcan.yaml"), "--interface", "socketcan",
                      "--channel", "vcan0", "--out", str(tmp_path / "run")])  # fmt: skip
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 3
    assert stderr.strip().splitlines() == [
        "bench: error: cannot open socketcan:vcan0 @ 500 kbit/s: this kernel lacks SocketCAN "
        "(AF_CAN); use a Linux kernel with the can and vcan modules, or --interface virtual"
    ]
    assert read_frames(tmp_path / "run" / "frames").frames.num_rows == 0
