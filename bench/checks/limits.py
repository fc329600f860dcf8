"""One meaning of a limit, used by the plan, every check, the live monitor and the report.

A :class:`Limits` is ``min``/``max`` (either may be absent) and an optional marginal band
``marginal_min``/``marginal_max`` inside them. Following OpenHTF's marginal idea:

* a value is **outside** when it is below ``min`` or above ``max`` — or NaN (NaN satisfies no
  comparison, so a received NaN is never "within" anything);
* it is **marginal** when it is inside the limits but below ``marginal_min`` or above
  ``marginal_max`` — a pass close to failing;
* its **margin** is its distance to the nearer limit: ``min(value - min, max - value)``; negative
  means outside. NaN has no margin (``None``).

Comparisons get :func:`slack`: DBC scaling is binary floating point (raw 403 × 0.1 decodes to
40.300000000000004), so a value exactly on ``max: 40.3`` must count as on it, not beyond it.

The same object works on scalars (the live monitor, frame by frame) and on numpy columns (the
offline checks, whole logs at once): :meth:`Limits.outside` and :meth:`Limits.distance` accept both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


def slack(limit: float) -> float:
    """How far past a limit a value may lie and still count as on it (relative 1e-9, at least
    1e-9): far below any signal's resolution, far above binary scaling error."""
    return 1e-9 * max(1.0, abs(limit))


def _g(value: float, unit: str) -> str:
    text = f"{float(value):.6g}"
    return f"{text} {unit}" if unit else text


@dataclass(frozen=True)
class Limits:
    """``min``/``max`` with an optional marginal band inside them (all in the signal's unit).

    Raises :class:`ValueError` on impossible limits: NaN, ``min > max``, a marginal bound without
    its limit or outside it, ``marginal_min > marginal_max``.
    """

    min: float | None = None
    max: float | None = None
    marginal_min: float | None = None
    marginal_max: float | None = None

    def __post_init__(self) -> None:
        check_limits(self.min, self.max, self.marginal_min, self.marginal_max)

    # -- judging ---------------------------------------------------------------------------------

    def distance(self, values: Any) -> Any:
        """Signed distance outside the limits: > 0 outside, ≤ 0 inside (−margin); NaN → +inf.

        Scalars give a float, arrays an array of the same shape. Without any limit: −inf.
        """
        return _distance(values, self.min, self.max)

    def band_distance(self, values: Any) -> Any:
        """As :meth:`distance` for the marginal band (the limits where no band is given)."""
        low = self.marginal_min if self.marginal_min is not None else self.min
        high = self.marginal_max if self.marginal_max is not None else self.max
        return _distance(values, low, high)

    def outside(self, values: Any) -> Any:
        """True where a value is outside the limits (with :func:`slack`; NaN is outside)."""
        return _beyond(values, self.min, self.max)

    def outside_band(self, values: Any) -> Any:
        """True where a value is outside the marginal band (marginal or worse)."""
        low = self.marginal_min if self.marginal_min is not None else self.min
        high = self.marginal_max if self.marginal_max is not None else self.max
        return _beyond(values, low, high)

    def margin(self, value: Any) -> float | None:
        """Distance from ``value`` to the nearer limit (< 0: outside); None for NaN/None.

        ``value`` is a number, or ``{"min": low_seen, "max": high_seen}`` for a two-sided result
        (each side against its own limit)."""
        if isinstance(value, dict):
            parts = [
                self.margin_low(value.get("min")),
                self.margin_high(value.get("max")),
            ]
            found = [p for p in parts if p is not None]
            return min(found) if found else None
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        d = float(_distance(float(value), self.min, self.max))
        return None if math.isinf(d) else -d

    def margin_low(self, value: float | None) -> float | None:
        if value is None or self.min is None or math.isnan(value):
            return None
        return float(value) - self.min

    def margin_high(self, value: float | None) -> float | None:
        if value is None or self.max is None or math.isnan(value):
            return None
        return self.max - float(value)

    def holds(self, value: Any) -> bool:
        """True when ``value`` (a number or a ``{"min", "max"}`` dict) is inside the limits.

        A dict is a two-sided result, each side against its own limit (as :meth:`margin`): with
        ``for:`` its sides are levels held for that long on different stretches, so the held
        top may lie below ``min`` (a 100 ms dip below ``min`` under ``for: 250ms``) without any
        violation counting; a violation would show as the bottom below ``min``."""
        if isinstance(value, dict):
            low, high = value.get("min"), value.get("max")
            if low is None and high is None:
                return False
            return not (
                (low is not None and bool(_beyond(float(low), self.min, None)))
                or (high is not None and bool(_beyond(float(high), None, self.max)))
            )
        if value is None:
            return False
        return not bool(_beyond(float(value), self.min, self.max))

    # -- describing ------------------------------------------------------------------------------

    def as_dict(self) -> dict[str, float]:
        """The limits given, as summary.json's ``limit`` holds them (absent ones left out)."""
        pairs = {
            "min": self.min,
            "max": self.max,
            "marginal_min": self.marginal_min,
            "marginal_max": self.marginal_max,
        }
        return {k: v for k, v in pairs.items() if v is not None}

    def format(self, unit: str = "") -> str:
        """``min -10 A, max 60 A (marginal below -5 A, above 55 A)`` — the one wording."""
        parts = []
        if self.min is not None:
            parts.append(f"min {_g(self.min, unit)}")
        if self.max is not None:
            parts.append(f"max {_g(self.max, unit)}")
        band = []
        if self.marginal_min is not None:
            band.append(f"below {_g(self.marginal_min, unit)}")
        if self.marginal_max is not None:
            band.append(f"above {_g(self.marginal_max, unit)}")
        text = ", ".join(parts) if parts else "no limits"
        return text + (f" (marginal {', '.join(band)})" if band else "")

    def __str__(self) -> str:
        return self.format()

    def values(self) -> list[float]:
        """The bounds given (limits, then the band): what a plot's value axis must show."""
        bounds = (self.min, self.max, self.marginal_min, self.marginal_max)
        return [v for v in bounds if v is not None]

    @classmethod
    def unchecked(
        cls,
        min: float | None = None,
        max: float | None = None,
        marginal_min: float | None = None,
        marginal_max: float | None = None,
    ) -> Limits:
        """Limits as written, without :func:`check_limits`: for showing a ``limit`` a summary
        holds even where it is impossible (that check's verdict is ``error``; the report still
        draws and words what the plan said). Judge nothing with these."""
        limits = object.__new__(cls)
        for name, value in (("min", min), ("max", max), ("marginal_min", marginal_min),
                            ("marginal_max", marginal_max)):  # fmt: skip
            object.__setattr__(limits, name, value)
        return limits

    @classmethod
    def of(cls, limit: Any, scale: float = 1.0) -> Limits:
        """The min/max/marginal numbers of a summary's ``limit`` times ``scale``, unchecked
        (:meth:`unchecked`); a limit that is not a dict, and any value that is not a finite
        number, is no bound. For the report, which reads limits other tools may have written."""
        if not isinstance(limit, dict):
            return cls.unchecked()
        keys = ("min", "max", "marginal_min", "marginal_max")
        numbers = {key: _finite(limit.get(key)) for key in keys}
        return cls.unchecked(**{k: None if v is None else v * scale for k, v in numbers.items()})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Limits:
        """From summary.json's ``limit`` (extra keys such as ``for`` are ignored)."""
        keys = ("min", "max", "marginal_min", "marginal_max")
        return cls(**{k: float(data[k]) for k in keys if data.get(k) is not None})


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _distance(values: Any, low: float | None, high: float | None) -> Any:
    array = np.asarray(values, dtype=np.float64)
    d = np.full(array.shape, -np.inf)
    with np.errstate(invalid="ignore"):
        if low is not None:
            d = np.maximum(d, low - array)
        if high is not None:
            d = np.maximum(d, array - high)
    d = np.where(np.isnan(array), np.inf, d)
    return float(d) if d.ndim == 0 else d


