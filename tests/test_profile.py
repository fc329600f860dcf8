"""Bench profiles (bench.toml): the example loads; every mistake names the file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.errors import InputError
from bench.instruments import Chamber, PowerSupply, open_instrument
from bench.instruments.simulator import SimulatedChamber, SimulatedPowerSupply
from bench.profile import PROFILE_ENV, BenchProfile, load_profile
from tests.conftest import DBC_DIR, ROOT

EXAMPLE = ROOT / "examples" / "bench.toml"


def write(tmp_path: Path, text: str, name: str = "bench.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(InputError) as info:
        load_profile(path)
    message = str(info.value)
    assert "\n" not in message
    return message


MINIMAL = f"""\
name = "tiny"

[buses.battery]
interface = "virtual"
channel = "bench0"
bitrate = 500000
dbc = ["{DBC_DIR / "battery.dbc"}"]

[instruments.chamber]
driver = "chamber"
port = "/dev/ttyUSB0"
"""


def test_example_profile_loads():
    profile = load_profile(EXAMPLE)
    assert isinstance(profile, BenchProfile)
    assert profile.name == "Bench 3, Heihe cold rig"
    assert [bus.name for bus in profile.buses] == ["battery", "motor"]
    motor = profile.bus("motor")
    assert (motor.interface, motor.channel, motor.bitrate) == ("socketcan", "can1", 500000)
    assert motor.fd is True and motor.data_bitrate == 2_000_000
    assert motor.dbc == [DBC_DIR.resolve() / "motor.dbc", DBC_DIR.resolve() / "vehicle.dbc"]
    assert profile.bus("battery").fd is False
    chamber = profile.instrument("chamber")
    assert (chamber.driver, chamber.port, chamber.timeout_s, chamber.retries) == (
        "chamber",
        "/dev/ttyUSB0",
        2.0,
        2,
    )
    supply = profile.instrument("hv_supply")
    assert (supply.driver, supply.baudrate, supply.timeout_s) == ("power_supply", 115200, 1.0)
    assert len(profile.dbc_paths()) == 3
    assert profile.path == EXAMPLE


def test_can_kwargs_carry_fd_and_options(tmp_path):
    path = write(
        tmp_path,
        'name = "x"\n[buses.diag]\ninterface = "slcan"\nchannel = "/dev/ttyACM0"\n'
        "bitrate = 500000\noptions = {tty_baudrate = 115200, sleep_after_open = 0}\n",
    )
    assert load_profile(path).bus("diag").can_kwargs() == {
        "interface": "slcan",
        "channel": "/dev/ttyACM0",
        "bitrate": 500000,
        "tty_baudrate": 115200,
        "sleep_after_open": 0,
    }
    fd = write(
        tmp_path,
        '[buses.m]\ninterface = "virtual"\nchannel = "m"\nbitrate = 500000\n'
        "data_bitrate = 2000000\n",
        "fd.toml",
    )
    profile = load_profile(fd)
    assert profile.name == "fd"  # no name: the file's stem
    assert profile.bus("m").can_kwargs() == {
        "interface": "virtual",
        "channel": "m",
        "bitrate": 500000,
        "fd": True,
        "data_bitrate": 2000000,
    }


def test_no_path_and_no_environment_means_no_profile(monkeypatch):
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    assert load_profile() is None
    monkeypatch.setenv(PROFILE_ENV, "")
    assert load_profile() is None


def test_environment_names_the_profile(monkeypatch, tmp_path):
    path = write(tmp_path, MINIMAL)
    monkeypatch.setenv(PROFILE_ENV, str(path))
    assert load_profile().name == "tiny"
    # An explicit path wins over the environment.
    assert load_profile(EXAMPLE).name.startswith("Bench 3")


def test_missing_file(monkeypatch, tmp_path):
    missing = tmp_path / "nope.toml"
    assert error_of(missing) == f"{missing}: bench profile not found"
    monkeypatch.setenv(PROFILE_ENV, str(missing))
    with pytest.raises(
        InputError, match=rf"^{missing}: bench profile not found \(from BENCH_CONFIG\)$"
    ):
        load_profile()


def test_toml_syntax_error_names_line_and_column(tmp_path):
    path = write(tmp_path, 'name = "x"\n[buses.a]\ninterface = socketcan\n')
    assert error_of(path) == f"{path}:3:13: invalid TOML: Invalid value"


def test_unknown_key_names_line_key_and_suggestion(tmp_path):
    path = write(tmp_path, MINIMAL.replace("bitrate = 500000", "bitrat = 500000"))
    assert (
        error_of(path) == f"{path}:6: buses.battery.bitrat: unknown key (did you mean 'bitrate'?)"
    )


def test_unknown_top_level_key(tmp_path):
    path = write(tmp_path, MINIMAL + '\n[instrument.psu]\ndriver = "power_supply"\n')
    assert error_of(path) == f"{path}:13: instrument: unknown key (did you mean 'instruments'?)"


def test_wrong_type_names_the_value(tmp_path):
    path = write(tmp_path, MINIMAL.replace("bitrate = 500000", 'bitrate = "500k"'))
    assert error_of(path) == (
        f"{path}:6: buses.battery.bitrate: Input should be a valid integer, got '500k'"
    )


def test_quoted_number_is_not_coerced(tmp_path):
    path = write(tmp_path, MINIMAL + 'baudrate = "9600"\n')
    assert error_of(path).startswith(f"{path}:12: instruments.chamber.baudrate: ")


def test_missing_key_names_the_table(tmp_path):
    path = write(tmp_path, MINIMAL.replace('port = "/dev/ttyUSB0"\n', ""))
    assert error_of(path) == f"{path}:9: instruments.chamber.port: missing key"


def test_unknown_driver(tmp_path):
    path = write(tmp_path, MINIMAL.replace('driver = "chamber"', 'driver = "oven"'))
    message = error_of(path)
    assert message.startswith(f"{path}:10: instruments.chamber.driver: ")
    assert "'chamber' or 'power_supply'" in message and "'oven'" in message


def test_unknown_interface_suggests_the_close_one(tmp_path):
    path = write(tmp_path, MINIMAL.replace('"virtual"', '"socketcann"'))
    assert error_of(path) == (
        f"{path}:4: buses.battery.interface: unknown python-can interface 'socketcann'"
        " (did you mean 'socketcan'?)"
    )


def test_data_bitrate_without_fd(tmp_path):
    path = write(
        tmp_path, MINIMAL.replace("bitrate = 500000", "data_bitrate = 2000000\nfd = false")
    )
    message = error_of(path)
    assert message.startswith(f"{path}:3: buses.battery: ")
    assert "needs CAN FD" in message


def test_missing_dbc_names_the_file(tmp_path):
    path = write(tmp_path, MINIMAL.replace(str(DBC_DIR / "battery.dbc"), "dbc/battery.dbc"))
    message = error_of(path)
    assert message.startswith(f"{path}:7: buses.battery.dbc: DBC file not found: dbc/battery.dbc")
    assert str(tmp_path / "dbc" / "battery.dbc") in message


def test_dbc_paths_are_relative_to_the_profile(tmp_path):
    (tmp_path / "dbc").mkdir()
    (tmp_path / "dbc" / "b.dbc").write_text((DBC_DIR / "battery.dbc").read_text())
    (tmp_path / "benches").mkdir()
    path = write(
        tmp_path / "benches",
        '[buses.b]\ninterface = "virtual"\nchannel = "x"\ndbc = "../dbc/b.dbc"\n',
    )
    assert load_profile(path).bus("b").dbc == [(tmp_path / "dbc" / "b.dbc").resolve()]


def test_name_inside_a_table_is_refused(tmp_path):
    path = write(tmp_path, MINIMAL.replace('driver = "chamber"', 'name = "c"\ndriver = "chamber"'))
    assert error_of(path) == (
        f"{path}:10: instruments.chamber.name: unknown key"
        " (the table key is the name: [instruments.chamber])"
    )


def test_negative_timeout(tmp_path):
    path = write(tmp_path, MINIMAL + "timeout_s = -1\n")
    assert error_of(path).startswith(
        f"{path}:12: instruments.chamber.timeout_s: Input should be greater than 0"
    )


def test_several_errors_are_counted(tmp_path):
    path = write(tmp_path, MINIMAL.replace('port = "/dev/ttyUSB0"', "port = 1\nbaudrate = -2"))
    assert error_of(path).endswith("(and 1 more)")


def test_lookup_of_an_unknown_bus(tmp_path):
    profile = load_profile(write(tmp_path, MINIMAL))
    with pytest.raises(InputError, match=r"no bus 'batery' \(did you mean 'battery'\?\)"):
        profile.bus("batery")


def test_open_instrument_follows_the_profile(tmp_path):
    with SimulatedChamber() as chamber_sim, SimulatedPowerSupply() as psu_sim:
        path = write(
            tmp_path,
            f'[instruments.c]\ndriver = "chamber"\nport = "{chamber_sim.port}"\n'
            f'[instruments.p]\ndriver = "power_supply"\nport = "{psu_sim.port}"\n'
            "baudrate = 115200\ntimeout_s = 0.5\nretries = 0\n",
        )
        profile = load_profile(path)
        with open_instrument(profile.instrument("c")) as chamber:
            assert isinstance(chamber, Chamber)
            assert chamber.identify().startswith("BENCH-SIM,CHAMBER")
        with open_instrument(profile.instrument("p")) as supply:
            assert isinstance(supply, PowerSupply)
            assert supply.transport.retries == 0 and supply.transport.timeout_s == 0.5
            assert supply.identify().startswith("BENCH-SIM,PSU")
