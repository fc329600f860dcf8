"""The shipped DBC set: round trips through cantools, timing attributes, required names."""

from __future__ import annotations

import functools
import shutil

import cantools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.dbc import DEFAULT_DBC_DIR, DbcSet, load_dbc_file
from bench.e2e import Protector, crc8_j1850, crc_byte_index
from bench.errors import InputError

REQUIRED = {
    "BMS_PackStatus": ["PackVoltage", "PackCurrent", "SOC", "AliveCounter", "CRC"],
    "BMS_Temps": [
        "MaxCellTemp",
        "MinCellTemp",
        "AvgCellTemp",
        "MaxTempSensorId",
        "MinTempSensorId",
    ],
    "BMS_Cells": ["MaxCellVolt", "MinCellVolt"],
    "BMS_Status": [
        "HvState",
        "FaultLevel",
        "FaultCode",
        "HeaterActive",
        "HeaterPower",
        "InsulationResistance",
    ],
    "BMS_Limits": [
        "ChargeCurrentLimit",
        "DischargeCurrentLimit",
        "ChargePowerLimit",
        "DischargePowerLimit",
    ],
    "MCU_Status": ["MotorSpeed", "MotorTorque", "TorqueLimit", "AliveCounter", "CRC"],
    "MCU_Temps": ["StatorTemp", "InverterTemp", "CoolantTemp"],
    "MCU_Power": ["DcLinkVoltage", "DcLinkCurrent"],
    "MCU_State": ["DerateActive", "FaultLevel", "FaultCode"],
    "VCU_Command": ["KeyOn", "HvRequest", "TorqueRequest", "AliveCounter", "CRC"],
    "VCU_Charge": ["ChargeRequest", "ChargeCurrentRequest", "ChargeVoltageLimit"],
    "VCU_Thermal": ["HeaterRequest", "CoolantPumpRequest"],
    "VCU_Ambient": ["AmbientTemp", "SolarLoad"],
}


def _all_messages():
    return DbcSet.load().messages


@pytest.mark.parametrize("message", REQUIRED)
def test_required_signals_exist(dbcs, message):
    names = {s.name for s in dbcs.message(message).signals}
    assert set(REQUIRED[message]) <= names


def test_set_has_fd_extended_multiplexed_and_both_byte_orders(dbcs):
    messages = dbcs.messages
    assert any(m.is_fd and m.length == 64 for m in messages)
    assert any(m.is_extended_frame for m in messages)
    assert any(m.is_multiplexed() for m in messages)
    orders = {s.byte_order for m in messages for s in m.signals}
    assert orders == {"little_endian", "big_endian"}
    # a multiplexed signal valid for several multiplexer values (extended multiplexing)
    assert any(len(s.multiplexer_ids or []) > 1 for m in messages for s in m.signals)
    assert dbcs.message("MCU_Status").get_signal_by_name("MotorSpeed").byte_order == "big_endian"


@pytest.mark.parametrize("message", _all_messages(), ids=lambda m: m.name)
def test_every_cyclic_message_has_cycle_time_and_send_type(message):
    assert message.send_type in {"Cyclic", "Event", "CyclicIfActive", "CyclicAndEvent"}
    if message.send_type != "Event":
        assert message.cycle_time and message.cycle_time > 0


def _values_at(message, which: str, mux: int | None = None) -> dict:
    values = {}
    for signal in message.signals:
        if signal.is_multiplexer:
            continue
        low = signal.minimum if signal.minimum is not None else 0
        high = signal.maximum if signal.maximum is not None else 0
        value = {"min": low, "max": high, "mid": (low + high) / 2}[which]
        # Round to the signal's resolution so the round trip is exact.
        raw = round((value - signal.offset) / signal.scale)
        values[signal.name] = raw * signal.scale + signal.offset
    return values


