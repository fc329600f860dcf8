"""ISO-TP reassembly from recorded frames (bench.diag.isotp_log) against can-isotp itself.

* Frames made by a real can-isotp stack on a python-can virtual bus (classic CAN with flow
  control and block sizes, CAN FD, escape-sequence first frames, 29-bit ids) reassemble to the
  payloads the receiving can-isotp stack delivered.
* Random frame sequences (good, interrupted, wrong sequence numbers, stray consecutive frames,
  garbage) give the same complete payloads as can-isotp's receiver fed the same frames.
* Broken messages become messages with a reason, never an exception.
"""

from __future__ import annotations

import uuid

import can
import isotp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.diag.isotp_log import N_CR, Frame, reassemble, select_frames
from bench.frames import from_messages

# -- frames from a real can-isotp stack ----------------------------------------------------------


def _stacks(fd: bool, extended: bool, blocksize: int):
    channel = f"isotp-{uuid.uuid4().hex}"
    tester_bus = can.Bus(interface="virtual", channel=channel, receive_own_messages=False)
    ecu_bus = can.Bus(interface="virtual", channel=channel)
    recorder = can.Bus(interface="virtual", channel=channel)
    mode = isotp.AddressingMode.Normal_29bits if extended else isotp.AddressingMode.Normal_11bits
    req, resp = (0x18DA10F1, 0x18DAF110) if extended else (0x7E0, 0x7E8)
    params = {
        "blocksize": blocksize,
        "stmin": 0,
        "tx_padding": 0xCC,
        "can_fd": fd,
        "tx_data_length": 64 if fd else 8,
        "max_frame_size": 1 << 20,
    }
    tester = isotp.CanStack(
        tester_bus, address=isotp.Address(mode, txid=req, rxid=resp), params=params
    )
    ecu = isotp.CanStack(ecu_bus, address=isotp.Address(mode, txid=resp, rxid=req), params=params)
    return (tester_bus, ecu_bus, recorder), tester, ecu, (req, resp)


def _record(recorder: can.BusABC) -> list[can.Message]:
    got = []
    while (msg := recorder.recv(timeout=0.2)) is not None:
        got.append(msg)
    return got


@pytest.mark.parametrize(
    ("fd", "extended", "blocksize", "sizes"),
    [
        (False, False, 0, [1, 7, 8, 62, 300]),
        (False, False, 4, [13, 200, 4095]),
        (False, True, 2, [3, 40]),
        (True, False, 8, [7, 8, 62, 63, 500]),
        (False, False, 16, [5000]),  # first frame with the escape sequence (> 4095 bytes)
    ],
)
def test_reassembles_what_can_isotp_sent(fd, extended, blocksize, sizes):
    buses, tester, ecu, (req, resp) = _stacks(fd, extended, blocksize)
    tester.start()
    ecu.start()
    received_requests, received_responses = [], []
    try:
        for n in sizes:
            request = bytes((i * 7 + n) & 0xFF for i in range(n))
            tester.send(request, send_timeout=10)
            got = ecu.recv(block=True, timeout=10)
            received_requests.append(bytes(got))
            response = bytes(reversed(request))
            ecu.send(response, send_timeout=10)
            received_responses.append(bytes(tester.recv(block=True, timeout=10)))
        recorded = _record(buses[2])
    finally:
        tester.stop()
        ecu.stop()
        for bus in buses:
            bus.shutdown()
    table = from_messages(recorded)
    frames = list(select_frames(table, [(req, extended), (resp, extended)]))
    assert len(frames) == len(recorded)  # nothing else on this bus
    messages = reassemble(frames)
    assert all(m.complete for m in messages), [m.problem for m in messages]
    assert [m.payload for m in messages if m.arbitration_id == req] == received_requests
    assert [m.payload for m in messages if m.arbitration_id == resp] == received_responses
    assert received_requests == [bytes((i * 7 + n) & 0xFF for i in range(n)) for n in sizes]
    for message in messages:
        assert message.start <= message.end


# -- random frame sequences: the same payloads as can-isotp's own receiver -----------------------


def _library_payloads(frames: list[Frame]) -> list[bytes]:
    """can-isotp's receive state machine, fed the frames one by one (listen mode: it sends no
    flow control; wall-clock timeouts far longer than the test)."""
    pending: list[CanMessageLike] = []
    out: list[bytes] = []
    address = isotp.Address(isotp.AddressingMode.Normal_11bits, txid=0x7E0, rxid=0x7E8)
    layer = isotp.TransportLayerLogic(
        rxfn=lambda timeout: pending.pop(0) if pending else None,
        txfn=lambda msg: None,
        address=address,
        params={
            "listen_mode": True,
            "rx_consecutive_frame_timeout": 10_000_000,
            "max_frame_size": 1 << 20,
            "blocksize": 0,
        },
    )
    layer.logger.disabled = True
    for frame in frames:
        pending.append(isotp.CanMessage(0x7E8, len(frame.data), frame.data, False, frame.is_fd))
        layer.process()
        while layer.available():
            out.append(bytes(layer.recv()))
    return out


