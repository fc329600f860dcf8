"""Run a plan: drive the bus step by step, record everything, stop safely, then judge the log.

Two ways to keep time (DESIGN.md, "Time is a parameter"):

* **lockstep** (default: python-can ``virtual`` and no ``--realtime``) — the in-process virtual
  vehicle and the runner advance one simulated clock together, tick by tick; runs go as fast as
  the CPU allows and the same seed gives the same frames.
* **real time** (``--realtime``, any hardware interface, or a bench profile with instruments) —
  the wall clock; no in-process vehicle: the device under test, or ``python -m virtual_bus`` in
  another process, is on the other side. Instruments force it: a climate chamber lives on the
  wall clock, and a lockstep run would race ahead of it.

A bench profile (``bench.toml``, :mod:`bench.profile`) replaces the plan's ``bus:`` defaults with
the bench's buses. With several buses each frame the runner sends goes to the buses whose DBCs
define its message (the plan's DBC set stays the namespace), and received frames are recorded
with the bus name as their ``channel``. A bus that fails mid-run (error on send or receive,
bus-off, adapter unplugged) stops the run; the safe state still goes out on the buses that work.

In real time on SocketCAN, periodic stimuli whose values do not change are handed to the
kernel's broadcast manager (BCM) as one pre-encoded frame per alive-counter value: the kernel
keeps their period exact however busy the runner is. Their frames come back on the runner's raw
socket (local loopback) and are recorded as ``tx``. Ramps and controllers stay in the scheduler.

Every frame received and sent goes to the recorder; step starts and ends, stimuli and aborts go
to ``events.parquet``. Abort rules (``abort: true`` checks) are judged on every arriving frame. On
a breach, Ctrl-C, SIGTERM or an exception the runner sends the plan's safe state, records why,
closes the log readable and reports ``aborted`` (exit 3). Verdicts come afterwards from the
recorded run directory — the same code ``bench evaluate`` runs — so a run and a later
re-evaluation cannot disagree.
"""

from __future__ import annotations

import datetime as dt
import math
import platform
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import can

from . import __version__
from .bus import BusFault, BusGroup, BusSettings, NamedBus, error_classes, is_bus_off, open_bus
from .console import NOT_PASSED, check_lines, report_line
from .drive_cycle import SpeedController, load_profile
from .errors import BenchError, HarnessError, InputError, one_line
from .liveview import LiveView, Snapshot
from .monitor import Breach, LiveMonitor
from .plan.checks import RangeCheck
from .plan.model import AMBIENT_MESSAGE, AMBIENT_SIGNALS, Plan, Step
from .profile import BenchProfile
from .record import JOURNAL_EVERY_S
from .rundir import (
    DEFAULT_ROOT,
    EVENTS_FILE,
    FRAMES_DIR,
    LOG_FILE,
    PLAN_FILE,
    create_run_dir,
    store_inputs,
)
from .stimuli import StimulusScheduler, linear_ramp
from .summary import Summary, exit_code

COMMAND_MESSAGE = "VCU_Command"
CHARGE_MESSAGE = "VCU_Charge"
SPEED_SIGNAL = "MCU_Power.VehicleSpeed"
SOC_SIGNAL = "BMS_PackStatus.SOC"
KEY_SIGNALS = (
    "BMS_PackStatus.SOC",
    "BMS_PackStatus.PackCurrent",
    "BMS_Temps.MaxCellTemp",
    "BMS_Temps.MinCellTemp",
    "BMS_Status.HvState",
    "MCU_Power.VehicleSpeed",
    "MCU_Temps.StatorTemp",
)
WRITE_EVERY_FRAMES = 20_000


@dataclass
class RunOptions:
    """How to run a plan; None means: take it from the plan (then the defaults)."""

    interface: str | None = None
    channel: str | None = None
    bitrate: int | None = None
    realtime: bool = False
    seed: int | None = None
    inject: tuple[str, ...] = ()
    out_root: Path = DEFAULT_ROOT
    out_dir: Path | None = None
    tick_s: float = 0.01
    safe_hold_s: float = 1.0
    stream: IO[str] | None = None
    force_plain: bool = False
    handle_signals: bool = True
    max_segment_frames: int = 200_000
    max_segment_seconds: float = 10.0
    bench: BenchProfile | None = None
    chamber_poll_s: float = 1.0
    kernel_periodic: bool = True  # SocketCAN BCM for constant periodic stimuli (real time)


@dataclass
class RunResult:
    run_dir: Path
    summary: Summary
    stopped: StopRun | None = None  # why the run ended early, if it did

    @property
    def exit_code(self) -> int:
        return exit_code(self.summary.verdict)


class StopRun(Exception):
    """Unwinds the step loop; carries why the run stops early."""

    def __init__(self, kind: str, reason: str, check: str | None = None) -> None:
        super().__init__(reason)
        self.kind = kind  # abort | interrupt | error | timeout
        self.reason = reason
        self.check = check


@dataclass
class _Activity:
    """Something a step started that decides when the step is over."""

    name: str
    finished: Callable[[float], bool]
    on_exit: Callable[[float], None] = lambda t: None


@dataclass
class _Offloaded:
    """A periodic stimulus the kernel sends (BCM), and the stimulus state it was built from."""

    period: float
    route: tuple[int, bool]
    tasks: list[Any]


@dataclass
class _FrameBuffer:
    # One list in arrival order (``is_rx`` says the direction): recorded that way, frames with
    # equal timestamps keep one order whatever the wall-clock moment of the hand-over, so
    # lockstep runs stay byte-identical (separate rx/tx lists put a hand-over's rx first).
    frames: list[can.Message] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frames)