def _mux_values(message):
    muxes = [s for s in message.signals if s.is_multiplexer]
    if not muxes:
        return [None]
    ids = sorted({i for s in message.signals for i in (s.multiplexer_ids or [])})
    return ids


@pytest.mark.parametrize("message", _all_messages(), ids=lambda m: m.name)
@pytest.mark.parametrize("which", ["min", "max", "mid"])
def test_round_trip_through_cantools(message, which):
    for mux in _mux_values(message):
        values = _values_at(message, which)
        if mux is not None:
            mux_signal = next(s for s in message.signals if s.is_multiplexer)
            values = {
                name: v
                for name, v in values.items()
                if mux in (message.get_signal_by_name(name).multiplexer_ids or [mux])
            }
            values[mux_signal.name] = mux
        data = message.encode(values, strict=True)
        assert len(data) == message.length
        decoded = message.decode(data, decode_choices=False)
        for name, value in values.items():
            assert decoded[name] == pytest.approx(value, abs=1e-9), name


def test_crc8_check_value_and_sealing(dbcs):
    assert crc8_j1850(b"123456789") == 0x4B  # CRC-8/SAE-J1850 catalogue check value
    for name in ["BMS_PackStatus", "BMS_Status", "MCU_Status", "MCU_State", "VCU_Command"]:
        message = dbcs.message(name)
        index = crc_byte_index(message)
        assert index == 7, name
        protector = Protector(message)
        first = protector.encode({})
        second = protector.encode({})
        assert crc8_j1850(first[:7]) == first[7]
        decoded = [message.decode(d, decode_choices=False)["AliveCounter"] for d in (first, second)]
        assert decoded == [0, 1]


def plain_payload(message, values: dict, counter: int) -> bytes:
    """The recipe Protector's frames must equal: cantools with every signal (start values for
    those not given), the counter, CRC 0; then seal. No cache, nothing kept."""
    from bench.e2e import COUNTER_SIGNAL, CRC_SIGNAL, counter_modulus, seal

    signals = {s.name: (s.initial if s.initial is not None else 0) for s in message.signals}
    signals.update(values)
    if counter_modulus(message) is not None:
        signals[COUNTER_SIGNAL] = counter
    if crc_byte_index(message) is not None:
        signals[CRC_SIGNAL] = 0
    return seal(message, message.encode(signals, scaling=True, strict=False, padding=False))


@functools.cache
def plain_messages() -> list:
    return [m for m in DbcSet.load().messages if not m.is_multiplexed()]


def outcome(encode, *args) -> bytes | str:
    """The payload, or the error's type (cantools refuses some values even with strict=False)."""
    try:
        return encode(*args)
    except (OverflowError, ValueError, KeyError, TypeError) as exc:
        return type(exc).__name__


@st.composite
def protector_calls(draw):
    """A message of the set and calls of encode: values from small pools (so they repeat, and
    the cache answers), ints, floats, -0.0 and True side by side, choice names; counter jumps."""
    message = draw(st.sampled_from(plain_messages()))
    signals = [s for s in message.signals if s.name not in ("AliveCounter", "CRC")]
    calls = []
    for _ in range(draw(st.integers(1, 40))):
        values = {}
        for signal in (
            draw(st.lists(st.sampled_from(signals), max_size=4, unique=True)) if signals else []
        ):
            pool = [0, 1, 0.0, -0.0, 1.0, True, 2.5, 7]
            if signal.choices:
                pool += [str(name) for name in signal.choices.values()]
            values[signal.name] = draw(st.sampled_from(pool))
        calls.append((values, draw(st.booleans()), draw(st.sampled_from([0, 0, 0, 3]))))
    return message, calls


@settings(max_examples=300, deadline=None)
@given(protector_calls())
def test_protector_encodes_as_cantools_and_seal_do(case):
    """Protector's frames (CRC index found once, payload cache) are the plain recipe's for the
    same counter and values, whatever came before."""
    message, calls = case
    protector = Protector(message)
    for values, advance, jump in calls:
        protector.counter = (protector.counter + jump) % 16
        counter = protector.counter
        got = outcome(functools.partial(protector.encode, values, advance=advance))
        assert got == outcome(plain_payload, message, values, counter), (message.name, values)


