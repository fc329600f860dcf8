"""Programmable DC power supply / battery cycler driver: set and measure V and I, output on/off.

Speaks the line protocol of :mod:`bench.instruments.scpi` (``VOLT``, ``CURR``, ``MEAS:VOLT?``,
``OUTP`` …). ``voltage()`` and ``current()`` are *measured* values; the set points read back
through :meth:`PowerSupply.voltage_setpoint` and :meth:`PowerSupply.current_limit`.
"""

from __future__ import annotations

from .scpi import ScpiInstrument


class PowerSupply(ScpiInstrument):
    """A DC supply on a serial port (constant voltage with a current limit)."""

    label = "power supply"

    def set_voltage(self, volts: float) -> None:
        self._set("VOLT", float(volts))

    def set_current(self, amps: float) -> None:
        """Current limit in A (the supply goes constant-current when the load asks for more)."""
        self._set("CURR", float(amps))

    def voltage(self) -> float:
        """Measured output voltage in V."""
        return self._number("MEAS:VOLT?")

    def current(self) -> float:
        """Measured output current in A."""
        return self._number("MEAS:CURR?")

    def voltage_setpoint(self) -> float:
        return self._number("VOLT?")

    def current_limit(self) -> float:
        return self._number("CURR?")

    def output(self, on: bool) -> None:
        self._set_flag("OUTP", on)

    def is_output_on(self) -> bool:
        return self._flag("OUTP?")
