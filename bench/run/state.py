"""The state of one run, shared by the executor, the step handlers and the safe state.

As OpenHTF keeps a test's state apart from its executors: what is running (scheduler, monitor,
recording, pump, pacer), where the step loop is, and what the current step started
(:class:`Activity`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the parts import the state: only their types here
    from ..dbc import DbcSet
    from ..liveview import LiveView
    from ..monitor import LiveMonitor
    from ..plan.model import Plan
    from ..stimuli import StimulusScheduler
    from .cyclic import CyclicSends
    from .options import RunOptions, StopRun
    from .pacing import Pacer
    from .pump import FramePump
    from .recording import Recording
    from .wiring import Wiring


@dataclass
class Activity:
    """Something a step started that decides when the step is over (ramp, charge, …)."""

    name: str
    finished: Callable[[float], bool]
    on_exit: Callable[[float], None] = lambda t: None


@dataclass
class RunState:
    """Everything one run holds between its start and its end."""

    plan: Plan
    options: RunOptions
    wiring: Wiring
    seed: int
    monitor: LiveMonitor
    recording: Recording
    view: LiveView
    scheduler: StimulusScheduler | None = None
    pump: FramePump | None = None
    pacer: Pacer | None = None
    cyclic: CyclicSends | None = None
    profiles: dict[str, Any] = field(default_factory=dict)  # step name → speed profile
    activities: list[Activity] = field(default_factory=list)
    tickers: list[Callable[[], None]] = field(default_factory=list)
    """Called after every tick (a diag step's tester: it sends, receives and times out)."""
    road_grade_pct: float = 0.0
    step_index: int = 0
    step_name: str = "-"
    start_time: float = 0.0  # the run's clock at its start (0 in lockstep, epoch in real time)
    wall_start: float = field(default_factory=time.monotonic)
    stop_request: StopRun | None = None  # set by a signal handler, raised by the next tick
    safe_state_sent: bool = False

    @property
    def dbcs(self) -> DbcSet:
        return self.plan.dbcs

    def now(self) -> float:
        """The run's clock: simulated seconds (lockstep) or epoch seconds (real time)."""
        if self.pacer is not None:
            return self.pacer.now()
        return 0.0 if self.wiring.lockstep else time.time()

    def say(self, text: str, t: float | None = None) -> None:
        """A log line stamped with time since the run started (epoch seconds tell nobody much)."""
        self.view.event(text, None if t is None else t - self.start_time)

    def event(self, t: float, kind: str, name: str, detail: dict[str, Any] | None = None) -> None:
        self.recording.event(t, kind, name, detail)

    def period_of(self, message: str, fallback: float = 0.1) -> float:
        """The message's DBC cycle time (s), else ``fallback``."""
        return self.dbcs.cycle_time_s(self.dbcs.message(message)) or fallback
