"""``counter``: an alive counter increments by exactly one per frame, modulo 2**length.

Values are the decoded counter signal turned back into raw counts (``(value - offset) / scale``),
so a scaled counter works too. Every step between consecutive frames whose difference modulo the
range is not one is an error: a repeated value (frozen counter), a skip (lost frames) or a jump.
With ``during:``, only steps inside one step window are judged.
"""

from __future__ import annotations

import numpy as np

from ..plan.checks import CounterCheck
from ..summary import CheckResult
from . import count_verdict, make_result, register
from .context import EvalContext, NotJudgeable, consecutive_pairs


@register("counter")
def evaluate(spec: CounterCheck, ctx: EvalContext) -> CheckResult:
    signal = ctx.dbcs.signal(spec.counter).signal
    windows = ctx.during(spec.during)
    series = ctx.samples(spec.counter)
    finite = ~np.isnan(series.values)
    times = series.times[finite]
    values = series.values[finite]
    if signal.offset != 0 or signal.scale != 1:
        values = np.rint((values - signal.offset) / signal.scale)
    raw = values.astype(np.int64)
    pairs = consecutive_pairs(times, windows)
    if not pairs.any():
        raise NotJudgeable(f"{times.size} value(s) of {spec.counter}: no consecutive pair to judge")
    modulus = 1 << signal.length
    steps = (raw[1:] - raw[:-1]) & (modulus - 1)  # modulo a power of two, negatives included
    bad = pairs & (steps != 1)
    errors = int(np.count_nonzero(bad))
    checked = int(np.count_nonzero(pairs))
    verdict = count_verdict(errors, spec.max_errors)
    repeated = int(np.count_nonzero(bad & (steps == 0)))
    skipped = errors - repeated
    message = (
        f"{errors} counter error(s) in {checked} increments (allowed {spec.max_errors}): "
        f"{repeated} repeated, {skipped} skipped or jumped; counts modulo {modulus}"
    )
    starts, ends = times[:-1], times[1:]
    evidence = np.column_stack((starts[bad], ends[bad])) if errors else [[times[0], times[-1]]]
    return make_result(
        spec,
        verdict,
        observed={"errors": errors, "increments": checked},
        limit={"max_errors": spec.max_errors, "modulus": modulus},
        margin=float(spec.max_errors - errors),
        evidence=evidence,
        message=message,
        details={"repeated": repeated, "skipped": skipped},
    )
