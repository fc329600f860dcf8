"""The vehicle's ECUs as the bus sees them: BMS and MCU models plus the DBC-driven restbus.

Each ECU exposes ``sources``: for every message it sends, a function returning the values of its
signals (by DBC signal name) for a multiplexer value. The restbus
(:mod:`virtual_bus.ecus.restbus`) looks messages up in the DBC, so adding a signal to the DBC and
a key to the dict returned here is all it takes to broadcast it. Commands from the bench arrive
decoded in :class:`~virtual_bus.ecus.commands.Commands`.
"""

from __future__ import annotations
