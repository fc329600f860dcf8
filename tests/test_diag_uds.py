"""The virtual BMS/MCU answer UDS like ECUs: DTCs from their faults, NRCs, sessions, timeouts.

Real python-can virtual buses, can-isotp's transport logic and udsoncan's services throughout.
"""

from __future__ import annotations

import threading
import time

import can
import isotp
import pytest

from bench.diag import client as uds
from bench.diag.catalog import status_names, virtual_vehicle_ecus, with_addressing
from bench.diag.transport import ClockedIsoTp, isotp_address
from tests.diag_helpers import lockstep, run_ops
from virtual_bus.clock import RealClock
from virtual_bus.ecus.uds_dtc import CONFIRM_S, DtcMemory
from virtual_bus.vehicle import VirtualVehicle

ECUS = virtual_vehicle_ecus()
BMS, MCU = ECUS["BMS"], ECUS["MCU"]


def dtcs_of(exchange: uds.Exchange, ecu=BMS) -> dict[str, list[str]]:
    assert exchange.ok, exchange.error
    return {ecu.describe_dtc(code).name: status_names(s) for code, s in exchange.dtcs or []}


def test_heater_fail_sets_a_confirmed_dtc_and_clear_resets_it() -> None:
    with lockstep("heater_fail") as ls:
        ls.run(0.25, step=0.01)
        (early,) = run_ops(ls, [uds.read_dtcs(BMS, 0x09)])
        ls.run(3.0, step=0.5)
        read, count, clear, after = run_ops(
            ls,
            [
                uds.read_dtcs(BMS),
                uds.count_dtcs(BMS, 0x08),
                uds.clear_dtcs(BMS),
                uds.read_dtcs(BMS),
            ],
        )
    # 250 ms in: test failed (two 100 ms monitor samples) but not confirmed (1 s debounce)
    assert dtcs_of(early) == {
        "heater_circuit_failure": [
            "test_failed",
            "test_failed_this_operation_cycle",
            "pending",
            "test_failed_since_last_clear",
        ]
    }
    found = dtcs_of(read)
    assert found["heater_circuit_failure"] == [
        "test_failed",
        "test_failed_this_operation_cycle",
        "pending",
        "confirmed",
        "test_failed_since_last_clear",
    ]
    assert "cell_overtemperature" not in found  # its monitor ran and passed: status 0
    assert count.count == 1
    assert clear.ok and clear.response == b"\x54"
    after_dtcs = dtcs_of(after)
    assert after_dtcs["heater_circuit_failure"] == [
        "test_not_completed_since_last_clear",
        "test_not_completed_this_operation_cycle",
    ]
    # the response went out as ISO-TP frames padded with 0xCC on the ECU's ids
    ids = {f.arbitration_id for f in ls.frames if f.arbitration_id in (0x7E4, 0x7EC)}
    assert ids == {0x7E4, 0x7EC}
    assert all(len(f.data) == 8 for f in ls.frames if f.arbitration_id in (0x7E4, 0x7EC))
    request = next(f for f in ls.frames if f.arbitration_id == 0x7E4)
    assert bytes(request.data) == b"\x03\x19\x02\x09\xcc\xcc\xcc\xcc"


def test_insulation_fault_lights_the_lamp_and_clears_after_it_heals() -> None:
    with lockstep("insulation_fault@0s+2s") as ls:
        ls.run(1.6, step=0.1)
        (during,) = run_ops(ls, [uds.read_dtcs(BMS)])
        ls.run(3.0, step=0.1)
        (healed,) = run_ops(ls, [uds.read_dtcs(BMS)])
    assert "warning_indicator_requested" in dtcs_of(during)["insulation_resistance_low"]
    after = dtcs_of(healed)["insulation_resistance_low"]
    # the test passes again: test_failed and the lamp go; confirmed and pending stay
    assert "test_failed" not in after and "warning_indicator_requested" not in after
    assert {"confirmed", "pending", "test_failed_since_last_clear"} <= set(after)


def test_dids_come_from_the_model_state() -> None:
    with lockstep(soc=62.0, ambient_c=-20.0) as ls:
        ls.run(0.5, step=0.1)
        names = ["pack_soh", "pack_soc", "min_cell_temp", "max_cell_voltage", "software_version"]
        exchanges = run_ops(ls, [uds.read_did(BMS, n) for n in names])
        (mcu_sw,) = run_ops(ls, [uds.read_did(MCU, "coolant_temp")])
    values = {e.did: e.value for e in exchanges}
    assert values["pack_soh"] == pytest.approx(97.5)
    assert values["pack_soc"] == pytest.approx(62.0, abs=0.05)
    assert values["min_cell_temp"] == pytest.approx(-20.0, abs=1.0)
    assert 3.0 < values["max_cell_voltage"] < 4.2
    assert values["software_version"] == "02.04.01"
    assert mcu_sw.value == pytest.approx(-20.0, abs=1.0) and mcu_sw.unit == "°C"


