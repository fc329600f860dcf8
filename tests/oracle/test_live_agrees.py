"""The live abort rules agree with the offline checks: on the same frames, a rule breaches at the
first frame (or step change) at which the offline check counts a violation — never earlier, never
later, never when the offline check counts none.

Frame by frame on random logs (the lockstep view: each frame handed to the monitor in time order),
and on real runs of the virtual vehicle in lockstep and in real time.
"""

from __future__ import annotations

import os
from typing import Any

import can
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from bench.checks import EvalContext, evaluate_check
from bench.decode import decode_frames
from bench.e2e import Protector
from bench.monitor import LiveMonitor
from bench.plan.checks import AnyCheck
from tests.test_checks_context import events, frames

EXAMPLES = int(os.environ.get("BENCH_ORACLE_EXAMPLES", "2000")) // 4
LIVE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CHECK = TypeAdapter(AnyCheck)


@st.composite
def live_logs(draw) -> dict[str, Any]:
    """BMS_Temps samples on a 10 ms grid, VCU_Command on a grid offset by 5 ms (no two messages
    share a timestamp, so "the latest value" means the same live and offline), step changes on
    yet another offset."""
    n = draw(st.integers(1, 30))
    ticks = sorted(draw(st.lists(st.integers(0, 60), min_size=n, max_size=n)))
    temps = draw(st.lists(st.sampled_from([20.0, 55.0, 58.0, 61.0, 70.0]), min_size=n,
                          max_size=n))  # fmt: skip
    m = draw(st.integers(0, 6))
    command = sorted(set(draw(st.lists(st.integers(0, 60), min_size=m, max_size=m))))
    torque = draw(st.lists(st.sampled_from([-50.0, 50.0]), min_size=len(command),
                           max_size=len(command)))  # fmt: skip
    changes = sorted(set(draw(st.lists(st.integers(0, 60), max_size=3))))
    names = draw(st.lists(st.sampled_from(["a", "wot[0]", "wot[1]"]), min_size=len(changes),
                          max_size=len(changes)))  # fmt: skip
    return {
        "temps": [(k / 100, v) for k, v in zip(ticks, temps, strict=True)],
        "command": [(k / 100 + 0.005, v) for k, v in zip(command, torque, strict=True)],
        "steps": [(k / 100 + 0.0025, name) for k, name in zip(changes, names, strict=True)],
    }


def _frames_of(dbcs, data):
    temps, command = dbcs.message("BMS_Temps"), dbcs.message("VCU_Command")
    protector = Protector(command)
    rows = [(t, temps.frame_id, temps.encode({"MaxCellTemp": v, "MinCellTemp": 0, "AvgCellTemp": 0,
             "MaxTempSensorId": 1, "MinTempSensorId": 1, "CoolantInletTemp": 0}))
            for t, v in data["temps"]]  # fmt: skip
    rows += [
        (t, command.frame_id, protector.encode({"TorqueRequest": v})) for t, v in data["command"]
    ]
    return sorted(rows, key=lambda r: r[0])


def _step_events(data):
    rows, current = [], None
    for t, name in data["steps"]:
        if current is not None:
            rows.append((t, "step_end", current))
        rows.append((t, "step_start", name))
        current = name
    return events(*rows) if rows else None


def live_breach(dbcs, spec, data) -> float | None:
    """Feed frames and step changes in time order, with a tick at each frame's time (as the
    runner ticks on the bus clock between frames); the time of the first breach."""
    monitor = LiveMonitor(dbcs, abort_checks=[spec])
    monitor.start(0.0)
    timeline = [(r[0], 1, r) for r in _frames_of(dbcs, data)]
    timeline += [(t, 0, name) for t, name in data["steps"]]
    for t, order, item in sorted(timeline, key=lambda x: (x[0], x[1])):
        if order == 0:
            breach = monitor.enter_step(item, t)
        else:
            breach = monitor.on_frame(can.Message(timestamp=t, arbitration_id=item[1],
                                                  data=item[2], is_extended_id=False))  # fmt: skip
        if breach is None and order == 1:
            breach = monitor.on_tick(t)
        if breach is not None:
            return breach.time
    return None


