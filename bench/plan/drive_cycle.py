"""Drive-cycle profiles as a plan names them, checked with the runner's own loader.

A plan's ``drive_cycle.profile`` is a built-in name (``CLTC-P``, any case) or a CSV file relative
to the plan (``time_s,speed_kmh`` rows, see :func:`bench.drive_cycle.load_profile`). Validation
loads the profile exactly as the runner will, so a plan that validates never fails on its
profile at run time; pandas is imported only when a plan has a drive cycle.
"""

from __future__ import annotations

from pathlib import Path

from ..dbc import suggest
from ..errors import InputError

BUILTIN_NAMES = ("CLTC-P",)
"""Names of the built-in profiles (their data ships with :mod:`bench.drive_cycle`)."""


def _builtin(profile: str) -> bool:
    from ..drive_cycle import BUILTIN_PROFILES

    return profile.upper() in BUILTIN_PROFILES


def profile_problem(profile: str, base: Path) -> str | None:
    """Why the runner could not follow ``profile`` (None when it can)."""
    from ..drive_cycle import BUILTIN_PROFILES, load_profile

    looks_like_file = profile.lower().endswith(".csv") or "/" in profile or "\\" in profile
    if not _builtin(profile) and not looks_like_file and not (base / profile).is_file():
        known = ", ".join(BUILTIN_PROFILES)
        hint = suggest(profile.upper(), BUILTIN_PROFILES)
        return f"unknown drive cycle {profile!r}{hint}; built-in: {known}, or a .csv file"
    try:
        load_profile(profile, base)
    except InputError as exc:
        return str(exc)
    return None


def profile_length_s(profile: str, base: Path | None = None) -> float:
    """Length of the profile in seconds; 0 when it cannot be loaded (validation says why)."""
    from ..drive_cycle import load_profile

    try:
        return load_profile(profile, base).duration
    except InputError:
        return 0.0