@pytest.mark.parametrize(
    ("payload", "nrc"),
    [
        (b"\x31\x01\x02\x03", 0x11),  # RoutineControl: not supported
        (b"\x22\x12\x34", 0x31),  # unknown DID
        (b"\x22\xf1", 0x13),  # odd DID list
        (b"\x19\x05\xff", 0x12),  # reportDTCSnapshotRecord...: not supported
        (b"\x19\x02", 0x13),  # no status mask
        (b"\x14\xff\xff", 0x13),  # short group
        (b"\x14\x12\x34\x56", 0x31),  # no such DTC
        (b"\x85\x02", 0x7F),  # ControlDTCSetting in the default session
        (b"\x10\x02", 0x12),  # programming session: not supported
    ],
)
def test_negative_responses_name_the_nrc(payload: bytes, nrc: int) -> None:
    with lockstep() as ls:
        (exchange,) = run_ops(ls, [uds.raw_request(BMS, payload)])
    assert exchange.nrc == nrc
    assert exchange.error.startswith(f"negative response 0x{nrc:02X} ")


def test_extended_session_dtc_setting_off_and_s3_fallback() -> None:
    with lockstep() as ls:
        session, off = run_ops(ls, [uds.session_control(BMS, 3), uds.raw_request(BMS, b"\x85\x02")])
        assert session.ok and session.response[:2] == b"\x50\x03"
        assert off.ok and not ls.vehicle.dtc_memory["BMS"].setting_on
        ls.run(ls.vehicle.now + 6.0, step=0.5)  # S3 (5 s) without a request
        (again,) = run_ops(ls, [uds.raw_request(BMS, b"\x85\x01")])
    assert again.nrc == 0x7F
    assert ls.vehicle.dtc_memory["BMS"].setting_on


def test_no_answer_is_a_p2_timeout_in_simulated_time() -> None:
    silent = with_addressing(ECUS, {"BMS": {"request_id": 0x701, "response_id": 0x709}})["BMS"]
    with lockstep() as ls:
        start = ls.vehicle.now
        (exchange,) = run_ops(ls, [uds.read_dtcs(silent)])
    assert exchange.error == "no response within P2 (0.300 s)"
    assert ls.vehicle.now - start == pytest.approx(0.31, abs=0.011)


def test_truncated_and_out_of_sequence_multiframe_responses_are_isotp_errors() -> None:
    bus = can.Bus(interface="virtual", channel="diag-broken", preserve_timestamps=True)
    ecu_bus = can.Bus(interface="virtual", channel="diag-broken", preserve_timestamps=True)
    t = [0.0]
    try:
        for tail, reason in (
            ([], "ConsecutiveFrameTimeoutError"),
            ([bytes([0x23, 1, 2, 3, 4, 5, 6, 7])], "WrongSequenceNumberError"),
        ):

            def send(frame: can.Message) -> None:
                frame.timestamp = t[0]
                bus.send(frame)

            client = uds.SteppedClient([uds.read_dtcs(BMS)], lambda: t[0], send)
            steps = 0
            while not client.done and steps < 500:
                client.step()
                t[0] += 0.01
                steps += 1
                while (request := ecu_bus.recv(timeout=0)) is not None:
                    if request.data[0] == 0x03:  # the request: a first frame of 20 bytes
                        ecu_bus.send(
                            can.Message(
                                arbitration_id=0x7EC,
                                data=b"\x10\x14\x59\x02\xff\x0a\xa6\x1a",
                                is_extended_id=False,
                            )
                        )
                    elif request.data[0] == 0x30:  # flow control: one CF, then the tail
                        ecu_bus.send(
                            can.Message(
                                arbitration_id=0x7EC,
                                data=b"\x21\xaf\x0c\x78\x00\x50\xc2\x93",
                                is_extended_id=False,
                            )
                        )
                        for data in tail:
                            ecu_bus.send(
                                can.Message(arbitration_id=0x7EC, data=data, is_extended_id=False)
                            )
                while (frame := bus.recv(timeout=0)) is not None:
                    client.feed(frame)
            (exchange,) = client.exchanges
            assert exchange.error.startswith("ISO-TP: ") and reason in exchange.error
            assert steps < 200  # N_Cr (1 s) bounds it in simulated time
    finally:
        bus.shutdown()
        ecu_bus.shutdown()


