"""A minimal bench for driving the virtual vehicle in lockstep: used by the tests and benchmark.

It plays the runner's part in the smallest way: a second ``virtual`` bus on the vehicle's channel
(``preserve_timestamps=True``) on which it sends ``VCU_*`` frames stamped with simulated time
(encoded through :class:`bench.e2e.Protector`, so counters and CRCs are right) and from which it
drains what the vehicle sends. It is not the runner: no plans, no recording, no checks.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import can

from bench.dbc import DbcSet
from bench.e2e import Protector

from .vehicle import VirtualVehicle

_channels = itertools.count()


@dataclass
class Lockstep:
    """A vehicle and a bench-side bus on a private virtual channel."""

    dbcs: DbcSet
    vehicle_kwargs: Mapping[str, object] = field(default_factory=dict)
    keep: Iterable[str] | None = None  # message names to keep; None keeps everything
    channel: str = field(default_factory=lambda: f"lockstep-{next(_channels)}")
    frames: list[can.Message] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.vehicle_bus = can.Bus(
            interface="virtual", channel=self.channel, preserve_timestamps=True
        )
        self.bench_bus = can.Bus(
            interface="virtual", channel=self.channel, preserve_timestamps=True
        )
        self.vehicle = VirtualVehicle(self.vehicle_bus, self.dbcs, **self.vehicle_kwargs)
        self._protectors: dict[str, Protector] = {}
        self._keep_ids = None
        if self.keep is not None:
            self._keep_ids = {
                (self.dbcs.message(n).frame_id, self.dbcs.message(n).is_extended_frame)
                for n in self.keep
            }

    def send(self, name: str, values: Mapping[str, float], t: float | None = None) -> None:
        """Send one bench frame stamped ``t`` (default: the vehicle's present time)."""
        message = self.dbcs.message(name)
        protector = self._protectors.setdefault(name, Protector(message))
        self.bench_bus.send(
            can.Message(
                timestamp=self.vehicle.now if t is None else t,
                arbitration_id=message.frame_id,
                is_extended_id=message.is_extended_frame,
                data=protector.encode(values),
            )
        )

    def run(self, until: float, step: float = 1.0) -> None:
        """Advance to ``until`` in steps of ``step`` seconds, draining the bus after each."""
        t = self.vehicle.now
        while t < until - 1e-9:
            t = min(until, t + step)
            self.vehicle.advance_to(t)
            self.drain()

    def drain(self) -> None:
        keep = self._keep_ids
        while (msg := self.bench_bus.recv(timeout=0)) is not None:
            if keep is None or (msg.arbitration_id, msg.is_extended_id) in keep:
                self.frames.append(msg)

    def decoded(self, name: str) -> list[tuple[float, dict[str, float]]]:
        """(timestamp, physical values) of every received frame of ``name``."""
        message = self.dbcs.message(name)
        return [
            (m.timestamp, message.decode(bytes(m.data), decode_choices=False))
            for m in self.frames
            if m.arbitration_id == message.frame_id
            and m.is_extended_id == message.is_extended_frame
            and not m.is_error_frame
        ]

    def last(self, reference: str) -> float:
        """Latest value of ``Message.Signal``."""
        name, _, signal = reference.partition(".")
        return self.decoded(name)[-1][1][signal]

    def series(self, reference: str) -> list[tuple[float, float]]:
        name, _, signal = reference.partition(".")
        return [(t, v[signal]) for t, v in self.decoded(name)]

    def close(self) -> None:
        self.vehicle_bus.shutdown()
        self.bench_bus.shutdown()

    def __enter__(self) -> Lockstep:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
