"""Exact order statistics in bounded memory, proven against numpy on random inputs.

``statistic: median`` and ``percentile`` no longer load every judged sample at the end of a log:
:func:`bench.checks.streaming.order_statistics` finds the ranks they need by radix selection over
the spilled values, and :func:`bench.checks.statistic.percentile` / ``median`` then do numpy's own
arithmetic. Here the selection is forced through its radix passes (``in_memory`` of a few values)
and every result must be numpy's, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bench.checks.statistic import median, percentile
from bench.checks.streaming import Spill, order_statistics

FLOATS = hnp.arrays(
    np.float64,
    hnp.array_shapes(max_dims=1, min_side=1, max_side=300),
    elements=st.floats(allow_nan=False, allow_infinity=True, allow_subnormal=True),
)
# few distinct values: long runs of equal keys, the case radix selection must not trip on
REPEATS = hnp.arrays(
    np.float64,
    hnp.array_shapes(max_dims=1, min_side=1, max_side=300),
    elements=st.sampled_from([-0.0, 0.0, 1.5, -2.25, 1e308, -np.inf, 5e-324]),
)


def _spilled(values: np.ndarray, rows: int) -> Spill:
    spill = Spill(np.float64)
    for start in range(0, values.size, 7):  # written in batches, as a log streams
        spill.add(values[start : start + 7])
    return spill


def _same(a: float, b: float) -> bool:
    return (np.isnan(a) and np.isnan(b)) or a == b


@settings(max_examples=300, deadline=None)
@given(st.one_of(FLOATS, REPEATS), st.data(), st.integers(1, 40), st.integers(1, 64))
def test_order_statistics_are_the_sorted_values(
    values: np.ndarray, data: st.DataObject, in_memory: int, chunk: int
) -> None:
    spill = _spilled(values, chunk)
    ranks = data.draw(st.lists(st.integers(0, values.size - 1), min_size=1, max_size=4))
    found = order_statistics(lambda: spill.chunks(rows=chunk), values.size, ranks, in_memory)
    ordered = np.sort(values)
    assert found == [float(ordered[r]) for r in ranks]  # −0.0 == 0.0: the same number
    spill.close()


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(FLOATS, REPEATS),
    st.one_of(st.sampled_from([0.0, 50.0, 95.0, 99.9, 100.0]), st.floats(0, 100)),
    st.integers(1, 20),
)
@example(np.array([1.0, np.inf]), 100.0, 1)  # numpy's NaN: inf − inf at the last value
@example(np.array([-np.inf, np.inf]), 50.0, 1)
@example(np.array([3.0]), 37.5, 1)
def test_percentile_and_median_are_numpys_bit_for_bit(
    values: np.ndarray, p: float, in_memory: int
) -> None:
    spill = _spilled(values, 5)

    def select(ranks):
        return order_statistics(lambda: spill.chunks(rows=5), values.size, ranks, in_memory)

    with np.errstate(all="ignore"):
        expected_p = float(np.percentile(values, p))
        expected_median = float(np.median(values))
    assert _same(percentile(select, values.size, p), expected_p)
    assert _same(median(select, values.size), expected_median)
    spill.close()


def test_a_rank_outside_the_values_is_refused() -> None:
    with pytest.raises(ValueError, match="rank 3"):
        order_statistics(lambda: iter([np.zeros(3)]), 3, [3])


def test_memory_stays_bounded_by_in_memory() -> None:
    """Two million values (16 MB) found in a few MB: numpy's allocations, traced."""
    import tracemalloc

    rng = np.random.default_rng(5)
    values = np.round(rng.normal(20.0, 15.0, 2_000_000), 1)  # many repeats, as a sensor's

    def chunks():
        for start in range(0, values.size, 65536):
            yield values[start : start + 65536]  # views: reading costs nothing here

    ranks = [0, 1_000_000, 1_899_999]
    tracemalloc.start()
    try:
        found = order_statistics(chunks, values.size, ranks, in_memory=10_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert found == [float(v) for v in np.sort(values)[ranks]]
    assert peak < 4 * 2**20, f"{peak / 2**20:.1f} MB held for 16 MB of values"
