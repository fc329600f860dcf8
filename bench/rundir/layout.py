"""Where everything lives in a run directory (DESIGN.md contract): the one list of its names.

``reports/<YYYYmmdd-HHMMSS>-<plan-stem>/`` (or ``--out DIR``)::

    run.lock                   who owns the directory (pid, host); flock-ed while a process uses it
    plan.yaml, dbc/*.dbc       copies of what ran
    frames/part-NNNNN.parquet  closed frame segments (the frame table of DESIGN.md)
    frames/part-NNNNN.arrows   the open segment's journal (Arrow IPC stream); recovered on the
                               next evaluate/report when a run was killed
    events.parquet             run/step start and end, stimuli, aborts, notes
    signals/<Message>.parquet  decoded, one table per message
    summary.json, junit.xml, report.html, run.log

Every module that reads or writes a run directory takes the names from here.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path

LOCK_FILE = "run.lock"
PLAN_FILE = "plan.yaml"
DBC_DIR = "dbc"
FRAMES_DIR = "frames"
EVENTS_FILE = "events.parquet"
SIGNALS_DIR = "signals"
SUMMARY_FILE = "summary.json"
JUNIT_FILE = "junit.xml"
SELECTION_FILE = "selection.json"  # bench evaluate --channel/--direction, for re-evaluation
REPORT_FILE = "report.html"
LOG_FILE = "run.log"
DEFAULT_ROOT = Path("reports")

SEGMENT_PATTERN = re.compile(r"^part-(\d{5,})\.parquet$")
JOURNAL_PATTERN = re.compile(r"^part-(\d{5,})\.arrows$")
TMP_SUFFIX = ".tmp"  # a file being written; renamed to its final name once complete

# any of these makes a directory a run directory (`bench runs`, `--out` refusal)
RUN_MARKERS = (SUMMARY_FILE, FRAMES_DIR, EVENTS_FILE, PLAN_FILE, LOCK_FILE)


def segment_name(index: int) -> str:
    """``part-NNNNN.parquet``: a closed segment (index from 0, five digits or more)."""
    return f"part-{index:05d}.parquet"


def journal_name(index: int) -> str:
    """``part-NNNNN.arrows``: the journal of segment ``index`` while it is open."""
    return f"part-{index:05d}.arrows"


def segment_index(path: Path) -> int | None:
    """The index of a segment or journal file name, None for any other name."""
    match = SEGMENT_PATTERN.match(path.name) or JOURNAL_PATTERN.match(path.name)
    return int(match.group(1)) if match else None


def list_segments(frames_dir: Path) -> list[Path]:
    """Closed segments of a directory in index order (journals and ``.tmp`` files excluded)."""
    return _numbered(frames_dir, SEGMENT_PATTERN)


def list_journals(frames_dir: Path) -> list[Path]:
    """Journals (``part-NNNNN.arrows``) of a directory in index order."""
    return _numbered(frames_dir, JOURNAL_PATTERN)


def _numbered(directory: Path, pattern: re.Pattern[str]) -> list[Path]:
    found = []
    try:
        children = list(Path(directory).iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    for path in children:
        match = pattern.match(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


NOT_LOGS = frozenset({EVENTS_FILE, LOG_FILE})  # files of a run, never a log of their own


def is_log_directory(name: str, files: Collection[str], dirs: Collection[str]) -> bool:
    """Whether a directory called ``name`` holding these file and subdirectory names is one log:
    a recorded run (:func:`holds_recording`), a run's ``frames/``, or a bare directory of
    segments. The one rule of a local search (:func:`bench.campaign.discover.is_log`) and of a
    listing of object storage (:mod:`bench.remote`)."""
    return (
        FRAMES_DIR in dirs
        or EVENTS_FILE in files
        or name == FRAMES_DIR
        or any(SEGMENT_PATTERN.match(f) for f in files)
    )


def looks_like_run(path: Path) -> bool:
    """True if ``path`` holds any part of a run directory (see :data:`RUN_MARKERS`)."""
    return any((Path(path) / marker).exists() for marker in RUN_MARKERS)


def holds_recording(path: Path) -> bool:
    """True if ``path`` is a recorded run: it has ``frames/`` or ``events.parquet``.

    Stricter than :func:`looks_like_run` on purpose: a folder of logs that also holds a
    ``plan.yaml`` (or a stale ``summary.json``) is a folder to search, not one log."""
    path = Path(path)
    return (path / FRAMES_DIR).is_dir() or (path / EVENTS_FILE).is_file()


def message_file(message: str) -> str:
    """``<Message>.parquet``: the name of a message's decoded table in ``signals/``."""
    return f"{message}.parquet"


def message_table(run_dir: Path, message: str) -> Path:
    """``signals/<Message>.parquet`` of a run directory."""
    return Path(run_dir) / SIGNALS_DIR / message_file(message)
