"""A minimal bench for driving the virtual vehicle in lockstep: used by the tests and benchmark.

It plays the runner's part in the smallest way: a second ``virtual`` bus on the vehicle's channel
(``preserve_timestamps=True``) on which it sends ``VCU_*`` frames stamped with simulated time
(encoded through :class:`bench.e2e.Protector`, so counters and CRCs are right) and from which it
drains what the vehicle sends. Like a real bench (and the runner) it keeps sending every message it
has sent, with its latest values, at the message's DBC cycle time (``repeat=False`` for a single
frame): the ECUs monitor VCU_Command and react to its loss (:mod:`virtual_bus.ecus.mcu`). It is
not the runner: no plans, no recording, no checks.
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

    _repeat: dict[str, tuple[dict[str, float], float, float]] = field(default_factory=dict)

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

    def send(
        self,
        name: str,
        values: Mapping[str, float],
        t: float | None = None,
        *,
        repeat: bool = True,
    ) -> None:
        """Send a bench frame stamped ``t`` (default: the vehicle's present time).

        With ``repeat`` (and a cycle time in the DBC) the values are sent again every cycle from
        then on, merged into what this message sent before; ``stop`` ends that.
        """
        at = self.vehicle.now if t is None else t
        period = self.dbcs.cycle_time_s(self.dbcs.message(name))
        merged = {**self._repeat.get(name, ({}, 0.0, 0.0))[0], **values}
        self._frame(name, merged, at)
        if repeat and period:
            self._repeat[name] = (merged, period, at + period)

    def stop(self, name: str) -> None:
        """Stop repeating ``name`` (its frames cease: the ECUs see it go missing)."""
        self._repeat.pop(name, None)

    def _frame(self, name: str, values: Mapping[str, float], t: float) -> None:
        message = self.dbcs.message(name)
        protector = self._protectors.setdefault(name, Protector(message))
        self.bench_bus.send(
            can.Message(
                timestamp=t,
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
            self._repeat_until(t)
            self.vehicle.advance_to(t)
            self.drain()

    def _repeat_until(self, t: float) -> None:
        now = self.vehicle.now
        for name, (values, period, due) in list(self._repeat.items()):
            if due < now:  # the vehicle was fast-forwarded: resume on the same phase
                due += ((now - due) // period + 1) * period
            while due <= t + 1e-9:
                self._frame(name, values, due)
                due += period
            self._repeat[name] = (values, period, due)

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