def run_plan(plan: Plan, options: RunOptions | None = None) -> RunResult:
    """Run ``plan`` and return its run directory and summary (library form of ``bench run``)."""
    return Runner(plan, options or RunOptions()).run()


class Runner:
    """One run of one plan. Use :func:`run_plan`."""

    def __init__(self, plan: Plan, options: RunOptions) -> None:
        self.plan = plan
        self.options = options
        self.dbcs = plan.dbcs
        self.profile = options.bench
        self.bus_settings = self._bus_settings()
        self.settings = next(iter(self.bus_settings.values()))
        self.routes, self.default_buses = self._routes()
        self.instruments = list(self.profile.instruments) if self.profile else []
        self.lockstep = (
            all(s.is_virtual for s in self.bus_settings.values())
            and not options.realtime
            and not self.instruments
        )
        self.mode = "lockstep" if self.lockstep else "realtime"
        self.seed = options.seed if options.seed is not None else (plan.seed or 0)
        self.faults = self._parse_faults(options.inject)
        self.profiles = {
            step.name: load_profile(step.drive_cycle.profile, plan.path.parent).repeated(
                step.drive_cycle.repeat, step.drive_cycle.speed_scale
            )
            for step in plan.steps
            if step.drive_cycle is not None
        }
        live, not_live = LiveMonitor.live_checks(plan.checks)
        self.not_live = not_live
        self.monitor = LiveMonitor(self.dbcs, shown=self._shown_signals(), abort_checks=live)
        for step in plan.steps:
            if step.until is not None:
                self.monitor.watch_condition(step.until)
        self.t = 0.0
        self._stop_request: StopRun | None = None
        self._buffer = _FrameBuffer()
        self._frames_rx = 0
        self._frames_tx = 0
        self._activities: list[_Activity] = []
        self._step_index = 0
        self._step_name = "-"
        self._wall_start = time.monotonic()
        self._sim_start = 0.0
        self._last_view = 0.0
        self._rate_mark = (0.0, 0)
        self._rate = 0.0
        self.buses: BusGroup | None = None
        self.vehicle_bus: BusGroup | None = None
        self.chamber: Any = None
        self.chamber_poller: _ChamberPoller | None = None
        self._offloaded: dict[str, _Offloaded] = {}
        self._kernel_state: dict[str, tuple[int, int]] = {}  # stimulus state last looked at
        self._last_echo: dict[tuple[int, bool], bytes] = {}  # last BCM frame seen, per id
        self._deferred: StopRun | None = None
        self._abort_event: tuple[float, str, str, dict[str, Any]] | None = None
        self._kernel_ids: set[tuple[int, bool]] = set()
        self._error_frames = 0
        self._error_seen: set[tuple[str, tuple[str, ...]]] = set()
        self.vehicle: Any = None
        self.safe_state_sent = False
        self._road_grade_pct = 0.0
        self._ticks = 0
        self._last_write = time.monotonic()

    # -- preparation: every InputError before anything is sent ----------------------------------

    def _bus_settings(self) -> dict[str, BusSettings]:
        """Bus name → settings: the bench profile's buses, else the plan's one bus."""
        options = self.options
        overrides = {
            "interface": options.interface,
            "channel": options.channel,
            "bitrate": options.bitrate,
        }
        if self.profile is None or not self.profile.buses:
            plan_bus = self.plan.bus
            settings = BusSettings(
                interface=plan_bus.interface,
                channel=str(plan_bus.channel),
                bitrate=plan_bus.bitrate,
                fd=plan_bus.fd,
                data_bitrate=plan_bus.data_bitrate,
            ).merged(**overrides)
            return {settings.channel: settings}
        buses = self.profile.buses
        if len(buses) > 1 and any(value is not None for value in overrides.values()):
            raise InputError(
                "--interface/--channel/--bitrate would apply to every bus of the bench profile "
                f"{self.profile.path} ({', '.join(b.name for b in buses)}): edit it instead"
            )
        return {
            bus.name: BusSettings(
                interface=bus.interface,
                channel=bus.channel,
                bitrate=bus.bitrate,
                fd=bus.fd,
                data_bitrate=bus.data_bitrate,
                options=dict(bus.options),
            ).merged(**overrides)
            for bus in buses
        }

    def _routes(self) -> tuple[dict[tuple[int, bool], tuple[str, ...]], list[str]]:
        """Which buses carry each message (by the profile's DBCs); DBC-less buses take the rest.

        Every message the plan sends must reach a bus: checked here, before anything is sent.
        """
        if self.profile is None or len(self.profile.buses) < 2:
            return {}, list(self.bus_settings)
        from .dbc import DbcSet

        routes: dict[tuple[int, bool], list[str]] = {}
        for bus in self.profile.buses:
            if not bus.dbc:
                continue
            for message in DbcSet.load(bus.dbc).messages:
                routes.setdefault((message.frame_id, message.is_extended_frame), []).append(
                    bus.name
                )
        default = [bus.name for bus in self.profile.buses if not bus.dbc]
        if not default:
            for name in self._sent_messages():
                message = self.dbcs.message(name)
                if (message.frame_id, message.is_extended_frame) not in routes:
                    raise InputError(
                        f"{self.profile.path}: the plan sends {name} but no bus's DBCs define it "
                        "(add its DBC to a bus, or leave one bus without dbc to carry the rest)"
                    )
        return {key: tuple(names) for key, names in routes.items()}, default

    def _sent_messages(self) -> list[str]:
        names = [frame.message for frame in self.plan.safe_state]
        for step in self.plan.steps:
            if step.send is not None:
                names.append(step.send.message)
            if step.ramp is not None:
                names.append(step.ramp.message)
            if step.drive_cycle is not None:
                names.append(COMMAND_MESSAGE)
            if step.charge is not None:
                names.append(CHARGE_MESSAGE)
            if step.environment or step.chamber is not None:
                names.append(AMBIENT_MESSAGE)
        return list(dict.fromkeys(names))

    def _parse_faults(self, inject: tuple[str, ...]) -> list[Any]:
        if not inject:
            return []
        if not self.lockstep:
            raise InputError(
                "--inject needs the in-process virtual vehicle (lockstep); for a vehicle in "
                "another process pass --inject to `python -m virtual_bus`"
            )
        from virtual_bus.faults import parse_faults

        return parse_faults(inject, self.dbcs)

    def _shown_signals(self) -> list[str]:
        wanted = [s for s in KEY_SIGNALS if self._has_signal(s)]
        for check in self.plan.checks:
            if isinstance(check, RangeCheck) and check.signal not in wanted:
                wanted.append(check.signal)
        return wanted

    def _has_signal(self, reference: str) -> bool:
        try:
            self.dbcs.signal(reference)
        except KeyError:
            return False
        return True

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> RunResult:
        from .record import EventLog, SegmentWriter

        # Exclusive and held until the run is judged: a taken --out is an InputError (exit 2)
        # here, before anything is sent.
        run_lock = create_run_dir(self.options.out_dir, self.options.out_root, self.plan.path.stem)
        run_dir = run_lock.path
        dbc_described = store_inputs(run_dir, self.plan.source_text, self.plan.dbc_paths)
        self.recorder = SegmentWriter(
            run_dir / FRAMES_DIR,
            max_frames=self.options.max_segment_frames,
            max_seconds=self.options.max_segment_seconds,
            journal_every_s=0.0,  # _maybe_write hands frames over every JOURNAL_EVERY_S
        )
        self.events = EventLog(run_dir / EVENTS_FILE)
        self.view = LiveView(
            run_dir / LOG_FILE, stream=self.options.stream, force_plain=self.options.force_plain
        )
        stop: StopRun | None = None
        with self.view, self._signals_handled():
            try:
                self._open()
                self._start(dbc_described, run_dir)
                self._run_steps()
            except StopRun as exc:
                stop = exc
            except BenchError as exc:
                stop = StopRun("error", str(exc))
            except can.CanError as exc:
                stop = StopRun("error", f"CAN interface error: {one_line(exc)}")
            except OSError as exc:  # a device node gone under python-can or pyserial
                stop = StopRun("error", f"interface error: {one_line(exc)}")
            except Exception as exc:  # a harness bug must still end in the safe state
                stop = StopRun("error", f"{type(exc).__name__}: {one_line(exc)}")
            if stop is not None:
                self._abort(stop)
            self._finish(stop)
        result = self._evaluate(run_dir)
        run_lock.release()
        result.stopped = stop
        return result

    def _open(self) -> None:
        # Frames carry the bus name as channel only with a profile: without one, as before.
        labelled = self.profile is not None and bool(self.profile.buses)
        opened: list[NamedBus] = []
        vehicle_side: list[NamedBus] = []
        try:
            for name, settings in self.bus_settings.items():
                if self.lockstep:
                    # A channel of its own, so runs in one process (tests) never hear each other.
                    settings = settings.merged(channel=f"{settings.channel}-{uuid.uuid4().hex[:8]}")
                    bus = open_bus(settings, preserve_timestamps=True)
                    opened.append(NamedBus(name, settings, bus, name if labelled else None))
                    twin = open_bus(settings, preserve_timestamps=True)
                    vehicle_side.append(NamedBus(name, settings, twin))
                else:
                    bus = open_bus(settings)
                    opened.append(NamedBus(name, settings, bus, name if labelled else None))
        finally:
            if opened:
                self.buses = BusGroup(opened, self.routes, self.default_buses)
            if vehicle_side:
                self.vehicle_bus = BusGroup(vehicle_side, self.routes, self.default_buses)
        self._open_instruments()
        if self.lockstep:
            from virtual_bus import VirtualVehicle

            vehicle = self.plan.vehicle
            self.vehicle = VirtualVehicle(
                self.vehicle_bus,
                self.dbcs,
                seed=self.seed,
                ambient_c=vehicle.ambient_c,
                initial_temp_c=vehicle.initial_temp,
                soc=vehicle.soc,
                faults=self.faults,
            )
        self.scheduler = StimulusScheduler(self.dbcs, channel=None)

    def _open_instruments(self) -> None:
        from .instruments import open_instrument

        for instrument in self.instruments:
            if instrument.driver == "chamber" and self.chamber is None:
                self.chamber = open_instrument(instrument)
                self.chamber_where = f"{instrument.name} on {instrument.port}"
                self.chamber_poller = _ChamberPoller(self.chamber, self.options.chamber_poll_s)

    def _say(self, text: str, t: float | None = None) -> None:
        """A log line stamped with time since the run started (epoch seconds tell nobody much)."""
        self.view.event(text, None if t is None else t - self._sim_start)

    def _describe_buses(self) -> str:
        if len(self.bus_settings) == 1 and self.profile is None:
            return self.settings.describe()
        return ", ".join(f"{name}={s.describe()}" for name, s in self.bus_settings.items())

    def _now(self) -> float:
        return self.t if self.lockstep else time.time()

    def _start(self, dbc_described: list[dict[str, str]], run_dir: Path) -> None:
        self._wall_start = time.monotonic()
        self.t = 0.0 if self.lockstep else time.time()
        self._sim_start = self.t
        self.monitor.start(self.t)
        software = {
            "bench": __version__,
            "python": platform.python_version(),
            "python-can": can.__version__,
            **_versions("cantools", "numpy", "pyarrow", "pandas"),
        }
        self.events.add(
            self.t,
            "run_start",
            "run",
            {
                "started_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                "mode": self.mode,
                "interface": self.settings.interface,
                "channel": ",".join(s.channel for s in self.bus_settings.values()),
                "bitrate": self.settings.bitrate,
                "buses": [
                    {
                        "name": name,
                        "interface": s.interface,
                        "channel": s.channel,
                        "bitrate": s.bitrate,
                        "fd": s.fd,
                        "data_bitrate": s.data_bitrate,
                    }
                    for name, s in self.bus_settings.items()
                ],
                "bench": (
                    {
                        "name": self.profile.name,
                        "path": str(self.profile.path),
                        "instruments": [i.model_dump(mode="json") for i in self.instruments],
                    }
                    if self.profile
                    else None
                ),
                "seed": self.seed if self.lockstep else None,
                "inject": list(self.options.inject),
                "software": software,
                "dbc": dbc_described,
                "plan_file": str(self.plan.path),
                "run_dir": run_dir.name,
            },
        )
        self.events.flush()
        self._say(
            f"run {self.plan.name!r} ({self.mode}, {self._describe_buses()}"
            + (f", seed {self.seed}" if self.lockstep else "")
            + (f", inject {', '.join(self.options.inject)}" if self.options.inject else "")
            + f") → {run_dir}",
            self.t,
        )
        for spec in self.not_live:
            self._say(
                f"note: check {spec.name!r} has abort: true but a {spec.kind} check cannot be "
                "judged live; it is judged after the run",
                self.t,
            )

    # -- steps -----------------------------------------------------------------------------------

    def _run_steps(self) -> None:
        for index, step in enumerate(self.plan.steps, start=1):
            self._step_index, self._step_name = index, step.name
            self._run_step(step)
        self._show(force=True)

    def _run_step(self, step: Step) -> None:
        start = self._now()
        self.monitor.enter_step(step.name, start)
        self.events.add(start, "step_start", step.name)
        self._say(f"step {self._step_index}/{len(self.plan.steps)} {step.name!r} started", start)
        self._activities = []
        self._apply_step(step, start)
        status = "done"
        deadline = None if step.timeout is None else start + step.timeout
        while True:
            now = self._now()
            if self._step_finished(step, start, now):
                break
            if deadline is not None and now >= deadline:
                status = "timeout"
                break
            self._tick()
        end = self._now()
        for activity in self._activities:
            activity.on_exit(end)
        self._activities = []
        self.events.add(end, "step_end", step.name, {"status": status})
        self.events.flush()
        if status == "timeout":
            what = f"until {step.until}" if step.until is not None else "its target"
            message = f"step {step.name!r} timed out after {step.timeout:g} s waiting for {what}"
            if step.on_timeout == "abort":
                raise StopRun("timeout", message)
            self._say(f"FAILED: {message}", end)
        else:
            self._say(f"step {step.name!r} done after {end - start:.1f} s", end)

    def _step_finished(self, step: Step, start: float, now: float) -> bool:
        if step.duration is not None:
            return now - start >= step.duration
        if step.until is not None:
            return bool(step.until.evaluate(self.monitor.latest))
        return all(activity.finished(now) for activity in self._activities)

    def _apply_step(self, step: Step, t: float) -> None:
        if step.environment:
            self._set_environment(step, t)
        for name in step.stop:
            self.scheduler.stop(name)
        if step.send is not None:
            self._send_spec(step.send.message, dict(step.send.signals), step.send.every, t)
        if step.ramp is not None:
            self._start_ramp(step, t)
        if step.drive_cycle is not None:
            self._start_drive_cycle(step, t)
        if step.charge is not None:
            self._start_charge(step, t)
        if step.chamber is not None:
            self._start_chamber(step, t)

    def _period_of(self, message: str, fallback: float = 0.1) -> float:
        return self.dbcs.cycle_time_s(self.dbcs.message(message)) or fallback

    def _send_spec(
        self, message: str, values: dict[str, Any], every: float | None, t: float
    ) -> None:
        self.events.add(t, "stimulus", message, {"signals": values, "every": every})
        if every is None:
            self._transmit(self.scheduler.once(message, values, t))
        else:
            self.scheduler.periodic(message, values, every, t)

    def _set_environment(self, step: Step, t: float) -> None:
        if step.road_grade_pct is not None:
            self._road_grade_pct = step.road_grade_pct
        values = {AMBIENT_SIGNALS[key].partition(".")[2]: value
                  for key, value in step.environment.items()}  # fmt: skip
        self._send_spec(AMBIENT_MESSAGE, values, self._period_of(AMBIENT_MESSAGE, 1.0), t)
        if self.chamber is not None and step.ambient_c is not None:
            self._set_chamber(step.ambient_c, t)

    def _set_chamber(self, set_c: float, t: float) -> None:
        self.chamber.set_temperature(set_c)
        self.chamber.start()
        self.events.add(t, "instrument", "chamber", {"set_c": set_c, "on": self.chamber_where})
        self._say(f"chamber set to {set_c:g} °C", t)

    def _start_ramp(self, step: Step, t: float) -> None:
        ramp = step.ramp
        assert ramp is not None
        modifier = linear_ramp(ramp.from_, ramp.to, t, ramp.over)
        every = ramp.every or self._period_of(ramp.message)
        self.events.add(t, "stimulus", ramp.message, {"ramp": ramp.model_dump(by_alias=True)})
        if self.scheduler.is_running(ramp.message) and ramp.every is None:
            self.scheduler.update(ramp.message, modifiers={ramp.signal: modifier})
        else:
            # periodic() merges into a running stimulus and re-times it to the ramp's own period
            self.scheduler.periodic(ramp.message, {}, every, t, modifiers={ramp.signal: modifier})
        self._activities.append(_Activity("ramp", lambda now: now - t >= ramp.over))

    def _start_drive_cycle(self, step: Step, t: float) -> None:
        profile = self.profiles[step.name]
        controller = SpeedController(profile, start_time=t)
        self.monitor.watch(SPEED_SIGNAL)

        def torque(send_time: float) -> float:
            speed = self.monitor.latest.get(SPEED_SIGNAL, math.nan)
            return controller.torque(send_time, speed, self._road_grade_pct)

        values = {"DriveMode": "DRIVE"}
        if self.scheduler.is_running(COMMAND_MESSAGE):
            self.scheduler.update(COMMAND_MESSAGE, values, modifiers={"TorqueRequest": torque})
        else:
            period = self._period_of(COMMAND_MESSAGE, 0.01)
            self.scheduler.periodic(COMMAND_MESSAGE, values, period, t,
                                    modifiers={"TorqueRequest": torque})  # fmt: skip
        self.events.add(t, "stimulus", COMMAND_MESSAGE,
                        {"drive_cycle": profile.name, "duration": profile.duration})  # fmt: skip

        def stop_driving(now: float) -> None:
            self.scheduler.update(COMMAND_MESSAGE, {"TorqueRequest": 0.0})
            self.events.add(now, "stimulus", COMMAND_MESSAGE, {"signals": {"TorqueRequest": 0}})

        self._activities.append(_Activity("drive_cycle", controller.finished, stop_driving))

    def _start_charge(self, step: Step, t: float) -> None:
        charge = step.charge
        assert charge is not None
        self.monitor.watch(SOC_SIGNAL)
        values: dict[str, Any] = {
            "ChargeRequest": 1,
            "ChargeMode": "DC",
            "ChargeCurrentRequest": charge.current_a,
            "ChargeVoltageLimit": charge.voltage_limit_v,
        }
        if charge.target_soc is not None:
            values["TargetSOC"] = charge.target_soc
        self._send_spec(CHARGE_MESSAGE, values, self._period_of(CHARGE_MESSAGE), t)

        def finished(now: float) -> bool:
            if charge.duration is not None and now - t >= charge.duration:
                return True
            soc = self.monitor.latest.get(SOC_SIGNAL, math.nan)
            return charge.target_soc is not None and soc >= charge.target_soc

        def end_charge(now: float) -> None:
            stop = {"ChargeRequest": 0, "ChargeCurrentRequest": 0}
            self.scheduler.update(CHARGE_MESSAGE, stop)
            self.events.add(now, "stimulus", CHARGE_MESSAGE, {"signals": stop})

        self._activities.append(_Activity("charge", finished, end_charge))

    def _start_chamber(self, step: Step, t: float) -> None:
        chamber = step.chamber
        assert chamber is not None
        # The set point is also the ambient the vehicle is told (a virtual vehicle's climate, a
        # real vehicle's ambient sensor input on the restbus).
        values = {"AmbientTemp": chamber.set_c}
        self._send_spec(AMBIENT_MESSAGE, values, self._period_of(AMBIENT_MESSAGE, 1.0), t)
        if self.chamber is None:
            # No chamber on this bench: the step waits the stability time; the virtual climate
            # ramps at a finite rate.
            self._activities.append(_Activity("chamber", lambda now: now - t >= chamber.for_))
            return
        self._set_chamber(chamber.set_c, t)
        self._activities.append(
            _Activity(
                "chamber",
                _ChamberWatch(self, chamber.set_c, chamber.stable_within, chamber.for_).finished,
            )
        )

    # -- time ------------------------------------------------------------------------------------

    def _tick(self) -> None:
        if self.lockstep:
            self._tick_lockstep()
        else:
            self._tick_realtime()
        if self._stop_request is not None:
            raise self._stop_request
        if self._deferred is not None:
            raise self._deferred
        if self.chamber_poller is not None:
            self.chamber_poller.check()  # a chamber gone mid-run ends the run, in any step
        breach = self.monitor.on_tick(self._now())
        if breach is not None:
            raise _breach(breach)
        self._show()

    def _tick_lockstep(self) -> None:
        # Time from an integer tick count: adding tick_s again and again drifts (5 s of 10 ms
        # ticks ended at 5.009999999999938, one tick late).
        self._ticks += 1
        target = self._sim_start + self._ticks * self.options.tick_s
        for frame in self.scheduler.due(target):
            self._transmit(frame)
        self.vehicle.advance_to(target)
        self.t = target
        self._drain(timeout=0.0)

    def _tick_realtime(self) -> None:
        if self._use_kernel_periodic:
            self._sync_kernel_periodic(time.time())
        now = time.time()
        for frame in self.scheduler.due(now):
            frame.timestamp = time.time()
            self._transmit(frame)
        next_due = self.scheduler.next_due()
        wait = 0.005 if next_due is None else min(max(next_due - time.time(), 0.0), 0.005)
        self._drain(timeout=wait)

    def _transmit(self, frame: can.Message) -> None:
        assert self.buses is not None
        try:
            sent = self.buses.send(frame)
        except BusFault as fault:
            self._record_tx(fault.sent)
            raise
        self._record_tx(sent)
        self._maybe_write()

    def _record_tx(self, frames: list[can.Message]) -> None:
        for frame in frames:
            frame.is_rx = False
        self._buffer.frames.extend(frames)
        self._frames_tx += len(frames)

    def _drain(self, timeout: float, defer: bool = False) -> None:
        """Record and judge every frame at hand; ``defer`` keeps a breach for the next tick."""
        assert self.buses is not None
        frame = self.buses.recv(timeout=timeout)
        while frame is not None:
            if frame.is_error_frame:
                frame.is_rx = True
                self._buffer.frames.append(frame)
                self._frames_rx += 1
                self._on_error_frame(frame)
            elif self._kernel_ids and self._is_kernel_echo(frame):
                self._record_tx([frame])
                self._last_echo[(frame.arbitration_id, frame.is_extended_id)] = bytes(frame.data)
            else:
                frame.is_rx = True
                self._buffer.frames.append(frame)
                self._frames_rx += 1
                breach = self.monitor.on_frame(frame)
                if breach is not None:
                    if not defer:
                        raise _breach(breach)
                    self._deferred = self._deferred or _breach(breach)
            frame = self.buses.recv(timeout=0.0)
        self._maybe_write()

    def _is_kernel_echo(self, frame: can.Message) -> bool:
        # The BCM's frames come back through the local loopback, flagged as sent by this host.
        return not frame.is_rx and (frame.arbitration_id, frame.is_extended_id) in self._kernel_ids

    def _on_error_frame(self, frame: can.Message) -> None:
        """Record what the controller reports; bus-off ends the run (nothing gets through)."""
        assert self.buses is not None
        self._error_frames += 1
        bus = self.buses.bus_of(frame)
        name = bus.name if bus is not None else str(frame.channel)
        classes = tuple(error_classes(frame)) or ("unspecified",)
        if (name, classes) not in self._error_seen:  # the first of each kind; counts at run end
            self._error_seen.add((name, classes))
            t = self._now()
            detail = {"bus": name, "classes": list(classes), "data": frame.data.hex()}
            self.events.add(t, "bus_error", name, detail)
            self._say(f"error frame on {name}: {', '.join(classes)}", t)
        if is_bus_off(frame) and bus is not None:
            raise self.buses.fail(bus, "bus-off (the controller left the bus after errors)")

    # -- periodic stimuli in the kernel (SocketCAN BCM) ----------------------------------------

    @property
    def _use_kernel_periodic(self) -> bool:
        return (
            self.options.kernel_periodic
            and not self.lockstep
            and self.buses is not None
            and any(bus.uses_bcm for bus in self.buses.buses)
        )

    def _sync_kernel_periodic(self, t: float) -> None:
        """Hand constant periodic stimuli to the BCM; take them back when their values vary.

        Runs every real-time tick, so it looks only at stimuli whose state changed since.
        """
        assert self.buses is not None
        for name in list(self._kernel_state):
            if not self.scheduler.is_running(name):
                del self._kernel_state[name]
                if name in self._offloaded:
                    self._stop_offloaded(name)
        for name in self.scheduler.running:
            stimulus = self.scheduler.stimulus(name)
            assert stimulus is not None and stimulus.period is not None
            state = (stimulus.generation, stimulus.revision)
            if self._kernel_state.get(name) == state:
                continue
            self._kernel_state[name] = state
            current = self._offloaded.get(name)
            constant = self.scheduler.is_constant(name)
            if current is not None and constant and current.period == stimulus.period:
                # New values, same period: swap the frames in place. The kernel keeps its timer
                # and its place in the frame list, and frame i still carries counter base + i
                # (cycle_frames starts from the same counter each time), so the alive counter
                # on the bus runs on without a jump.
                frames = self.scheduler.cycle_frames(name, t)
                for task in current.tasks:
                    task.modify_data(frames)
                self.scheduler.offload(name)  # a replaced stimulus is a new object
                continue
            if current is not None:
                self._stop_offloaded(name)
            message = stimulus.message
            key = (message.frame_id, message.is_extended_frame)
            if constant and self.buses.can_send_periodic(key):
                frames = self.scheduler.cycle_frames(name, t)
                tasks = self.buses.send_periodic(frames, stimulus.period)
                self.scheduler.offload(name)
                self._offloaded[name] = _Offloaded(stimulus.period, key, tasks)
                self._kernel_ids.add(key)
                detail = {"sender": "kernel (BCM)", "frames": len(frames), "every": stimulus.period}
                self.events.add(t, "stimulus", name, detail)

    def _stop_offloaded(self, name: str) -> None:
        current = self._offloaded.pop(name)
        for task in current.tasks:
            with suppress(Exception):
                task.stop()
        if not self.scheduler.is_running(name):
            return
        # The scheduler takes over where the kernel stopped: read the kernel's last frames
        # (already looped back) and go on counting after the last one.
        with suppress(BusFault):
            self._drain(timeout=0.0, defer=True)
        last = self._last_echo.get(current.route)
        if last is not None:
            self.scheduler.continue_counter_after(name, last)
        self.scheduler.reclaim(name, time.time())

    def _maybe_write(self, force: bool = False) -> None:
        # Hand frames over in batches (converting a batch is cheaper per frame), but at least
        # every JOURNAL_EVERY_S of wall time: the recorder journals each hand-over, which bounds
        # what a kill -9 loses.
        now = time.monotonic()
        if (
            force
            or len(self._buffer) >= WRITE_EVERY_FRAMES
            or now - self._last_write >= JOURNAL_EVERY_S
        ):
            if self._buffer.frames:
                self.recorder.write_messages(self._buffer.frames)  # direction from is_rx
            self._buffer = _FrameBuffer()
            self.recorder.poll()
            self.events.poll()
            self._last_write = now

    # -- stopping --------------------------------------------------------------------------------

    @contextmanager
    def _signals_handled(self) -> Iterator[None]:
        if (
            not self.options.handle_signals
            or threading.current_thread() is not threading.main_thread()
        ):
            yield
            return

        def request_stop(signum: int, _frame: object) -> None:
            name = signal.Signals(signum).name
            self._stop_request = StopRun("interrupt", f"received {name}")

        previous = {
            sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _abort(self, stop: StopRun) -> None:
        """Safe state first, then the record of why.

        The log line and the abort event wait until the frames are out: writing them (run.log,
        the terminal, events.parquet flushed at once) took 2-4 ms, a third of the abort latency
        budget (benchmarks/bench_abort_latency.py).
        """
        t = self._now()
        detail = {"reason": stop.reason, "check": stop.check, "kind": stop.kind}
        # Recorded once the frames are out: an abort event is flushed to disk at once.
        self._abort_event = (t, "abort", stop.check or stop.kind, detail)
        headline = f"ABORT ({stop.kind}): {stop.reason}"
        try:
            self._send_safe_state(t, headline)
        except Exception as exc:  # the bus may be what failed; say so, keep the log
            self._record_abort_event()
            self._say(headline, t)
            note = f"safe state NOT sent: {one_line(exc)}"
            self.events.add(self._now(), "note", "safe_state", {"reason": note})
            self._say(note, self._now())
            return
        self._hold_safe_state()

    def _send_safe_state(self, t: float, headline: str | None = None) -> None:
        """Send the plan's safe state on every bus that still works; then log (``headline``)."""
        if self.buses is None or not hasattr(self, "scheduler"):
            raise HarnessError("the bus was never opened")
        self._activities = []
        self.scheduler.freeze(t)  # no ramp or controller drives a signal after the abort
        failures: list[str] = []
        sent: list[tuple[str, dict[str, Any]]] = []
        self._stop_kernel_sends([frame.message for frame in self.plan.safe_state], t)
        for frame in self.plan.safe_state:
            values = dict(frame.signals)
            if self.scheduler.is_running(frame.message):
                self.scheduler.update(frame.message, values)
            # Straight to the bus: no segment write (_transmit may do one) between the frames.
            try:
                self._record_tx(self.buses.send(self.scheduler.once(frame.message, values, t)))
            except BusFault as fault:  # a dead bus must not keep the others from being safe
                self._record_tx(fault.sent)
                failures.append(f"{frame.message}: {fault}")
                if not fault.sent:
                    continue
            sent.append((frame.message, values))
        if self._use_kernel_periodic:
            with suppress(BusFault):
                self._sync_kernel_periodic(time.time())  # back to the kernel, safe values
        # The record, once every frame is out.
        self._record_abort_event()
        for message, values in sent:
            self.events.add(t, "safe_state", message, {"signals": values})
        if failures and not sent:
            raise HarnessError("; ".join(failures))
        if headline:
            self._say(headline, t)
        for failure in failures:
            note = f"safe state NOT sent: {failure}"
            self.events.add(self._now(), "note", "safe_state", {"reason": note})
            self._say(note, self._now())
        self.safe_state_sent = True
        names = ", ".join(f.message for f in self.plan.safe_state) or "no frames (plan has none)"
        self._say(f"safe state sent: {names}", t)

    def _stop_kernel_sends(self, names: list[str], t: float) -> None:
        """Stop the kernel's periodic frames of ``names`` at once (one TX_DELETE each).

        The safe state must be the last word: a BCM task still holding the old values could
        send one more unsafe frame after the safe one. The scheduler holds them until the next
        sync hands them back to the kernel with the safe values.
        """
        for name in names:
            current = self._offloaded.pop(name, None)
            if current is None:
                continue
            for task in current.tasks:
                with suppress(Exception):
                    task.stop()
            self._kernel_state.pop(name, None)
            if self.scheduler.is_running(name):
                self.scheduler.reclaim(name, t)

    def _record_abort_event(self) -> None:
        if self._abort_event is not None:
            self.events.add(*self._abort_event)
            self._abort_event = None

    def _hold_safe_state(self) -> None:
        """Keep the (safe) periodic frames going briefly and record how the vehicle reacts."""
        end_wall = time.monotonic() + (0.5 if not self.lockstep else 10.0)
        end = self._now() + self.options.safe_hold_s
        while self._now() < end and time.monotonic() < end_wall:
            try:
                if self.lockstep:
                    self._tick_lockstep()
                else:
                    self._tick_realtime()
            except StopRun:
                continue  # further breaches while already safe are in the log
            except Exception:
                break

    def _finish(self, stop: StopRun | None) -> None:
        with suppress(Exception):
            self._maybe_write(force=True)
        if hasattr(self, "scheduler"):
            self.scheduler.stop_all()
        wall = time.monotonic() - self._wall_start
        sim = self._now() - self._sim_start
        self.events.add(
            self._now(),
            "run_end",
            "run",
            {
                "ended_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                "frames_rx": self._frames_rx,
                "frames_tx": self._frames_tx,
                "wall_s": round(wall, 3),
                "sim_s": round(sim, 3),
                "stopped": stop.kind if stop else None,
                "safe_state_sent": self.safe_state_sent,
                "error_frames": self._error_frames,
                "failed_buses": self.buses.failures if self.buses is not None else {},
            },
        )
        for closer in (self.recorder.close, self.events.close):
            with suppress(Exception):
                closer()
        for group in (self.buses, self.vehicle_bus):
            if group is not None:
                group.shutdown()
        if self.chamber_poller is not None:
            self.chamber_poller.stop()
        if self.chamber is not None:
            # The chamber keeps its set point: a soaked DUT must not warm up behind our back.
            with suppress(Exception):
                self.chamber.close()
        warp = sim / wall if wall > 0 else 0.0
        self._say(
            f"recorded {self._frames_rx + self._frames_tx:,} frames "
            f"(rx {self._frames_rx:,}, tx {self._frames_tx:,}) in {wall:.1f} s wall"
            + (f", {sim:.0f} s simulated (x{warp:.0f})" if self.lockstep else ""),
            self._now(),
        )

    def _evaluate(self, run_dir: Path) -> RunResult:
        from .evaluate import evaluate_path

        summary, _ = evaluate_path(run_dir, run_dir / PLAN_FILE, out_dir=run_dir)
        with LiveView(run_dir / LOG_FILE, stream=self.options.stream, force_plain=True) as view:
            # What needs a person's eyes, in the words `bench evaluate` uses, then where to look.
            for line in check_lines(summary.checks, NOT_PASSED):
                view.event(line)
            view.event(f"verdict: {summary.verdict.upper()} — {run_dir}")
            view.event(report_line(run_dir))
        return RunResult(run_dir, summary)

    # -- live view -------------------------------------------------------------------------------

    def _show(self, force: bool = False) -> None:
        wall_now = time.monotonic()
        if not force and wall_now - self._last_view < 0.25:
            return
        self._last_view = wall_now
        mark_time, mark_frames = self._rate_mark
        frames = self._frames_rx + self._frames_tx
        if wall_now - mark_time >= 1.0:
            self._rate = (frames - mark_frames) / (wall_now - mark_time) if mark_time else 0.0
            self._rate_mark = (wall_now, frames)
        self.view.status(self._snapshot(wall_now, frames), force=force)

    def _snapshot(self, wall_now: float, frames: int) -> Snapshot:
        signals = {}
        for name, value in list(self.monitor.shown_values().items())[:8]:
            signals[name] = (value, self._unit_or_label(name, value))
        return Snapshot(
            plan=self.plan.name,
            step=self._step_name,
            step_index=self._step_index,
            step_count=len(self.plan.steps),
            sim_time=self._now() - self._sim_start,
            wall_time=wall_now - self._wall_start,
            frames_rx=self._frames_rx,
            frames_tx=self._frames_tx,
            frames_per_s=self._rate,
            signals=signals,
            near_limits=self._near_limits(),
        )

    def _unit_or_label(self, name: str, value: float) -> str:
        """The unit, or for a value-table signal the name of its value (``READY``)."""
        signal = self.dbcs.signal(name).signal
        if signal.choices and value == value and float(value).is_integer():
            label = signal.choices.get(int(value))
            if label is not None:
                return str(label)
        return signal.unit or ""

    def _near_limits(self) -> list[tuple[str, str]]:
        close = []
        shown = self.monitor.shown_values()
        for check in self.plan.checks:
            if not isinstance(check, RangeCheck):
                continue
            value = shown.get(check.signal, self.monitor.latest.get(check.signal, math.nan))
            if math.isnan(value):
                continue
            for limit, name in ((check.max, "max"), (check.min, "min")):
                if limit is None:
                    continue
                span = max(abs(limit), 1.0)
                distance = (limit - value) if name == "max" else (value - limit)
                close.append((distance / span, check.name, f"{value:.4g} vs {name} {limit:g}"))
        close.sort()
        return [(name, text) for _, name, text in close[:6]]


class _ChamberPoller:
    """Reads the chamber's temperature every ``period`` seconds in a thread of its own.

    A serial query takes tens of milliseconds, and a silent chamber holds the caller for
    ``timeout_s`` × tries: in the runner's loop that would delay reception and abort decisions
    (goal: breach → safe state p99 ≤ 10 ms). The transport is thread-safe, so set-point commands
    from the runner's thread interleave safely. A failure is kept and raised by :meth:`check`
    in the runner's thread.
    """

    def __init__(self, chamber: Any, period: float) -> None:
        self.chamber = chamber
        self.period = period
        self.readings = 0  # how many readings so far; a watch compares it to see a new one
        self.latest = math.nan
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="chamber-poll", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self.latest = float(self.chamber.temperature())
            except Exception as exc:  # HarnessError: port gone, no answer after retries
                if not self._stop.is_set():
                    self._error = exc
                return
            self.readings += 1
            self._stop.wait(self.period)

    def check(self) -> None:
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)


