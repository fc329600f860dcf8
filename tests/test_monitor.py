"""The live monitor judges abort rules as the offline checks do (bench.checks), frame by frame."""

from __future__ import annotations

import can
import pytest
from pydantic import TypeAdapter

from bench.e2e import Protector
from bench.monitor import LiveMonitor
from bench.plan.checks import AnyCheck


def _checks(*specs: dict):
    return TypeAdapter(list[AnyCheck]).validate_python([{**s, "abort": True} for s in specs])


def _frame(message, payload: bytes, t: float) -> can.Message:
    return can.Message(timestamp=t, arbitration_id=message.frame_id, data=payload,
                       is_extended_id=message.is_extended_frame)  # fmt: skip


def _temps(dbcs, value: float, t: float) -> can.Message:
    message = dbcs.message("BMS_Temps")
    return _frame(message, Protector(message).encode({"MaxCellTemp": value}), t)


def test_a_value_exactly_on_the_limit_after_scaling_does_not_breach(dbcs):
    # raw 403 x 0.1 decodes to 40.300000000000004: the offline check passes it, so must we.
    monitor = LiveMonitor(dbcs, abort_checks=_checks(
        {"name": "hot", "signal": "BMS_Temps.MaxCellTemp", "max": 40.3}))  # fmt: skip
    assert monitor.on_frame(_temps(dbcs, 40.3, 0.0)) is None
    assert monitor.on_frame(_temps(dbcs, 40.4, 0.1)) is not None


def test_for_counts_a_violation_until_the_next_sample(dbcs):
    # Five bad samples 10 ms apart, then a good one: the violation lasted 50 ms (offline: until
    # the next sample), so `for: 50ms` breaches when the good sample closes it.
    monitor = LiveMonitor(dbcs, abort_checks=_checks(
        {"name": "hot", "signal": "BMS_Temps.MaxCellTemp", "max": 40, "for": "50ms"}))  # fmt: skip
    breaches = [monitor.on_frame(_temps(dbcs, 45.0, t / 100)) for t in range(3, 8)]
    assert breaches == [None] * 5
    breach = monitor.on_frame(_temps(dbcs, 20.0, 0.08))
    assert breach is not None and "for 0.050 s" in breach.reason


def test_for_ignores_violations_shorter_than_it(dbcs):
    monitor = LiveMonitor(dbcs, abort_checks=_checks(
        {"name": "hot", "signal": "BMS_Temps.MaxCellTemp", "max": 40, "for": "50ms"}))  # fmt: skip
    assert monitor.on_frame(_temps(dbcs, 45.0, 0.00)) is None
    assert monitor.on_frame(_temps(dbcs, 45.0, 0.02)) is None
    assert monitor.on_frame(_temps(dbcs, 20.0, 0.04)) is None  # lasted 40 ms
    assert monitor.on_frame(_temps(dbcs, 20.0, 0.20)) is None


def test_for_breaches_at_a_tick_when_the_signal_stops_arriving_mid_violation(dbcs):
    # One bad sample, then silence from BMS_Temps: offline its value holds to the end of the log,
    # so once 50 ms have passed the violation counts (fail) — live, a tick must show it.
    monitor = LiveMonitor(dbcs, abort_checks=_checks(
        {"name": "hot", "signal": "BMS_Temps.MaxCellTemp", "max": 40, "for": "50ms"}))  # fmt: skip
    assert monitor.on_frame(_temps(dbcs, 45.0, 0.0)) is None
    assert monitor.on_tick(0.04) is None
    breach = monitor.on_tick(0.05)
    assert breach is not None and breach.time == 0.05 and "for 0.050 s" in breach.reason


def test_a_window_closing_after_for_breaches_only_once_the_log_goes_on(dbcs):
    # The step change closes the `during:` window 60 ms into the violation. Offline the value
    # holds to the window's end only if the log reaches it: with no frame after the change the
    # violation is cut short (inconclusive), so the step change alone must not breach; the next
    # frame (of any message: a tick) proves it.
    monitor = LiveMonitor(dbcs, abort_checks=_checks(
        {"name": "hot", "signal": "BMS_Temps.MaxCellTemp", "max": 40, "for": "50ms",
         "during": ["a"]}))  # fmt: skip
    monitor.enter_step("a", 0.0)
    assert monitor.on_frame(_temps(dbcs, 45.0, 0.01)) is None
    assert monitor.enter_step("b", 0.07) is None
    breach = monitor.on_tick(0.08)
    assert breach is not None and breach.time == 0.08 and "for 0.060 s" in breach.reason
    assert monitor.on_tick(0.09) is None  # once


def test_counter_and_crc_rules_judge_only_during_their_steps(dbcs):
    message = dbcs.message("BMS_PackStatus")
    monitor = LiveMonitor(dbcs, abort_checks=_checks(
        {"name": "counter", "counter": "BMS_PackStatus.AliveCounter", "during": ["b"]},
        {"name": "crc", "crc": "BMS_PackStatus", "during": ["b"]}))  # fmt: skip
    protector = Protector(message)
    good = [protector.encode({}) for _ in range(8)]
    bad_crc = bytes(good[7][:7]) + bytes([good[7][7] ^ 0xFF])
    monitor.enter_step("a", 0.0)
    assert monitor.on_frame(_frame(message, good[0], 0.00)) is None
    assert monitor.on_frame(_frame(message, good[5], 0.02)) is None  # jump 0 -> 5 outside b
    assert monitor.on_frame(_frame(message, bad_crc, 0.04)) is None  # bad CRC outside b
    monitor.enter_step("b", 0.05)
    assert monitor.on_frame(_frame(message, good[6], 0.06)) is None  # first pair in b
    breach = monitor.on_frame(_frame(message, good[2], 0.08))
    assert breach is not None and "jumped 6 -> 2" in breach.reason
    crc_only = LiveMonitor(dbcs, abort_checks=_checks({"name": "crc", "crc": "BMS_PackStatus",
                                                      "during": ["b"]}))  # fmt: skip
    crc_only.enter_step("b", 0.05)
    assert crc_only.on_frame(_frame(message, good[6], 0.06)) is None
    assert crc_only.on_frame(_frame(message, bad_crc, 0.10)).check == "crc"


def test_short_frames_are_not_samples(dbcs):
    monitor = LiveMonitor(dbcs, abort_checks=_checks(
        {"name": "hot", "signal": "BMS_Temps.MaxCellTemp", "max": 40}))  # fmt: skip
    hot = _temps(dbcs, 90.0, 0.0)
    hot.data = hot.data[:1]
    hot.dlc = 1
    assert monitor.on_frame(hot) is None


@pytest.mark.parametrize("value", [39.9, 40.0])
def test_no_breach_inside_the_limits(dbcs, value):
    monitor = LiveMonitor(dbcs, abort_checks=_checks(
        {"name": "hot", "signal": "BMS_Temps.MaxCellTemp", "max": 40}))  # fmt: skip
    assert monitor.on_frame(_temps(dbcs, value, 0.0)) is None
