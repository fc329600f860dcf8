"""``counter``: an alive counter increments by exactly one per frame, modulo 2**length.

Values are the decoded counter signal turned back into raw counts (``(value - offset) / scale``),
so a scaled counter works too. Every step between consecutive frames whose difference modulo the
range is not one is an error: a repeated value (frozen counter), a skip (lost frames) or a jump.
With ``during:``, only steps inside one step window are judged.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from ..summary import CheckResult
from .context import EvalContext, NotJudgeable, consecutive_pairs
from .limits import Limits
from .live import Breach, LiveRule
from .registry import CheckKind, register
from .results import count_verdict, make_result
from .spec import CheckSpec
from .streaming import Evidence, one_batch


class CounterCheck(CheckSpec):
    """``counter`` (Message.Signal) increments by one per frame, modulo its range."""

    kind: ClassVar[str] = "counter"
    counter: str = Field(description="Message.Signal")
    max_errors: int = Field(0, ge=0)

    def references(self) -> list[tuple[str, str, str]]:
        return [("counter", "signal", self.counter)]


class CounterStream:
    """The check batch by batch (:mod:`bench.checks.streaming`): the last count before a batch
    is the first of its pairs; counts and the first evidence are carried."""

    def __init__(self, spec: CounterCheck, ctx: EvalContext) -> None:
        self.spec = spec
        self.signal = ctx.dbcs.signal(spec.counter).signal
        self.windows = ctx.during(spec.during)
        self.modulus = 1 << self.signal.length
        self.last_t, self.last_raw = np.zeros(0), np.zeros(0, np.int64)
        self.values = self.errors = self.checked = self.repeated = 0
        self.first: float | None = None
        self.evidence = Evidence()

    def feed(self, ctx: EvalContext) -> None:
        series = ctx.samples(self.spec.counter)
        finite = ~np.isnan(series.values)
        times, values = series.times[finite], series.values[finite]
        if not times.size:
            return
        signal = self.signal
        if signal.offset != 0 or signal.scale != 1:
            values = np.rint((values - signal.offset) / signal.scale)
        raw = values.astype(np.int64)
        self.values += int(times.size)
        if self.first is None:
            self.first = float(times[0])
        if self.last_t.size:
            times, raw = np.concatenate((self.last_t, times)), np.concatenate((self.last_raw, raw))
        self.last_t, self.last_raw = times[-1:], raw[-1:]
        pairs = consecutive_pairs(times, self.windows)
        steps = (raw[1:] - raw[:-1]) & (self.modulus - 1)  # modulo a power of two
        bad = pairs & (steps != 1)
        self.checked += int(np.count_nonzero(pairs))
        self.errors += int(np.count_nonzero(bad))
        self.repeated += int(np.count_nonzero(bad & (steps == 0)))
        self.evidence.add(times[:-1][bad], times[1:][bad])

    def finish(self, ctx: EvalContext) -> CheckResult:
        spec, errors, checked, modulus = self.spec, self.errors, self.checked, self.modulus
        if not checked:
            raise NotJudgeable(
                f"{self.values} value(s) of {spec.counter}: no consecutive pair to judge"
            )
        verdict = count_verdict(errors, spec.max_errors)
        repeated = self.repeated
        skipped = errors - repeated
        message = (
            f"{errors} counter error(s) in {checked} increments (allowed {spec.max_errors}): "
            f"{repeated} repeated, {skipped} skipped or jumped; counts modulo {modulus}"
        )
        last = float(self.last_t[-1])
        evidence = self.evidence.windows if errors else [[self.first, last]]
        return make_result(
            spec,
            verdict,
            observed={"errors": errors, "increments": checked},
            limit={"max_errors": spec.max_errors, "modulus": modulus},
            margin=float(spec.max_errors - errors),
            evidence=evidence,
            evidence_total=self.evidence.total,
            message=message,
            details={"repeated": repeated, "skipped": skipped},
            judged=(errors, Limits(max=spec.max_errors)),
        )


evaluate = one_batch(CounterStream)


class CounterRule(LiveRule):
    """Live: every decoded sample of the counter inside ``during:`` (NaN skipped) after another
    one in the same step window must be the previous raw count + 1 modulo ``2**length``; the rule
    breaches at the frame of error number ``max_errors + 1``."""

    def __init__(self, spec: CounterCheck, dbcs: Any) -> None:
        super().__init__(spec)
        self.counter = spec
        self.message, _, self.signal_name = spec.counter.partition(".")
        self.messages = {self.message}
        signal = dbcs.signal(spec.counter).signal
        self.scale, self.offset = signal.scale, signal.offset
        self.modulus = 1 << signal.length
        self.errors = 0
        self.last: int | None = None

    def enter_step(self, name: str, t: float) -> Breach | None:
        was_in = self.in_scope
        super().enter_step(name, t)
        if was_in != self.in_scope:
            self.last = None  # offline judges only pairs inside one window
        return None

    def on_frame(self, message, frame, decoded, latest) -> Breach | None:  # type: ignore[override]
        if not self.in_scope:
            self.last = None
            return None
        if decoded is None or self.signal_name not in decoded:
            return None
        value = float(decoded[self.signal_name])
        if math.isnan(value):
            return None
        raw = round((value - self.offset) / self.scale)
        last, self.last = self.last, raw
        if last is None or (raw - last) % self.modulus == 1:
            return None
        self.errors += 1
        if self.errors > self.counter.max_errors:
            return Breach(
                self.spec.name,
                float(frame.timestamp),
                f"{self.message}: alive counter jumped {last} -> {raw}",
            )
        return None


_COUNTER_WORDS = ("counter", "cnt", "alive")
_MAX_COUNTER_BITS = 16


def is_alive_counter(signal: Any) -> bool:
    """An alive counter: an unsigned integer signal (not a float) of at most 16 bits whose name
    says it counts (``AliveCounter``, ``MsgCntr``, ``RollingCounter``, ``E2E_Alive`` …)."""
    name = signal.name.lower()
    return (
        any(word in name for word in _COUNTER_WORDS)
        and not signal.is_float
        and not signal.is_signed
        and signal.length <= _MAX_COUNTER_BITS
    )


def validate(spec: CounterCheck, dbcs: Any) -> list[tuple[str, str]]:
    signal = dbcs.signal(spec.counter).signal
    if is_alive_counter(signal):
        return []
    return [
        (
            "counter",
            f"{spec.counter} is not an alive counter (expected an unsigned integer signal of at "
            "most 16 bits named like AliveCounter, MsgCntr or RollingCounter)",
        )
    ]


KIND = register(
    CheckKind(
        "counter",
        CounterCheck,
        evaluate,
        key="counter",
        live=CounterRule,
        validate=validate,
        stream=CounterStream,
    )
)
