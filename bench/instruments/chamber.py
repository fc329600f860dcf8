"""Climate chamber driver: set point, actual temperature, running and stable status.

Speaks the line protocol of :mod:`bench.instruments.scpi` (``TEMP:SET``, ``TEMP?``, ``RUN`` …).
A real chamber whose command set differs needs only a subclass overriding the command strings.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .scpi import ScpiInstrument


class Chamber(ScpiInstrument):
    """A climate chamber on a serial port.

    >>> with Chamber("/dev/ttyUSB0") as chamber:      # doctest: +SKIP
    ...     chamber.set_temperature(-30)
    ...     chamber.start()
    """

    label = "chamber"

    def set_temperature(self, celsius: float) -> None:
        """Set point in °C; the chamber rejects values outside its range (HarnessError)."""
        self._set("TEMP:SET", float(celsius))

    def setpoint(self) -> float:
        return self._number("TEMP:SET?")

    def temperature(self) -> float:
        """Actual air temperature in °C."""
        return self._number("TEMP?")

    def start(self) -> None:
        self._set_flag("RUN", True)

    def stop(self) -> None:
        self._set_flag("RUN", False)

    def is_running(self) -> bool:
        return self._flag("RUN?")

    def is_stable(self, within_c: float) -> bool:
        """Running, and the actual temperature within ``within_c`` of the set point, right now.

        "Stable for 10 min" is a property over time: :meth:`wait_stable` or the runner's clock
        decides that, from repeated answers of this method.
        """
        if within_c < 0:
            raise ValueError("within_c must be >= 0")
        if not self.is_running():
            return False
        return abs(self.temperature() - self.setpoint()) <= within_c

    def wait_stable(
        self,
        within_c: float,
        hold_s: float,
        timeout_s: float,
        *,
        poll_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> bool:
        """Poll until stable without a break for ``hold_s``; False when ``timeout_s`` runs out.

        Time comes from ``clock`` and passes through ``sleep`` (DESIGN.md: time is a parameter),
        so a simulated clock makes a 2 h soak a test of milliseconds.
        """
        start = clock()
        stable_since: float | None = None
        while True:
            now = clock()
            if self.is_stable(within_c):
                stable_since = now if stable_since is None else stable_since
                if now - stable_since >= hold_s:
                    return True
            else:
                stable_since = None
            if now - start >= timeout_s:
                return False
            sleep(poll_s)
