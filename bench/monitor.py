"""Live evaluation while a run is under way: latest signal values and abort rules.

The log stays the truth — verdicts come from the recorded frames afterwards. Live evaluation
exists for two things only: the ``until:`` conditions of steps and the live view, which need the
latest value of a few signals; and safety, which cannot wait for the end of the run.

Abort rules are the plan's checks marked ``abort: true`` whose kind has a live rule in the check
registry (:mod:`bench.checks.registry`; today ``range``, ``timeout``, ``counter`` and ``crc``).
Each rule lives in its kind's module and judges as that kind's offline evaluation does: it breaches
at the first frame, tick or step change at which the offline check counts a violation. The monitor
only routes: it decodes each frame of a message someone needs once (cantools, one frame at a
time: a handful of messages at a few hundred frames per second is cheap; the full log is decoded
in columns later), updates the latest values, and hands the frame to the rules of its message.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import can
from cantools.database.can import Message

from .checks.kinds import KINDS
from .checks.limits import slack  # noqa: F401  (re-exported: older imports)
from .checks.live import Breach, LiveRule
from .checks.spec import CheckSpec
from .dbc import DbcSet
from .plan.conditions import Condition

__all__ = ["Breach", "LiveMonitor", "LiveRule"]


class LiveMonitor:
    """Tracks the latest values of the signals it was asked for and judges abort rules."""

    def __init__(
        self,
        dbcs: DbcSet,
        *,
        signals: Iterable[str] = (),
        shown: Iterable[str] = (),
        abort_checks: Iterable[CheckSpec] = (),
    ) -> None:
        self._dbcs = dbcs
        self.latest: dict[str, float] = {}
        self.last_seen: dict[str, float] = {}
        self.frames = 0
        self.current_step: str | None = None
        self._wanted: dict[str, set[str]] = {}  # message -> signals decoded on every frame
        self._shown: dict[str, set[str]] = {}  # message -> signals only the live view shows
        self._last_raw: dict[str, bytes] = {}
        self.rules: list[LiveRule] = []
        self._rules_by_message: dict[str, list[LiveRule]] = {}
        self._by_id: dict[tuple[int, bool], Message] = {}
        self._pending: list[Breach] = []  # found at a step change, returned with the next call
        for name in signals:
            self.watch(name)
        for name in shown:
            self.show(name)
        for spec in abort_checks:
            self._add_rule(spec)
        self._refresh_ids()

    # -- set-up ----------------------------------------------------------------------------------

    def watch(self, reference: str) -> None:
        """Keep ``reference`` up to date on every frame (conditions, controllers, abort rules)."""
        message, _, signal = reference.partition(".")
        self._wanted.setdefault(message, set()).add(signal)
        self.latest.setdefault(reference, math.nan)
        self._refresh_ids()

    def show(self, reference: str) -> None:
        """Make ``reference`` available to :meth:`shown_values` (decoded only when asked)."""
        message, _, signal = reference.partition(".")
        self._shown.setdefault(message, set()).add(signal)
        self._refresh_ids()

    def shown_values(self) -> dict[str, float]:
        """Latest value of every shown signal, decoded now from the last frame of its message."""
        values: dict[str, float] = {}
        for message_name, signals in self._shown.items():
            data = self._last_raw.get(message_name)
            decoded = {}
            if data is not None:
                try:
                    decoded = self._dbcs.message(message_name).decode(
                        data, decode_choices=False, allow_truncated=True
                    )
                except Exception:
                    decoded = {}
            for signal in sorted(signals):
                values[f"{message_name}.{signal}"] = float(decoded.get(signal, math.nan))
        return values

    def watch_condition(self, condition: Condition) -> None:
        for name in condition.signals:
            self.watch(name)

    def _refresh_ids(self) -> None:
        for message_name in self._messages_of_interest():
            message = self._dbcs.message(message_name)
            self._by_id[(message.frame_id, message.is_extended_frame)] = message

    def _add_rule(self, spec: CheckSpec) -> None:
        kind = KINDS.get(spec.kind)
        if kind is None or kind.live is None:
            raise ValueError(f"check {spec.name!r} ({spec.kind}) has no live rule")
        rule = kind.live(spec, self._dbcs)
        self.rules.append(rule)
        for name in rule.signals:
            self.watch(name)
        for message in rule.messages:
            self._rules_by_message.setdefault(message, []).append(rule)

    def _messages_of_interest(self) -> set[str]:
        return set(self._wanted) | set(self._shown) | set(self._rules_by_message)

    @staticmethod
    def live_checks(checks: Iterable[CheckSpec]) -> tuple[list[CheckSpec], list[CheckSpec]]:
        """Split ``abort: true`` checks into those judged live and those that cannot be."""
        live, not_live = [], []
        for spec in checks:
            if spec.abort:
                kind = KINDS.get(spec.kind)
                (live if kind is not None and kind.live is not None else not_live).append(spec)
        return live, not_live

    # -- running ---------------------------------------------------------------------------------

    def start(self, t: float) -> None:
        """The run starts: arm rules that are not step-scoped (timeouts)."""
        for rule in self.rules:
            rule.start(t)

    def enter_step(self, name: str, t: float) -> Breach | None:
        """Step ``name`` starts at ``t``; a rule whose ``during:`` window closes here may breach
        (a violation that lasted ``for`` until the window's end). The runner may ignore the
        return value: a breach found here is also returned by the next :meth:`on_frame` or
        :meth:`on_tick`."""
        self.current_step = name
        first: Breach | None = None
        for rule in self.rules:
            breach = rule.enter_step(name, t)
            if breach is not None:
                if first is None:
                    first = breach
                else:
                    self._pending.append(breach)
        if first is not None:
            self._pending.append(first)
        return first

    def _take_pending(self) -> Breach | None:
        return self._pending.pop(0) if self._pending else None

    def on_frame(self, frame: can.Message) -> Breach | None:
        """Take one received frame; a Breach if an abort rule is violated now."""
        self.frames += 1
        pending = self._take_pending()
        message = self._by_id.get((frame.arbitration_id, frame.is_extended_id))
        if message is None or frame.is_error_frame or frame.is_remote_frame:
            return pending
        t = frame.timestamp
        self.last_seen[message.name] = t
        if message.name in self._shown:
            self._last_raw[message.name] = bytes(frame.data)
        rules = self._rules_by_message.get(message.name, ())
        decoded = None
        if message.name in self._wanted or rules:
            try:
                decoded = message.decode(bytes(frame.data), decode_choices=False)
            except Exception:  # short or damaged: not a sample offline either; the log keeps it
                decoded = None
        if decoded is not None:
            for signal in self._wanted.get(message.name, ()):
                if signal in decoded:
                    self.latest[f"{message.name}.{signal}"] = float(decoded[signal])
        breach = pending
        for rule in rules:
            found = rule.on_frame(message, frame, decoded, self.latest)
            breach = breach or found
        return breach

    def on_tick(self, t: float) -> Breach | None:
        """Time-based rules: a message that stopped arriving."""
        breach = self._take_pending()
        for rule in self.rules:
            found = rule.on_tick(t)
            breach = breach or found
        return breach
