"""Runs of samples and levels held for a duration (``for:``), on whole columns.

A *run* is a maximal sequence of consecutive samples where a mask is true and each sample holds
until the next (``continuous``: no ``during:`` window ends between them). It lasts from its first
sample's time until its last sample's ``hold_end``. The *level held for F* of a signed series
``d`` is the largest ``L`` such that ``d ≥ L`` throughout some run lasting at least ``F``: the
worst value a debounced check actually judges (a 3 s excursion to 61 °C under ``for: 5s`` is not
a level held for 5 s).

Every function is a handful of numpy passes; :func:`held_level` is a binary search over the
distinct values (O(n log n) time, O(n) memory), no Python loop over samples.
"""

from __future__ import annotations

import numpy as np

FOR_TOLERANCE_S = 1e-9
"""A run lasting ``for`` minus this still counts: times are binary fractions."""


def run_bounds(mask: np.ndarray, continuous: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, last) indices of every run of ``mask`` not broken by ``~continuous``.

    ``continuous[i]`` tells whether sample ``i`` holds until sample ``i + 1`` (length n - 1)."""
    n = mask.size
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = mask.copy()
    if n > 1:
        starts[1:] &= ~(mask[:-1] & continuous)
    ends = mask.copy()
    if n > 1:
        ends[:-1] &= ~(mask[1:] & continuous)
    return np.flatnonzero(starts), np.flatnonzero(ends)


def run_intervals(
    times: np.ndarray, hold_end: np.ndarray, mask: np.ndarray, continuous: np.ndarray
) -> np.ndarray:
    """``[[t_first, hold_end_last], …]`` of every run of ``mask`` (shape (k, 2))."""
    first, last = run_bounds(mask, continuous)
    if not first.size:
        return np.zeros((0, 2))
    return np.column_stack((times[first], hold_end[last]))


def lasting(intervals: np.ndarray, for_s: float | None) -> np.ndarray:
    """Mask over ``intervals``: those lasting at least ``for_s`` (all of them without it)."""
    if not for_s:
        return np.ones(len(intervals), dtype=bool)
    return intervals[:, 1] - intervals[:, 0] >= for_s - FOR_TOLERANCE_S


def held_level(
    d: np.ndarray,
    judged: np.ndarray,
    times: np.ndarray,
    hold_end: np.ndarray,
    continuous: np.ndarray,
    for_s: float | None,
) -> float | None:
    """The largest ``L`` with ``d ≥ L`` on judged samples throughout a run lasting ``for_s``.

    Without ``for_s`` it is the largest judged ``d``. None when no run of judged samples lasts
    ``for_s`` at all (nothing was held that long). ``d`` may hold ±inf (NaN must be mapped)."""
    if not judged.any():
        return None
    if not for_s:
        return float(np.max(d[judged]))
    candidates = np.unique(d[judged])

    def held(level: float) -> bool:
        spans = run_intervals(times, hold_end, judged & (d >= level), continuous)
        return bool(lasting(spans, for_s).any())

    if not held(float(candidates[0])):
        return None
    low, high = 0, candidates.size - 1  # held(candidates[low]) is true
    while low < high:
        middle = (low + high + 1) // 2
        if held(float(candidates[middle])):
            low = middle
        else:
            high = middle - 1
    return float(candidates[low])
