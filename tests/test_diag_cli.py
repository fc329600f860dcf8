"""``bench diag`` on the in-process virtual vehicle and on a python-can bus (udsoncan client)."""

from __future__ import annotations

import json
import threading

import can
from click.testing import CliRunner

from bench.cli import cli
from virtual_bus.clock import RealClock
from virtual_bus.vehicle import VirtualVehicle


def invoke(*args: str):
    return CliRunner().invoke(cli, ["diag", *args])


def test_read_dtc_lists_the_injected_fault() -> None:
    result = invoke("--ecu", "BMS", "--inject", "heater_fail", "--json", "read-dtc")
    assert result.exit_code == 0, result.output
    (exchange,) = json.loads(result.output)
    heater = next(d for d in exchange["dtcs"] if d["name"] == "heater_circuit_failure")
    assert heater["label"] == "P1A41-92" and "confirmed" in heater["status_bits"]
    table = invoke("--ecu", "BMS", "--inject", "heater_fail", "read-dtc", "--mask", "0x08")
    assert table.exit_code == 0 and "P1A41-92" in table.output and "P0C78" not in table.output


def test_without_a_fault_no_confirmed_dtc_and_clear_works() -> None:
    result = invoke("--ecu", "BMS", "--ecu", "MCU", "--json", "read-dtc", "--mask", "0x08")
    assert result.exit_code == 0, result.output
    assert [e["dtcs"] for e in json.loads(result.output)] == [[], []]
    cleared = invoke("--ecu", "MCU", "clear-dtc")
    assert cleared.exit_code == 0 and "MCU: DTCs cleared" in cleared.output


def test_read_did_table_and_bad_input() -> None:
    result = invoke("--ecu", "BMS", "--ecu", "MCU", "read-did", "software_version", "pack_soh")
    assert result.exit_code == 0, result.output
    assert "02.04.01" in result.output and "01.07.03" in result.output and "97.5" in result.output
    bad = invoke("--ecu", "BMS", "read-did", "pack_sho")
    assert bad.exit_code == 2 and "no DID 'pack_sho'" in bad.output
    assert invoke("--ecu", "VCU", "read-dtc").exit_code == 2
    assert invoke("--ecu", "BMS", "read-dtc", "--mask", "0x1FF").exit_code == 2


def test_on_a_bus_with_udsoncan_and_an_ecu_that_does_not_answer() -> None:
    channel = "bench-diag-cli"
    vehicle_bus = can.Bus(interface="virtual", channel=channel)
    vehicle = VirtualVehicle(vehicle_bus)
    stop = threading.Event()
    thread = threading.Thread(
        target=vehicle.run_realtime, args=(RealClock(),), kwargs={"stop_event": stop}
    )
    thread.start()
    try:
        ok = invoke("--ecu", "BMS", "--interface", "virtual", "--channel", channel, "--json",
                    "read-did", "pack_soh")  # fmt: skip
        assert ok.exit_code == 0, ok.output
        assert json.loads(ok.output)[0]["value"] == 97.5
        missing = invoke("--ecu", "BMS", "--interface", "virtual", "--channel", "nobody-there",
                         "read-dtc")  # fmt: skip
        assert missing.exit_code == 1
        assert "no response within P2 (0.300 s)" in missing.output
    finally:
        stop.set()
        thread.join()
        vehicle_bus.shutdown()
