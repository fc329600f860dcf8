"""Pacing: how a run keeps time, one class per way (DESIGN.md, "Time is a parameter").

* :class:`LockstepPacer` — the in-process virtual vehicle and the runner advance one simulated
  clock together, tick by tick; runs go as fast as the CPU allows and the same seed gives the
  same frames (python-can ``virtual``, no ``--realtime``, no instruments).
* :class:`WallClockPacer` — the wall clock; the device under test (or ``python -m virtual_bus``
  in another process) is on the other side. Instruments force it: a climate chamber lives on
  the wall clock, and a lockstep run would race ahead of it.

Both send the frames due, then receive what is at hand; the executor does the rest of a tick the
same way in both modes.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from ..stimuli import StimulusScheduler
from .cyclic import CyclicSends
from .pump import FramePump


class Pacer(Protocol):
    mode: str
    simulated: bool
    """True when time is simulated (the seed and the warp factor mean something)."""
    hold_wall_s: float
    """Wall-time bound on holding the safe state after an abort."""

    def start(self) -> float:
        """Start the clock; returns the run's start time."""

    def now(self) -> float: ...

    def tick(self) -> None:
        """Send what is due, advance time, record and judge what arrived."""


class LockstepPacer:
    """Simulated time in fixed ticks, shared with the in-process virtual vehicle."""

    mode = "lockstep"
    simulated = True
    hold_wall_s = 10.0

    def __init__(
        self, scheduler: StimulusScheduler, pump: FramePump, vehicle: Any, tick_s: float
    ) -> None:
        self.scheduler = scheduler
        self.pump = pump
        self.vehicle = vehicle
        self.tick_s = tick_s
        self.t = 0.0
        self._start = 0.0
        self._ticks = 0

    def start(self) -> float:
        self.t = self._start = 0.0
        return self.t

    def now(self) -> float:
        return self.t

    def tick(self) -> None:
        # Time from an integer tick count: adding tick_s again and again drifts (5 s of 10 ms
        # ticks ended at 5.009999999999938, one tick late).
        self._ticks += 1
        target = self._start + self._ticks * self.tick_s
        for frame in self.scheduler.due(target):
            self.pump.transmit(frame)
        self.vehicle.advance_to(target)
        self.t = target
        self.pump.drain(timeout=0.0)


class WallClockPacer:
    """Wall-clock time (epoch seconds, as the adapters stamp frames); waits at most 5 ms."""

    mode = "realtime"
    simulated = False
    hold_wall_s = 0.5
    max_wait_s = 0.005

    def __init__(
        self, scheduler: StimulusScheduler, pump: FramePump, cyclic: CyclicSends | None
    ) -> None:
        self.scheduler = scheduler
        self.pump = pump
        self.cyclic = cyclic

    def start(self) -> float:
        return time.time()

    def now(self) -> float:
        return time.time()

    def tick(self) -> None:
        if self.cyclic is not None:
            self.cyclic.sync(time.time())
        for frame in self.scheduler.due(time.time()):
            frame.timestamp = time.time()
            self.pump.transmit(frame)
        next_due = self.scheduler.next_due()
        wait = self.max_wait_s
        if next_due is not None:
            wait = min(max(next_due - time.time(), 0.0), wait)
        self.pump.drain(timeout=wait)
