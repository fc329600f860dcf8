"""cycle_time, timeout, counter, crc and bus checks on hand-built frame tables."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_checks_context import encoded, frames, run, spec, steps, table


def status_frames(dbcs, times):
    return frames(encoded(dbcs, "BMS_PackStatus", times))


# -- cycle_time ------------------------------------------------------------------------------------


def test_cycle_time_from_dbc_passes_on_exact_period(dbcs):
    times = np.arange(100) * 0.02  # BMS_PackStatus: GenMsgCycleTime 20 ms
    r = run(spec(name="c", cycle_time="BMS_PackStatus"), dbcs, frames=status_frames(dbcs, times))
    assert r.verdict == "pass"
    assert r.limit["period"] == 0.02 and r.details["period_from"] == "dbc"
    assert r.observed["violations"] == 0
    assert r.observed["max"] == pytest.approx(0.02)


def test_cycle_time_counts_violations_and_gives_gap_evidence(dbcs):
    times = [0.0, 0.02, 0.04, 0.10, 0.12, 0.125, 0.145]
    r = run(spec(name="c", cycle_time="BMS_PackStatus"), dbcs, frames=status_frames(dbcs, times))
    assert r.verdict == "fail"
    assert r.observed["violations"] == 2
    assert r.details["too_long"] == 1 and r.details["too_short"] == 1
    assert r.evidence == [(0.04, 0.10), (0.12, 0.125)]
    assert "60 ms" in r.message and "20 ms" in r.message
    allowed = run(
        spec(name="c", cycle_time="BMS_PackStatus", max_violations=2),
        dbcs,
        frames=status_frames(dbcs, times),
    )
    assert allowed.verdict == "marginal"


def test_cycle_time_tolerance_edges(dbcs):
    ok = [0.0, 0.022, 0.040]  # 22 ms and 18 ms: exactly on the 10 % edges
    r = run(spec(name="c", cycle_time="BMS_PackStatus"), dbcs, frames=status_frames(dbcs, ok))
    assert r.verdict == "pass"
    absolute = spec(name="c", cycle_time="BMS_PackStatus", period="50ms", tolerance="1ms")
    r = run(absolute, dbcs, frames=status_frames(dbcs, [0.0, 0.05, 0.1015]))
    assert r.verdict == "fail" and r.limit["max"] == pytest.approx(0.051)


def test_cycle_time_without_any_period_is_an_error_naming_the_message(dbcs):
    contactors = dbcs.message("BMS_Contactors")
    assert contactors.cycle_time in (None, 0)
    table_ = frames([(0.0, contactors.frame_id, b"\x00"), (0.1, contactors.frame_id, b"\x00")])
    r = run(spec(name="c", cycle_time="BMS_Contactors"), dbcs, frames=table_)
    assert r.verdict == "error" and "BMS_Contactors" in r.message


def test_cycle_time_one_frame_is_inconclusive(dbcs):
    r = run(spec(name="c", cycle_time="BMS_PackStatus"), dbcs, frames=status_frames(dbcs, [1.0]))
    assert r.verdict == "inconclusive"


def test_cycle_time_during_ignores_gaps_across_steps(dbcs):
    times = [0.0, 0.02, 0.04, 5.0, 5.02]
    ev = steps(("a", 0.0, 1.0), ("b", 4.9, 6.0))
    r = run(
        spec(name="c", cycle_time="BMS_PackStatus", during=["a", "b"]),
        dbcs,
        frames=status_frames(dbcs, times),
        events=ev,
    )
    assert r.verdict == "pass" and r.details["gaps"] == 3


def test_cycle_time_falls_back_to_decoded_timestamps(dbcs):
    messages = {"BMS_PackStatus": table(timestamp=[0.0, 0.02, 0.1], SOC=[1.0, 1.0, 1.0])}
    r = run(spec(name="c", cycle_time="BMS_PackStatus"), dbcs, messages=messages)
    assert r.verdict == "fail" and r.observed["violations"] == 1


# -- timeout ---------------------------------------------------------------------------------------


def _log_with(dbcs, status_times, log_end=1.0):
    """BMS_PackStatus at ``status_times`` plus a BMS_Temps frame at 0 and ``log_end``."""
    temps = dbcs.message("BMS_Temps").frame_id
    rows = encoded(dbcs, "BMS_PackStatus", status_times)
    rows += [(0.0, temps, b"\x00" * 8), (log_end, temps, b"\x00" * 8)]
    return frames(sorted(rows, key=lambda r: r[0]))


def test_timeout_pass_and_margin(dbcs):
    times = np.arange(0, 1.01, 0.1)
    r = run(spec(name="t", timeout="BMS_PackStatus", max_gap="150ms"), dbcs,
            frames=_log_with(dbcs, times))  # fmt: skip
    assert r.verdict == "pass"
    assert r.observed == pytest.approx(0.1) and r.margin == pytest.approx(0.05)


def test_timeout_gap_in_the_middle(dbcs):
    r = run(spec(name="t", timeout="BMS_PackStatus", max_gap=0.15), dbcs,
            frames=_log_with(dbcs, [0.0, 0.1, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]))  # fmt: skip
    assert r.verdict == "fail" and r.evidence == [(0.1, 0.5)]


def test_timeout_message_that_stops_times_out_at_log_end(dbcs):
    r = run(spec(name="t", timeout="BMS_PackStatus", max_gap=0.15), dbcs,
            frames=_log_with(dbcs, [0.0, 0.1, 0.2], log_end=2.0))  # fmt: skip
    assert r.verdict == "fail" and r.evidence == [(0.2, 2.0)]
    assert r.observed == pytest.approx(1.8)


def test_timeout_from_first_step_start(dbcs):
    ev = steps(("key_on", 0.0, 1.0))
    r = run(spec(name="t", timeout="BMS_PackStatus", max_gap=0.15), dbcs,
            frames=_log_with(dbcs, [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]), events=ev)  # fmt: skip
    assert r.verdict == "fail" and r.evidence == [(0.0, 0.5)]


def test_timeout_message_never_seen_fails(dbcs):
    r = run(spec(name="t", timeout="BMS_PackStatus", max_gap=0.15), dbcs,
            frames=_log_with(dbcs, []))  # fmt: skip
    assert r.verdict == "fail" and r.evidence == [(0.0, 1.0)]


# -- counter ---------------------------------------------------------------------------------------


def counter_values(times, values):
    return {"BMS_PackStatus": table(timestamp=times, AliveCounter=values)}


def test_counter_wraps_modulo_sixteen(dbcs):
    values = [13, 14, 15, 0, 1, 2]
    r = run(spec(name="c", counter="BMS_PackStatus.AliveCounter"), dbcs,
            messages=counter_values(np.arange(6) * 0.02, values))  # fmt: skip
    assert r.verdict == "pass" and r.observed == {"errors": 0, "increments": 5}
    assert r.limit["modulus"] == 16


def test_counter_repeat_and_skip_are_errors(dbcs):
    times = [0.0, 1.0, 2.0, 3.0, 4.0]
    r = run(spec(name="c", counter="BMS_PackStatus.AliveCounter"), dbcs,
            messages=counter_values(times, [1, 2, 2, 5, 6]))  # fmt: skip
    assert r.verdict == "fail"
    assert r.observed["errors"] == 2
    assert r.details == {"repeated": 1, "skipped": 1}
    assert r.evidence == [(1.0, 2.0), (2.0, 3.0)]
    allowed = run(spec(name="c", counter="BMS_PackStatus.AliveCounter", max_errors=2), dbcs,
                  messages=counter_values(times, [1, 2, 2, 5, 6]))  # fmt: skip
    assert allowed.verdict == "marginal"


def test_counter_empty_and_single_value_inconclusive(dbcs):
    for times, values in (([], []), ([0.0], [3])):
        r = run(spec(name="c", counter="BMS_PackStatus.AliveCounter"), dbcs,
                messages=counter_values(times, values))  # fmt: skip
        assert r.verdict == "inconclusive"


def test_counter_from_real_frames(dbcs):
    from bench.decode import decode_frames

    table_ = status_frames(dbcs, np.arange(40) * 0.02)
    decoded = decode_frames(table_, dbcs)
    r = run(spec(name="c", counter="BMS_PackStatus.AliveCounter"), dbcs,
            messages=decoded.messages, frames=table_)  # fmt: skip
    assert r.verdict == "pass" and r.observed["increments"] == 39


# -- crc -------------------------------------------------------------------------------------------


def test_crc_correct_frames_pass(dbcs):
    r = run(spec(name="c", crc="BMS_PackStatus"), dbcs,
            frames=status_frames(dbcs, np.arange(20) * 0.02))  # fmt: skip
    assert r.verdict == "pass" and r.observed == {"errors": 0, "frames": 20}


def test_crc_corrupted_byte_fails_with_frame_evidence(dbcs):
    rows = encoded(dbcs, "BMS_PackStatus", [0.0, 0.02, 0.04])
    bad = bytearray(rows[1][2])
    bad[7] ^= 0x01
    rows[1] = (rows[1][0], rows[1][1], bytes(bad))
    short = (0.06, rows[0][1], b"\x00\x00")
    r = run(spec(name="c", crc="BMS_PackStatus"), dbcs, frames=frames([*rows, short]))
    assert r.verdict == "fail" and r.observed["errors"] == 1
    assert r.evidence == [(0.02, 0.02)]
    assert r.details["short_frames"] == 1


def test_crc_motorola_message(dbcs):
    rows = encoded(dbcs, "MCU_Status", [0.0, 0.01], {"MotorSpeed": 1200})
    r = run(spec(name="c", crc="MCU_Status"), dbcs, frames=frames(rows))
    assert r.verdict == "pass"


def test_crc_message_without_crc_signal_is_an_error(dbcs):
    r = run(spec(name="c", crc="BMS_Temps"), dbcs, frames=frames([]))
    assert r.verdict == "error" and "CRC" in r.message


def test_crc_no_frames_inconclusive(dbcs):
    r = run(spec(name="c", crc="BMS_PackStatus"), dbcs, frames=status_frames(dbcs, []))
    assert r.verdict == "inconclusive"


# -- bus -------------------------------------------------------------------------------------------


def test_bus_counts_against_limits(dbcs):
    rows = [
        *encoded(dbcs, "BMS_PackStatus", [0.0, 0.02]),
        (0.03, 0x100, b"\x00"),
        (0.04, 0x7AB, b"\x00" * 8),
        (0.05, 0x0, b""),
    ]
    table_ = frames(rows, error=[False, False, False, False, True])
    r = run(spec(name="b", bus={}), dbcs, frames=table_)
    assert r.verdict == "fail"
    assert r.observed == {"error_frames": 1, "unknown_ids": 1, "dlc_mismatches": 1}
    assert r.evidence == [(0.03, 0.03), (0.04, 0.04), (0.05, 0.05)]
    assert r.details["unknown_ids"] == ["0x7AB"]
    lenient = spec(
        name="b", bus={"max_error_frames": 1, "max_unknown_ids": 1, "max_dlc_mismatches": 1}
    )
    assert run(lenient, dbcs, frames=table_).verdict == "marginal"


def test_bus_clean_passes_and_stats_fallback(dbcs):
    assert run(spec(name="b", bus={}), dbcs,
               frames=status_frames(dbcs, [0.0])).verdict == "pass"  # fmt: skip
    stats = {"error_frames": 3, "unknown_ids": {"0x7AB": 2}, "messages": {"X": {"short": 0}}}
    r = run(spec(name="b", bus={}), dbcs, bus_stats=stats)
    assert r.verdict == "fail" and r.observed["unknown_ids"] == 2


def test_bus_during_counts_only_inside_steps(dbcs):
    rows = [(0.5, 0x7AB, b"\x00" * 8), (1.5, 0x7AB, b"\x00" * 8), (2.5, 0x7AB, b"\x00" * 8)]
    r = run(spec(name="b", bus={"max_unknown_ids": 0}, during=["drive"]), dbcs,
            frames=frames(rows), events=steps(("drive", 1.0, 2.0)))  # fmt: skip
    assert r.verdict == "fail" and r.observed["unknown_ids"] == 1
    assert r.evidence == [(1.5, 1.5)]


def test_bus_on_an_empty_log_is_inconclusive(dbcs):
    assert run(spec(name="b", bus={}), dbcs, frames=frames([])).verdict == "inconclusive"
