"""The frame pump: every frame sent and received passes here on its way to the recorder.

Sending: a frame goes to the buses that carry it and is recorded as ``tx`` as the bus took it.
Receiving: each frame is recorded as ``rx`` and judged by the live monitor (abort rules); error
frames are recorded and reported, bus-off ends the run; frames the cyclic send tasks sent come
back on the local loopback and are recorded as ``tx``. Frames are handed to the recorder in
batches, and at least once a second of wall time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import can

from ..bus import BusFault, BusGroup, error_classes, is_bus_off
from ..monitor import Breach, LiveMonitor
from ..record import JOURNAL_EVERY_S
from .options import StopRun
from .recording import Recording

WRITE_EVERY_FRAMES = 20_000
WRITE_EVERY_S = JOURNAL_EVERY_S
"""The recorder journals each hand-over: this bounds what a kill -9 loses (wall time)."""


@dataclass
class Echoes:
    """Frames sent by cyclic send tasks, as they come back on the local loopback."""

    ids: set[tuple[int, bool]] = field(default_factory=set)
    last: dict[tuple[int, bool], bytes] = field(default_factory=dict)

    def claims(self, frame: can.Message) -> bool:
        # Sent by this host (not rx) with the id of a task: a task's frame, not the DUT's.
        return not frame.is_rx and (frame.arbitration_id, frame.is_extended_id) in self.ids


class FramePump:
    """Moves frames between the buses, the recorder and the live monitor of one run.

    ``say(text, t)`` writes a log line; ``now()`` is the run's clock (simulated or wall).
    """

    def __init__(
        self,
        buses: BusGroup,
        recording: Recording,
        monitor: LiveMonitor,
        now: Callable[[], float],
        say: Callable[[str, float], None],
    ) -> None:
        self.buses = buses
        self.recording = recording
        self.monitor = monitor
        self.now = now
        self.say = say
        self.echoes = Echoes()
        self.frames_rx = 0
        self.frames_tx = 0
        self.error_frames = 0
        self.deferred: StopRun | None = None
        """A breach seen while draining with ``defer`` (raised by the next tick)."""
        # One list in arrival order (is_rx says the direction): frames with equal timestamps
        # then keep one order whatever the wall-clock moment of a hand-over, so lockstep runs
        # stay identical (separate rx/tx lists put a hand-over's rx first, a flip at t=0).
        self._frames: list[can.Message] = []
        self._error_seen: set[tuple[str, tuple[str, ...]]] = set()
        self._last_write = time.monotonic()
        self.listeners: list[Callable[[can.Message], None]] = []
        """Also given every received data frame (a diag step's tester takes its responses)."""

    @property
    def frames(self) -> int:
        return self.frames_rx + self.frames_tx

    # -- sending ---------------------------------------------------------------------------------

    def transmit(self, frame: can.Message) -> None:
        """Send and record ``frame`` (a failing bus raises BusFault after the rest is recorded).

        No hand-over to the recorder here: the drain that follows every send of a tick does it,
        once the frames received up to the same time are in, so recorded rows go forward in time.
        """
        self.send_now(frame)

    def send_now(self, frame: can.Message) -> None:
        """Send and record ``frame`` with no segment write in between (the safe state)."""
        try:
            sent = self.buses.send(frame)
        except BusFault as fault:
            self.record_tx(fault.sent)
            raise
        self.record_tx(sent)

    def record_tx(self, frames: list[can.Message]) -> None:
        for frame in frames:
            frame.is_rx = False
        self._frames.extend(frames)
        self.frames_tx += len(frames)
        # The monitor sees what the harness sends too, as the offline checks do (they judge every
        # recorded frame): a `when:` on VCU_Command or a counter rule on a sent message.
        for frame in frames:
            breach = self.monitor.on_frame(frame)
            if breach is not None:
                self.deferred = self.deferred or breach_stop(breach)

    # -- receiving -------------------------------------------------------------------------------

    def drain(self, timeout: float, defer: bool = False) -> None:
        """Record and judge every frame at hand; ``defer`` keeps a breach for the next tick."""
        frame = self.buses.recv(timeout=timeout)
        while frame is not None:
            if frame.is_error_frame:
                frame.is_rx = True
                self._frames.append(frame)
                self.frames_rx += 1
                self._on_error_frame(frame)
            elif self.echoes.ids and self.echoes.claims(frame):
                self.record_tx([frame])
                self.echoes.last[(frame.arbitration_id, frame.is_extended_id)] = bytes(frame.data)
            else:
                frame.is_rx = True
                self._frames.append(frame)
                self.frames_rx += 1
                for listener in self.listeners:
                    listener(frame)
                breach = self.monitor.on_frame(frame)
                if breach is not None:
                    if not defer:
                        raise breach_stop(breach)
                    self.deferred = self.deferred or breach_stop(breach)
            frame = self.buses.recv(timeout=0.0)
        self.write()

    def _on_error_frame(self, frame: can.Message) -> None:
        """Record what the controller reports; bus-off ends the run (nothing gets through)."""
        self.error_frames += 1
        bus = self.buses.bus_of(frame)
        name = bus.name if bus is not None else str(frame.channel)
        classes = tuple(error_classes(frame)) or ("unspecified",)
        if (name, classes) not in self._error_seen:  # the first of each kind; counts at run end
            self._error_seen.add((name, classes))
            t = self.now()
            detail = {"bus": name, "classes": list(classes), "data": frame.data.hex()}
            self.recording.event(t, "bus_error", name, detail)
            self.say(f"error frame on {name}: {', '.join(classes)}", t)
        if is_bus_off(frame) and bus is not None:
            raise self.buses.fail(bus, "bus-off (the controller left the bus after errors)")

    # -- to the recorder -------------------------------------------------------------------------

    def write(self, force: bool = False) -> None:
        """Hand frames over in batches (converting a batch is cheaper per frame), but at least
        every :data:`WRITE_EVERY_S` of wall time: the recorder journals each hand-over, which
        bounds what a kill -9 loses, and its segment age bound holds in real time."""
        now = time.monotonic()
        if (
            force
            or len(self._frames) >= WRITE_EVERY_FRAMES
            or now - self._last_write >= WRITE_EVERY_S
        ):
            frames, self._frames = self._frames, []
            self._last_write = now
            self.recording.write_frames(frames)


def breach_stop(breach: Breach) -> StopRun:
    return StopRun("abort", f"check {breach.check!r}: {breach.reason}", breach.check)