CanMessageLike = isotp.CanMessage


@st.composite
def frame_sequences(draw) -> list[Frame]:
    """Mostly well-formed messages, with the faults a real bus or a broken ECU produces."""
    frames: list[Frame] = []
    t = 0.0

    def add(data: bytes) -> None:
        nonlocal t
        t += 0.001
        frames.append(Frame(t, 0x7E8, False, data))

    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["sf", "multi", "multi", "garbage", "stray_cf", "fc"]))
        if kind == "sf":
            n = draw(st.integers(1, 7))
            add(bytes([n]) + draw(st.binary(min_size=n, max_size=n)) + b"\xcc" * (7 - n))
        elif kind == "multi":
            n = draw(st.integers(7, 60))
            payload = draw(st.binary(min_size=n, max_size=n))
            add(bytes([0x10 | (n >> 8), n & 0xFF]) + payload[:6])
            rest, seq = payload[6:], 1
            cut = draw(st.sampled_from([None, None, "drop", "wrong_seq", "stop"]))
            chunks = [rest[i : i + 7] for i in range(0, len(rest), 7)]
            for index, chunk in enumerate(chunks):
                if cut == "stop" and index == len(chunks) // 2:
                    break
                if cut == "drop" and index == len(chunks) // 2:
                    seq = (seq + 1) & 0xF
                    continue
                number = seq if cut != "wrong_seq" or index != 0 else (seq + 3) & 0xF
                add(bytes([0x20 | number]) + chunk + b"\xcc" * (7 - len(chunk)))
                seq = (seq + 1) & 0xF
        elif kind == "garbage":
            add(draw(st.binary(min_size=0, max_size=8)))
        elif kind == "stray_cf":
            add(bytes([0x20 | draw(st.integers(0, 15))]) + b"\x00" * 7)
        else:
            add(bytes([0x30, 0, 0]) + b"\xcc" * 5)
    return frames


@settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(frame_sequences())
def test_random_frames_give_can_isotps_payloads(frames):
    mine = [m.payload for m in reassemble(frames) if m.complete]
    assert mine == _library_payloads(frames)


# -- broken messages: a reason, never an exception -------------------------------------------------


def _cf(seq: int, data: bytes, t: float) -> Frame:
    return Frame(t, 0x7E8, False, bytes([0x20 | seq]) + data.ljust(7, b"\xcc"))


def _ff(length: int, data: bytes, t: float) -> Frame:
    return Frame(t, 0x7E8, False, bytes([0x10 | (length >> 8), length & 0xFF]) + data)


def test_wrong_sequence_number_is_a_truncated_message_with_the_reason():
    frames = [_ff(20, b"ABCDEF", 0.0), _cf(1, b"GHIJKLM", 0.01), _cf(3, b"NOPQRST", 0.02)]
    (message,) = reassemble(frames)
    assert not message.complete
    assert message.payload == b"ABCDEFGHIJKLM"
    assert "13 of 20 bytes" in message.problem and "wrong sequence number 0x3" in message.problem
    assert "expected 0x2" in message.problem


def test_message_never_completed_before_the_log_ends():
    (message,) = reassemble([_ff(30, b"ABCDEF", 1.0), _cf(1, b"GHIJKLM", 1.01)], log_end=2.0)
    assert not message.complete and "the log ends" in message.problem
    assert message.start == 1.0 and message.end == 1.01


def test_consecutive_frame_after_n_cr_is_a_timeout():
    frames = [_ff(14, b"ABCDEF", 0.0), _cf(1, b"GHIJKLM", 0.0 + N_CR + 0.5)]
    (message,) = reassemble(frames)
    assert not message.complete and "N_Cr" in message.problem


def test_sequence_numbers_wrap_after_15():
    payload = bytes(range(150))
    frames = [_ff(150, payload[:6], 0.0)]
    rest = payload[6:]
    for index, start in enumerate(range(0, len(rest), 7)):
        frames.append(_cf((index + 1) & 0xF, rest[start : start + 7], 0.001 * (index + 1)))
    (message,) = reassemble(frames)
    assert message.complete and message.payload == payload and message.frames == len(frames)


def test_garbage_and_interruptions_never_raise():
    frames = [
        Frame(0.0, 0x7E8, False, b""),
        Frame(0.1, 0x7E8, False, b"\x4f\x00"),  # frame type 4: none exists
        Frame(0.2, 0x7E8, False, b"\x07\x01"),  # single frame claiming 7 bytes, holding 1
        _ff(20, b"ABCDEF", 0.3),
        Frame(0.4, 0x7E8, False, b"\x02\x50\x01\xcc\xcc\xcc\xcc\xcc"),  # interrupts it
    ]
    messages = reassemble(frames)
    problems = [m.problem for m in messages]
    assert problems[0].startswith("invalid ISO-TP frame") and problems[1].startswith("invalid")
    assert problems[2].startswith("invalid") and "interrupted" in problems[3]
    assert messages[4].complete and messages[4].payload == b"\x50\x01"
