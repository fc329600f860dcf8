"""The climate chamber during a run: a poller thread and the stability watch of a chamber step."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any


class ChamberPoller:
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
        """Raise the poller's failure (in the caller's thread), if there was one."""
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)


class ChamberWatch:
    """Decides when the chamber has been within ``within`` of ``set_c`` for ``hold`` seconds.

    Judges each new reading of the :class:`ChamberPoller` (never a query of its own) and passes
    readings to ``record(t, detail)`` (an ``instrument`` event): on every change between stable
    and not, and at least every 10 s.
    """

    def __init__(
        self,
        poller: ChamberPoller,
        record: Callable[[float, dict[str, Any]], None],
        set_c: float,
        within: float,
        hold: float,
    ) -> None:
        self.poller = poller
        self.record = record
        self.set_c = set_c
        self.within = within
        self.hold = hold
        self.stable_since: float | None = None
        self.seen = -1
        self.last_event = -math.inf

    def finished(self, now: float) -> bool:
        poller = self.poller
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
            self.record(now, {"temperature_c": reading, "set_c": self.set_c, "stable": stable})
