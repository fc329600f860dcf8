"""The run directory (DESIGN.md): ``reports/<YYYYmmdd-HHMMSS>-<plan-stem>/``.

A run directory alone is enough to re-evaluate and re-render a run: it holds copies of the plan and
of the DBCs that ran, next to the frames, events and results.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from collections.abc import Iterable
from pathlib import Path

PLAN_FILE = "plan.yaml"
DBC_DIR = "dbc"
FRAMES_DIR = "frames"
EVENTS_FILE = "events.parquet"
SIGNALS_DIR = "signals"
SUMMARY_FILE = "summary.json"
JUNIT_FILE = "junit.xml"
REPORT_FILE = "report.html"
LOG_FILE = "run.log"
DEFAULT_ROOT = Path("reports")


def new_run_dir(root: Path, plan_stem: str, now: dt.datetime | None = None) -> Path:
    """Create ``root/<timestamp>-<plan_stem>``; a suffix keeps two runs in one second apart."""
    stamp = (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=True)
    for attempt in range(1000):
        suffix = f"-{attempt}" if attempt else ""
        path = root / f"{stamp}-{plan_stem}{suffix}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"{root}: too many runs named {stamp}-{plan_stem}")


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


def stored_dbc_paths(run_dir: Path, names: Iterable[str]) -> list[Path]:
    return [run_dir / DBC_DIR / Path(name).name for name in names]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
