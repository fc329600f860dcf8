"""python-can's slcan interface driven end to end over a pseudo-terminal.

A LAWICEL/slcan adapter simulator (bench.instruments.simulator.SimulatedSlcanAdapter) serves the
master side of a pty; python-can opens the slave (``/dev/pts/N``) through pyserial exactly as it
opens ``/dev/ttyACM0`` for a CANable. Nothing is mocked: the init sequence, frame encoding in both
directions, FD frames and the version query all cross a real tty.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import can
import pytest

from bench.instruments.simulator import (
    SimulatedSlcanAdapter,
    format_slcan_frame,
    parse_slcan_frame,
)

# A bound on how long to wait for the adapter thread, never a measured figure.
DEADLINE_S = 5.0


def wait_for(condition: Callable[[], bool]) -> bool:
    end = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.005)
    return True


@pytest.fixture
def adapter():
    with SimulatedSlcanAdapter() as sim:
        yield sim


@pytest.fixture
def bus(adapter):
    bus = can.Bus(interface="slcan", channel=adapter.port, bitrate=500000, sleep_after_open=0)
    yield bus
    bus.shutdown()


def sent(adapter: SimulatedSlcanAdapter) -> can.Message:
    return adapter.transmitted.get(timeout=DEADLINE_S)


FRAMES = [
    can.Message(arbitration_id=0x123, data=bytes([1, 2, 3, 4]), is_extended_id=False),
    can.Message(arbitration_id=0x18FF50E5, data=bytes(range(8)), is_extended_id=True),
    can.Message(arbitration_id=0x7FF, data=b"", is_extended_id=False),
    can.Message(arbitration_id=0x321, is_remote_frame=True, dlc=4, is_extended_id=False),
    can.Message(arbitration_id=0x1ABCDEF0, is_remote_frame=True, dlc=8, is_extended_id=True),
    can.Message(arbitration_id=0x200, data=bytes(range(64)), is_fd=True, is_extended_id=False),
    can.Message(
        arbitration_id=0x10000001,
        data=bytes(range(12)),
        is_fd=True,
        bitrate_switch=True,
        is_extended_id=True,
    ),
]


def same_frame(a: can.Message, b: can.Message) -> bool:
    return a.equals(b, timestamp_delta=None, check_channel=False, check_direction=False)


def test_python_can_init_sequence_reaches_the_adapter(bus, adapter):
    bus.send(FRAMES[0])
    assert same_frame(sent(adapter), FRAMES[0])
    # python-can closes the channel, sets 500 kbit/s, "no data bit rate" (an empty command),
    # opens it (twice in 4.6); all of it came before the frame (one ordered byte stream).
    assert adapter.received[:5] == ["C", "S6", "", "O", "O"]
    assert adapter.bitrate_command == "S6"
    assert adapter.is_open


@pytest.mark.parametrize("frame", FRAMES, ids=lambda f: repr(f.arbitration_id))
def test_frames_from_python_can_reach_the_adapter(bus, adapter, frame):
    bus.send(frame)
    assert same_frame(sent(adapter), frame)


@pytest.mark.parametrize("frame", FRAMES, ids=lambda f: repr(f.arbitration_id))
def test_frames_from_the_adapter_reach_python_can(bus, adapter, frame):
    bus.send(FRAMES[0])  # make sure the channel is open before injecting
    sent(adapter)
    adapter.inject(frame)
    received = bus.recv(timeout=DEADLINE_S)
    assert received is not None
    assert same_frame(received, frame)


def test_many_frames_keep_their_order(bus, adapter):
    bus.send(FRAMES[0])
    sent(adapter)
    frames = [can.Message(arbitration_id=0x100 + i, data=[i, i >> 8]) for i in range(200)]
    for frame in frames:
        adapter.inject(frame)
    got = [bus.recv(timeout=DEADLINE_S) for _ in frames]
    assert [m.arbitration_id for m in got if m] == [f.arbitration_id for f in frames]
    for frame in frames:
        bus.send(frame)
    assert [sent(adapter).arbitration_id for _ in frames] == [f.arbitration_id for f in frames]


def test_version_and_serial_number(bus):
    assert bus.get_version(timeout=DEADLINE_S) == (10, 13)
    assert bus.get_serial_number(timeout=DEADLINE_S) == "SIM1"


def test_fd_data_bitrate_commands(bus, adapter):
    bus.set_bitrate(1_000_000, 2_000_000)
    bus.send(FRAMES[0])
    sent(adapter)
    # Closed, 1 Mbit/s nominal, 2 Mbit/s data phase (CANable 2 FD firmware), open again.
    assert adapter.received[-5:-1] == ["C", "S8", "Y2", "O"]
    assert adapter.bitrate_command == "Y2"


def test_shutdown_closes_the_channel(adapter):
    bus = can.Bus(interface="slcan", channel=adapter.port, bitrate=250000, sleep_after_open=0)
    bus.shutdown()
    # Wait for the closing C after the opening O: python-can's first command is a C too, so
    # waiting for "the last command is C" passed at once under load (received == ["C"]).
    assert wait_for(lambda: adapter.received[-2:] == ["O", "C"])
    # python-can 4.6 opens twice (set_bitrate ends with O, then __init__ sends O again).
    assert adapter.received == ["C", "S5", "", "O", "O", "C"]
    assert not adapter.is_open


def test_adapter_unplugged_mid_session_is_a_can_error(adapter):
    bus = can.Bus(interface="slcan", channel=adapter.port, bitrate=500000, sleep_after_open=0)
    bus.send(FRAMES[0])
    sent(adapter)
    adapter.close()
    # What the runner sees when a USB-serial adapter goes away: python-can's own error types.
    with pytest.raises(can.CanOperationError, match="Could not write to serial device"):
        bus.send(FRAMES[0])
    with pytest.raises(can.CanOperationError, match="Could not read from serial device"):
        bus.recv(timeout=0.1)
    with pytest.raises(can.CanOperationError):
        bus.shutdown()  # it still tries to send "C" on the way out


def test_frame_text_round_trip():
    lines = [format_slcan_frame(frame) for frame in FRAMES]
    assert lines[:5] == [
        "t12340102030 4".replace(" ", ""),
        "T18FF50E580001020304050607",
        "t7FF0",
        "r3214",
        "R1ABCDEF08",
    ]
    assert lines[5].startswith("d200F") and len(lines[5]) == 5 + 128
    assert lines[6].startswith("B10000001" + "9")  # 12 bytes is FD DLC 9
    for frame, line in zip(FRAMES, lines, strict=True):
        assert same_frame(parse_slcan_frame(line), frame)
    with pytest.raises(ValueError):
        parse_slcan_frame("t1239" + "00" * 9)  # classic frames stop at 8 bytes
    with pytest.raises(ValueError):
        parse_slcan_frame("t12340102")  # shorter than its DLC


def test_adapter_bridged_to_a_python_can_bus():
    """The simulator as a "USB adapter on a bus": host frames reach the bus and back."""
    with (
        can.Bus(interface="virtual", channel="slcan-bridge", receive_own_messages=False) as wire,
        can.Bus(interface="virtual", channel="slcan-bridge") as vehicle,
        SimulatedSlcanAdapter(bus=wire) as adapter,
    ):
        host = can.Bus(interface="slcan", channel=adapter.port, bitrate=500000, sleep_after_open=0)
        try:
            host.send(FRAMES[1])
            on_bus = vehicle.recv(timeout=DEADLINE_S)
            assert on_bus is not None and same_frame(on_bus, FRAMES[1])
            vehicle.send(FRAMES[5])
            at_host = host.recv(timeout=DEADLINE_S)
            assert at_host is not None and same_frame(at_host, FRAMES[5])
        finally:
            host.shutdown()
