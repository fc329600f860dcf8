"""``crc``: every frame of a message carries a correct CRC8 SAE J1850 (see :mod:`bench.e2e`).

The CRC covers the message's first ``length`` payload bytes except the CRC byte, computed for all
frames at once over the byte matrix. Frames shorter than the message are not checked here (the
``bus`` check counts them as DLC mismatches); the result says how many there were.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from ..e2e import CRC_SIGNAL, crc8_j1850, crc8_j1850_columns, crc_byte_index
from ..summary import CheckResult
from .context import CheckError, EvalContext, NotJudgeable
from .limits import Limits
from .live import Breach, LiveRule
from .registry import CheckKind, register
from .results import count_verdict, make_result
from .spec import CheckSpec
from .streaming import Evidence, one_batch


class CrcCheck(CheckSpec):
    """Every frame of ``crc`` (a message) carries a correct CRC8 (see bench.e2e)."""

    kind: ClassVar[str] = "crc"
    crc: str = Field(description="Message name")
    max_errors: int = Field(0, ge=0)

    def references(self) -> list[tuple[str, str, str]]:
        return [("crc", "message", self.crc)]


class CrcStream:
    """The check batch by batch (:mod:`bench.checks.streaming`): counts and the first evidence
    are carried (each frame is judged alone)."""

    def __init__(self, spec: CrcCheck, ctx: EvalContext) -> None:
        self.spec = spec
        self.message = ctx.message(spec.crc)
        index = crc_byte_index(self.message)
        if index is None:
            raise CheckError(f"{spec.crc} has no byte-aligned 8-bit {CRC_SIGNAL!r} signal to check")
        self.index = index
        self.windows = ctx.during(spec.during)
        self.frames = self.errors = self.short = 0
        self.first: float | None = None
        self.last: float | None = None
        self.evidence = Evidence()

    def feed(self, ctx: EvalContext) -> None:
        times, payload, short = ctx.payloads(self.spec.crc, self.message.length)
        self.short += short
        if self.windows is not None:
            keep = self.windows.contains(times)
            times, payload = times[keep], payload[keep]
        if not times.size:
            return
        index = self.index
        # the shipped DBCs put the CRC in the last byte: the covered bytes are a view, no copy
        covered = (
            payload[:, :index] if index == payload.shape[1] - 1 else np.delete(payload, index, 1)
        )
        bad = crc8_j1850_columns(covered) != payload[:, index]
        self.frames += int(times.size)
        self.errors += int(np.count_nonzero(bad))
        self.evidence.add(times[bad], times[bad])
        if self.first is None:
            self.first = float(times[0])
        self.last = float(times[-1])

    def finish(self, ctx: EvalContext) -> CheckResult:
        spec, errors, short = self.spec, self.errors, self.short
        if not self.frames:
            raise NotJudgeable(f"no complete frames of {spec.crc} to check")
        verdict = count_verdict(errors, spec.max_errors)
        message_text = (
            f"{errors} CRC error(s) in {self.frames} frames (allowed {spec.max_errors})"
            + (f"; {short} short frame(s) not checked" if short else "")
        )
        evidence = self.evidence.windows if errors else [[self.first, self.last]]
        return make_result(
            spec,
            verdict,
            observed={"errors": errors, "frames": self.frames},
            limit={"max_errors": spec.max_errors},
            margin=float(spec.max_errors - errors),
            evidence=evidence,
            evidence_total=self.evidence.total,
            message=message_text,
            signals=[f"{spec.crc}.{CRC_SIGNAL}"],
            details={"short_frames": short, "crc_byte": self.index},
            judged=(errors, Limits(max=spec.max_errors)),
        )


evaluate = one_batch(CrcStream)


class CrcRule(LiveRule):
    """Live: every complete frame of the message inside ``during:`` whose CRC byte differs from
    the CRC8 of its other bytes is an error; the rule breaches at error ``max_errors + 1``."""

    def __init__(self, spec: CrcCheck, dbcs: Any) -> None:
        super().__init__(spec)
        self.crc = spec
        self.messages = {spec.crc}
        self.definition = dbcs.message(spec.crc)
        self.index = crc_byte_index(self.definition)
        self.errors = 0

    def on_frame(self, message, frame, decoded, latest) -> Breach | None:  # type: ignore[override]
        data = bytes(frame.data)
        length = self.definition.length
        if not self.in_scope or self.index is None or len(data) < length:
            return None
        if crc8_j1850(data[: self.index] + data[self.index + 1 : length]) == data[self.index]:
            return None
        self.errors += 1
        if self.errors > self.crc.max_errors:
            return Breach(
                self.spec.name, float(frame.timestamp), f"{self.crc.crc}: CRC error #{self.errors}"
            )
        return None


def validate(spec: CrcCheck, dbcs: Any) -> list[tuple[str, str]]:
    """A message without a byte-aligned 8-bit ``CRC`` signal has nothing to check."""
    if crc_byte_index(dbcs.message(spec.crc)) is None:
        return [("crc", f"{spec.crc} has no byte-aligned 8-bit {CRC_SIGNAL!r} signal to check")]
    return []


KIND = register(
    CheckKind(
        "crc", CrcCheck, evaluate, key="crc", live=CrcRule, validate=validate, stream=CrcStream
    )
)
