"""Drive-cycle profiles a plan may name: built-in ones by name, or a CSV file next to the plan.

A profile is a speed trace: ``time_s`` (strictly increasing, from 0 or later) and ``speed_kmh``
(never negative). A CSV profile has a header row naming these two columns; other columns are
ignored, so a file exported from a dynamometer can be used as it is once its columns are named.
The plan loader reads CSV profiles only to validate them and to estimate a plan's duration; the
runner follows them.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

BUILTIN_PROFILES: dict[str, float] = {
    # CLTC-P: China light-duty test cycle for passenger cars (GB/T 38146.1-2019), 1800 s,
    # low/medium/high speed parts, top speed 114 km/h.
    "CLTC-P": 1800.0,
}
"""Built-in profile names and their length in seconds (the runner ships their data)."""

TIME_COLUMN = "time_s"
SPEED_COLUMN = "speed_kmh"


class ProfileError(ValueError):
    """A CSV profile that cannot be used; ``line`` is 1-based within the CSV (0: the file)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def is_profile_path(profile: str) -> bool:
    """True when ``profile`` names a file rather than a built-in profile."""
    return profile.lower().endswith(".csv") or "/" in profile or "\\" in profile


def read_profile_csv(path: Path) -> list[tuple[float, float]]:
    """``(time_s, speed_kmh)`` rows of a CSV profile; :class:`ProfileError` if it is unusable."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ProfileError(f"drive cycle file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"cannot read drive cycle file {path}: {exc}") from None
    reader = csv.reader(text.splitlines())
    header = [cell.strip() for cell in next(reader, [])]
    if TIME_COLUMN not in header or SPEED_COLUMN not in header:
        raise ProfileError(
            f"{path.name}: the header must name columns {TIME_COLUMN!r} and {SPEED_COLUMN!r}, "
            f"got {', '.join(header) or 'nothing'}",
            1,
        )
    t_col, v_col = header.index(TIME_COLUMN), header.index(SPEED_COLUMN)
    rows: list[tuple[float, float]] = []
    for line, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        rows.append(_row(path, line, cells, t_col, v_col, rows[-1][0] if rows else None))
    if len(rows) < 2:
        raise ProfileError(f"{path.name}: a profile needs at least two rows", 0)
    return rows


def _row(
    path: Path, line: int, cells: list[str], t_col: int, v_col: int, previous: float | None
) -> tuple[float, float]:
    try:
        time_s, speed = float(cells[t_col]), float(cells[v_col])
    except (IndexError, ValueError):
        raise ProfileError(f"{path.name}:{line}: expected two numbers", line) from None
    if not (math.isfinite(time_s) and math.isfinite(speed)) or time_s < 0 or speed < 0:
        raise ProfileError(f"{path.name}:{line}: time and speed must be finite and >= 0", line)
    if previous is not None and time_s <= previous:
        raise ProfileError(f"{path.name}:{line}: time must increase ({time_s:g} s)", line)
    return time_s, speed


def profile_length_s(profile: str, base: Path | None = None) -> float:
    """Length of a built-in or CSV profile in seconds (ProfileError / KeyError if unknown)."""
    if is_profile_path(profile):
        path = Path(profile) if base is None else base / profile
        rows = read_profile_csv(path)
        return rows[-1][0] - rows[0][0]
    return BUILTIN_PROFILES[profile]