def test_protector_never_mixes_up_minus_zero_on_a_float_signal():
    """-0.0 == 0.0, but an IEEE float signal carries the sign bit: no cache for such messages."""
    db = cantools.database.load_string(
        """VERSION ""
BU_: A
BO_ 256 F: 8 A
 SG_ Value : 0|32@1- (1,0) [0|0] "" Vector__XXX
 SG_ AliveCounter : 32|4@1+ (1,0) [0|15] "" Vector__XXX
SIG_VALTYPE_ 256 Value : 1;
""",
        "dbc",
    )
    message = db.get_message_by_name("F")
    assert message.get_signal_by_name("Value").is_float
    protector = Protector(message)
    payloads = [protector.encode({"Value": v}, advance=False) for v in (0.0, -0.0, 0.0)]
    assert payloads[0] != payloads[1] == plain_payload(message, {"Value": -0.0}, 0)
    assert payloads[0] == payloads[2]


def test_counter_wraps(dbcs):
    protector = Protector(dbcs.message("VCU_Command"))
    counters = [
        protector.message.decode(protector.encode({}), decode_choices=False)["AliveCounter"]
        for _ in range(18)
    ]
    assert counters == [*range(16), 0, 1]


def test_lookup_suggests_close_names(dbcs):
    with pytest.raises(KeyError, match="did you mean 'MaxCellTemp'"):
        dbcs.signal("BMS_Temps.MaxCelTemp")
    with pytest.raises(KeyError, match="did you mean 'BMS_Temps'"):
        dbcs.signal("BMS_Temp.MaxCellTemp")
    assert dbcs.signal("MCU_Status.MotorSpeed").signal.unit == "rpm"


def test_missing_and_broken_dbc_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        DbcSet.load([tmp_path / "nope.dbc"])
    bad = tmp_path / "bad.dbc"
    bad.write_text('VERSION ""\nBO_ 12 Foo: 8 X\n SG_ A : 0|8@1+ (1,0) [0|1 "" Y\n')
    with pytest.raises(InputError, match=r"bad\.dbc:3:\d+: invalid DBC syntax"):
        DbcSet.load([bad])


def test_duplicate_message_across_files_is_an_error(tmp_path):
    from tests.conftest import DBC_DIR

    copy = tmp_path / "copy.dbc"
    copy.write_text((DBC_DIR / "motor.dbc").read_text())
    with pytest.raises(InputError, match="also defined"):
        DbcSet.load([DBC_DIR / "motor.dbc", copy])


def test_cantools_reads_every_file_strictly():
    from tests.conftest import DBC_DIR

    for path in sorted(DBC_DIR.glob("*.dbc")):
        cantools.database.load_file(str(path), strict=True)


def test_a_copy_of_a_dbc_is_parsed_once_and_an_edit_is_parsed_again(tmp_path):
    """The content-keyed parse cache: a campaign's run directories each hold a copy."""
    source = DEFAULT_DBC_DIR / "battery.dbc"
    first, second = tmp_path / "a.dbc", tmp_path / "b.dbc"
    shutil.copyfile(source, first)
    shutil.copyfile(source, second)
    assert load_dbc_file(first) is load_dbc_file(second)
    text = first.read_text(encoding="cp1252")
    first.write_text(text.replace("PackVoltage", "PackVoltsge"), encoding="cp1252")
    edited = load_dbc_file(first)
    assert edited is not load_dbc_file(second)
    assert "PackVoltsge" in [s.name for m in edited.messages for s in m.signals]
    first.write_text("BO_ nonsense\n", encoding="cp1252")
    with pytest.raises(InputError, match=r"a\.dbc"):
        load_dbc_file(first)
