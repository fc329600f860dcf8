"""Serial instruments end to end: real pyserial on a real pseudo-terminal, simulator on the master.

No mocks: the drivers open ``/dev/pts/N`` exactly as they would open ``/dev/ttyUSB0``. Time in the
chamber model comes from a fake clock the tests move, so nothing here waits for a ramp.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.errors import HarnessError
from bench.instruments import Chamber, PowerSupply
from bench.instruments.scpi import format_number
from bench.instruments.simulator import SimulatedChamber, SimulatedPowerSupply

# Short enough for the silent-query tests, long enough for a loaded CI machine to answer.
QUICK = 0.5


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def chamber_sim(clock):
    with SimulatedChamber(ambient_c=20.0, ramp_c_per_min=2.0, clock=clock) as sim:
        yield sim


@pytest.fixture
def chamber(chamber_sim):
    with Chamber(chamber_sim.port, timeout_s=QUICK) as driver:
        yield driver


@pytest.fixture
def psu_sim():
    with SimulatedPowerSupply(load_ohm=100.0) as sim:
        yield sim


@pytest.fixture
def psu(psu_sim):
    with PowerSupply(psu_sim.port, timeout_s=QUICK) as driver:
        yield driver


# -- chamber -------------------------------------------------------------------------------------


def test_chamber_identifies_over_the_pty(chamber, chamber_sim):
    assert chamber_sim.port.startswith("/dev/pts/")
    assert chamber.identify() == "BENCH-SIM,CHAMBER-1,SIM0001,1.0"
    assert chamber_sim.received == ["*IDN?"]


def test_chamber_set_point_and_run_state(chamber, chamber_sim):
    assert chamber.temperature() == pytest.approx(20.0)
    assert chamber.setpoint() == pytest.approx(20.0)
    assert chamber.is_running() is False
    chamber.set_temperature(-30)
    assert chamber.setpoint() == pytest.approx(-30.0)
    assert chamber_sim.setpoint_c == -30.0
    chamber.start()
    assert chamber.is_running() is True
    chamber.stop()
    assert chamber.is_running() is False
    # Each set was sent once and confirmed through the error queue.
    assert chamber_sim.count("TEMP:SET -30") == 1
    assert chamber_sim.count("RUN 1") == 1 and chamber_sim.count("RUN 0") == 1
    assert chamber_sim.count("SYST:ERR?") == 3


def test_chamber_ramps_to_set_point_at_finite_rate(chamber, clock):
    chamber.set_temperature(-30)
    clock.advance(600)
    # Not running: the set point alone moves nothing.
    assert chamber.temperature() == pytest.approx(20.0)
    chamber.start()
    clock.advance(10 * 60)  # 2 °C/min for 10 min: half way from +20 to −30
    assert chamber.temperature() == pytest.approx(0.0, abs=0.01)
    assert chamber.is_stable(0.5) is False
    clock.advance(14 * 60)
    assert chamber.temperature() == pytest.approx(-28.0, abs=0.01)
    assert chamber.is_stable(2.5) is True
    assert chamber.is_stable(0.5) is False
    clock.advance(60 * 60)  # long past the set point: it holds there, no overshoot
    assert chamber.temperature() == pytest.approx(-30.0)
    assert chamber.is_stable(0.0) is True


def test_stopped_chamber_is_never_stable_and_drifts_back_to_ambient(chamber, clock):
    chamber.set_temperature(-30)
    chamber.start()
    clock.advance(3600)
    assert chamber.is_stable(0.5)
    chamber.stop()
    assert chamber.is_stable(100.0) is False
    clock.advance(5 * 60)
    assert chamber.temperature() == pytest.approx(-20.0, abs=0.01)


def test_wait_stable_follows_the_given_clock(chamber, clock):
    chamber.set_temperature(-30)
    chamber.start()
    start = clock.now
    assert chamber.wait_stable(
        0.5, hold_s=600, timeout_s=7200, poll_s=30, clock=clock, sleep=clock.advance
    )
    waited = clock.now - start
    # Within 0.5 °C after 24.75 min of ramping, then held for 10 min; polls are 30 s apart.
    assert 24.75 * 60 + 600 <= waited <= 24.75 * 60 + 600 + 60


def test_wait_stable_gives_up_at_timeout(chamber, clock):
    chamber.set_temperature(-40)
    chamber.start()
    start = clock.now
    ok = chamber.wait_stable(
        0.5, hold_s=60, timeout_s=600, poll_s=30, clock=clock, sleep=clock.advance
    )
    assert ok is False
    assert clock.now - start == pytest.approx(600)


def test_out_of_range_set_point_is_rejected_with_the_instruments_error(chamber):
    with pytest.raises(HarnessError) as info:
        chamber.set_temperature(250)
    assert str(info.value) == (
        f"chamber on {chamber.port}: 'TEMP:SET 250' rejected: -222,'Data out of range'"
    )
    # The rejected value did not stick, and the queue is empty again.
    assert chamber.setpoint() == pytest.approx(20.0)
    chamber.set_temperature(-40)


def test_non_finite_set_point_never_reaches_the_port(chamber, chamber_sim):
    with pytest.raises(ValueError):
        chamber.set_temperature(float("nan"))
    assert chamber_sim.received == []


# -- power supply --------------------------------------------------------------------------------


def test_power_supply_identifies(psu):
    assert psu.identify().startswith("BENCH-SIM,PSU-")


def test_power_supply_constant_voltage(psu, psu_sim):
    psu.set_voltage(12)
    psu.set_current(1.5)
    assert psu.voltage_setpoint() == pytest.approx(12.0)
    assert psu.current_limit() == pytest.approx(1.5)
    assert psu.is_output_on() is False
    assert (psu.voltage(), psu.current()) == (0.0, 0.0)
    psu.output(True)
    assert psu.is_output_on() is True
    assert psu.voltage() == pytest.approx(12.0)
    assert psu.current() == pytest.approx(0.12)  # 12 V into 100 Ω
    psu.output(False)
    assert (psu.voltage(), psu.current()) == (0.0, 0.0)
    assert psu_sim.count("OUTP 1") == 1 and psu_sim.count("OUTP 0") == 1


def test_power_supply_goes_constant_current_at_its_limit(psu):
    psu.set_current(1.0)
    psu.set_voltage(400)
    psu.output(True)
    assert psu.current() == pytest.approx(1.0)
    assert psu.voltage() == pytest.approx(100.0)  # 1 A limit × 100 Ω


def test_power_supply_rejects_negative_voltage(psu):
    with pytest.raises(HarnessError, match=r"'VOLT -5' rejected: -222"):
        psu.set_voltage(-5)


# -- timeouts, retries, a port that goes away -----------------------------------------------------


def test_silent_query_is_retried(chamber, chamber_sim):
    chamber_sim.silence(1)
    assert chamber.temperature() == pytest.approx(20.0)
    assert chamber_sim.count("TEMP?") == 2


def test_query_unanswered_after_all_tries_is_a_harness_error(chamber, chamber_sim):
    chamber_sim.silence(3)
    with pytest.raises(HarnessError) as info:
        chamber.temperature()
    assert str(info.value) == f"chamber on {chamber_sim.port}: no answer to 'TEMP?' after 3 tries"
    # The link is fine again afterwards (and once it answers, every earlier line has been read).
    assert chamber.temperature() == pytest.approx(20.0)
    assert chamber_sim.count("TEMP?") == 4


def test_retries_are_configurable(chamber_sim):
    chamber_sim.silence(1)
    with (
        Chamber(chamber_sim.port, timeout_s=QUICK, retries=0) as chamber,
        pytest.raises(HarnessError, match=r"no answer to '\*IDN\?' after 1 tries"),
    ):
        chamber.identify()


def test_unconfirmed_set_is_resent(chamber, chamber_sim):
    chamber_sim.silence(1)  # the SYST:ERR? after the first TEMP:SET goes unanswered
    chamber.set_temperature(-35.5)
    assert chamber_sim.count("TEMP:SET -35.5") == 2
    assert chamber.setpoint() == pytest.approx(-35.5)


def test_unconfirmed_set_after_all_tries_is_a_harness_error(psu, psu_sim):
    psu_sim.silence(3)
    with pytest.raises(HarnessError, match=r"power supply on .*confirming 'OUTP 1' after 3 tries"):
        psu.output(True)


def test_port_disappearing_mid_session_is_one_clear_error(chamber, chamber_sim):
    assert chamber.temperature() == pytest.approx(20.0)
    chamber_sim.close()
    with pytest.raises(HarnessError) as info:
        chamber.temperature()
    message = str(info.value)
    assert message.startswith(f"chamber on {chamber_sim.port}: port disappeared or failed: ")
    assert "\n" not in message
    with pytest.raises(HarnessError, match="port disappeared"):
        chamber.set_temperature(-30)


def test_port_that_does_not_exist(tmp_path):
    missing = tmp_path / "ttyUSB9"
    with pytest.raises(
        HarnessError, match=rf"^power supply on {missing}: cannot open port: No such file"
    ):
        PowerSupply(str(missing))


def test_reopening_a_vanished_port_fails_clearly(chamber_sim):
    port = chamber_sim.port
    chamber_sim.close()
    with pytest.raises(HarnessError, match=rf"chamber on {port}: cannot open port"):
        Chamber(port)


def test_a_port_is_held_exclusively(chamber):
    with pytest.raises(HarnessError, match="cannot open port: in use by another program"):
        Chamber(chamber.port)


def test_garbage_answer_is_reported_not_parsed(chamber_sim, monkeypatch):
    monkeypatch.setattr(chamber_sim, "query", lambda header: "warming up")
    with (
        Chamber(chamber_sim.port, timeout_s=QUICK) as chamber,
        pytest.raises(HarnessError, match=r"unexpected answer to 'TEMP\?': 'warming up'"),
    ):
        chamber.temperature()


def test_closed_driver_says_so(chamber):
    chamber.close()
    with pytest.raises(HarnessError, match="port is closed"):
        chamber.identify()


def test_numbers_are_sent_without_exponent():
    assert format_number(400) == "400"
    assert format_number(-0.5) == "-0.5"
    assert format_number(1e-5) == "0.00001"
    assert format_number(-0.0000001) == "0"


# -- the simulator as a program ------------------------------------------------------------------


def test_simulator_program_serves_a_chamber(tmp_path: Path):
    link = tmp_path / "chamber"
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.instruments.simulator", "chamber", "--link", str(link)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        first = process.stdout.readline()
        assert re.match(r"simulated chamber on /dev/pts/\d+ \(also .*chamber\)", first), first
        with Chamber(str(link)) as chamber:
            assert chamber.identify().startswith("BENCH-SIM,CHAMBER")
            chamber.set_temperature(-30)
            assert chamber.setpoint() == pytest.approx(-30.0)
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
    assert not link.exists()


def test_unknown_set_command_is_rejected_by_the_instrument(chamber):
    with pytest.raises(HarnessError, match=r"'VOLT 12' rejected: -113,'Undefined header'"):
        chamber.transport.command("VOLT 12")  # a supply command sent to the chamber
    with pytest.raises(HarnessError, match=r"'RUN maybe' rejected: -224,'Illegal parameter value'"):
        chamber.transport.command("RUN maybe")
    with pytest.raises(HarnessError, match=r"'TEMP:SET' rejected: -109,'Missing parameter'"):
        chamber.transport.command("TEMP:SET")


def test_unknown_query_goes_unanswered_and_is_queued(chamber_sim):
    with Chamber(chamber_sim.port, timeout_s=QUICK, retries=0) as chamber:
        with pytest.raises(HarnessError, match=r"no answer to 'MEAS:VOLT\?' after 1 tries"):
            chamber.transport.query("MEAS:VOLT?")
        assert chamber.transport.query("SYST:ERR?") == '-113,"Undefined header"'
        assert chamber.transport.query("SYST:ERR?") == '0,"No error"'
