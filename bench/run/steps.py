"""One handler per step kind, in a registry: what a step's keys start at the step's start.

A step may combine kinds (``ambient_c`` with ``send``, say); their handlers run in registry order
(the order of this module). Each handler starts its stimuli on the scheduler, records a
``stimulus`` event and may add an :class:`~bench.run.state.Activity` that decides when the step
is over (a ramp's end, a charge reaching its target). A new kind is a function decorated with
:func:`step_kind`; ``sends`` names the messages it may send, so the wiring can check before the
run that a bus carries each of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..drive_cycle import SpeedController, hold_profile
from ..plan.model import AMBIENT_MESSAGE, AMBIENT_SIGNALS, Step
from ..stimuli import linear_ramp
from .chamber import ChamberWatch
from .diag import start_diag
from .state import Activity, RunState

COMMAND_MESSAGE = "VCU_Command"
CHARGE_MESSAGE = "VCU_Charge"
SPEED_SIGNAL = "MCU_Power.VehicleSpeed"
SOC_SIGNAL = "BMS_PackStatus.SOC"

Handler = Callable[[RunState, Step, float], None]


@dataclass(frozen=True)
class StepKind:
    """A step key (``send``, ``ramp`` …), its handler and the messages it may send."""

    key: str
    start: Handler
    sends: Callable[[Step], list[str]]
    present: Callable[[Step], bool]


STEP_KINDS: dict[str, StepKind] = {}
"""Step key → kind, in the order their handlers run when a step combines them."""


def step_kind(
    key: str,
    sends: Callable[[Step], list[str]] = lambda step: [],
    present: Callable[[Step], bool] | None = None,
) -> Callable[[Handler], Handler]:
    """Register the handler of step key ``key`` (present when the step's attribute is set)."""

    def register(handler: Handler) -> Handler:
        def has_key(step: Step) -> bool:
            value = getattr(step, key, None)
            return value is not None and value != [] and value != {}

        STEP_KINDS[key] = StepKind(key, handler, sends, present or has_key)
        return handler

    return register


def start_step(state: RunState, step: Step, t: float) -> None:
    """Run the handler of every kind the step has."""
    for kind in STEP_KINDS.values():
        if kind.present(step):
            kind.start(state, step, t)


def messages_sent(step: Step) -> list[str]:
    """The messages the step's kinds may send."""
    names: list[str] = []
    for kind in STEP_KINDS.values():
        if kind.present(step):
            names += kind.sends(step)
    return names


# -- sends -------------------------------------------------------------------------------------


def send(
    state: RunState, message: str, values: dict[str, Any], every: float | None, t: float
) -> None:
    """Start or change a send of ``message``.

    With ``every``: periodic from ``t`` on, merged into a running periodic send of it (which takes
    the new period). Without: once — unless the message is already sent periodically, then the
    values merge into that stream and hold from its next cycle on (no extra frame: a DUT would
    take an out-of-cycle frame for a second sender, and its alive counter for a jump).
    """
    scheduler = state.scheduler
    assert scheduler is not None and state.pump is not None
    if every is not None:
        state.event(t, "stimulus", message, {"signals": values, "every": every})
        scheduler.periodic(message, values, every, t)
    elif scheduler.is_running(message):
        state.event(t, "stimulus", message, {"signals": values, "every": None, "merged": True})
        scheduler.update(message, values)
    else:
        state.event(t, "stimulus", message, {"signals": values, "every": None})
        state.pump.transmit(scheduler.once(message, values, t))


# -- the kinds, in the order they run ------------------------------------------------------------


@step_kind(
    "environment",
    sends=lambda step: [AMBIENT_MESSAGE],
    present=lambda step: bool(step.environment),
)
def _environment(state: RunState, step: Step, t: float) -> None:
    if "road_grade_pct" in step.environment:  # the step's own, or its drive's grade_pct
        state.road_grade_pct = step.environment["road_grade_pct"]
    values = {AMBIENT_SIGNALS[key].partition(".")[2]: value
              for key, value in step.environment.items()}  # fmt: skip
    send(state, AMBIENT_MESSAGE, values, state.period_of(AMBIENT_MESSAGE, 1.0), t)
    if state.wiring.chamber is not None and step.ambient_c is not None:
        set_chamber(state, step.ambient_c, t)


@step_kind("stop")
def _stop(state: RunState, step: Step, t: float) -> None:
    assert state.scheduler is not None
    for name in step.stop:
        state.scheduler.stop(name)


@step_kind("send", sends=lambda step: [step.send.message])
def _send(state: RunState, step: Step, t: float) -> None:
    assert step.send is not None
    send(state, step.send.message, dict(step.send.signals), step.send.every, t)


@step_kind("ramp", sends=lambda step: [step.ramp.message])
def _ramp(state: RunState, step: Step, t: float) -> None:
    ramp = step.ramp
    assert ramp is not None and state.scheduler is not None
    scheduler = state.scheduler
    modifier = linear_ramp(ramp.from_, ramp.to, t, ramp.over)
    every = ramp.every or state.period_of(ramp.message)
    state.event(t, "stimulus", ramp.message, {"ramp": ramp.model_dump(by_alias=True)})
    if scheduler.is_running(ramp.message) and ramp.every is None:
        scheduler.update(ramp.message, modifiers={ramp.signal: modifier})
    else:
        # periodic() merges into a running send and re-times it to the ramp's own period
        scheduler.periodic(ramp.message, {}, every, t, modifiers={ramp.signal: modifier})
    state.activities.append(Activity("ramp", lambda now: now - t >= ramp.over))


@step_kind("drive_cycle", sends=lambda step: [COMMAND_MESSAGE])
def _drive_cycle(state: RunState, step: Step, t: float) -> None:
    profile = state.profiles[step.name]
    controller = SpeedController(profile, start_time=t)
    detail = {"drive_cycle": profile.name, "duration": profile.duration}
    _follow(state, controller, t, detail, "drive_cycle")


@step_kind("drive", sends=lambda step: [COMMAND_MESSAGE])
def _drive(state: RunState, step: Step, t: float) -> None:
    """Hold ``drive.speed_kmh`` (the step's duration/until ends it; see bench.drive_cycle)."""
    drive = step.drive
    assert drive is not None
    now_kmh = state.monitor.latest.get(SPEED_SIGNAL, math.nan)
    profile = hold_profile(drive.speed_kmh, now_kmh, drive.accel_mps2)
    controller = SpeedController(profile, start_time=t, headwind_kmh=drive.headwind_kmh or 0.0)
    _follow(state, controller, t, {"drive": drive.model_dump(exclude_none=True)}, "drive")


def _follow(
    state: RunState, controller: SpeedController, t: float, detail: dict[str, Any], kind: str
) -> None:
    """Send VCU_Command with the controller's TorqueRequest until the activity ends."""
    scheduler = state.scheduler
    assert scheduler is not None
    state.monitor.watch(SPEED_SIGNAL)

    def torque(send_time: float) -> float:
        speed = state.monitor.latest.get(SPEED_SIGNAL, math.nan)
        return controller.torque(send_time, speed, state.road_grade_pct)

    values = {"DriveMode": "DRIVE"}
    if scheduler.is_running(COMMAND_MESSAGE):
        scheduler.update(COMMAND_MESSAGE, values, modifiers={"TorqueRequest": torque})
    else:
        period = state.period_of(COMMAND_MESSAGE, 0.01)
        scheduler.periodic(COMMAND_MESSAGE, values, period, t, modifiers={"TorqueRequest": torque})
    state.event(t, "stimulus", COMMAND_MESSAGE, detail)

    def stop_driving(now: float) -> None:
        scheduler.update(COMMAND_MESSAGE, {"TorqueRequest": 0.0})
        state.event(now, "stimulus", COMMAND_MESSAGE, {"signals": {"TorqueRequest": 0}})

    state.activities.append(Activity(kind, controller.finished, stop_driving))


@step_kind("charge", sends=lambda step: [CHARGE_MESSAGE])
def _charge(state: RunState, step: Step, t: float) -> None:
    charge = step.charge
    assert charge is not None and state.scheduler is not None
    scheduler = state.scheduler
    state.monitor.watch(SOC_SIGNAL)
    values: dict[str, Any] = {
        "ChargeRequest": 1,
        "ChargeMode": "DC",
        "ChargeCurrentRequest": charge.current_a,
        "ChargeVoltageLimit": charge.voltage_limit_v,
    }
    if charge.target_soc is not None:
        values["TargetSOC"] = charge.target_soc
    send(state, CHARGE_MESSAGE, values, state.period_of(CHARGE_MESSAGE), t)

    def finished(now: float) -> bool:
        if charge.duration is not None and now - t >= charge.duration:
            return True
        soc = state.monitor.latest.get(SOC_SIGNAL, math.nan)
        return charge.target_soc is not None and soc >= charge.target_soc

    def end_charge(now: float) -> None:
        stop = {"ChargeRequest": 0, "ChargeCurrentRequest": 0}
        scheduler.update(CHARGE_MESSAGE, stop)
        state.event(now, "stimulus", CHARGE_MESSAGE, {"signals": stop})

    state.activities.append(Activity("charge", finished, end_charge))


@step_kind("chamber", sends=lambda step: [AMBIENT_MESSAGE])
def _chamber(state: RunState, step: Step, t: float) -> None:
    chamber = step.chamber
    assert chamber is not None
    # The set point is also the ambient the vehicle is told (a virtual vehicle's climate, a
    # real vehicle's ambient sensor input on the restbus).
    values = {"AmbientTemp": chamber.set_c}
    send(state, AMBIENT_MESSAGE, values, state.period_of(AMBIENT_MESSAGE, 1.0), t)
    poller = state.wiring.chamber_poller
    if poller is None:
        # No chamber on this bench: the step waits the stability time; the virtual climate
        # ramps at a finite rate.
        state.activities.append(Activity("chamber", lambda now: now - t >= chamber.for_))
        return
    set_chamber(state, chamber.set_c, t)

    def record(now: float, detail: dict[str, Any]) -> None:
        state.event(now, "instrument", "chamber", detail)

    watch = ChamberWatch(poller, record, chamber.set_c, chamber.stable_within, chamber.for_)
    state.activities.append(Activity("chamber", watch.finished))


@step_kind("diag")
def _diag(state: RunState, step: Step, t: float) -> None:
    start_diag(state, step, t)


def set_chamber(state: RunState, set_c: float, t: float) -> None:
    chamber = state.wiring.chamber
    chamber.set_temperature(set_c)
    chamber.start()
    state.event(t, "instrument", "chamber", {"set_c": set_c, "on": state.wiring.chamber_where})
    state.say(f"chamber set to {set_c:g} °C", t)
