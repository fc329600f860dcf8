"""Live evaluation while a run is under way: latest signal values and abort rules.

The log stays the truth — verdicts come from the recorded frames afterwards. Live evaluation
exists for two things only: the ``until:`` conditions of steps and the live view, which need the
latest value of a few signals; and safety, which cannot wait for the end of the run.

Abort rules are the plan's checks marked ``abort: true`` of the kinds that can be judged frame by
frame — ``range`` (hard limits; ``for:``, ``when:`` and ``during:`` honoured), ``timeout``,
``counter`` and ``crc`` — evaluated on every arriving frame of their message (timeouts on every
tick). Only the messages someone needs are decoded (cantools, one frame at a time: a handful of
messages at a few hundred frames per second is cheap; the full log is decoded in columns later).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import can
from cantools.database.can import Message

from .checks.context import slack
from .dbc import DbcSet
from .e2e import crc8_j1850, crc_byte_index
from .plan.checks import CheckSpec, CounterCheck, CrcCheck, RangeCheck, TimeoutCheck
from .plan.conditions import Condition

LIVE_KINDS = (RangeCheck, TimeoutCheck, CounterCheck, CrcCheck)


@dataclass(frozen=True)
class Breach:
    """Why the run must stop now."""

    check: str
    time: float
    reason: str


@dataclass
class _RangeRule:
    spec: RangeCheck
    message: str
    signal: str
    violating_since: float | None = None
    worst: float = math.nan


def _outside(value: float, low: float | None, high: float | None) -> bool:
    """Outside the limits as the offline range check judges it: NaN is outside; limits get the
    slack DBC floating-point scaling needs (raw 403 × 0.1 must not breach ``max: 40.3``)."""
    if math.isnan(value):
        return True
    if high is not None and value > high + slack(high):
        return True
    return low is not None and value < low - slack(low)


@dataclass
class _TimeoutRule:
    spec: TimeoutCheck
    armed_at: float | None = None


@dataclass
class _CounterRule:
    spec: CheckSpec
    errors: int = 0
    last: int | None = None


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
        self._range: dict[str, list[_RangeRule]] = {}
        self._timeouts: list[_TimeoutRule] = []
        self._counters: dict[str, list[_CounterRule]] = {}
        self._crcs: dict[str, list[_CounterRule]] = {}
        self._by_id: dict[tuple[int, bool], Message] = {}
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
        if isinstance(spec, RangeCheck):
            message = spec.signal.partition(".")[0]
            self.watch(spec.signal)
            if spec.when is not None:
                for name in spec.when.signals:
                    self.watch(name)
            self._range.setdefault(message, []).append(_RangeRule(spec, message, spec.signal))
        elif isinstance(spec, TimeoutCheck):
            self._timeouts.append(_TimeoutRule(spec))
            self.last_seen.setdefault(spec.timeout, math.nan)
        elif isinstance(spec, CounterCheck):
            self._counters.setdefault(spec.counter.partition(".")[0], []).append(_CounterRule(spec))
        elif isinstance(spec, CrcCheck):
            self._crcs.setdefault(spec.crc, []).append(_CounterRule(spec))

    def _messages_of_interest(self) -> set[str]:
        return (
            set(self._wanted)
            | set(self._shown)
            | set(self._range)
            | set(self._counters)
            | set(self._crcs)
            | {rule.spec.timeout for rule in self._timeouts}
        )

    @staticmethod
    def live_checks(checks: Iterable[CheckSpec]) -> tuple[list[CheckSpec], list[CheckSpec]]:
        """Split ``abort: true`` checks into those judged live and those that cannot be."""
        live, not_live = [], []
        for spec in checks:
            if spec.abort:
                (live if isinstance(spec, LIVE_KINDS) else not_live).append(spec)
        return live, not_live

    # -- running ---------------------------------------------------------------------------------

    def start(self, t: float) -> None:
        """Arm timeouts that are not step-scoped."""
        for rule in self._timeouts:
            if not rule.spec.during:
                rule.armed_at = t

    def enter_step(self, name: str, t: float) -> None:
        self.current_step = name
        for rule in self._timeouts:
            if rule.spec.during:
                rule.armed_at = t if name in rule.spec.during else None

    def on_frame(self, frame: can.Message) -> Breach | None:
        """Take one received frame; a Breach if an abort rule is violated now."""
        self.frames += 1
        message = self._by_id.get((frame.arbitration_id, frame.is_extended_id))
        if message is None or frame.is_error_frame or frame.is_remote_frame:
            return None
        t = frame.timestamp
        self.last_seen[message.name] = t
        if message.name in self._shown:
            self._last_raw[message.name] = bytes(frame.data)
        breach = self._check_e2e(message, frame, t)
        if message.name not in self._wanted:
            return breach
        try:
            decoded = message.decode(bytes(frame.data), decode_choices=False)
        except Exception:  # short or damaged: not a sample offline either; the log keeps it
            return breach
        wanted = self._wanted.get(message.name, ())
        for signal in wanted:
            if signal in decoded:
                self.latest[f"{message.name}.{signal}"] = float(decoded[signal])
        return breach or self._check_ranges(message.name, t, decoded)

    def on_tick(self, t: float) -> Breach | None:
        """Time-based rules: a message that stopped arriving."""
        for rule in self._timeouts:
            if rule.armed_at is None:
                continue
            since = self.last_seen.get(rule.spec.timeout, math.nan)
            reference = rule.armed_at if math.isnan(since) or since < rule.armed_at else since
            if t - reference > rule.spec.max_gap:
                return Breach(
                    rule.spec.name,
                    t,
                    f"{rule.spec.timeout} not received for {t - reference:.3f} s "
                    f"(max_gap {rule.spec.max_gap:g} s)",
                )
        return None

    def _in_scope(self, spec: CheckSpec) -> bool:
        return not spec.during or self.current_step in spec.during

    def _check_ranges(self, message: str, t: float, decoded: dict) -> Breach | None:
        """Judge the range rules of ``message`` at this frame, as the offline check would.

        Only a frame that carries the signal is a sample (absent multiplexed values are not). A
        violation is a run of judged out-of-limit samples (NaN counts as outside) lasting from its
        first sample until the next sample of the signal; with ``for:`` it breaches once that
        duration reaches ``for``. Limits get the offline check's floating-point slack.
        """
        for rule in self._range.get(message, ()):
            spec = rule.spec
            signal = rule.signal.partition(".")[2]
            if signal not in decoded:
                continue
            value = float(decoded[signal])
            judged = self._in_scope(spec)
            if judged and spec.when is not None:
                judged = bool(spec.when.evaluate(self.latest))
            outside = judged and _outside(value, spec.min, spec.max)
            since = rule.violating_since
            if since is not None and t - since >= (spec.for_ or 0.0):
                return self._range_breach(rule, t, since)
            if not outside:
                rule.violating_since = None
                continue
            if since is None:
                rule.violating_since = t
                rule.worst = value
            elif math.isnan(value) or abs(value) > abs(rule.worst):
                rule.worst = value
            if not spec.for_:
                return self._range_breach(rule, t, t)
        return None

    def _range_breach(self, rule: _RangeRule, t: float, since: float) -> Breach:
        spec, value = rule.spec, rule.worst
        if math.isnan(value):
            beyond = "not a number"
        elif spec.max is not None and value > spec.max:
            beyond = f"beyond max {spec.max:g}"
        else:
            beyond = f"beyond min {spec.min:g}"
        unit = self._dbcs.signal(rule.signal).signal.unit or ""
        lasted = f" for {t - since:.3f} s" if spec.for_ else ""
        return Breach(spec.name, t, f"{rule.signal} = {value:g} {unit} {beyond}{lasted}")

    def _check_e2e(self, message: Message, frame: can.Message, t: float) -> Breach | None:
        data = bytes(frame.data)
        for rule in self._crcs.get(message.name, ()):
            if not self._in_scope(rule.spec):
                continue
            index = crc_byte_index(message)
            if index is None or len(data) <= index:
                continue
            if crc8_j1850(data[:index] + data[index + 1 : message.length]) != data[index]:
                rule.errors += 1
                if rule.errors > rule.spec.max_errors:  # type: ignore[attr-defined]
                    return Breach(rule.spec.name, t, f"{message.name}: CRC error #{rule.errors}")
        for rule in self._counters.get(message.name, ()):
            if not self._in_scope(rule.spec):
                rule.last = None  # the offline check judges only pairs inside its windows
                continue
            signal_name = rule.spec.counter.partition(".")[2]  # type: ignore[attr-defined]
            try:
                decoded = message.decode(data, decode_choices=False, scaling=False)
                value = int(decoded[signal_name])
            except Exception:
                continue
            modulus = 1 << message.get_signal_by_name(signal_name).length
            if rule.last is not None and value != (rule.last + 1) % modulus:
                rule.errors += 1
                if rule.errors > rule.spec.max_errors:  # type: ignore[attr-defined]
                    return Breach(
                        rule.spec.name,
                        t,
                        f"{message.name}: alive counter jumped {rule.last} -> {value}",
                    )
            rule.last = value
        return None
