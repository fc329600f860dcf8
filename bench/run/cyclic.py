"""Cyclic send tasks: constant periodic sends handed to python-can (the kernel's BCM on SocketCAN).

In real time on SocketCAN, a periodic send whose values do not change is handed to python-can's
``send_periodic`` as one pre-encoded frame per alive-counter value: the kernel's broadcast
manager keeps its period exact however busy the runner is. Its frames come back on the runner's
raw socket (local loopback) and are recorded as ``tx`` (:class:`~bench.run.pump.Echoes`). Ramps
and controllers stay in the scheduler; a send moves between the two when its values start or stop
varying, and its alive counter runs on without a jump.
"""

from __future__ import annotations

import time
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from ..bus import BusFault
from ..stimuli import StimulusScheduler
from .pump import FramePump
from .recording import Recording


@dataclass
class CyclicTask:
    """A periodic send the kernel sends: its python-can tasks (one per bus), period and route."""

    period: float
    route: tuple[int, bool]
    tasks: list[Any]


class CyclicSends:
    """Keeps the scheduler's constant periodic sends in python-can cyclic send tasks."""

    def __init__(self, scheduler: StimulusScheduler, pump: FramePump, recording: Recording) -> None:
        self.scheduler = scheduler
        self.pump = pump
        self.recording = recording
        self.tasks: dict[str, CyclicTask] = {}
        self._seen: dict[str, tuple[int, int]] = {}  # send's (generation, revision) last looked at

    def sync(self, t: float) -> None:
        """Hand constant periodic sends to cyclic tasks; take them back when their values vary.

        Runs every real-time tick, so it looks only at sends whose state changed since.
        """
        scheduler, buses = self.scheduler, self.pump.buses
        for name in list(self._seen):
            if not scheduler.is_running(name):
                del self._seen[name]
                if name in self.tasks:
                    self._take_back(name)
        for name in scheduler.running:
            stimulus = scheduler.stimulus(name)
            assert stimulus is not None and stimulus.period is not None
            state = (stimulus.generation, stimulus.revision)
            if self._seen.get(name) == state:
                continue
            self._seen[name] = state
            current = self.tasks.get(name)
            constant = scheduler.is_constant(name)
            if current is not None and constant and current.period == stimulus.period:
                # New values, same period: swap the frames in place. The kernel keeps its timer
                # and its place in the frame list, and frame i still carries counter base + i
                # (cycle_frames starts from the same counter each time), so the alive counter
                # on the bus runs on without a jump.
                frames = scheduler.cycle_frames(name, t)
                for task in current.tasks:
                    task.modify_data(frames)
                scheduler.offload(name)  # a replaced send is a new object
                continue
            if current is not None:
                self._take_back(name)
            message = stimulus.message
            key = (message.frame_id, message.is_extended_frame)
            if constant and buses.can_send_periodic(key):
                frames = scheduler.cycle_frames(name, t)
                tasks = buses.send_periodic(frames, stimulus.period)
                scheduler.offload(name)
                self.tasks[name] = CyclicTask(stimulus.period, key, tasks)
                self.pump.echoes.ids.add(key)
                detail = {"sender": "kernel (BCM)", "frames": len(frames), "every": stimulus.period}
                self.recording.event(t, "stimulus", name, detail)

    def _take_back(self, name: str) -> None:
        current = self.tasks.pop(name)
        for task in current.tasks:
            with suppress(Exception):
                task.stop()
        if not self.scheduler.is_running(name):
            return
        # The scheduler takes over where the kernel stopped: read the kernel's last frames
        # (already looped back) and go on counting after the last one.
        with suppress(BusFault):
            self.pump.drain(timeout=0.0, defer=True)
        last = self.pump.echoes.last.get(current.route)
        if last is not None:
            self.scheduler.continue_counter_after(name, last)
        self.scheduler.reclaim(name, time.time())

    def stop(self, names: list[str], t: float) -> None:
        """Stop the cyclic tasks of ``names`` at once (one TX_DELETE each).

        The safe state must be the last word: a task still holding the old values could send
        one more unsafe frame after the safe one. The scheduler holds them until the next
        :meth:`sync` hands them back to the kernel with the safe values.
        """
        for name in names:
            current = self.tasks.pop(name, None)
            if current is None:
                continue
            for task in current.tasks:
                with suppress(Exception):
                    task.stop()
            self._seen.pop(name, None)
            if self.scheduler.is_running(name):
                self.scheduler.reclaim(name, t)
