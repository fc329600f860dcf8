"""The diagnostic catalog: DID codecs round-trip, DTC labels, addressing overrides."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from udsoncan import Dtc as UdsDtc

from bench.diag.catalog import (
    STATUS_BITS,
    Did,
    Ecu,
    dtc_label,
    parse_dtc_label,
    plan_ecus,
    status_mask,
    status_names,
    virtual_vehicle_ecus,
    with_addressing,
)


def test_status_bits_are_udsoncans_spelling_in_bit_order() -> None:
    for bit, name in enumerate(STATUS_BITS):
        status = UdsDtc.Status()
        setattr(status, name, True)
        assert status.get_byte_as_int() == 1 << bit
    assert status_names(0x09) == ["test_failed", "confirmed"]
    assert status_mask(["confirmed", "pending"]) == 0x0C
    with pytest.raises(KeyError, match="valid: test_failed"):
        status_mask(["confirmd"])


@pytest.mark.parametrize(
    ("code", "label"),
    [
        (0x0AA61A, "P0AA6-1A"),
        (0xC29387, "U0293-87"),
        (0x1A4192, "P1A41-92"),
        (0x4ABC00, "C0ABC-00"),
    ],
)
def test_dtc_label_is_sae_j2012_form(code: int, label: str) -> None:
    assert dtc_label(code) == label
    assert parse_dtc_label(label) == code
    assert parse_dtc_label(label.lower()) == code


def test_dtc_label_matches_udsoncan_iso_form() -> None:
    # udsoncan's Dtc.id_iso gives the 2-byte code in the same J2012 form (without the FTB).
    for code in (0x0AA61A, 0xC29387, 0x8ABC01, 0x4ABC00):
        assert dtc_label(code).split("-")[0] == UdsDtc(code).id_iso()[:5]


@given(st.integers(0, 0xFFFFFF))
def test_dtc_label_round_trip(code: int) -> None:
    assert parse_dtc_label(dtc_label(code)) == code


def test_bad_dtc_label() -> None:
    with pytest.raises(ValueError, match="not a DTC"):
        parse_dtc_label("X1234")


@pytest.mark.parametrize("ecu", ["BMS", "MCU"])
def test_every_did_round_trips_a_value_in_range(ecu: str) -> None:
    for did in virtual_vehicle_ecus()[ecu].dids:
        sample: float | str = "2.4.1" if did.is_text else 12.3 if did.scale != 1 else 7.0
        payload = did.encode(sample)
        assert len(payload) == did.length
        back = did.decode(payload)
        if did.is_text:
            assert back == "2.4.1"[: did.length]
        else:
            assert back == pytest.approx(sample, abs=did.scale / 2)


@given(st.integers(-32768, 32767))
def test_s16_raw_round_trip(raw: int) -> None:
    did = Did(0x5001, "t", "s16", 0.1, unit="°C")
    assert did.decode(raw.to_bytes(2, "big", signed=True)) == pytest.approx(raw * 0.1)
    assert did.encode(did.decode(raw.to_bytes(2, "big", signed=True))) == raw.to_bytes(
        2, "big", signed=True
    )


def test_did_decode_wrong_length_and_saturation() -> None:
    soh = virtual_vehicle_ecus()["BMS"].did("pack_soh")
    assert soh.id == 0x4001 and soh.unit == "%"
    assert soh.decode(bytes([0x26, 0x16])) == pytest.approx(97.5)
    with pytest.raises(ValueError, match="3 bytes, expected 2"):
        soh.decode(b"\x00\x01\x02")
    assert soh.encode(1e9) == b"\xff\xff"
    assert soh.encode(-5) == b"\x00\x00"
    assert soh.display(97.5) == "97.5 %"
    with pytest.raises(ValueError, match="unknown codec"):
        Did(0x1234, "x", "f32")


def test_ecu_lookup_names_known_ones() -> None:
    bms = virtual_vehicle_ecus()["BMS"]
    assert bms.did(0xF195).name == "software_version"
    assert bms.dtc("heater_circuit_failure").label == "P1A41-92"
    assert bms.dtc("P0AA6-1A").name == "insulation_resistance_low"
    assert bms.dtc(0x0A7E4B).name == "cell_overtemperature"
    with pytest.raises(KeyError, match="known: ecu_serial_number"):
        bms.did("pack_sho")
    with pytest.raises(KeyError, match="heater_circuit_failure \\(P1A41-92\\)"):
        bms.dtc("heater")
    assert bms.describe_dtc(0x123456).name == "P1234-56"


def test_catalog_ids_and_names_are_unique() -> None:
    for ecu in virtual_vehicle_ecus().values():
        for items, key in (
            (ecu.dids, "id"),
            (ecu.dids, "name"),
            (ecu.dtcs, "code"),
            (ecu.dtcs, "name"),
        ):
            values = [getattr(i, key) for i in items]
            assert len(values) == len(set(values)), (ecu.name, key)


def test_addressing_overrides() -> None:
    ecus = with_addressing(
        virtual_vehicle_ecus(),
        {
            "BMS": {
                "addressing": "normal_fixed_29bit",
                "request_id": 0x18DA40F1,
                "response_id": 0x18DAF140,
            },
            "OBC": {"request_id": 0x7E5, "response_id": 0x7ED},
        },
    )
    bms = ecus["BMS"]
    assert bms.is_extended_id and (bms.target_address, bms.source_address) == (0x40, 0xF1)
    assert bms.dids == virtual_vehicle_ecus()["BMS"].dids
    assert ecus["OBC"].addressing == "normal_11bit" and ecus["OBC"].did("software_version")
    with pytest.raises(ValueError, match="does not fit normal_11bit"):
        with_addressing(virtual_vehicle_ecus(), {"MCU": {"request_id": 0x18DA40F1}})
    with pytest.raises(ValueError, match="swap"):
        with_addressing(
            virtual_vehicle_ecus(),
            {
                "MCU": {
                    "addressing": "normal_fixed_29bit",
                    "request_id": 0x18DA40F1,
                    "response_id": 0x18DAF141,
                }
            },
        )
    with pytest.raises(ValueError, match="needs request_id"):
        with_addressing(virtual_vehicle_ecus(), {"OBC": {"request_id": 0x7E5}})


def test_plan_ecus_without_a_section_are_the_defaults() -> None:
    assert plan_ecus(None) == virtual_vehicle_ecus()
    assert isinstance(plan_ecus(object())["MCU"], Ecu)


def test_bench_profile_diagnostics_tables(tmp_path) -> None:
    from bench.errors import InputError
    from bench.profile import parse_profile
    from bench.run.diag import run_ecus

    path = tmp_path / "bench.toml"
    profile = parse_profile(
        '[diagnostics.BMS]\naddressing = "normal_fixed_29bit"\n'
        "request_id = 0x18DA40F1\nresponse_id = 0x18DAF140\n",
        path,
    )
    ecus = run_ecus(None, profile)
    assert ecus["BMS"].is_extended_id and ecus["BMS"].target_address == 0x40
    assert ecus["MCU"].request_id == 0x7E2
    where = r"bench.toml:1: diagnostics.BMS: ECU BMS: request_id 0x18DA40F1 does not fit"
    with pytest.raises(InputError, match=where):
        parse_profile("[diagnostics.BMS]\n\nrequest_id = 0x18DA40F1\n", path)
