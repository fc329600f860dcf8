"""Real SocketCAN on vcan: buses, the kernel's periodic send, receive buffers, filters, error
frames, interface faults and an end-to-end nightly-style run against a separate vehicle process.

Run them where the kernel has vcan (``make test-socketcan``, root for the receive-buffer and
link up/down cases), or anywhere through ``../shared/tools/run-in-vcan-vm.sh .venv/bin/python -m
pytest -m socketcan -q tests/`` (a throw-away VM with vcan0 and vcan1 up). Elsewhere they skip
with the reason.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import can
import pytest

from bench.bus import (
    CAN_ERR_BUSOFF,
    SOCKETCAN_RCVBUF_BYTES,
    BusSettings,
    is_bus_off,
    kernel_has_socketcan,
    open_bus,
    size_receive_buffer,
)
from bench.dbc import DbcSet
from bench.e2e import crc8_j1850
from bench.logfiles import read_frames
from bench.plan import load_plan
from bench.record import read_events
from bench.run import RunOptions, run_plan

from .conftest import ROOT

PLANS = Path(__file__).parent / "runner_plans"
DEADLINE_S = 120.0  # bounds on waiting (QEMU emulation is ~17x slower), never figures


def _interface_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def _skip_reason(*names: str) -> str | None:
    if not kernel_has_socketcan():
        return (
            "this kernel lacks SocketCAN (AF_CAN): run on Linux with the can/vcan modules "
            "(scripts/vcan-up.sh) or through ../shared/tools/run-in-vcan-vm.sh"
        )
    missing = [name for name in names if not _interface_exists(name)]
    if missing:
        return f"no {', '.join(missing)} interface (sudo scripts/vcan-up.sh {' '.join(missing)})"
    return None


pytestmark = [
    pytest.mark.socketcan,
    pytest.mark.skipif(_skip_reason("vcan0") is not None, reason=str(_skip_reason("vcan0"))),
]

VCAN = BusSettings(interface="socketcan", channel="vcan0", bitrate=None)


class _Quiet:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


@pytest.fixture
def bus_pair() -> Iterator[tuple[can.BusABC, can.BusABC]]:
    sender, receiver = open_bus(VCAN), open_bus(VCAN)
    yield sender, receiver
    sender.shutdown()
    receiver.shutdown()


def _drain(bus: can.BusABC, quiet_s: float = 0.2) -> list[can.Message]:
    frames = []
    while (frame := bus.recv(timeout=quiet_s)) is not None:
        frames.append(frame)
    return frames


def _wait_for(condition: Callable[[], bool]) -> bool:
    end = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


# -- buses -----------------------------------------------------------------------------------------


def test_classic_frames_cross_vcan0(bus_pair):
    sender, receiver = bus_pair
    frames = [
        can.Message(arbitration_id=0x123, data=bytes([1, 2, 3]), is_extended_id=False),
        can.Message(arbitration_id=0x18FF50E5, data=bytes(range(8)), is_extended_id=True),
    ]
    for frame in frames:
        sender.send(frame)
    got = _drain(receiver)
    assert [(f.arbitration_id, f.is_extended_id, bytes(f.data)) for f in got] == [
        (f.arbitration_id, f.is_extended_id, bytes(f.data)) for f in frames
    ]
    assert all(f.channel == "vcan0" for f in got)


def test_can_fd_frames_cross_vcan0():
    settings = BusSettings(interface="socketcan", channel="vcan0", bitrate=None, fd=True)
    sender, receiver = open_bus(settings), open_bus(settings)
    try:
        frame = can.Message(
            arbitration_id=0x140, data=bytes(range(64)), is_fd=True, bitrate_switch=True,
            is_extended_id=False,
        )  # fmt: skip
        sender.send(frame)
        got = receiver.recv(timeout=DEADLINE_S)
        assert got is not None and got.is_fd and got.bitrate_switch
        assert bytes(got.data) == bytes(range(64)) and got.dlc == 64
    finally:
        sender.shutdown()
        receiver.shutdown()


def test_kernel_filters_let_only_the_wanted_ids_through(bus_pair):
    sender, _ = bus_pair
    filtered = open_bus(VCAN, can_filters=[{"can_id": 0x120, "can_mask": 0x7F0, "extended": False}])
    try:
        for arbitration_id in (0x100, 0x121, 0x12F, 0x130, 0x7FF):
            sender.send(can.Message(arbitration_id=arbitration_id, data=b"\x00",
                                    is_extended_id=False))  # fmt: skip
        assert [f.arbitration_id for f in _drain(filtered)] == [0x121, 0x12F]
    finally:
        filtered.shutdown()


def test_error_frames_arrive_as_error_frames_and_bus_off_is_recognised(bus_pair):
    sender, receiver = bus_pair
    sender.send(can.Message(is_error_frame=True, arbitration_id=CAN_ERR_BUSOFF, data=bytes(8)))
    got = receiver.recv(timeout=DEADLINE_S)
    assert got is not None and got.is_error_frame and is_bus_off(got)


# -- receive buffer ----------------------------------------------------------------------

BURST = 10_000  # frames: over a second of a full 1 Mbit/s bus, 36 times the default buffer


def test_the_sized_receive_buffer_loses_nothing_while_the_reader_is_busy():
    if not _is_root():
        pytest.skip("SO_RCVBUFFORCE needs root (or raise net.core.rmem_max)")
    sized = open_bus(VCAN)
    default = can.Bus(interface="socketcan", channel="vcan0")  # python-can's default buffer
    sender = open_bus(VCAN)
    try:
        assert size_receive_buffer(sized) >= SOCKETCAN_RCVBUF_BYTES
        # Blast a burst while nobody reads (the runner busy writing a segment, say) ...
        for index in range(BURST):
            data = index.to_bytes(4, "little")
            sender.send(can.Message(arbitration_id=0x200 + index % 16, data=data))
        # ... then count: the sized socket has every frame, in order; the default one lost some.
        got = _drain(sized)
        assert len(got) == BURST
        assert [int.from_bytes(f.data, "little") for f in got] == list(range(BURST))
        assert len(_drain(default)) < BURST
    finally:
        for bus in (sized, default, sender):
            bus.shutdown()


# -- the runner on vcan0 ----------------------------------------------------------------------


def test_constant_periodic_stimuli_go_to_the_kernel_and_are_recorded(tmp_path):
    listener = open_bus(VCAN)
    try:
        result = run_plan(
            load_plan(PLANS / "bcm.yaml"),
            RunOptions(interface="socketcan", channel="vcan0", out_dir=tmp_path / "run",
                       stream=_Quiet(), handle_signals=False),
        )  # fmt: skip
        heard = _drain(listener)
    finally:
        listener.shutdown()
    assert result.summary.verdict == "pass", [(c.name, c.message) for c in result.summary.checks]
    events = read_events(result.run_dir / "events.parquet").to_pylist()
    kernel = [e for e in events if e["kind"] == "stimulus" and "BCM" in (e["detail"] or "")]
    assert [e["name"] for e in kernel] == ["VCU_Command", "VCU_Command"]  # before and after ramp
    command = DbcSet.load().message("VCU_Command")
    on_bus = [bytes(f.data) for f in heard if f.arbitration_id == command.frame_id]
    frames = read_frames(result.run_dir / "frames").frames.to_pylist()
    # Time order: the kernel's frames are recorded when they come back, the scheduler's when sent.
    frames.sort(key=lambda f: f["timestamp"])
    recorded = [
        bytes(f["data"])
        for f in frames
        if f["arbitration_id"] == command.frame_id and f["direction"] == "tx"
    ]
    # Every frame on the bus is in the log (as tx), in order, none twice.
    assert recorded and _is_contiguous_subsequence(recorded, on_bus)
    # Counters count, CRCs seal, and the three phases' values all went out.
    decoded = [command.decode(data, decode_choices=False) for data in on_bus]
    for data in on_bus:
        assert data[7] == crc8_j1850(data[:7])
    counters = [d["AliveCounter"] for d in decoded]
    jumps = sum((b - a) % 16 != 1 for a, b in itertools.pairwise(counters))
    assert jumps == 0  # not even where the sender changed hands (BCM ↔ scheduler)
    torques = [d["TorqueRequest"] for d in decoded]
    assert torques[0] == 0 and max(torques) > 0 and torques[-1] == 0
    assert {d["KeyOn"] for d in decoded} == {1}


def _is_contiguous_subsequence(part: list[bytes], whole: list[bytes]) -> bool:
    for start in range(len(whole) - len(part) + 1):
        if whole[start : start + len(part)] == part:
            return True
    return False


def _bench(args: list[str]) -> subprocess.Popen:
    command = [str(Path(sys.executable).parent / "bench"), *args, "--plain"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _link(name: str, state: str) -> None:
    subprocess.run(["ip", "link", "set", name, state], check=True)


@pytest.mark.skipif(not _is_root(), reason="setting a link down needs root")
def test_interface_set_down_mid_run_aborts_with_exit_3_and_one_line(tmp_path):
    listener = open_bus(VCAN)
    out = tmp_path / "run"
    process = _bench(["run", str(PLANS / "hold.yaml"), "--interface", "socketcan",
                      "--channel", "vcan0", "--out", str(out)])  # fmt: skip
    try:
        assert _wait_for(lambda: listener.recv(timeout=0.1) is not None)  # frames flow
        _link("vcan0", "down")
        stdout, stderr = process.communicate(timeout=600)
    finally:
        _link("vcan0", "up")
        listener.shutdown()
        if process.poll() is None:
            process.kill()
    assert process.returncode == 3, stdout + stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error: CAN bus 'vcan0'"), stderr
    assert "network is down" in lines[0]
    events = read_events(out / "events.parquet").to_pylist()
    assert events[-1]["kind"] == "run_end"
    assert json.loads((out / "summary.json").read_text())["verdict"] == "aborted"


@pytest.mark.skipif(not _is_root(), reason="setting a link down needs root")
@pytest.mark.skipif(not _interface_exists("vcan1"), reason="no vcan1 (VCANVM_IFACES='vcan0 vcan1')")
def test_one_of_two_buses_down_the_safe_state_still_goes_out_on_the_other(tmp_path):
    dbc = ROOT / "dbc"
    (tmp_path / "bench.toml").write_text(
        f'[buses.battery]\ninterface = "socketcan"\nchannel = "vcan1"\n'
        f'dbc = ["{dbc}/battery.dbc"]\n'
        f'[buses.motor]\ninterface = "socketcan"\nchannel = "vcan0"\n'
        f'dbc = ["{dbc}/motor.dbc", "{dbc}/vehicle.dbc"]\n'
    )
    listener = open_bus(VCAN)
    out = tmp_path / "run"
    process = _bench(["run", str(PLANS / "hold.yaml"), "--bench", str(tmp_path / "bench.toml"),
                      "--out", str(out)])  # fmt: skip
    try:
        assert _wait_for(lambda: listener.recv(timeout=0.1) is not None)
        _link("vcan1", "down")
        stdout, stderr = process.communicate(timeout=600)
        heard = _drain(listener)
    finally:
        _link("vcan1", "up")
        listener.shutdown()
        if process.poll() is None:
            process.kill()
    assert process.returncode == 3, stdout + stderr
    assert stderr.strip().startswith("bench: error: CAN bus 'battery' (socketcan:vcan1")
    command = DbcSet.load().message("VCU_Command")
    last = [command.decode(f.data) for f in heard if f.arbitration_id == command.frame_id][-1]
    assert last["HvRequest"] == 0 and last["TorqueRequest"] == 0  # safe, on the live bus
    events = read_events(out / "events.parquet").to_pylist()
    assert [e["name"] for e in events if e["kind"] == "safe_state"] == ["VCU_Command"]


# -- end to end: a separate vehicle process, as the nightly runs -----------------------------------


def test_vehicle_process_on_vcan0_gives_the_same_verdicts_as_lockstep(tmp_path):
    plan = PLANS / "vcan.yaml"
    lockstep = run_plan(
        load_plan(plan),
        RunOptions(out_dir=tmp_path / "lockstep", stream=_Quiet(), handle_signals=False),
    )
    vehicle = subprocess.Popen(
        [sys.executable, "-m", "virtual_bus", "--realtime", "--interface", "socketcan",
         "--channel", "vcan0", "--ambient", "25", "--soc", "80", "--seed", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        listener = open_bus(VCAN)
        assert _wait_for(lambda: listener.recv(timeout=0.1) is not None), "vehicle silent"
        listener.shutdown()
        process = _bench(["run", str(plan), "--interface", "socketcan", "--channel", "vcan0",
                          "--out", str(tmp_path / "vcan")])  # fmt: skip
        stdout, stderr = process.communicate(timeout=600)
    finally:
        os.killpg(vehicle.pid, signal.SIGTERM)
        vehicle.wait(timeout=DEADLINE_S)
    realtime = json.loads((tmp_path / "vcan" / "summary.json").read_text())
    verdicts = {c["name"]: c["verdict"] for c in realtime["checks"]}
    expected = {c.name: c.verdict for c in lockstep.summary.checks}
    assert verdicts == expected, "\n".join(c["message"] for c in realtime["checks"])
    assert process.returncode == lockstep.exit_code == 0, stdout[-2000:] + stderr
    assert realtime["mode"] == "realtime"
    # The plan's bus is classic; the 64-byte CAN FD frames of BMS_ModuleData are recorded anyway.
    frames = read_frames(tmp_path / "vcan" / "frames").frames.to_pylist()
    module_data = [f for f in frames if f["arbitration_id"] == 0x140]
    assert module_data and all(f["is_fd"] and f["dlc"] == 64 for f in module_data)
