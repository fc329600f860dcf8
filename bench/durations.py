"""Durations as plans and fault specs write them: ``100ms``, ``2s``, ``1.5s``, ``25min``, ``2h``.

A bare number is seconds. Compound forms (``1h30min``) are accepted; negative durations are not.
"""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(
    r"\s*((?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?)\s*(ms|sec|min|s|m|h)", re.IGNORECASE
)


def parse_duration(text: str | float | int) -> float:
    """Seconds in ``text``; ValueError with the accepted forms if it is not a duration."""
    if isinstance(text, bool):
        raise ValueError(f"expected a duration like 100ms, 2s, 25min or 2h, got {text!r}")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"a duration cannot be negative, got {text!r}")
        return float(text)
    source = str(text)
    try:
        bare = float(source)
    except ValueError:
        bare = None
    if bare is not None and bare >= 0 and bare != float("inf"):
        return bare
    total, position = 0.0, 0
    for match in _PART.finditer(source):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2).lower()]
        position = match.end()
    if position == 0 or source[position:].strip():
        raise ValueError(f"expected a duration like 100ms, 2s, 25min or 2h, got {source!r}")
    return total


def format_duration(seconds: float) -> str:
    """Short human form: ``850ms``, ``12.5s``, ``25min``, ``2h 5min``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:g}s"
    if seconds < 7200:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes:.0f}min" + (f" {rest:.0f}s" if round(rest) else "")
    hours, rest = divmod(seconds, 3600)
    return f"{hours:.0f}h" + (f" {rest / 60:.0f}min" if round(rest / 60) else "")
