"""The executor: one run of one plan, from the first frame to the verdict.

Prepare (every :class:`~bench.errors.InputError` before anything is sent: wiring, drive-cycle
profiles, live checks), open (buses, vehicle, instruments), start (``run_start`` event), run the
steps, and — however the steps ended — stop safely and finish: an early stop (a live check's
breach, Ctrl-C/SIGTERM, a step timeout with ``on_timeout: abort``, a bus or instrument failing,
the recording failing, a harness bug) sends the plan's safe state on every bus that still works,
records why and holds the safe state briefly. :meth:`Executor._abort` and
:meth:`Executor._finish` never raise: the recording is closed readable whatever failed before.

Verdicts come afterwards from the recorded run directory — the same code ``bench evaluate``
runs — so a run and a later re-evaluation cannot disagree. Once the run has started the result
is never exit 2: frames may have been sent.
"""

from __future__ import annotations

import datetime as dt
import platform
import time
from collections.abc import Callable
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import can

from .. import __version__
from ..console import NOT_PASSED, check_lines, report_line
from ..drive_cycle import load_profile
from ..errors import BenchError, HarnessError, one_line
from ..interrupt import Interrupted, handled, signal_name
from ..liveview import LiveView
from ..monitor import LiveMonitor
from ..plan.model import Plan, Step
from ..rundir import LOG_FILE, PLAN_FILE, create_run_dir, store_inputs
from ..stimuli import StimulusScheduler
from .cyclic import CyclicSends
from .diag import addressing_json, run_ecus
from .options import RunOptions, RunResult, StopRun
from .pacing import LockstepPacer, WallClockPacer
from .pump import FramePump, breach_stop
from .recording import Recording, StorageFault
from .safe_state import hold_safe_state, send_safe_state
from .state import RunState
from .status import LiveStatus, shown_signals
from .steps import start_step
from .wiring import Wiring, plan_wiring


def run_plan(plan: Plan, options: RunOptions | None = None) -> RunResult:
    """Run ``plan`` and return its run directory and summary (library form of ``bench run``).

    Raises :class:`~bench.errors.InputError` before anything is sent for inputs that cannot run,
    and :class:`~bench.interrupt.Interrupted` for a signal during the evaluation after the run.
    """
    return Executor(plan, options or RunOptions()).run()


