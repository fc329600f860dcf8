"""The stimulus scheduler: periodic frames, replacement, stop and restart, ramps."""

from __future__ import annotations

import numpy as np

from bench.stimuli import StimulusScheduler, linear_ramp


def _times(frames, frame_id):
    return [round(f.timestamp, 6) for f in frames if f.arbitration_id == frame_id]


def test_periodic_frames_go_out_at_their_period(dbcs):
    scheduler = StimulusScheduler(dbcs)
    scheduler.periodic("VCU_Thermal", {"HeaterRequest": 1}, 0.1, 0.0)
    assert _times(scheduler.due(0.45), 0x302) == [0.0, 0.1, 0.2, 0.3, 0.4]


def test_stop_and_restart_in_the_same_tick_keeps_one_timing_chain(dbcs):
    # A stopped stimulus's heap entry must not be taken for the restarted one's (it used to
    # double the rate: two chains at the same period).
    scheduler = StimulusScheduler(dbcs)
    scheduler.periodic("VCU_Thermal", {}, 0.1, 0.0)
    scheduler.due(0.2)
    scheduler.stop("VCU_Thermal")
    scheduler.periodic("VCU_Thermal", {}, 0.1, 0.25)
    gaps = np.diff(_times(scheduler.due(1.0), 0x302))
    assert np.allclose(gaps, 0.1)


def test_a_replaced_stimulus_merges_values_and_takes_the_new_period(dbcs):
    scheduler = StimulusScheduler(dbcs)
    scheduler.periodic("VCU_Command", {"KeyOn": 1, "HvRequest": 1}, 0.01, 0.0)
    scheduler.periodic("VCU_Command", {"TorqueRequest": 50}, 0.02, 0.05)
    frames = [f for f in scheduler.due(0.2) if f.timestamp > 0.05]
    assert np.allclose(np.diff(_times(frames, 0x300)), 0.02)
    decoded = dbcs.message("VCU_Command").decode(frames[-1].data, decode_choices=False)
    assert decoded["KeyOn"] == 1 and decoded["TorqueRequest"] == 50


def test_alive_counter_continues_across_stop_and_restart(dbcs):
    scheduler = StimulusScheduler(dbcs)
    scheduler.periodic("VCU_Command", {}, 0.01, 0.0)
    first = scheduler.due(0.025)
    scheduler.stop("VCU_Command")
    scheduler.periodic("VCU_Command", {}, 0.01, 0.1)
    second = scheduler.due(0.105)
    message = dbcs.message("VCU_Command")
    counters = [message.decode(f.data)["AliveCounter"] for f in first + second]
    assert counters == list(range(len(counters)))


def test_ramp_goes_from_start_to_end_and_holds(dbcs):
    ramp = linear_ramp(0.0, 100.0, 1.0, 2.0)
    assert [ramp(t) for t in (0.0, 1.0, 2.0, 3.0, 4.0)] == [0.0, 0.0, 50.0, 100.0, 100.0]


def test_retiming_a_running_stimulus_does_not_repeat_the_frame_just_sent(dbcs):
    scheduler = StimulusScheduler(dbcs)
    scheduler.periodic("VCU_Thermal", {}, 0.1, 0.0)
    sent = scheduler.due(1.0)  # the last one goes out at 1.0
    scheduler.periodic("VCU_Thermal", {}, 0.02, 1.0)
    times = _times(sent + scheduler.due(1.1), 0x302)
    assert times.count(1.0) == 1 and np.allclose(np.diff(times[10:]), 0.02)


def test_freeze_holds_computed_values_where_they_are(dbcs):
    scheduler = StimulusScheduler(dbcs)
    ramp = linear_ramp(0.0, 100.0, 0.0, 1.0)
    scheduler.periodic("VCU_Thermal", {"CoolantPumpRequest": 1}, 0.1, 0.0,
                       modifiers={"CoolantPumpSpeed": ramp})  # fmt: skip
    scheduler.due(0.45)
    scheduler.freeze(0.5)
    message = dbcs.message("VCU_Thermal")
    later = [message.decode(f.data)["CoolantPumpSpeed"] for f in scheduler.due(2.0)]
    assert later and all(value == 50 for value in later)  # the ramp would have reached 100
    assert all(message.decode(f.data)["CoolantPumpRequest"] == 1 for f in scheduler.due(2.5))
