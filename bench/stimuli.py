"""What the bench sends: one-off and periodic frames, ramps and closed-loop values.

A periodic stimulus keeps sending until it is replaced or stopped, like a restbus node: once a plan
has started ``VCU_Command`` every 10 ms, later steps change its signals without restating the
period. Every frame goes through :class:`bench.e2e.Protector`, so alive counters and CRCs are
always right unless a fault says otherwise.

Time is a parameter: the scheduler never reads a clock. The runner asks for the frames due up to
a time (simulated or wall) and stamps them with their due times.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import can
from cantools.database.can import Message

from .can_frame import Frame
from .dbc import DbcSet
from .e2e import COUNTER_SIGNAL, Protector, counter_modulus

Value = float | int | str
Modifier = Callable[[float], float]
"""A signal value computed at send time from the send time (ramps, controllers)."""


@dataclass
class Stimulus:
    message: Message
    protector: Protector
    values: dict[str, Value] = field(default_factory=dict)
    modifiers: dict[str, Modifier] = field(default_factory=dict)
    period: float | None = None
    next_due: float = 0.0
    generation: int = 0  # bumps when replaced, so stale heap entries are skipped
    revision: int = 0  # bumps on every change of values or modifiers
    external: bool = False  # sent by someone else (the kernel's BCM); the heap skips it

    def values_at(self, t: float) -> dict[str, Value]:
        values = dict(self.values)
        for name, modifier in self.modifiers.items():
            values[name] = modifier(t)
        return values


def to_can_message(
    message: Message, payload: bytes, timestamp: float, channel: str | None
) -> can.Message:
    """The frame of ``message`` carrying ``payload`` (a :class:`~bench.can_frame.Frame`: the
    virtual bus copies it cheaply)."""
    return Frame(
        timestamp=timestamp,
        arbitration_id=message.frame_id,
        is_extended_id=message.is_extended_frame,
        is_fd=message.is_fd,
        bitrate_switch=message.is_fd,
        data=payload,
        channel=channel,
        is_rx=False,
    )


class StimulusScheduler:
    """Holds the bench's transmissions and hands out the frames due up to a time."""

    def __init__(self, dbcs: DbcSet, channel: str | None = None) -> None:
        self._dbcs = dbcs
        self._channel = channel
        self._stimuli: dict[str, Stimulus] = {}
        self._protectors: dict[str, Protector] = {}
        self._heap: list[tuple[float, int, str, int]] = []
        self._stopped_versions: dict[str, tuple[int, int]] = {}
        self._sequence = 0

    # -- configuration ---------------------------------------------------------------------------

    def _protector(self, name: str) -> Protector:
        # One protector per message for the whole run: alive counters continue across steps.
        if name not in self._protectors:
            self._protectors[name] = Protector(self._dbcs.message(name))
        return self._protectors[name]

    def once(self, name: str, values: Mapping[str, Value], t: float) -> can.Message:
        """A single frame of ``name`` at ``t``; a periodic stimulus of it keeps its own values."""
        protector = self._protector(name)
        merged = {**(self._stimuli[name].values if name in self._stimuli else {}), **values}
        return to_can_message(protector.message, protector.encode(merged), t, self._channel)

    def periodic(
        self,
        name: str,
        values: Mapping[str, Value],
        period: float,
        t: float,
        *,
        modifiers: Mapping[str, Modifier] | None = None,
    ) -> None:
        """Send ``name`` every ``period`` from ``t`` on; merges into a running stimulus of it."""
        if period <= 0 or math.isnan(period):
            raise ValueError(f"period of {name} must be positive, got {period}")
        current = self._stimuli.get(name)
        # Versions never repeat for a name, even across stop(): a stopped stimulus's heap entry
        # (or a kernel BCM task) must never be taken for the new one's.
        last_generation, last_revision = (
            (current.generation, current.revision)
            if current
            else self._stopped_versions.get(name, (-1, -1))
        )
        stimulus = Stimulus(
            message=self._protector(name).message,
            protector=self._protector(name),
            values={**(current.values if current else {}), **values},
            modifiers={**(current.modifiers if current else {}), **(modifiers or {})},
            period=period,
            next_due=_first_due(current, period, t),
            generation=last_generation + 1,
            revision=last_revision + 1,
        )
        for signal in values:
            stimulus.modifiers.pop(signal, None)  # a fixed value replaces a ramp of that signal
        self._stimuli[name] = stimulus
        self._push(stimulus, name)

    def update(self, name: str, values: Mapping[str, Value] | None = None,
               modifiers: Mapping[str, Modifier] | None = None) -> None:  # fmt: skip
        """Change signals of a running periodic stimulus without touching its timing."""
        stimulus = self._stimuli[name]
        for signal, value in (values or {}).items():
            stimulus.values[signal] = value
            stimulus.modifiers.pop(signal, None)
        stimulus.modifiers.update(modifiers or {})
        stimulus.revision += 1

    def freeze(self, t: float) -> None:
        """Hold every computed signal (ramps, controllers) at its value at ``t`` from now on.

        After an abort nothing may keep driving a signal: a drive-cycle controller would go on
        requesting torque unless the safe state names TorqueRequest.
        """
        for stimulus in self._stimuli.values():
            if stimulus.modifiers:
                stimulus.values.update(stimulus.values_at(t))
                stimulus.modifiers.clear()
                stimulus.revision += 1

    def stop(self, name: str) -> None:
        stimulus = self._stimuli.pop(name, None)
        if stimulus is not None:
            self._stopped_versions[name] = (stimulus.generation, stimulus.revision)

    def stop_all(self) -> None:
        for name in list(self._stimuli):
            self.stop(name)
        self._heap.clear()

    def is_running(self, name: str) -> bool:
        return name in self._stimuli

    @property
    def running(self) -> list[str]:
        return list(self._stimuli)

    def stimulus(self, name: str) -> Stimulus | None:
        return self._stimuli.get(name)

    # -- handing constant stimuli to the kernel (SocketCAN BCM) ----------------------------------

    def is_constant(self, name: str) -> bool:
        """True when every frame of the stimulus differs only in its alive counter and CRC."""
        stimulus = self._stimuli.get(name)
        return stimulus is not None and stimulus.period is not None and not stimulus.modifiers

    def cycle_frames(self, name: str, t: float) -> list[can.Message]:
        """One frame per alive-counter value (CRC sealed), for a sender that cycles through them.

        A message without a counter gives one frame. The protector goes once round its counter,
        so it ends where it began.
        """
        stimulus = self._stimuli[name]
        count = counter_modulus(stimulus.message) or 1
        values = stimulus.values_at(t)
        return [
            to_can_message(stimulus.message, stimulus.protector.encode(values), t, self._channel)
            for _ in range(count)
        ]

    def continue_counter_after(self, name: str, payload: bytes) -> None:
        """Go on counting after ``payload``, the last frame another sender (the BCM) sent."""
        protector = self._protector(name)
        modulus = counter_modulus(protector.message)
        if modulus is None:
            return
        decoded = protector.message.decode(payload, decode_choices=False, scaling=False)
        protector.counter = (int(decoded[COUNTER_SIGNAL]) + 1) % modulus

    def offload(self, name: str) -> None:
        """Stop sending ``name`` here: someone else sends it (its values stay known here)."""
        self._stimuli[name].external = True

    def reclaim(self, name: str, t: float) -> None:
        """Send ``name`` here again, from ``t`` on."""
        stimulus = self._stimuli[name]
        if not stimulus.external:
            return
        stimulus.external = False
        stimulus.next_due = t
        stimulus.generation += 1
        self._push(stimulus, name)

    def values(self, name: str) -> dict[str, Value]:
        stimulus = self._stimuli.get(name)
        return dict(stimulus.values) if stimulus else {}

    # -- time ------------------------------------------------------------------------------------

    def _push(self, stimulus: Stimulus, name: str) -> None:
        self._sequence += 1
        heapq.heappush(self._heap, (stimulus.next_due, self._sequence, name, stimulus.generation))

    def next_due(self) -> float | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def _drop_stale(self) -> None:
        while self._heap:
            _, _, name, generation = self._heap[0]
            stimulus = self._stimuli.get(name)
            if stimulus is not None and stimulus.generation == generation and not stimulus.external:
                return
            heapq.heappop(self._heap)

    def due(self, until: float) -> list[can.Message]:
        """Every frame due at or before ``until``, in time order, stamped with its due time."""
        frames: list[can.Message] = []
        while True:
            self._drop_stale()
            if not self._heap or self._heap[0][0] > until:
                return frames
            due, _, name, _ = heapq.heappop(self._heap)
            stimulus = self._stimuli[name]
            payload = stimulus.protector.encode(stimulus.values_at(due))
            frames.append(to_can_message(stimulus.message, payload, due, self._channel))
            assert stimulus.period is not None
            stimulus.next_due = due + stimulus.period
            self._push(stimulus, name)


def _first_due(current: Stimulus | None, period: float, t: float) -> float:
    """When a (re)started stimulus sends first: now, unless its message just went out now."""
    if current is not None and current.period is not None:
        last_sent = current.next_due - current.period
        if last_sent >= t - 1e-9:
            return last_sent + period
    return t


def linear_ramp(start: float, end: float, t0: float, duration: float) -> Modifier:
    """start → end over ``duration`` from ``t0``, then held at ``end``."""

    def value(t: float) -> float:
        if duration <= 0 or t >= t0 + duration:
            return end
        if t <= t0:
            return start
        return start + (end - start) * (t - t0) / duration

    return value
