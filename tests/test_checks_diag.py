"""``dtc:`` and ``did:`` checks on recorded diagnostic traffic (hand-built ISO-TP frames)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.diag.catalog import STATUS_BITS, status_mask, virtual_vehicle_ecus
from tests import diagframes as uds
from tests.oracle import reference as ref
from tests.test_checks_context import events, frames, run, spec

ECUS = virtual_vehicle_ecus()
BMS, MCU = ECUS["BMS"], ECUS["MCU"]
HEATER = BMS.dtc("heater_circuit_failure")
INSULATION = BMS.dtc("insulation_resistance_low")
CONFIRMED, TEST_FAILED, NOT_COMPLETED = 0x08, 0x01, 0x50


def judge(check: dict, rows: list[tuple], dbcs, step_rows=(), **extra):
    rows = sorted(rows, key=lambda r: r[0])
    ev = events(*step_rows) if step_rows else None
    return run(spec(name="c", **check), dbcs, frames=frames(rows), events=ev, **extra)


def read(t: float, dtcs, mask=0xFF, ecu=BMS):
    return uds.exchange_rows(ecu, t, uds.read_dtc_request(mask), uds.read_dtc_response(dtcs, mask))


# -- none_with_status ------------------------------------------------------------------------------


def test_no_confirmed_dtc_passes_and_a_confirmed_one_fails_naming_it(dbcs):
    check = {"dtc": {"ecu": "BMS", "none_with_status": ["confirmed"]}}
    ok = judge(check, read(1.0, [(HEATER.code, TEST_FAILED | NOT_COMPLETED)]), dbcs)
    assert ok.verdict == "pass" and ok.observed == {"dtcs": [], "responses": 1}
    bad = judge(check, read(1.0, [(HEATER.code, 0x2F)]), dbcs)
    assert bad.verdict == "fail"
    assert "P1A41-92 heater_circuit_failure" in bad.message and "confirmed" in bad.message
    assert "t = 1.000 s" in bad.message and bad.observed["dtcs"] == ["P1A41-92"]
    assert bad.evidence[0][0] == 1.0 and bad.details["dtcs"][0]["status_bits"][0] == "test_failed"


def test_a_mask_that_does_not_ask_for_the_bit_proves_nothing(dbcs):
    check = {"dtc": {"ecu": "BMS", "none_with_status": ["confirmed"]}}
    r = judge(check, read(1.0, [], mask=TEST_FAILED), dbcs)
    assert r.verdict == "inconclusive" and "0x01" in r.message


def test_no_dtc_read_in_the_window_is_inconclusive(dbcs):
    check = {"dtc": {"ecu": "MCU", "none_with_status": ["confirmed"]}}
    r = judge(check, read(1.0, []), dbcs)
    assert r.verdict == "inconclusive" and "no ReadDTCInformation response of MCU" in r.message


def test_negative_or_missing_answer_is_an_error_with_the_reason(dbcs):
    check = {"dtc": {"ecu": "BMS", "none_with_status": ["confirmed"]}}
    nrc = uds.exchange_rows(BMS, 1.0, uds.read_dtc_request(), uds.negative(0x19, 0x22))
    r = judge(check, read(0.5, []) + nrc, dbcs)
    assert r.verdict == "error" and "0x22 ConditionsNotCorrect" in r.message
    silent = uds.exchange_rows(BMS, 1.0, uds.read_dtc_request(), None)
    r = judge(check, [*silent, (9.0, 0x555, b"\x00")], dbcs)
    assert r.verdict == "error" and "no response within P2*" in r.message
    # a proven fail is not hidden by another read's error
    r = judge(check, read(0.5, [(HEATER.code, CONFIRMED)]) + nrc, dbcs)
    assert r.verdict == "fail"


def test_number_of_dtc_responses_judge_when_their_mask_decides(dbcs):
    check = {"dtc": {"ecu": "BMS", "none_with_status": ["confirmed"]}}
    zero = uds.exchange_rows(BMS, 1.0, uds.count_request(0xFF), uds.count_response(0xFF, 0))
    assert judge(check, zero, dbcs).verdict == "pass"
    some = uds.exchange_rows(BMS, 1.0, uds.count_request(0x08), uds.count_response(0x08, 2))
    assert judge(check, some, dbcs).verdict == "fail"
    wide = uds.exchange_rows(BMS, 1.0, uds.count_request(0xFF), uds.count_response(0xFF, 2))
    assert judge(check, wide, dbcs).verdict == "inconclusive"  # which bits? unknown


def test_during_and_after_select_exchanges_by_request_time(dbcs):
    rows = read(1.0, [(HEATER.code, CONFIRMED)]) + read(5.0, [])
    layout = [(0.5, "step_start", "soak"), (2.0, "step_end", "soak"),
              (4.0, "step_start", "end"), (6.0, "step_end", "end")]  # fmt: skip
    check = {"dtc": {"ecu": "BMS", "none_with_status": ["confirmed"]}}
    assert judge({**check, "during": ["end"]}, rows, dbcs, layout).verdict == "pass"
    assert judge({**check, "during": ["soak"]}, rows, dbcs, layout).verdict == "fail"
    assert judge({**check, "after": "end"}, rows, dbcs, layout).verdict == "pass"
    assert judge({**check, "after": "soak.end"}, rows, dbcs, layout).verdict == "pass"
    assert judge({**check, "after": "soak"}, rows, dbcs, layout).verdict == "fail"


# -- present ---------------------------------------------------------------------------------------


def test_present_with_status(dbcs):
    check = {"dtc": {"ecu": "BMS", "present": "heater_circuit_failure",
                     "with_status": ["confirmed"]}}  # fmt: skip
    r = judge(check, read(1.0, [(HEATER.code, 0x2F)]), dbcs)
    assert r.verdict == "pass" and "P1A41-92" in r.message
    r = judge(check, read(1.0, [(HEATER.code, TEST_FAILED)]), dbcs)
    assert r.verdict == "fail" and "reported only as P1A41-92" in r.message
    r = judge(check, read(1.0, [(INSULATION.code, CONFIRMED)]), dbcs)
    assert r.verdict == "fail" and "not reported" in r.message
    by_label = {"dtc": {"ecu": "BMS", "present": "P1A41-92"}}
    assert judge(by_label, read(1.0, [(HEATER.code, TEST_FAILED)]), dbcs).verdict == "pass"
    # a code the catalog does not name (an ECU added in diagnostics: has none) goes by label
    foreign = {"dtc": {"ecu": "BMS", "present": "P1234-56"}}
    r = judge(foreign, read(1.0, [(0x123456, CONFIRMED)]), dbcs)
    assert r.verdict == "pass" and "P1234-56" in r.message


# -- none_new_since --------------------------------------------------------------------------------


def test_none_new_since_a_clear(dbcs):
    clear = uds.exchange_rows(BMS, 0.1, uds.CLEAR_REQUEST, uds.CLEAR_RESPONSE)
    layout = [(0.0, "step_start", "clear"), (0.5, "step_end", "clear")]
    check = {"dtc": {"ecu": "BMS", "none_new_since": "clear"}}
    fresh = read(9.0, [(HEATER.code, NOT_COMPLETED), (INSULATION.code, NOT_COMPLETED)])
    r = judge(check, clear + fresh, dbcs, layout)
    assert r.verdict == "pass" and r.details["baseline_from"] == "clear"
    r = judge(check, clear + read(9.0, [(HEATER.code, 0x09)]), dbcs, layout)
    assert r.verdict == "fail" and "P1A41-92" in r.message and r.observed["new"] == ["P1A41-92"]
    refused = uds.exchange_rows(BMS, 0.1, uds.CLEAR_REQUEST, uds.negative(0x14, 0x22))
    r = judge(check, refused + fresh, dbcs, layout)
    assert r.verdict == "error" and "baseline" in r.message
    r = judge(check, clear + read(9.0, [], mask=CONFIRMED), dbcs, layout)
    assert r.verdict == "inconclusive"


def test_none_new_since_a_read_keeps_the_dtcs_set_then(dbcs):
    layout = [(0.0, "step_start", "start"), (0.5, "step_end", "start")]
    check = {"dtc": {"ecu": "BMS", "none_new_since": "start"}}
    before = read(0.1, [(HEATER.code, CONFIRMED)])
    assert judge(check, before + read(9.0, [(HEATER.code, CONFIRMED)]), dbcs, layout).verdict == (
        "pass")  # fmt: skip
    later = read(9.0, [(HEATER.code, CONFIRMED), (INSULATION.code, TEST_FAILED)])
    r = judge(check, before + later, dbcs, layout)
    assert r.verdict == "fail" and "P0AA6-1A" in r.message and "P1A41" not in r.message


# -- did -------------------------------------------------------------------------------------------


def did_read(t: float, name: str, value, ecu=BMS):
    did = ecu.did(name)
    return uds.exchange_rows(ecu, t, uds.did_request(did.id),
                             uds.did_response((did.id, did.encode(value))))  # fmt: skip


def test_did_within_limits_marginal_and_outside(dbcs):
    check = {"did": {"ecu": "BMS", "did": "pack_soh", "min": 80, "max": 100,
                     "marginal_min": 85}}  # fmt: skip
    r = judge(check, did_read(1.0, "pack_soh", 97.5), dbcs)
    assert r.verdict == "pass" and r.observed == 97.5 and r.unit == "%" and r.margin == 2.5
    r = judge(check, did_read(1.0, "pack_soh", 82.0), dbcs)
    assert r.verdict == "marginal"
    r = judge(check, did_read(1.0, "pack_soh", 97.0) + did_read(2.0, "pack_soh", 79.5), dbcs)
    assert r.verdict == "fail" and r.observed == {"min": 79.5, "max": 97.0}
    assert "79.5 %" in r.message and r.evidence[0][0] == 2.0


def test_did_equals_text_and_errors(dbcs):
    check = {"did": {"ecu": "BMS", "did": "software_version", "equals": "1.4.2"}}
    assert judge(check, did_read(1.0, "software_version", "1.4.2"), dbcs).verdict == "pass"
    assert judge(check, did_read(1.0, "software_version", "1.4.3"), dbcs).verdict == "fail"
    version = BMS.did("software_version")
    nrc = uds.exchange_rows(BMS, 1.0, uds.did_request(version.id), uds.negative(0x22, 0x31))
    r = judge(check, nrc, dbcs)
    assert r.verdict == "error" and "RequestOutOfRange" in r.message
    r = judge(check, did_read(1.0, "pack_soh", 90.0), dbcs)
    assert r.verdict == "inconclusive"


def test_unknown_ecu_or_did_at_evaluation_is_an_error(dbcs):
    assert judge({"did": {"ecu": "VCU", "did": "x", "min": 0}}, [], dbcs).verdict == "error"
    r = judge({"did": {"ecu": "BMS", "did": "nope", "min": 0}}, did_read(1, "pack_soh", 90), dbcs)
    assert r.verdict == "error" and "pack_soh" in r.message


def test_plan_forms_are_refused_where_they_make_no_sense():
    from pydantic import ValidationError

    for wrong in (
        {"dtc": {"ecu": "BMS"}},
        {"dtc": {"ecu": "BMS", "none_with_status": []}},
        {"dtc": {"ecu": "BMS", "none_with_status": ["confirmd"]}},
        {"dtc": {"ecu": "BMS", "none_with_status": ["confirmed"], "with_status": ["pending"]}},
        {"did": {"ecu": "BMS", "did": "pack_soh"}},
        {"did": {"ecu": "BMS", "did": "pack_soh", "min": 1, "equals": 3}},
        {"dtc": {"ecu": "BMS", "none_with_status": ["confirmed"]}, "abort": True},
    ):
        with pytest.raises(ValidationError):
            spec(name="c", **wrong)


def test_bus_check_does_not_count_diagnostic_frames(dbcs):
    rows = read(1.0, [(HEATER.code, CONFIRMED)] * 4)
    r = judge({"bus": {}}, rows, dbcs)
    assert r.verdict == "pass", r.message


# -- random DTC sets: verdict == a plain reference -------------------------------------------------

BITS = st.lists(st.sampled_from(STATUS_BITS), min_size=1, max_size=3, unique=True)
READS = st.lists(
    st.tuples(
        st.sampled_from([0xFF, 0x08, 0x09, 0x01, 0x2F, 0xAF]),  # the request's status mask
        st.lists(st.tuples(st.sampled_from([HEATER.code, INSULATION.code, 0x123456]),
                           st.integers(0, 255)), max_size=3, unique_by=lambda d: d[0]),
        st.sampled_from(["ok", "ok", "ok", "nrc"]),
    ),
    max_size=4,
)  # fmt: skip


def _rows(reads):
    rows = []
    for i, (req_mask, dtcs, how) in enumerate(reads):
        reported = [(c, s) for c, s in dtcs if s & req_mask]
        response = (uds.negative(0x19, 0x31) if how == "nrc"
                    else uds.read_dtc_response(reported, req_mask))  # fmt: skip
        rows += uds.exchange_rows(BMS, 1.0 + i, uds.read_dtc_request(req_mask), response)
    return rows


@settings(max_examples=150, deadline=None, database=None)
@given(BITS, READS, st.sampled_from(["none", "present"]))
def test_random_dtc_sets_match_a_plain_reference(dbcs, bits, reads, mode):
    if mode == "none":
        check = {"dtc": {"ecu": "BMS", "none_with_status": bits}}
        expected = ref.dtc_none_with_status(status_mask(bits), reads)
    else:
        check = {"dtc": {"ecu": "BMS", "present": HEATER.name, "with_status": bits}}
        expected = ref.dtc_present(HEATER.code, status_mask(bits), reads)
    r = judge(check, [*_rows(reads), (9.0, 0x555, b"\x00")], dbcs)
    assert r.verdict == expected, r.message


# -- random DID readings: verdict == a plain reference ---------------------------------------------

SOH_VALUES = st.lists(st.sampled_from([70.0, 79.99, 80.0, 84.99, 85.0, 97.5, 100.0, 100.01]),
                      min_size=0, max_size=4)  # fmt: skip


@settings(max_examples=150, deadline=None, database=None)
@given(SOH_VALUES, st.booleans())
def test_random_did_readings_match_a_plain_reference(dbcs, values, refused):
    rows = []
    for i, value in enumerate(values):
        rows += did_read(1.0 + i, "pack_soh", value)
    if refused:
        soh = BMS.did("pack_soh")
        rows += uds.exchange_rows(BMS, 8.0, uds.did_request(soh.id), uds.negative(0x22, 0x22))
    check = {"did": {"ecu": "BMS", "did": "pack_soh", "min": 80, "max": 100,
                     "marginal_min": 85}}  # fmt: skip
    r = judge(check, [*rows, (9.0, 0x555, b"\x00")], dbcs)
    expected = ref.did_limits(values, refused, 80, 100, 85)
    assert r.verdict == expected, r.message
    if expected in ("pass", "marginal"):
        assert r.margin >= 0