def offline_first(dbcs, spec, data) -> float | None:
    """Where the offline check says the live rule must breach: the first counted violation,
    detected ``for`` after it began, at the first sample (or step change) at or after that."""
    table = frames(_frames_of(dbcs, data))
    decoded = decode_frames(table, dbcs)
    ctx = EvalContext(messages=decoded.messages, dbcs=dbcs, frames=table, events=_step_events(data))
    result = evaluate_check(spec, ctx)
    if result.verdict != "fail":
        return None
    start, _ = result.evidence[0]
    due = start + (getattr(spec, "for_", None) or 0.0) - 1e-9
    # A live rule sees time pass at every frame (its samples, and the ticks between them: the
    # last value holds, so a violation lasting `for` counts even if no sample follows). A step
    # change that closes the `during:` window after the violation lasted `for` proves nothing
    # by itself: offline the value holds to the window's end only if the log goes on that long,
    # so the breach waits for the next frame (which is at or after `due` too).
    moments = sorted([t for t, _ in data["temps"]] + [t for t, _ in data["command"]])
    return next(t for t in moments if t >= due)


@LIVE
@given(
    data=live_logs(),
    for_s=st.sampled_from([None, "20ms", "50ms", "100ms"]),
    during=st.sampled_from([None, ["wot*"], ["a"]]),
    when=st.sampled_from([None, "VCU_Command.TorqueRequest < 0"]),
)
def test_live_range_rule_breaches_where_the_offline_check_counts_a_violation(
    dbcs, data, for_s, during, when
):
    fields: dict[str, Any] = {"name": "hot", "signal": "BMS_Temps.MaxCellTemp", "max": 60,
                              "abort": True}  # fmt: skip
    for key, value in (("for", for_s), ("during", during), ("when", when)):
        if value:
            fields[key] = value
    spec = CHECK.validate_python(fields)
    if spec.when is not None:
        spec.when.bind(dbcs)
    expected = offline_first(dbcs, spec, data)
    got = live_breach(dbcs, spec, data)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected, abs=1e-9)


@LIVE
@given(counts=st.lists(st.integers(0, 15), min_size=1, max_size=30),
       corrupt=st.lists(st.booleans(), min_size=30, max_size=30),
       allowed=st.sampled_from([0, 1, 2]))  # fmt: skip
def test_live_counter_and_crc_rules_breach_at_the_offline_error_over_the_allowance(
    dbcs, counts, corrupt, allowed
):
    from bench.e2e import crc8_j1850

    message = dbcs.message("BMS_PackStatus")
    rows = []
    for i, count in enumerate(counts):
        payload = bytearray(Protector(message).encode({}))
        payload[6] = (payload[6] & 0xF0) | count
        payload[7] = crc8_j1850(bytes(payload[:7])) ^ (0x5A if corrupt[i] else 0)
        rows.append((i * 0.02, message.frame_id, bytes(payload)))
    table = frames(rows)
    decoded = decode_frames(table, dbcs)
    for fields in ({"counter": "BMS_PackStatus.AliveCounter"}, {"crc": "BMS_PackStatus"}):
        spec = CHECK.validate_python({"name": "e2e", "max_errors": allowed, "abort": True,
                                      **fields})  # fmt: skip
        result = evaluate_check(spec, EvalContext(messages=decoded.messages, dbcs=dbcs,
                                                  frames=table))  # fmt: skip
        expected = result.evidence[allowed][1] if result.verdict == "fail" else None
        monitor = LiveMonitor(dbcs, abort_checks=[spec])
        got = None
        for t, frame_id, payload in rows:
            breach = monitor.on_frame(can.Message(timestamp=t, arbitration_id=frame_id,
                                                  data=payload, is_extended_id=False))  # fmt: skip
            if breach is not None:
                got = breach.time
                break
        assert got == expected, (fields, result.message)


# -- real runs: the virtual vehicle in lockstep and in real time -----------------------------------