def _beyond(values: Any, low: float | None, high: float | None) -> Any:
    if type(values) is float:
        # One number, as the live rules judge every frame and tick (a timeout's gap, a limit's
        # sample): the same IEEE comparisons as the array path below without building arrays,
        # which cost about ten times more per call (tests/test_checks_limits.py compares both).
        return (
            values != values  # NaN
            or (low is not None and values < low - slack(low))
            or (high is not None and values > high + slack(high))
        )
    array = np.asarray(values, dtype=np.float64)
    out = np.isnan(array)
    with np.errstate(invalid="ignore"):
        if low is not None:
            out = out | (array < low - slack(low))
        if high is not None:
            out = out | (array > high + slack(high))
    return bool(out) if out.ndim == 0 else out


def check_limits(
    low: float | None,
    high: float | None,
    marginal_low: float | None,
    marginal_high: float | None,
) -> None:
    """Reject impossible limits: min > max, a marginal band outside the limits, NaN."""
    for label, value in (("min", low), ("max", high), ("marginal_min", marginal_low),
                         ("marginal_max", marginal_high)):  # fmt: skip
        if value is not None and math.isnan(value):
            raise ValueError(f"{label} is not a number")
    if low is not None and high is not None and low > high:
        raise ValueError(f"min ({low:g}) is greater than max ({high:g})")
    if marginal_low is not None:
        if low is None:
            raise ValueError("marginal_min needs min")
        if marginal_low < low:
            raise ValueError(f"marginal_min ({marginal_low:g}) is below min ({low:g})")
    if marginal_high is not None:
        if high is None:
            raise ValueError("marginal_max needs max")
        if marginal_high > high:
            raise ValueError(f"marginal_max ({marginal_high:g}) is above max ({high:g})")
    if marginal_low is not None and marginal_high is not None and marginal_low > marginal_high:
        raise ValueError(
            f"marginal_min ({marginal_low:g}) is greater than marginal_max ({marginal_high:g})"
        )
