"""Checks judged batch by batch: a kind's *reducer* carries its state across batch borders.

A log is judged in batches of frames in time order (:func:`bench.evaluate.judge_batches`). A kind
that registers ``stream`` (:class:`~bench.checks.registry.CheckKind`) is a reducer: built once
before the first batch (``stream(spec, ctx)``, where ``ctx`` knows the events and the log's span
but no frames), fed every batch as an :class:`~bench.checks.context.EvalContext` of that batch
(``feed``), and asked for its result at the end (``finish``, with the context of the whole log's
counts). Its ``evaluate`` is the same reducer fed the whole log as one batch (:func:`one_batch`):
one code path, whatever the batch size.

What a reducer carries is what makes it exact at a border: the last frame or sample before it
(gaps, counter steps, slopes, runs), the last value of every signal a condition reads (as-of
joins: :class:`Carry`), counts, extremes, the first :data:`MAX_EVIDENCE` evidence windows and
their total. Batches never split a run of equal timestamps, so "the latest sample at or before
t" is the latest of the batch holding t, or the carried one.

A kind without ``stream`` is judged at the end on the rows it reads, kept batch by batch
(:mod:`bench.checks.compact`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from fractions import Fraction
from typing import Any, Protocol

import numpy as np

from ..plan.conditions import Condition
from ..summary import CheckResult
from .context import CheckError, EvalContext, NotJudgeable
from .results import MAX_EVIDENCE


class Reducer(Protocol):
    def feed(self, ctx: EvalContext) -> None: ...

    def finish(self, ctx: EvalContext) -> CheckResult: ...


def one_batch(factory: Callable[[Any, EvalContext], Reducer]) -> Callable[..., CheckResult]:
    """A kind's ``evaluate``: its reducer fed the whole log as one batch."""

    def evaluate(spec: Any, ctx: EvalContext) -> CheckResult:
        reducer = factory(spec, ctx)
        reducer.feed(ctx)
        return reducer.finish(ctx)

    evaluate.__doc__ = f"Evaluate on the whole log as one batch ({factory.__qualname__})."
    return evaluate


class Evidence:
    """The first :data:`MAX_EVIDENCE` windows, in the order added, and how many there were."""

    def __init__(self) -> None:
        self.windows = np.zeros((0, 2))
        self.total = 0

    def add(self, starts: np.ndarray, ends: np.ndarray) -> None:
        self.total += int(starts.size)
        room = MAX_EVIDENCE - len(self.windows)
        if room > 0 and starts.size:
            taken = np.column_stack((starts[:room], ends[:room])).astype(float)
            self.windows = np.concatenate((self.windows, taken))


class Carry:
    """The last sample of each signal of earlier batches: as-of joins across batch borders."""

    def __init__(self, references: Iterable[str]) -> None:
        self.last: dict[str, float] = {reference: np.nan for reference in references}
        self.seen: dict[str, bool] = dict.fromkeys(self.last, False)

    def values_at(self, ctx: EvalContext, times: np.ndarray) -> dict[str, np.ndarray]:
        """:meth:`EvalContext.values_at` over everything up to this batch."""
        times = np.asarray(times, dtype=np.float64)
        env: dict[str, np.ndarray] = {}
        for reference, last in self.last.items():
            series = ctx.samples(reference)
            before = np.float64(last) if self.seen[reference] else np.nan
            if series.times.size == 0:
                env[reference] = np.full(times.shape, before)
                continue
            index = np.searchsorted(series.times, times, side="right") - 1
            values = series.values[np.maximum(index, 0)]
            env[reference] = np.where(index >= 0, values, before)
        return env

    def condition_at(self, ctx: EvalContext, condition: Condition, times: np.ndarray) -> np.ndarray:
        result = condition.evaluate(self.values_at(ctx, times))
        return np.broadcast_to(np.asarray(result, dtype=bool), np.shape(times)).copy()

    def update(self, ctx: EvalContext) -> None:
        """After a batch: keep each signal's last sample."""
        for reference in self.last:
            series = ctx.samples(reference)
            if series.times.size:
                self.last[reference] = float(series.values[-1])
                self.seen[reference] = True


class ExactSum:
    """The exact sum of float64 values, batch by batch; :meth:`mean` correctly rounded.

    Each value is an integer times a power of two (``numpy.frexp``): the integers of one
    exponent are summed in int64 blocks that cannot overflow, the blocks as Python integers.
    So the mean does not depend on how the values were split into batches (a float running sum
    or numpy's pairwise sum would, in the last bits)."""

    _BLOCK = 512  # 512 values below 2**53 cannot overflow int64
    _UNIT = 1127  # 1074 + 53: every finite float64 is a whole number of 2**-1127

    def __init__(self) -> None:
        self.total = 0  # in units of 2**-_UNIT (below the smallest subnormal's mantissa step)
        self.count = 0

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        self.count += int(values.size)
        if not values.size:
            return
        fraction, exponent = np.frexp(values)
        mantissa = np.ldexp(fraction, 53).astype(np.int64)
        shift = exponent.astype(np.int64) - 53 + self._UNIT
        for value in np.unique(shift):
            part = mantissa[shift == value]
            blocks = np.add.reduceat(part, np.arange(0, part.size, self._BLOCK))
            self.total += sum(blocks.tolist()) << int(value)

    def mean(self) -> float:
        return float(Fraction(self.total, self.count << self._UNIT))