RUN_PLAN = """\
name: Live agrees with offline
dbc: [{root}/dbc/battery.dbc, {root}/dbc/motor.dbc, {root}/dbc/vehicle.dbc]
bus: {{interface: virtual, channel: {channel}}}
vehicle: {{ambient_c: 20, soc: 60}}
seed: 3
safe_state:
  - {{message: VCU_Command, signals: {{TorqueRequest: 0, HvRequest: 0, DriveMode: PARK}}}}
steps:
  - name: key_on
    send: {{message: VCU_Command, signals: {{KeyOn: 1, HvRequest: 1, DriveMode: PARK,
            TorqueRequest: 0}}, every: 10ms}}
    until: BMS_Status.HvState == "READY"
    timeout: 10s
  - {{name: drive, send: {{message: VCU_Command, signals: {{DriveMode: DRIVE, TorqueRequest: 120}},
     every: 10ms}}, duration: 20s}}
checks:
  - name: Speed limit
    signal: MCU_Power.VehicleSpeed
    max: 12
    for: 300ms
    when: VCU_Command.TorqueRequest > 0
    during: [drive]
    abort: true
"""


@pytest.mark.parametrize("realtime", [False, True], ids=["lockstep", "realtime"])
def test_a_real_run_aborts_at_the_frame_the_offline_check_counts(tmp_path, monkeypatch, realtime):
    """The runner's own monitor, on a run of the virtual vehicle (in real time: a vehicle thread
    on the same python-can virtual channel), breaches at the frame the offline evaluation of the
    recorded frames names; the abort follows within a tick."""
    import threading

    from bench.liveview import NullStream
    from bench.logfiles import read_frames
    from bench.plan import load_plan
    from bench.record import read_events
    from bench.run import RunOptions, run_plan
    from tests.conftest import ROOT

    channel = f"live-agrees-{realtime}-{os.getpid()}"
    path = tmp_path / "plan.yaml"
    path.write_text(RUN_PLAN.format(root=ROOT, channel=channel), encoding="utf-8")
    plan = load_plan(path)
    breaches: list = []
    original = LiveMonitor.on_frame

    def recording(self, frame):
        breach = original(self, frame)
        if breach is not None:
            breaches.append(breach)
        return breach

    original_tick = LiveMonitor.on_tick

    def recording_tick(self, t):
        breach = original_tick(self, t)
        if breach is not None:
            breaches.append(breach)
        return breach

    monkeypatch.setattr(LiveMonitor, "on_frame", recording)
    monkeypatch.setattr(LiveMonitor, "on_tick", recording_tick)
    stop, vehicle_thread = threading.Event(), None
    if realtime:
        from virtual_bus.clock import RealClock
        from virtual_bus.vehicle import VirtualVehicle

        bus = can.Bus(interface="virtual", channel=channel, receive_own_messages=False)
        vehicle = VirtualVehicle(bus, plan.dbcs, seed=3, ambient_c=20, soc=60)
        vehicle_thread = threading.Thread(
            target=vehicle.run_realtime, args=(RealClock(),),
            kwargs={"duration": 60.0, "stop_event": stop}, daemon=True)  # fmt: skip
        vehicle_thread.start()
    try:
        options = RunOptions(out_dir=tmp_path / "run", stream=NullStream(), handle_signals=False,
                             realtime=realtime)  # fmt: skip
        result = run_plan(plan, options)
    finally:
        stop.set()
        if vehicle_thread is not None:
            vehicle_thread.join(10)
            bus.shutdown()
    assert result.summary.verdict == "aborted", result.summary.aborted
    recorded = read_events(result.run_dir / "events.parquet")
    abort = next(e for e in recorded.to_pylist() if e["kind"] == "abort")
    table = read_frames(result.run_dir / "frames").frames
    decoded = decode_frames(table, plan.dbcs)
    ctx = EvalContext(messages=decoded.messages, dbcs=plan.dbcs, frames=table, events=recorded)
    check = evaluate_check(plan.check("Speed limit"), ctx)
    assert check.verdict == "fail", check.message
    start, _ = check.evidence[0]
    speed = decoded.messages["MCU_Power"].column("timestamp").to_numpy()
    due = start + 0.3 - 1e-9
    expected = speed[speed >= due][0]
    # at the sample that shows it, or at a tick before that sample (the last value holds)
    assert breaches and due <= breaches[0].time <= expected + 1e-9
    assert breaches[0].time <= abort["timestamp"] + 1e-9 <= expected + 0.1
