"""The inputs a run directory keeps: copies of the plan and DBCs that ran, and their hashes.

A run directory alone is enough to re-evaluate and re-render a run (DESIGN.md), so the plan text
and the DBC files are copied in when the run starts, and their sha256 goes into the
``run_start`` event and ``summary.json``.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import InputError
from .events import Event, parse_events, read_events
from .layout import DBC_DIR, PLAN_FILE, holds_recording

_VERSION = re.compile(rb'^\s*VERSION\s+"([^"]*)"', re.M)


def store_inputs(run_dir: Path, plan_text: str, dbc_paths: Iterable[Path]) -> list[dict[str, str]]:
    """Copy the plan and DBCs into the run directory; return ``[{file, sha256}]`` of the DBCs."""
    (run_dir / PLAN_FILE).write_text(plan_text, encoding="utf-8")
    target = run_dir / DBC_DIR
    target.mkdir(exist_ok=True)
    described = []
    for path in dbc_paths:
        copy = target / path.name
        if path.resolve() != copy.resolve():
            shutil.copyfile(path, copy)
        described.append({"file": path.name, "sha256": sha256_of(copy)})
    return described


def copy_inputs(run_dir: Path, plan_path: Path, dbc_paths: Sequence[Path]) -> None:
    """Copy a plan file and its DBCs into ``run_dir`` (``bench evaluate`` making a run directory
    of a log); DBC copies of an earlier evaluation that are not among them are removed, so the
    directory never mixes two DBC sets."""
    check_dbc_names(dbc_paths)
    if plan_path.resolve() != (run_dir / PLAN_FILE).resolve():
        shutil.copyfile(plan_path, run_dir / PLAN_FILE)
    target = run_dir / DBC_DIR
    keep = {p.resolve() for p in dbc_paths}
    if target.is_dir():
        for old in target.glob("*.dbc"):
            if old.is_file() and old.resolve() not in keep:
                old.unlink()
    target.mkdir(exist_ok=True)
    for path in dbc_paths:
        if path.resolve() != (target / path.name).resolve():
            shutil.copyfile(path, target / path.name)


def check_dbc_names(dbc_paths: Sequence[Path]) -> None:
    """DBC copies are named after their files: two files of one name would collide (InputError)."""
    names = [p.name for p in dbc_paths]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise InputError(f"two DBC files named {', '.join(twice)}: their copies would collide")


def stored_dbc_paths(run_dir: Path, names: Iterable[str]) -> list[Path]:
    """Where the copies of DBCs named ``names`` are in a run directory."""
    return [run_dir / DBC_DIR / Path(name).name for name in names]


def stored_dbcs(run_dir: Path, events: Sequence[Event]) -> list[Path] | None:
    """The run directory's DBC copies in the order the run recorded them (its ``run_start``),
    else every ``dbc/*.dbc`` in name order; None without a ``dbc/``."""
    directory = run_dir / DBC_DIR
    if not directory.is_dir():
        return None
    for event in events:
        if event.kind == "run_start" and isinstance(event.detail.get("dbc"), list):
            names = [str(d.get("file")) for d in event.detail["dbc"] if isinstance(d, dict)]
            paths = stored_dbc_paths(run_dir, names)
            if paths and all(p.is_file() for p in paths):
                return paths
    paths = sorted(directory.glob("*.dbc"))
    return paths or None


def plan_run_dbcs(plan_path: Path) -> list[Path] | None:
    """The DBC copies of the run directory ``plan_path`` is the ``plan.yaml`` of, else None.

    A run's plan names its DBCs relative to where it ran (``../dbc/battery.dbc``), which need not
    exist where the run directory is now; its ``dbc/`` copies are what it ran with. So judging
    another log against a run's plan (``bench evaluate LOG.blf --plan RUN/plan.yaml``) uses them,
    as ``bench evaluate RUN`` does. Only a real run directory counts (frames or events beside the
    plan), never a project folder that happens to hold a ``plan.yaml`` and a ``dbc/``."""
    run_dir = plan_path.parent
    if plan_path.name != PLAN_FILE or not holds_recording(run_dir):
        return None
    try:
        events = parse_events(read_events(run_dir))
    except InputError:
        events = []  # a damaged events file: the copies in name order
    return stored_dbcs(run_dir, events)


def check_same_inputs(run_dir: Path, plan_path: Path, dbc_paths: Sequence[Path]) -> None:
    """Writing results into a run directory must keep it self-consistent: same plan, same DBCs.

    Raises :class:`~bench.errors.InputError` naming the one that differs.
    """
    stored_plan = run_dir / PLAN_FILE
    if (
        stored_plan.is_file()
        and plan_path.resolve() != stored_plan.resolve()
        and plan_path.read_bytes() != stored_plan.read_bytes()
    ):
        raise InputError(
            f"{run_dir}: ran with another plan than {plan_path}; "
            "give --out DIR to evaluate it against this plan elsewhere"
        )
    stored = {p.name: sha256_of(p) for p in (run_dir / DBC_DIR).glob("*.dbc")}
    if stored:
        for path in dbc_paths:
            if stored.get(path.name) != sha256_of(path):
                raise InputError(
                    f"{run_dir}: ran with other DBCs than {path}; "
                    "give --out DIR to evaluate it with these DBCs elsewhere"
                )


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 64 kB blocks (a DBC or a log: memory stays flat)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def dbc_version(path: Path) -> str:
    """The DBC's own ``VERSION "..."`` line (it comes first; 4 kB is plenty to find it)."""
    try:
        with Path(path).open("rb") as handle:
            match = _VERSION.search(handle.read(4096))
    except OSError:
        return ""
    return match.group(1).decode("utf-8", "replace") if match else ""