def top_k(kept: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` largest of ``kept`` and ``values`` (any order)."""
    joined = np.concatenate((kept, values)) if kept.size else values
    if joined.size <= k:
        return joined
    return np.partition(joined, joined.size - k)[joined.size - k :]


class JudgedStream:
    """The samples of a signal check batch by batch, with the mask
    :func:`~bench.checks.context.judged_samples` gives (``during:`` windows, ``when:`` as-of
    joined with :class:`Carry`), and its reasons for "nothing to judge" (:meth:`check`)."""

    def __init__(self, spec: Any, ctx: EvalContext) -> None:
        self.reference = spec.signal
        self.during = spec.during
        self.windows = ctx.during(spec.during)  # before looking at data, as judged_samples
        try:
            ctx.dbcs.signal(self.reference)
        except KeyError as exc:
            raise CheckError(str(exc.args[0])) from None
        self.when: Condition | None = getattr(spec, "when", None)
        self.carry = Carry(self.when.signals) if self.when is not None else None
        self.samples = 0
        self.in_windows = False
        self.when_held = False
        self.error: CheckError | None = None

    def batch(self, ctx: EvalContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(times, values, judged) of this batch's samples."""
        series = ctx.samples(self.reference)
        times, values = series.times, series.values
        judged = np.ones(times.size, dtype=bool)
        self.samples += int(times.size)
        if self.windows is not None:
            judged &= self.windows.contains(times)
            self.in_windows |= bool(judged.any())
        if self.carry is not None and self.error is None:
            assert self.when is not None
            try:
                judged &= self.carry.condition_at(ctx, self.when, times)
                self.carry.update(ctx)
            except CheckError as exc:  # said after "no samples", as judged_samples does
                self.error = exc
            self.when_held |= bool(judged.any())
        return times, values, judged

    def check(self) -> None:
        """Raise :class:`NotJudgeable` as ``judged_samples`` would on the whole log."""
        reference = self.reference
        if not self.samples:
            message = reference.partition(".")[0]
            raise NotJudgeable(f"no samples of {reference} in the log (no frames of {message})")
        if self.windows is not None and not self.in_windows:
            raise NotJudgeable(f"no samples of {reference} during {', '.join(self.during)}")
        if self.error is not None:
            raise self.error
        if self.when is not None and not self.when_held:
            raise NotJudgeable(f"no samples of {reference} judged: when {self.when} never held")


class LastJudged:
    """Until when the last judged sample's value holds (``Judged.hold_end`` of it): the next
    sample, the end of its ``during:`` window or the end of the log, whichever comes first."""

    def __init__(self, windows: Any) -> None:
        self.windows = windows
        self.time: float | None = None
        self.next: float | None = None  # the sample after it, once seen

    def add(self, times: np.ndarray, judged: np.ndarray) -> None:
        if self.time is not None and self.next is None and times.size:
            self.next = float(times[0])
        hits = np.flatnonzero(judged)
        if hits.size:
            last = int(hits[-1])
            self.time = float(times[last])
            self.next = float(times[last + 1]) if last + 1 < times.size else None

    def hold_end(self, log_end: float) -> float:
        assert self.time is not None
        end = self.next if self.next is not None else max(log_end, self.time)
        if self.windows is not None:
            end = min(end, float(self.windows.end_of(np.array([self.time]))[0]))
        return end


class Spill:
    """Arrays kept for the end of the log, written to an unnamed temporary file as batches
    pass (``tempfile.TemporaryFile``: ``TMPDIR``, deleted when closed), not held in memory:
    a check that needs all its samples at the end (``range``'s runs, ``statistic``'s median)
    holds them only while it is judged, one check at a time. ``dtypes``: one per column."""

    def __init__(self, *dtypes: Any) -> None:
        import tempfile

        self.dtypes = [np.dtype(d) for d in dtypes]
        # closed by read() or close(), or with the object: they outlive any with-block here
        self.files = [tempfile.TemporaryFile(prefix="bench-spill-") for _ in dtypes]  # noqa: SIM115
        self.rows = 0

    def add(self, *columns: np.ndarray) -> None:
        for file, dtype, column in zip(self.files, self.dtypes, columns, strict=True):
            np.ascontiguousarray(column, dtype=dtype).tofile(file)
        self.rows += int(columns[0].size)

    def read(self) -> list[np.ndarray]:
        """Every column as written, in order; the files are closed."""
        columns = []
        for file, dtype in zip(self.files, self.dtypes, strict=True):
            file.seek(0)
            columns.append(np.fromfile(file, dtype=dtype, count=self.rows))
            file.close()
        return columns

    def chunks(self, column: int = 0, rows: int = 1 << 20) -> Iterator[np.ndarray]:
        """One column as written, ``rows`` values at a time (the file stays open)."""
        file, dtype = self.files[column], self.dtypes[column]
        file.seek(0)
        left = self.rows
        while left > 0:
            chunk = np.fromfile(file, dtype=dtype, count=min(rows, left))
            left -= chunk.size
            yield chunk

    def close(self) -> None:
        for file in self.files:
            file.close()


# -- order statistics of spilled values in bounded memory ------------------------------------------

SELECT_IN_MEMORY = 1 << 22  # values (32 MB): at most this many are ever held at once
_DIGIT_BITS = 16


def _order_keys(values: np.ndarray) -> np.ndarray:
    """uint64 keys ordered as the float64 ``values`` are (no NaN): flip a negative number's bits,
    set a positive one's sign bit (the IEEE 754 total order; −0.0 sorts just below +0.0)."""
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    negative = (bits >> np.uint64(63)).astype(bool)
    return np.where(negative, ~bits, bits | np.uint64(1 << 63))


def order_statistics(
    chunks: Callable[[], Iterable[np.ndarray]],
    count: int,
    ranks: Sequence[int],
    in_memory: int = SELECT_IN_MEMORY,
) -> list[float]:
    """The ``ranks``-th smallest (0-based) of ``count`` float64 values without NaN, exactly.

    ``chunks()`` yields the values again on every call (a :class:`Spill` column). Up to
    ``in_memory`` values are partitioned in memory (``numpy.partition``); beyond, each rank is
    found by radix selection on the values' order-preserving 64-bit keys, 16 bits a pass: a pass
    reads the chunks once and counts the candidates' next digit, until the candidates left fit
    in ``in_memory`` (usually after one or two passes). Memory: one chunk and 65,536 counts.
    Values equal as numbers but not as bits (−0.0, +0.0) are told apart by sign, as sorting
    does not; the value returned is the same number either way."""
    for rank in ranks:
        if not 0 <= rank < count:
            raise ValueError(f"rank {rank} outside 0..{count - 1}")
    if count <= in_memory:
        values = np.concatenate(list(chunks()) or [np.empty(0)])
        values.partition(sorted(set(ranks)))
        return [float(values[rank]) for rank in ranks]
    return [_select(chunks, count, rank, in_memory) for rank in ranks]


def _select(
    chunks: Callable[[], Iterable[np.ndarray]], count: int, rank: int, in_memory: int
) -> float:
    # prefix: the digits fixed so far, the key bits at and above `fixed`; `below` values have
    # smaller keys than any candidate, `candidates` values share the prefix
    prefix, fixed, below, candidates = 0, 64, 0, count
    while candidates > in_memory and fixed > 0:
        shift = fixed - _DIGIT_BITS
        counts = np.zeros(1 << _DIGIT_BITS, dtype=np.int64)
        for chunk in chunks():
            keys = _order_keys(chunk)
            if fixed < 64:  # the first pass counts every key
                keys = keys[_matching_mask(keys, prefix, fixed)]
            digits = (keys >> np.uint64(shift)) & np.uint64((1 << _DIGIT_BITS) - 1)
            counts += np.bincount(digits.astype(np.intp), minlength=1 << _DIGIT_BITS)
        cumulative = np.cumsum(counts)
        digit = int(np.searchsorted(cumulative, rank - below, side="right"))
        below += int(cumulative[digit - 1]) if digit else 0
        prefix, fixed, candidates = (prefix << _DIGIT_BITS) | digit, shift, int(counts[digit])
    if fixed == 0:  # every candidate has the same 64 bits: the same value
        return _value_of_key(prefix)
    kept = [chunk[_matching_mask(_order_keys(chunk), prefix, fixed)] for chunk in chunks()]
    values = np.concatenate(kept)
    values.partition(rank - below)
    return float(values[rank - below])


def _value_of_key(key: int) -> float:
    bits = key & ~(1 << 63) if key >> 63 else ~key & ((1 << 64) - 1)
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0])


def _matching_mask(keys: np.ndarray, prefix: int, fixed: int) -> np.ndarray:
    """Keys whose bits at and above ``fixed`` (< 64) are ``prefix``."""
    return (keys >> np.uint64(fixed)) == np.uint64(prefix)


__all__ = [
    "Carry",
    "Evidence",
    "ExactSum",
    "JudgedStream",
    "LastJudged",
    "Reducer",
    "Spill",
    "one_batch",
    "top_k",
]
