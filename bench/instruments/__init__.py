"""Serial bench instruments: a climate chamber and a DC power supply, SCPI-style over pyserial.

The protocol is documented in :mod:`bench.instruments.scpi`; :mod:`bench.instruments.simulator`
serves it on a pseudo-terminal for tests and for benches without hardware
(``python -m bench.instruments.simulator chamber``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .chamber import Chamber
from .power_supply import PowerSupply
from .scpi import ScpiInstrument, ScpiTransport

if TYPE_CHECKING:
    from ..profile import InstrumentProfile

DRIVERS: dict[str, type[Chamber] | type[PowerSupply]] = {
    "chamber": Chamber,
    "power_supply": PowerSupply,
}

__all__ = [
    "DRIVERS",
    "Chamber",
    "PowerSupply",
    "ScpiInstrument",
    "ScpiTransport",
    "open_instrument",
]


def open_instrument(profile: InstrumentProfile) -> Chamber | PowerSupply:
    """Open the instrument a bench profile names (HarnessError when its port cannot be opened)."""
    driver = DRIVERS[profile.driver]
    return driver(
        profile.port,
        baudrate=profile.baudrate,
        timeout_s=profile.timeout_s,
        retries=profile.retries,
    )