class _ChamberWatch:
    """Decides when the chamber has been within ``within`` of ``set_c`` for ``hold`` seconds.

    Judges each new reading of the :class:`_ChamberPoller` (never a query of its own) and records
    readings as ``instrument`` events: on every change between stable and not, and at least
    every 10 s.
    """

    def __init__(self, runner: Runner, set_c: float, within: float, hold: float) -> None:
        self.runner = runner
        self.set_c = set_c
        self.within = within
        self.hold = hold
        self.stable_since: float | None = None
        self.seen = -1
        self.last_event = -math.inf

    def finished(self, now: float) -> bool:
        poller = self.runner.chamber_poller
        assert poller is not None
        poller.check()
        if self.seen < 0:
            self.seen = poller.readings  # only readings after the set point count
        elif poller.readings != self.seen:
            self.seen = poller.readings
            self._judge(poller.latest, now)
        return self.stable_since is not None and now - self.stable_since >= self.hold

    def _judge(self, reading: float, now: float) -> None:
        stable = abs(reading - self.set_c) <= self.within
        changed = stable != (self.stable_since is not None)
        if stable and self.stable_since is None:
            self.stable_since = now
        elif not stable:
            self.stable_since = None
        if changed or now - self.last_event >= 10.0:
            self.last_event = now
            self.runner.events.add(
                now, "instrument", "chamber",
                {"temperature_c": reading, "set_c": self.set_c, "stable": stable},
            )  # fmt: skip


def _breach(breach: Breach) -> StopRun:
    return StopRun("abort", f"check {breach.check!r}: {breach.reason}", breach.check)


def _versions(*packages: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in packages:
        with suppress(PackageNotFoundError):
            found[package] = version(package)
    return found
