"""Lumped physical models of the virtual vehicle: climate, battery pack, motor/inverter + road load.

They know nothing of CAN: the ECUs in :mod:`virtual_bus.ecus` read and command them. All are stepped
on the fixed simulation step of :class:`virtual_bus.vehicle.VirtualVehicle`.
"""

from __future__ import annotations
