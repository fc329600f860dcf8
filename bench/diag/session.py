"""``bench diag``'s work: UDS operations on the in-process virtual vehicle or on a real bus.

- :func:`on_virtual_vehicle` starts the virtual vehicle in-process in lockstep (its own private
  ``virtual`` channel, faults from ``--inject``), lets it run ``at`` seconds of simulated time
  (so its monitors have run: a DTC is confirmed after 1 s of failing) and runs the operations
  with a :class:`~bench.diag.client.SteppedClient` in simulated time: deterministic and quick.
- :func:`on_bus` opens a python-can bus (a bench profile's, or ``--interface/--channel``) and runs
  them with udsoncan's client (:class:`~bench.diag.client.UdsClient`) on the wall clock: a real
  ECU, ``python -m virtual_bus`` on vcan0, a bench.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import can

from ..bus import BusSettings, open_bus
from ..errors import HarnessError, InputError
from .catalog import Ecu
from .client import (
    P2_CLIENT_S,
    Exchange,
    Operation,
    SteppedClient,
    UdsClient,
    clear_dtcs,
    read_did,
    read_dtcs,
)

TICK_S = 0.01
_channels = itertools.count()


def build_operations(
    ecus: Sequence[Ecu], action: str, dids: Sequence[str] = (), status_mask: int = 0xFF
) -> list[Operation]:
    """``read-dtc`` | ``clear-dtc`` | ``read-did`` on each ECU (each reads the DIDs it has);
    InputError for a DID none of them has."""
    ops: list[Operation] = []
    for name in dids:
        if not any(_has(ecu, name) for ecu in ecus):
            try:
                ecus[0].did(_did_key(name))
            except KeyError as exc:
                raise InputError(str(exc.args[0])) from None
    for ecu in ecus:
        if action == "clear-dtc":
            ops.append(clear_dtcs(ecu))
        elif action == "read-dtc":
            ops.append(read_dtcs(ecu, status_mask))
        elif action == "read-did":
            ops += [read_did(ecu, _did_key(name)) for name in dids if _has(ecu, name)]
        else:
            raise InputError(f"unknown action {action!r}: read-dtc, clear-dtc or read-did")
    return ops


def _did_key(name: str) -> str | int:
    """A DID name, or an id written as hex (``0xF195``)."""
    return int(name, 16) if name[:2].lower() == "0x" else name


def _has(ecu: Ecu, name: str) -> bool:
    try:
        ecu.did(_did_key(name))
    except (KeyError, ValueError):
        return False
    return True


def on_virtual_vehicle(
    operations: Iterable[Operation],
    *,
    faults: Sequence[str] = (),
    at: float = 2.0,
    seed: int = 0,
    ecus: dict[str, Ecu] | None = None,
) -> list[Exchange]:
    """Run ``operations`` on an in-process virtual vehicle after ``at`` s of simulated time."""
    from virtual_bus import VirtualVehicle

    channel = f"bench-diag-{next(_channels)}"
    vehicle_bus = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
    tester_bus = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
    try:
        vehicle = VirtualVehicle(vehicle_bus, seed=seed, faults=list(faults), diag_ecus=ecus)
        ticks = 0
        while ticks * TICK_S < at - 1e-9:  # its restbus frames: nobody listens, drop them
            ticks += 10
            vehicle.advance_to(min(at, ticks * TICK_S))
            while tester_bus.recv(timeout=0) is not None:
                pass
        ticks = round(vehicle.now / TICK_S)

        def now() -> float:
            return ticks * TICK_S

        def send(frame: can.Message) -> None:
            frame.timestamp = now()
            tester_bus.send(frame)

        client = SteppedClient(operations, now, send)
        while not client.done:
            client.step()
            ticks += 1
            vehicle.advance_to(now())
            while (frame := tester_bus.recv(timeout=0)) is not None:
                client.feed(frame)
        return client.exchanges
    finally:
        vehicle_bus.shutdown()
        tester_bus.shutdown()


def on_bus(
    operations: Sequence[Operation], settings: BusSettings, p2: float = P2_CLIENT_S
) -> list[Exchange]:
    """Run ``operations`` with udsoncan's client on a python-can bus (wall clock)."""
    bus = open_bus(settings)
    try:
        exchanges: list[Exchange] = []
        by_ecu: dict[str, list[Operation]] = {}
        for op in operations:
            by_ecu.setdefault(op.ecu.name, []).append(op)
        for ops in by_ecu.values():
            with UdsClient(bus, ops[0].ecu, p2=p2) as client:
                exchanges += client.run_all(ops)
        return exchanges
    except (can.CanError, OSError) as exc:
        raise HarnessError(f"{settings.describe()}: {exc}") from None
    finally:
        bus.shutdown()
