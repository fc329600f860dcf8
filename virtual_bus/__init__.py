"""A virtual EV (battery management system + motor controller) that only talks CAN.

In-process, in lockstep with the runner::

    from virtual_bus import VirtualVehicle, SimClock
    vehicle = VirtualVehicle(bus, dbcs, seed=0, ambient_c=-30.0)
    vehicle.advance_to(10.0)          # reads VCU_* commands, steps physics, sends frames <= 10 s

Standalone on any python-can interface: ``python -m virtual_bus --interface socketcan
--channel vcan0 --realtime``. Faults: :mod:`virtual_bus.faults`.
"""

from __future__ import annotations

from .clock import RealClock, SimClock
from .faults import FaultSpec, describe_faults, parse_fault
from .vehicle import VirtualVehicle

__all__ = ["FaultSpec", "RealClock", "SimClock", "VirtualVehicle", "describe_faults", "parse_fault"]