def test_29bit_normal_fixed_addressing() -> None:
    ecus = with_addressing(
        ECUS,
        {
            "BMS": {
                "addressing": "normal_fixed_29bit",
                "request_id": 0x18DA40F1,
                "response_id": 0x18DAF140,
            }
        },
    )
    with lockstep(diag_ecus=ecus) as ls:
        (exchange,) = run_ops(ls, [uds.read_did(ecus["BMS"], "software_version")])
    assert exchange.value == "02.04.01"
    ids = {(f.arbitration_id, f.is_extended_id) for f in ls.frames if f.is_extended_id}
    assert {(0x18DA40F1, True), (0x18DAF140, True)} <= ids


def test_udsoncan_client_against_the_vehicle_in_real_time() -> None:
    """The wall-clock path: udsoncan's Client over can-isotp's NotifierBasedCanStack."""
    channel = "diag-realtime"
    vehicle_bus = can.Bus(interface="virtual", channel=channel)
    tester_bus = can.Bus(interface="virtual", channel=channel)
    vehicle = VirtualVehicle(vehicle_bus, faults=["heater_fail"])
    stop = threading.Event()
    thread = threading.Thread(
        target=vehicle.run_realtime, args=(RealClock(),), kwargs={"stop_event": stop}
    )
    thread.start()
    try:
        with uds.UdsClient(tester_bus, BMS) as client:
            soh = client.run(uds.read_did(BMS, "pack_soh"))
            bad = client.run(uds.raw_request(BMS, b"\x22\x00\x01"))
            for _ in range(30):  # test_failed follows the monitor: two 100 ms samples
                dtcs = client.run(uds.read_dtcs(BMS, 0x01))
                if dtcs.dtcs:
                    break
                time.sleep(0.1)
    finally:
        stop.set()
        thread.join()
        vehicle_bus.shutdown()
        tester_bus.shutdown()
    assert soh.value == pytest.approx(97.5)
    assert bad.error == "negative response 0x31 RequestOutOfRange"
    assert dtcs_of(dtcs)["heater_circuit_failure"][0] == "test_failed"


def test_clocked_isotp_talks_to_can_isotps_threaded_stack() -> None:
    """Our clocked endpoint (the virtual ECUs' side) against can-isotp's own CanStack."""
    channel = "diag-isotp"
    a = can.Bus(interface="virtual", channel=channel)
    b = can.Bus(interface="virtual", channel=channel)
    stack = isotp.CanStack(
        a, address=isotp_address(BMS), params={"tx_padding": 0xCC, "blocking_send": False}
    )
    clock = RealClock()
    ours = ClockedIsoTp(isotp_address(BMS, server=True), clock.now, b.send)
    stack.start()
    try:
        message = bytes(range(100))
        stack.send(message)
        got = None
        for _ in range(2000):
            while (frame := b.recv(timeout=0.001)) is not None:
                ours.feed(frame)
            ours.step()
            got = got or ours.take()
            if got:
                break
        assert got == message
        ours.send(message[::-1])
        for _ in range(2000):
            while (frame := b.recv(timeout=0.001)) is not None:
                ours.feed(frame)
            ours.step()
            back = stack.recv(block=False)
            if back:
                break
        assert bytes(back) == message[::-1]
    finally:
        stack.stop()
        a.shutdown()
        b.shutdown()


def test_dtc_status_ages_over_operation_cycles() -> None:
    result = [True]
    dtc = BMS.dtc("heater_circuit_failure")
    memory = DtcMemory([(dtc, lambda: result[0], True)])
    assert memory.status_of(dtc.name) == 0x50
    memory.sample()
    assert memory.status_of(dtc.name) == 0x00  # first fail: completed, debouncing
    for _ in range(round(CONFIRM_S / 0.1) + 1):
        memory.sample()
    assert status_names(memory.status_of(dtc.name)) == [
        "test_failed",
        "test_failed_this_operation_cycle",
        "pending",
        "confirmed",
        "test_failed_since_last_clear",
        "warning_indicator_requested",
    ]
    result[0] = False
    memory.sample()
    memory.sample()
    assert memory.status_of(dtc.name) == 0x2E  # passed: test_failed and lamp off
    memory.new_operation_cycle()
    assert memory.status_of(dtc.name) == 0x6C  # not completed this cycle; pending stays
    memory.sample()
    memory.new_operation_cycle()
    assert memory.status_of(dtc.name) == 0x68  # a clean cycle: pending goes
    for _ in range(39):
        memory.sample()
        memory.new_operation_cycle()
    assert memory.status_of(dtc.name) == 0x60  # 40 clean cycles: confirmed aged out
    result[0] = None
    memory.clear()
    memory.sample()
    assert memory.status_of(dtc.name) == 0x50  # not run since the clear
