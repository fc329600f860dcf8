"""Which logs a campaign judges: ``bench evaluate LOG...`` arguments expanded into logs.

A *log* is one of:

- a file (Parquet, BLF, ASC, MF4, candump ``.log``; whatever its suffix when named on the command
  line, so a misnamed file becomes an ``error`` row that says why, not a silent omission);
- a run directory (it has ``frames/``, or any other part of a run: ``events.parquet``,
  ``plan.yaml``, ``summary.json`` — a damaged run is still a log, and its row says what is wrong);
- a run's ``frames/`` directory, or any directory holding recorder segments ``part-NNNNN.parquet``.

Any other directory is searched recursively: each log found in it is judged on its own. In a
searched directory a file counts when its suffix is a log format's; a ``.log`` file counts only when
it starts like a candump log (``(``), because ``.log`` is also every tool's text log — those are
listed as skipped with the reason. Hidden directories and the campaign's own output directory are
never searched.

An argument may also be a URL (``s3://bucket/prefix/``, ``https://…/log.parquet``): the same
rules over the objects under the prefix (:func:`bench.remote.discover_url`); each log found stays a
URL, read by the worker that judges it.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..logfiles.base import format_of
from ..logfiles.candump import looks_like_candump
from ..remote import discover_url, is_url
from ..rundir import FRAMES_DIR, NOT_LOGS, RUN_MARKERS, is_log_directory

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


@dataclass(frozen=True)
class LogEntry:
    """One log of a campaign: where it is and the name of its run directory in the campaign."""

    path: Path | str  # absolute, or a URL (s3://…) read where the log is judged
    label: str  # unique in the campaign; the run directory's name under --out


@dataclass
class Discovery:
    logs: list[LogEntry] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "path: reason", for campaign.json


def is_log(path: Path) -> bool:
    """True when ``path`` is one log (a file, a run directory, a directory of segments)."""
    path = Path(path)
    if path.is_file():
        return True
    if not path.is_dir():
        return False
    files, dirs = set(), set()
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir():
                    dirs.add(entry.name)
                elif entry.is_file():
                    files.add(entry.name)
    except OSError:
        pass  # unreadable: judged by its name alone
    return is_log_directory(path.name, files, dirs)


def discover(arguments: Sequence[Path | str], exclude: Iterable[Path] = ()) -> Discovery:
    """Expand ``arguments`` (paths or URLs) into logs, in argument order, each directory's finds
    sorted by path.

    A missing argument is a usage error (:class:`InputError`, exit 2, nothing judged); a log that
    cannot be read is not found out here but when it is judged (its ``error`` row). A URL that
    cannot be listed is one line naming it (:func:`bench.remote.failure`)."""
    excluded = {Path(p).resolve() for p in exclude}
    found = Discovery()
    seen: set[Path | str] = set()
    for given in arguments:
        if is_url(given):
            for url, label in discover_url(str(given), found.skipped):
                if url not in seen:
                    seen.add(url)
                    found.logs.append(LogEntry(url, label))
            continue
        argument = Path(given)
        if not argument.exists():
            raise InputError(f"{argument}: no such log file or directory")
        if is_log(argument):
            path = _run_of(argument.resolve())
            pairs = [(path, path.name)]
        else:
            top = argument.resolve()
            logs = _search(top, excluded, found.skipped, {top})
            pairs = [(p, p.relative_to(top).as_posix()) for p in logs]
        for path, relative in pairs:
            if path in seen:
                continue
            seen.add(path)
            found.logs.append(LogEntry(path, relative))
    return Discovery(_unique_labels(found.logs), found.skipped)


def _run_of(path: Path) -> Path:
    """The run directory of its ``frames/`` (the same log, named as the run)."""
    parent = path.parent
    others = (m for m in RUN_MARKERS if m != FRAMES_DIR)
    if path.name == FRAMES_DIR and any((parent / m).exists() for m in others):
        return parent
    return path


def _search(root: Path, excluded: set[Path], skipped: list[str], visited: set[Path]) -> list[Path]:
    """Logs under ``root`` (depth first, sorted); run directories are not descended into.

    Symbolic links are followed (archives link "latest" and the like), each directory once:
    ``visited`` holds the real paths seen, so a link to a parent cannot loop."""
    logs: list[Path] = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        skipped.append(f"{root}: cannot list ({exc.strerror or exc})")
        return logs
    for entry in entries:
        path = Path(entry.path)
        if entry.name.startswith(".") or path in excluded:
            continue
        if entry.is_dir():
            if is_log(path):
                logs.append(path)
                continue
            real = path.resolve()
            if real in visited or real in excluded:
                continue
            visited.add(real)
            logs += _search(path, excluded, skipped, visited)
        elif entry.is_file() and entry.name not in NOT_LOGS:
            # the suffixes the log readers take (bench.logfiles: .asc.gz too), nothing else
            known = format_of(path)
            if known is None:
                continue
            if ".log" in known[0].suffixes and not _looks_like_candump(path, gz=known[1]):
                skipped.append(f"{path}: a .log file that is not a candump log")
                continue
            logs.append(path)
    return logs


def _looks_like_candump(path: Path, gz: bool = False) -> bool:
    try:
        with gzip.open(path, "rb") if gz else path.open("rb") as stream:
            head = stream.read(256)
    except (OSError, EOFError):
        return True  # let the reader say what is wrong, as an error row
    return looks_like_candump(head)


def _unique_labels(logs: list[LogEntry]) -> list[LogEntry]:
    """File-system-safe, unique run directory names; the first keeps the plain name."""
    taken: set[str] = set()
    unique = []
    for entry in logs:
        base = _UNSAFE.sub("_", entry.label.replace("/", "__")).strip("._") or "log"
        name, counter = base, 2
        while name.lower() in taken:
            name = f"{base}-{counter}"
            counter += 1
        taken.add(name.lower())
        unique.append(LogEntry(entry.path, name))
    return unique
