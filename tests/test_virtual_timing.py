"""When the virtual vehicle sends: exact cycles by default, seeded jitter and start-up delay on
request, and on SocketCAN the kernel's cyclic send tasks with live payload updates."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import can
import numpy as np
import pytest

from bench.bus import kernel_has_socketcan
from bench.e2e import crc8_j1850, crc_byte_index
from bench.errors import InputError
from virtual_bus import VirtualVehicle
from virtual_bus.clock import RealClock
from virtual_bus.lockstep import Lockstep

DRIVE = {"KeyOn": 1, "HvRequest": 1, "DriveMode": 3, "TorqueRequest": 0}


def _gaps_ms(bench: Lockstep, name: str) -> np.ndarray:
    times = np.array([t for t, _ in bench.decoded(name)])
    return np.diff(times) * 1000.0


def test_cycles_are_exact_without_jitter(dbcs):
    with Lockstep(dbcs, keep=["BMS_PackStatus", "MCU_Status"]) as bench:
        bench.run(5.0)
        assert np.allclose(_gaps_ms(bench, "BMS_PackStatus"), 20.0, atol=1e-6)
        assert np.allclose(_gaps_ms(bench, "MCU_Status"), 10.0, atol=1e-6)


def _jittered(dbcs, seed: int) -> Lockstep:
    kwargs = {"seed": seed, "cycle_jitter_ms": {"BMS": 2.0}, "startup_delay_ms": {"MCU": 150.0}}
    bench = Lockstep(dbcs, kwargs, keep=["BMS_PackStatus", "MCU_Status"])
    bench.run(5.0)
    return bench


def test_jitter_moves_each_frame_around_its_slot_without_drift(dbcs):
    with _jittered(dbcs, 3) as bench:
        gaps = _gaps_ms(bench, "BMS_PackStatus")
        assert gaps.std() > 0.5  # really jittered
        assert np.all(np.abs(gaps - 20.0) <= 4.0 + 1e-6)  # two frames each at most 2 ms off
        times = np.array([t for t, _ in bench.decoded("BMS_PackStatus")])
        slots = times[0] + 0.020 * np.arange(len(times))
        assert np.max(np.abs(times - slots)) <= 0.004 + 1e-9  # no drift: ± 2 ms of a fixed grid
        assert np.allclose(_gaps_ms(bench, "MCU_Status"), 10.0, atol=1e-6)  # only the BMS


def test_jitter_is_seeded(dbcs):
    with _jittered(dbcs, 3) as a, _jittered(dbcs, 3) as b, _jittered(dbcs, 4) as c:
        assert np.array_equal(_gaps_ms(a, "BMS_PackStatus"), _gaps_ms(b, "BMS_PackStatus"))
        assert not np.array_equal(_gaps_ms(a, "BMS_PackStatus"), _gaps_ms(c, "BMS_PackStatus"))


def test_startup_delay_holds_back_one_ecu(dbcs):
    with _jittered(dbcs, 3) as bench:
        assert bench.decoded("MCU_Status")[0][0] >= 0.150
        assert bench.decoded("BMS_PackStatus")[0][0] < 0.150


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"cycle_jitter_ms": {"VCU": 1.0}}, "unknown ECU 'VCU'"),
        ({"startup_delay_ms": {"BMS": -5.0}}, "0-1000 ms"),
    ],
)
def test_bad_timing_options_are_input_errors(dbcs, kwargs, reason):
    bus = can.Bus(interface="virtual", channel="timing-bad")
    try:
        with pytest.raises(InputError, match=reason):
            VirtualVehicle(bus, dbcs, **kwargs)
    finally:
        bus.shutdown()


# -- SocketCAN: the kernel's cyclic send tasks --------------------------------------------------

socketcan = pytest.mark.skipif(
    not kernel_has_socketcan() or not Path("/sys/class/net/vcan0").exists(),
    reason="needs SocketCAN and vcan0 (scripts/vcan-up.sh or run-in-vcan-vm.sh)",
)


@pytest.mark.socketcan
@socketcan
def test_kernel_sends_the_cyclic_messages_with_live_counters_crc_and_values(dbcs):
    vehicle_bus = can.Bus(interface="socketcan", channel="vcan0", fd=True)
    bench = can.Bus(interface="socketcan", channel="vcan0", fd=True)
    vehicle = VirtualVehicle(vehicle_bus, dbcs, seed=1)
    stop = threading.Event()
    runner = threading.Thread(
        target=vehicle.run_realtime, args=(RealClock(),), kwargs={"stop_event": stop}
    )
    runner.start()
    status = dbcs.message("BMS_Status")
    command = dbcs.message("VCU_Command")
    received: list[can.Message] = []
    try:
        from bench.e2e import Protector

        protector = Protector(command)
        end = time.monotonic() + 3.0
        next_send = time.monotonic() + 1.0
        while time.monotonic() < end:
            if time.monotonic() >= next_send:  # key on after 1 s: HvState must change on the bus
                bench.send(
                    can.Message(
                        arbitration_id=command.frame_id,
                        is_extended_id=False,
                        data=protector.encode(DRIVE),
                    )
                )
                next_send += 0.01
            msg = bench.recv(timeout=0.005)
            if msg is not None and msg.arbitration_id == status.frame_id:
                received.append(msg)
        tasks = vehicle.kernel_tasks
    finally:
        stop.set()
        runner.join(10)
        vehicle_bus.shutdown()
        bench.shutdown()
    assert tasks >= 8, "the cyclic messages should be kernel cyclic send tasks"
    assert len(received) >= 25  # 100 ms cycle for 3 s
    index = crc_byte_index(status)
    counters = []
    states = []
    for msg in received:
        data = bytes(msg.data)
        assert data[index] == crc8_j1850(data[:index] + data[index + 1 :])
        values = status.decode(data, decode_choices=False)
        counters.append(int(values["AliveCounter"]))
        states.append(int(values["HvState"]))
    assert all((b - a) % 16 == 1 for a, b in itertools.pairwise(counters))
    assert states[0] == 0 and 2 in states  # OFF, then READY: payload updated in the running task
