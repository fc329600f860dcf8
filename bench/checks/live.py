"""Live abort rules: the frame-by-frame form of a check kind, judged while a run is under way.

A kind that can be judged frame by frame gives its :class:`~bench.checks.registry.CheckKind` a
``live`` factory returning a :class:`LiveRule`. The rule must agree with the kind's offline
evaluation: it breaches at the first frame (or tick, or step change) at which the offline check,
given the frames so far, counts a violation — and never earlier (tests/oracle proves it on random
inputs). Its state is explicit attributes, so it could carry across batches of frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import can
from cantools.database.can import Message

from .spec import CheckSpec, step_matches


@dataclass(frozen=True)
class Breach:
    """Why the run must stop now: the check, the time (s, bus clock) and a one-line reason."""

    check: str
    time: float
    reason: str


class LiveRule:
    """Base of a live abort rule. Subclasses set ``messages`` (names whose frames they read) and
    ``signals`` (``Message.Signal`` the monitor must keep current for them) and override the
    hooks they need; every hook returns a :class:`Breach` or None."""

    def __init__(self, spec: CheckSpec) -> None:
        self.spec = spec
        self.messages: set[str] = set()
        self.signals: list[str] = []
        self.step: str | None = None

    @property
    def in_scope(self) -> bool:
        """Inside one of the ``during:`` steps (always, without ``during:``)."""
        during = self.spec.during
        return not during or (self.step is not None and any(step_matches(p, self.step)
                                                             for p in during))  # fmt: skip

    def start(self, t: float) -> None:
        """The run starts at ``t``."""

    def enter_step(self, name: str, t: float) -> Breach | None:
        """Step ``name`` starts at ``t`` (the previous one ended then)."""
        self.step = name
        return None

    def on_frame(
        self,
        message: Message,
        frame: can.Message,
        decoded: Mapping[str, Any] | None,
        latest: Mapping[str, float],
    ) -> Breach | None:
        """A frame of one of ``messages``; ``decoded`` is None when it does not decode (short
        or damaged: not a sample offline either); ``latest`` holds every watched signal's
        latest value, this frame's included."""
        return None

    def on_tick(self, t: float) -> Breach | None:
        """Time passes without a frame (timeouts)."""
        return None