class Executor:
    """One run of one plan. Use :func:`run_plan`."""

    def __init__(self, plan: Plan, options: RunOptions) -> None:
        self.plan = plan
        self.options = options
        self.wiring: Wiring = plan_wiring(plan, options)
        self.seed = options.seed if options.seed is not None else (plan.seed or 0)
        self.profiles = {
            step.name: load_profile(step.drive_cycle.profile, plan.path.parent).repeated(
                step.drive_cycle.repeat, step.drive_cycle.speed_scale
            )
            for step in plan.steps
            if step.drive_cycle is not None
        }
        live, self.not_live = LiveMonitor.live_checks(plan.checks)
        self.monitor = LiveMonitor(
            plan.dbcs, shown=shown_signals(plan.dbcs, plan.checks), abort_checks=live
        )
        for step in plan.steps:
            if step.until is not None:
                self.monitor.watch_condition(step.until)
            if step.drive is not None:
                self.monitor.watch("MCU_Power.VehicleSpeed")  # a speed hold starts from it
        self.state: RunState | None = None
        self._run_dir: Path | None = None
        self._evaluating: Path | None = None  # set once the recording is closed (see _on_signal)

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> RunResult:
        # Exclusive and held until the run is judged: a taken --out is an InputError (exit 2)
        # here, before anything is sent.
        run_lock = create_run_dir(self.options.out_dir, self.options.out_root, self.plan.path.stem)
        try:
            return self._run_in(run_lock.path)
        finally:
            run_lock.release()

    def _run_in(self, run_dir: Path) -> RunResult:
        dbc_described = self._stored_inputs(run_dir)
        self._run_dir = run_dir
        options = self.options
        recording = Recording(
            run_dir,
            max_frames=options.max_segment_frames,
            max_seconds=options.max_segment_seconds,
            restore_inputs=self._store_inputs,
        )
        view = LiveView(run_dir / LOG_FILE, stream=options.stream, force_plain=options.force_plain)
        state = RunState(
            self.plan, options, self.wiring, self.seed, self.monitor, recording, view,
            profiles=self.profiles,
        )  # fmt: skip
        self.state = state
        self.status = LiveStatus(state)
        with ExitStack() as signals:
            if options.handle_signals:  # one handler from the first frame to the verdict
                signals.enter_context(handled(self._on_signal))
            with view:
                stop = self._run_to_the_end(dbc_described, run_dir)
            self._evaluating = run_dir
            return self._evaluate(run_dir, stop)

    def _run_to_the_end(self, dbc_described: list[dict[str, str]], run_dir: Path) -> StopRun | None:
        """The steps, then however they ended the safe end: abort if stopped, finish. Returns
        why the run stopped early (None: it ran to the end)."""
        stop: StopRun | None = None
        try:
            self._open()
            self._start(dbc_described, run_dir)
            self._run_steps()
        except StopRun as exc:
            stop = exc
        except StorageFault as exc:
            stop = StopRun("storage", str(exc))
        except BenchError as exc:
            stop = StopRun("error", str(exc))
        except can.CanError as exc:
            stop = StopRun("error", f"CAN interface error: {one_line(exc)}")
        except OSError as exc:  # a device node gone under python-can or pyserial
            stop = StopRun("error", f"interface error: {one_line(exc)}")
        except Exception as exc:  # a harness bug must still end in the safe state
            stop = StopRun("error", f"{type(exc).__name__}: {one_line(exc)}")
        if stop is None:
            stop = self._write_recording()
        if stop is not None:
            self._abort(stop)
        self._finish(stop)
        return stop

    def _stored_inputs(self, run_dir: Path) -> list[dict[str, str]]:
        try:
            return self._store_inputs(run_dir)
        except OSError as exc:  # nothing sent yet; the storage is not the plan's fault
            where = exc.filename or run_dir
            raise HarnessError(
                f"{where}: cannot store the plan and DBCs ({exc.strerror})"
            ) from None

    def _store_inputs(self, run_dir: Path) -> list[dict[str, str]]:
        return store_inputs(run_dir, self.plan.source_text, self.plan.dbc_paths)

    def _open(self) -> None:
        state, wiring, options = self._state, self.wiring, self.options
        wiring.open(self.plan, self.seed, options.chamber_poll_s)
        assert wiring.buses is not None
        scheduler = StimulusScheduler(self.plan.dbcs, channel=None)
        pump = FramePump(wiring.buses, state.recording, self.monitor, state.now, state.say)
        state.scheduler, state.pump = scheduler, pump
        if wiring.lockstep:
            state.pacer = LockstepPacer(scheduler, pump, wiring.vehicle, options.tick_s)
        else:
            if options.cyclic_tasks and any(bus.uses_bcm for bus in wiring.buses.buses):
                state.cyclic = CyclicSends(scheduler, pump, state.recording)
            state.pacer = WallClockPacer(scheduler, pump, state.cyclic)

    @property
    def _state(self) -> RunState:
        assert self.state is not None
        return self.state

    def _start(self, dbc_described: list[dict[str, str]], run_dir: Path) -> None:
        state, wiring = self._state, self.wiring
        assert state.pacer is not None
        state.wall_start = time.monotonic()
        t = state.start_time = state.pacer.start()
        self.monitor.start(t)
        state.event(t, "run_start", "run", self._run_start_detail(dbc_described, run_dir))
        state.recording.flush_events()
        simulated = state.pacer.simulated
        state.say(
            f"run {self.plan.name!r} ({wiring.mode}, {wiring.describe()}"
            + (f", seed {self.seed}" if simulated else "")
            + (f", inject {', '.join(self.options.inject)}" if self.options.inject else "")
            + f") → {run_dir}",
            t,
        )
        for spec in self.not_live:
            state.say(
                f"note: check {spec.name!r} has abort: true but a {spec.kind} check cannot be "
                "judged live; it is judged after the run",
                t,
            )

    def _run_start_detail(self, dbc_described: list[dict[str, str]], run_dir: Path) -> dict:
        wiring, profile = self.wiring, self.wiring.profile
        software = {
            "bench": __version__,
            "python": platform.python_version(),
            "python-can": can.__version__,
            **_versions("cantools", "numpy", "pyarrow", "pandas"),
        }
        return {
            "started_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "mode": wiring.mode,
            "interface": wiring.settings.interface,
            "channel": ",".join(s.channel for s in wiring.bus_settings.values()),
            "bitrate": wiring.settings.bitrate,
            "buses": [
                {
                    "name": name,
                    "interface": s.interface,
                    "channel": s.channel,
                    "bitrate": s.bitrate,
                    "fd": s.fd,
                    "data_bitrate": s.data_bitrate,
                }
                for name, s in wiring.bus_settings.items()
            ],
            "bench": (
                {
                    "name": profile.name,
                    "path": str(profile.path),
                    "instruments": [i.model_dump(mode="json") for i in wiring.instruments],
                }
                if profile
                else None
            ),
            "seed": self.seed if wiring.lockstep else None,
            "inject": list(self.options.inject),
            "software": software,
            "dbc": dbc_described,
            "plan_file": str(self.plan.path),
            "run_dir": run_dir.name,
            # The UDS addressing in use (a bench profile may override the plan's): what
            # `bench evaluate` needs to find the diagnostic exchanges in the frames.
            "diagnostics": addressing_json(run_ecus(self.plan, profile)),
        }

    # -- steps -----------------------------------------------------------------------------------

    def _run_steps(self) -> None:
        state = self._state
        for index, step in enumerate(self.plan.steps, start=1):
            state.step_index, state.step_name = index, step.name
            self._run_step(step)
        self.status.show(force=True)

    def _run_step(self, step: Step) -> None:
        state = self._state
        start = state.now()
        self.monitor.enter_step(step.name, start)
        state.event(start, "step_start", step.name)
        state.say(f"step {state.step_index}/{len(self.plan.steps)} {step.name!r} started", start)
        state.activities = []
        start_step(state, step, start)
        status = "done"
        deadline = None if step.timeout is None else start + step.timeout
        while True:
            now = state.now()
            if self._step_finished(step, start, now):
                break
            if deadline is not None and now >= deadline:
                status = "timeout"
                break
            self._tick()
        end = state.now()
        for activity in state.activities:
            activity.on_exit(end)
        state.activities = []
        state.event(end, "step_end", step.name, {"status": status})
        state.recording.flush_events()
        if status == "timeout":
            what = f"until {step.until}" if step.until is not None else "its target"
            message = f"step {step.name!r} timed out after {step.timeout:g} s waiting for {what}"
            if step.on_timeout == "abort":
                raise StopRun("timeout", message)
            state.say(f"FAILED: {message}", end)
        else:
            state.say(f"step {step.name!r} done after {end - start:.1f} s", end)

    def _step_finished(self, step: Step, start: float, now: float) -> bool:
        if step.duration is not None:
            return now - start >= step.duration
        if step.until is not None:
            return bool(step.until.evaluate(self.monitor.latest))
        return all(activity.finished(now) for activity in self._state.activities)

    def _tick(self) -> None:
        state = self._state
        assert state.pacer is not None and state.pump is not None
        state.pacer.tick()
        if state.tickers:  # a diag step's tester, only while the step runs
            for ticker in list(state.tickers):
                ticker()
        if state.stop_request is not None:
            raise state.stop_request
        if state.pump.deferred is not None:
            raise state.pump.deferred
        if self.wiring.chamber_poller is not None:
            self.wiring.chamber_poller.check()  # a chamber gone mid-run ends the run, in any step
        breach = self.monitor.on_tick(state.now())
        if breach is not None:
            raise breach_stop(breach)
        self.status.show()

    # -- stopping --------------------------------------------------------------------------------

    def _write_recording(self) -> StopRun | None:
        """After the last step: every frame to disk. A write failing here still aborts the run
        (the recording is not whole), with the safe state like any other abort."""
        state = self._state
        try:
            if state.pump is not None:
                state.pump.write(force=True)
            state.recording.flush_frames()
        except StorageFault as exc:
            return StopRun("storage", str(exc))
        return None

    def _on_signal(self, signum: int) -> None:
        state = self._state
        name = signal_name(signum)
        if self._evaluating is not None:
            run_dir = self._evaluating
            raise Interrupted(
                f"{name} during evaluation: {run_dir} not judged (no summary.json, junit.xml, "
                f"report.html); the recording is intact: bench evaluate {run_dir}"
            )
        if state.stop_request is None:
            state.stop_request = StopRun("interrupt", f"received {name}")
            return
        # Stopping already: the safe state and the recording come first.
        _quietly(state.say, f"received {name} again: still stopping (safe state, recording)")

    def _abort(self, stop: StopRun) -> None:
        """Safe state first, then the record of why. Never raises."""
        state = self._state
        state.recording.strict = False  # from here on a write failure is noted, not raised
        t = state.now()
        detail = {"reason": stop.reason, "check": stop.check, "kind": stop.kind}
        headline = f"ABORT ({stop.kind}): {stop.reason}"
        recorded: list[bool] = []

        def record_abort() -> None:  # once the frames are out: an abort event is flushed at once
            if not recorded:
                recorded.append(True)
                state.event(t, "abort", stop.check or stop.kind, detail)

        try:
            failures = send_safe_state(state, t, record_abort)
        except Exception as exc:  # the bus may be what failed; say so, keep the log
            _quietly(record_abort)
            _quietly(state.say, headline, t)
            self._note(f"safe state NOT sent: {one_line(exc)}")
            return
        _quietly(state.say, headline, t)
        for failure in failures:
            self._note(f"safe state NOT sent: {failure}")
        names = ", ".join(f.message for f in self.plan.safe_state) or "no frames (plan has none)"
        _quietly(state.say, f"safe state sent: {names}", t)
        _quietly(hold_safe_state, state)

    def _note(self, note: str) -> None:
        state = self._state
        _quietly(state.event, state.now(), "note", "safe_state", {"reason": note})
        _quietly(state.say, note, state.now())

    def _finish(self, stop: StopRun | None) -> None:
        """Write what is left, close the buses and the recording. Never raises."""
        state = self._state
        recording, pump = state.recording, state.pump
        recording.strict = False
        if pump is not None:
            _quietly(pump.write, True)
        if state.scheduler is not None:
            _quietly(state.scheduler.stop_all)
        wall = time.monotonic() - state.wall_start
        sim = state.now() - state.start_time
        frames_rx = pump.frames_rx if pump else 0
        frames_tx = pump.frames_tx if pump else 0
        buses = self.wiring.buses
        _quietly(
            state.event,
            state.now(),
            "run_end",
            "run",
            {
                "ended_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                "frames_rx": frames_rx,
                "frames_tx": frames_tx,
                "wall_s": round(wall, 3),
                "sim_s": round(sim, 3),
                "stopped": stop.kind if stop else None,
                "safe_state_sent": state.safe_state_sent,
                "error_frames": pump.error_frames if pump else 0,
                "failed_buses": buses.failures if buses is not None else {},
                "storage_fault": recording.fault,
            },
        )
        lost = recording.close()
        self.wiring.close()
        # The recording is closed: from here on a signal ends the command (what is undone is
        # the verdict, and it says so) instead of being noted.
        self._evaluating = self._run_dir
        simulated = state.pacer is not None and state.pacer.simulated
        warp = sim / wall if wall > 0 else 0.0
        _quietly(
            state.say,
            f"recorded {frames_rx + frames_tx:,} frames "
            f"(rx {frames_rx:,}, tx {frames_tx:,}) in {wall:.1f} s wall"
            + (f", {sim:.0f} s simulated (x{warp:.0f})" if simulated else ""),
            state.now(),
        )
        for line in lost:
            _quietly(state.say, f"NOT RECORDED: {line}", state.now())

    def _evaluate(self, run_dir: Path, stop: StopRun | None) -> RunResult:
        from ..evaluate import evaluate_path

        try:
            summary, _ = evaluate_path(run_dir, run_dir / PLAN_FILE, out_dir=run_dir)
        except Interrupted:
            raise
        except (BenchError, OSError) as exc:
            # Frames may have been sent: never the exit 2 of an InputError from here.
            problem = f"{run_dir}: not evaluated: {one_line(str(exc))}"
            _log_line(run_dir, self.options, problem)
            return RunResult(run_dir, None, stop, problem)
        # What needs a person's eyes, in the words `bench evaluate` uses, then where to look.
        lines = check_lines(summary.checks, NOT_PASSED)
        lines += [f"verdict: {summary.verdict.upper()} — {run_dir}", report_line(run_dir)]
        _log_line(run_dir, self.options, *lines)
        return RunResult(run_dir, summary, stop)


def _log_line(run_dir: Path, options: RunOptions, *lines: str) -> None:
    with (
        suppress(Exception),
        LiveView(run_dir / LOG_FILE, stream=options.stream, force_plain=True) as view,
    ):
        for text in lines:
            view.event(text)


def _quietly(action: Callable[..., Any], *args: Any) -> None:
    """Run ``action``; on the way out of a failed run nothing may stop the rest of the way."""
    with suppress(Exception):
        action(*args)


def _versions(*packages: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in packages:
        with suppress(PackageNotFoundError):
            found[package] = version(package)
    return found
