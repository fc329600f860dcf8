"""Drive the virtual vehicle's UDS servers from a stepped tester in lockstep (tests only)."""

from __future__ import annotations

from collections.abc import Iterable

import can

from bench.dbc import DbcSet
from bench.diag.client import Exchange, Operation, SteppedClient
from virtual_bus.lockstep import Lockstep

TICK_S = 0.01


def run_ops(ls: Lockstep, operations: Iterable[Operation], **kwargs) -> list[Exchange]:
    """Run ``operations`` on ``ls.vehicle`` in simulated time; every frame ends in ls.frames."""
    ticks = [round(ls.vehicle.now / TICK_S)]

    def now() -> float:
        return ticks[0] * TICK_S

    def send(frame: can.Message) -> None:
        frame.timestamp = now()
        ls.bench_bus.send(frame)
        ls.frames.append(frame)

    client = SteppedClient(operations, now, send, **kwargs)
    while not client.done:
        client.step()
        ticks[0] += 1
        ls.vehicle.advance_to(now())
        while (frame := ls.bench_bus.recv(timeout=0)) is not None:
            ls.frames.append(frame)
            client.feed(frame)
    return client.exchanges


def lockstep(*faults: str, **kwargs) -> Lockstep:
    return Lockstep(DbcSet.load(), {"faults": list(faults), **kwargs})
