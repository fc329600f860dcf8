"""Clocks: simulated time for lockstep runs, wall-clock time for the standalone process.

Everything in the virtual vehicle reads time from a clock object (DESIGN.md, "Time is a
parameter"). :class:`SimClock` only moves when told to, so a lockstep run is as fast as the CPU
allows and deterministic. :class:`RealClock` follows the wall clock: it reads ``time.monotonic``
(immune to NTP steps) but reports seconds on the ``time.time`` scale of its start, so frames
recorded by a standalone process carry ordinary epoch timestamps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class SimClock:
    """Simulated time in seconds; moves only through :meth:`advance_to` / :meth:`sleep_until`."""

    time: float = 0.0
    realtime = False

    def now(self) -> float:
        return self.time

    def advance_to(self, t: float) -> None:
        if t < self.time:
            raise ValueError(f"a clock cannot go back ({t} < {self.time})")
        self.time = t

    def sleep_until(self, t: float) -> None:
        """Jump to ``t`` at once (nothing to wait for in simulated time)."""
        if t > self.time:
            self.time = t


@dataclass
class RealClock:
    """Wall-clock seconds on the ``time.time`` scale, advancing with ``time.monotonic``."""

    realtime = True
    _epoch: float = field(default_factory=time.time)
    _mono: float = field(default_factory=time.monotonic)

    def now(self) -> float:
        return self._epoch + (time.monotonic() - self._mono)

    def sleep_until(self, t: float) -> None:
        delay = t - self.now()
        if delay > 0:
            time.sleep(delay)
