"""``crc``: every frame of a message carries a correct CRC8 SAE J1850 (see :mod:`bench.e2e`).

The CRC covers the message's first ``length`` payload bytes except the CRC byte, computed for all
frames at once over the byte matrix. Frames shorter than the message are not checked here (the
``bus`` check counts them as DLC mismatches); the result says how many there were.
"""

from __future__ import annotations

import numpy as np

from ..e2e import CRC_SIGNAL, crc8_j1850_columns, crc_byte_index
from ..plan.checks import CrcCheck
from ..summary import CheckResult
from . import count_verdict, make_result, register
from .context import CheckError, EvalContext, NotJudgeable


@register("crc")
def evaluate(spec: CrcCheck, ctx: EvalContext) -> CheckResult:
    message = ctx.message(spec.crc)
    index = crc_byte_index(message)
    if index is None:
        raise CheckError(f"{spec.crc} has no byte-aligned 8-bit {CRC_SIGNAL!r} signal to check")
    windows = ctx.during(spec.during)
    times, payload, short = ctx.payloads(spec.crc, message.length)
    if windows is not None:
        keep = windows.contains(times)
        times, payload = times[keep], payload[keep]
    if times.size == 0:
        raise NotJudgeable(f"no complete frames of {spec.crc} to check")
    # the shipped DBCs put the CRC in the last byte: then the covered bytes are a view, no copy
    covered = payload[:, :index] if index == payload.shape[1] - 1 else np.delete(payload, index, 1)
    bad = crc8_j1850_columns(covered) != payload[:, index]
    errors = int(np.count_nonzero(bad))
    verdict = count_verdict(errors, spec.max_errors)
    message_text = f"{errors} CRC error(s) in {times.size} frames (allowed {spec.max_errors})" + (
        f"; {short} short frame(s) not checked" if short else ""
    )
    evidence = np.column_stack((times[bad], times[bad])) if errors else [[times[0], times[-1]]]
    return make_result(
        spec,
        verdict,
        observed={"errors": errors, "frames": int(times.size)},
        limit={"max_errors": spec.max_errors},
        margin=float(spec.max_errors - errors),
        evidence=evidence,
        message=message_text,
        signals=[f"{spec.crc}.{CRC_SIGNAL}"],
        details={"short_frames": short, "crc_byte": index},
    )
