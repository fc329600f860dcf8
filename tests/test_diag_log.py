"""UDS exchanges from recorded frames (bench.diag.log): pairing, decoding by udsoncan, faults."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from udsoncan import Response
from udsoncan.common.dtc import Dtc as UdsDtc

from bench.decode import decode_frames
from bench.diag.catalog import STATUS_BITS, Ecu, status_names, virtual_vehicle_ecus
from bench.diag.log import P2_STAR, read_exchanges
from tests import diagframes as uds
from tests.test_checks_context import frames

ECUS = virtual_vehicle_ecus()
BMS = ECUS["BMS"]


def exchanges(rows, ecus=None, log_end=None):
    return read_exchanges(frames(sorted(rows, key=lambda r: r[0])), ecus or ECUS,
                          log_end=log_end).exchanges  # fmt: skip


def test_read_dtc_exchange_decodes_dtcs_with_catalog_names_and_status_bits():
    heater = BMS.dtc("heater_circuit_failure")
    response = uds.read_dtc_response([(heater.code, 0x2F), (0x123456, 0x50)])
    (e,) = exchanges(uds.exchange_rows(BMS, 1.0, uds.read_dtc_request(0xFF), response))
    assert e.ecu == "BMS" and e.service == "ReadDTCInformation" and e.outcome == "positive"
    assert e.status_mask == 0xFF and e.request_time == 1.0 and e.response_time > 1.0
    first, second = e.dtcs
    assert (first.label, first.name, first.status) == ("P1A41-92", "heater_circuit_failure", 0x2F)
    assert first.status_names == ["test_failed", "test_failed_this_operation_cycle", "pending",
                                  "confirmed", "test_failed_since_last_clear"]  # fmt: skip
    assert second.label == "P1234-56" and second.text == "not in the catalog"
    assert "P1A41-92 heater_circuit_failure [test_failed" in e.describe()
    data = e.to_dict()
    assert data["dtcs"][0]["status"] == "0x2F" and data["status_mask_bits"] == list(STATUS_BITS)


def test_status_bit_names_are_udsoncans():
    for bit, name in enumerate(STATUS_BITS):
        status = UdsDtc.Status.from_byte(1 << bit)
        assert getattr(status, name) is True
        assert status_names(1 << bit) == [name]


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.tuples(st.integers(1, 0xFFFFFF), st.integers(0, 255)), max_size=40))
def test_random_dtc_lists_decode_as_sent(dtcs):
    response = uds.read_dtc_response(dtcs)
    (e,) = exchanges(uds.exchange_rows(BMS, 0.5, uds.read_dtc_request(), response))
    assert e.outcome == "positive"
    assert [(d.code, d.status) for d in e.dtcs] == dtcs
    # the same bytes through udsoncan directly: the library is the reference
    assert Response.from_payload(response).positive


def test_number_of_dtc_and_clear_and_did_reads():
    soh, version = BMS.did("pack_soh"), BMS.did("software_version")
    rows = uds.exchange_rows(BMS, 0.0, uds.CLEAR_REQUEST, uds.CLEAR_RESPONSE)
    rows += uds.exchange_rows(BMS, 1.0, uds.count_request(0x08), uds.count_response(0x08, 3))
    rows += uds.exchange_rows(
        BMS, 2.0, uds.did_request(soh.id, version.id),
        uds.did_response((soh.id, soh.encode(97.5)), (version.id, version.encode("1.4.2"))),
    )  # fmt: skip
    clear, count, dids = exchanges(rows)
    assert clear.service == "ClearDiagnosticInformation" and clear.outcome == "positive"
    assert count.dtc_count == 3 and count.status_mask == 0x08
    assert [(v.name, v.value, v.unit) for v in dids.dids] == [
        ("pack_soh", 97.5, "%"), ("software_version", "1.4.2", "")]  # fmt: skip
    assert "pack_soh = 97.5 %" in dids.describe()


def test_negative_response_names_the_nrc():
    rows = uds.exchange_rows(BMS, 1.0, uds.did_request(0x1234), uds.negative(0x22, 0x31))
    (e,) = exchanges(rows)
    assert e.outcome == "negative" and e.nrc == 0x31 and e.nrc_name == "RequestOutOfRange"
    assert e.failed and "0x31 RequestOutOfRange" in e.problem


def test_response_pending_then_answer_is_one_exchange():
    rows = uds.exchange_rows(BMS, 1.0, uds.read_dtc_request(), uds.negative(0x19, 0x78))
    rows += uds.message_rows(3.0, BMS.response_id, uds.read_dtc_response([]))
    (e,) = exchanges(rows)
    assert e.outcome == "positive" and e.pending == 1 and e.dtcs == ()


def test_no_response_within_p2_star_and_no_response_before_the_log_ends():
    late = uds.exchange_rows(BMS, 1.0, uds.read_dtc_request(), uds.read_dtc_response([]),
                             latency=P2_STAR + 1)  # fmt: skip
    (e,) = [x for x in exchanges(late) if x.outcome != "unsolicited"]
    assert e.outcome == "no_response" and "P2* (5 s)" in e.problem and "came" in e.problem
    silent = uds.exchange_rows(BMS, 1.0, uds.read_dtc_request(), None)
    (e,) = exchanges(silent, log_end=2.0)
    assert e.outcome == "no_response" and "log ended" in e.problem
    (e,) = exchanges(silent, log_end=10.0)
    assert "within P2*" in e.problem


def test_truncated_response_is_invalid_with_the_iso_tp_reason():
    heater = BMS.dtc("heater_circuit_failure")
    rows = uds.exchange_rows(BMS, 1.0, uds.read_dtc_request(),
                             uds.read_dtc_response([(heater.code, 0x09)] * 5))  # fmt: skip
    rows = [r for r in rows if not (r[1] == BMS.response_id and r[2][0] == 0x22)]  # drop CF 2
    (e,) = exchanges(rows)
    assert e.outcome == "invalid" and "wrong sequence number" in e.problem


def test_malformed_dtc_record_is_invalid_not_an_exception():
    rows = uds.exchange_rows(BMS, 1.0, uds.read_dtc_request(), bytes([0x59, 0x02, 0xFF, 1, 2]))
    (e,) = exchanges(rows)
    assert e.outcome == "invalid" and e.problem.startswith("response:")


def test_response_to_another_service_is_invalid_and_extra_responses_unsolicited():
    rows = uds.exchange_rows(BMS, 1.0, uds.read_dtc_request(), uds.CLEAR_RESPONSE)
    rows += uds.message_rows(1.5, BMS.response_id, uds.CLEAR_RESPONSE)
    first, second = exchanges(rows)
    assert first.outcome == "invalid" and "ClearDiagnosticInformation" in first.problem
    assert second.outcome == "unsolicited"


def test_suppressed_positive_response_is_not_unanswered():
    (e,) = exchanges(uds.message_rows(1.0, BMS.request_id, bytes([0x3E, 0x80])), log_end=9.0)
    assert e.outcome == "suppressed" and not e.failed


def test_29_bit_normal_fixed_addressing():
    ecu = Ecu("BCM", 0x18DA40F1, 0x18DAF140, "normal_fixed_29bit")
    rows = uds.exchange_rows(ecu, 1.0, uds.read_dtc_request(), uds.read_dtc_response([(1, 8)]))
    (e,) = exchanges(rows, {"BCM": ecu})
    assert e.ecu == "BCM" and e.dtcs[0].status_names == ["confirmed"]
    # an 11-bit frame with the same number is not this ECU's
    assert exchanges([(r[0], r[1] & 0x7FF, r[2], False) for r in rows], {"BCM": ecu}) == []


def test_ecus_are_told_apart_and_exchanges_are_in_time_order():
    mcu = ECUS["MCU"]
    rows = uds.exchange_rows(BMS, 1.0, uds.read_dtc_request(), uds.read_dtc_response([]))
    rows += uds.exchange_rows(mcu, 1.002, uds.read_dtc_request(), uds.read_dtc_response([(9, 1)]))
    got = exchanges(rows)
    assert [(e.ecu, len(e.dtcs)) for e in got] == [("BMS", 0), ("MCU", 1)]


def test_diagnostic_frames_are_not_unknown_ids_for_the_decoder(dbcs):
    from bench.diag.log import diagnostic_ids

    rows = uds.exchange_rows(BMS, 1.0, uds.read_dtc_request(), uds.read_dtc_response([(1, 8)] * 3))
    rows.append((2.0, 0x555, b"\x00" * 8, False))
    table = frames(rows)
    plain = decode_frames(table, dbcs).stats
    assert plain.unknown_ids.get(BMS.response_id)
    stats = decode_frames(table, dbcs, diagnostic=diagnostic_ids(ECUS)).stats
    assert stats.unknown_ids == {0x555: 1}
    assert stats.diagnostic_frames == len(rows) - 1


def test_a_response_and_the_next_request_on_the_same_tick_pair_by_log_order():
    # lockstep: the response to the DTC read and the next request share t = 6.58 s
    soh = BMS.did("pack_soh")
    rows = [
        (6.57, BMS.request_id, uds.segment(uds.read_dtc_request())[0], False),
        (6.58, BMS.response_id, uds.segment(uds.read_dtc_response([]))[0], False),
        (6.58, BMS.request_id, uds.segment(uds.did_request(soh.id))[0], False),
        (6.59, BMS.response_id,
         uds.segment(uds.did_response((soh.id, soh.encode(97.5))))[0], False),
    ]  # fmt: skip
    dtc, did = exchanges(rows)
    assert (dtc.outcome, dtc.dtcs) == ("positive", ())
    assert did.outcome == "positive" and did.dids[0].value == 97.5


def test_unanswered_request_followed_by_the_next_one_says_so():
    rows = uds.exchange_rows(BMS, 1.0, uds.read_dtc_request(), None)
    rows += uds.exchange_rows(BMS, 1.3, uds.read_dtc_request(), uds.read_dtc_response([]))
    first, second = exchanges(rows, log_end=60.0)
    assert first.outcome == "no_response" and "next request (0.300 s" in first.problem
    assert second.outcome == "positive"


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([BMS.request_id, BMS.response_id]),
            st.one_of(
                st.binary(min_size=1, max_size=8),
                # plausible single frames of UDS services, with random bodies
                st.builds(
                    lambda sid, body: bytes([len(body) + 1, sid]) + body,
                    st.sampled_from([0x19, 0x59, 0x22, 0x62, 0x14, 0x54, 0x7F, 0x3E, 0x10]),
                    st.binary(max_size=6),
                ),
            ),
        ),
        max_size=12,
    )
)
def test_random_traffic_on_the_diagnostic_ids_never_raises(frames_):
    rows = [(0.01 * i, can_id, data, False) for i, (can_id, data) in enumerate(frames_)]
    got = exchanges(rows, log_end=1.0) if rows else []
    for e in got:
        assert e.outcome in ("positive", "negative", "no_response", "invalid", "suppressed",
                             "unsolicited")  # fmt: skip
        assert e.to_dict()["ecu"] == "BMS"
        e.describe()
