"""Making a run directory, and holding it: one run directory belongs to one run (DESIGN.md).

Creation is exclusive. A new directory is made with ``mkdir`` (never ``exist_ok``), then
``run.lock`` is created in it with ``O_CREAT | O_EXCL`` — that second step is the claim: of two
processes given the same ``--out`` at the same moment exactly one creates the lock file, the
other is refused. The winner keeps the file open with an exclusive ``flock`` for as long as it
uses the directory (the run and its evaluation); the kernel drops the lock when the process dies,
however it dies, so a killed run never leaves a directory locked.

``--out DIR`` is therefore refused (:class:`~bench.errors.InputError`, exit 2, before anything is
sent) when ``DIR`` holds anything at all — a run directory, run directories below it, or other
files: a run never appends to another run's frames and never mixes with someone's files. An
empty ``DIR`` is taken (``mktemp -d`` works). We refuse rather than make a new directory inside
``DIR``: nightly automation reads ``DIR/junit.xml`` after the run, and a silently nested
directory would leave it reading the last night's verdict.

Later writers of a finished run directory (``bench evaluate`` in place, ``bench report``) take
the same ``flock`` with :func:`lock_run_dir`: while a run is still recording into it they are
refused instead of reading half a run or recovering a journal that is still being written.
Where ``fcntl`` does not exist (Windows) the exclusive creation still holds; the busy check does
not.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import weakref
from contextlib import suppress
from pathlib import Path
from types import TracebackType

from ..errors import InputError
from .layout import LOCK_FILE, RUN_MARKERS, looks_like_run

try:
    import fcntl
except ImportError:  # Windows: exclusive creation only
    fcntl = None  # type: ignore[assignment]


class RunDirBusy(InputError):
    """The run directory is in use by another process (a run still recording, an evaluation)."""


class RunLock:
    """A run directory held by this process: ``path``, released by :meth:`release` (or ``with``).

    The lock file descriptor is closed when the object is garbage-collected too, so an
    exception that skips :meth:`release` cannot keep a directory locked for the process's life.
    """

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path = Path(path)
        self._fd = fd
        self._finalizer = weakref.finalize(self, _close, fd) if fd is not None else None

    @property
    def held(self) -> bool:
        return self._finalizer is not None and self._finalizer.alive

    def release(self) -> None:
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> RunLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def _close(fd: int) -> None:
    with suppress(OSError):
        os.close(fd)  # closing the only descriptor drops the flock


def new_run_dir(root: Path, plan_stem: str, now: dt.datetime | None = None) -> RunLock:
    """Create and claim ``root/<YYYYmmdd-HHMMSS>-<plan_stem>``; a suffix (``-1`` …) keeps two
    runs started in the same second apart."""
    return _claim(new_dated_dir(root, plan_stem, now))


def new_dated_dir(root: Path, stem: str, now: dt.datetime | None = None) -> Path:
    """Create ``root/<YYYYmmdd-HHMMSS>-<stem>`` exclusively (``mkdir``, never ``exist_ok``), with a
    suffix (``-1`` …) when that name is taken; unclaimed (a campaign directory holds runs, it is
    not one)."""
    stamp = (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    root = Path(root)
    _make_parent(root)
    for attempt in range(1000):
        suffix = f"-{attempt}" if attempt else ""
        path = root / f"{stamp}-{stem}{suffix}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise InputError(f"{path}: cannot create the run directory ({_why(exc)})") from None
        return path
    raise InputError(f"{root}: too many runs named {stamp}-{stem}")


def claim_run_dir(path: Path) -> RunLock:
    """Create and claim ``path`` for a new run (``--out``): new or empty, else InputError."""
    path = Path(path)
    _make_parent(path.parent)
    try:
        path.mkdir()
    except FileExistsError:
        if not path.is_dir():
            raise InputError(f"{path}: --out names a file, not a directory") from None
        _refuse_if_not_empty(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot create the run directory ({_why(exc)})") from None
    return _claim(path)


def create_run_dir(out_dir: Path | None, root: Path, plan_stem: str) -> RunLock:
    """The run directory of a new run: ``out_dir`` if given (:func:`claim_run_dir`), else a new
    dated one under ``root`` (:func:`new_run_dir`)."""
    if out_dir is not None:
        return claim_run_dir(out_dir)
    return new_run_dir(root, plan_stem)


def lock_run_dir(path: Path) -> RunLock:
    """Hold an existing run directory to write results into it (evaluate in place, report).

    Raises :class:`RunDirBusy` (exit 2) while another process holds it. The process that holds
    it (a run evaluating its own directory) gets a lock that holds nothing, as does a directory
    on read-only storage (an archive: nobody is writing to it).
    """
    path = Path(path)
    lock_path = path / LOCK_FILE
    fd = None
    for flags in (os.O_RDWR | os.O_CREAT, os.O_RDONLY):  # older run dirs have no lock file yet
        try:
            fd = os.open(lock_path, flags, 0o644)
            break
        except OSError:
            continue
    if fd is None or fcntl is None:
        if fd is not None:
            os.close(fd)
        return RunLock(path, None)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = _owner(lock_path)
        os.close(fd)
        if owner.get("pid") == str(os.getpid()) and owner.get("host") == socket.gethostname():
            return RunLock(path, None)  # ours: the run evaluating its own directory
        raise RunDirBusy(
            f"{path}: in use by another process ({_describe(owner)}): a run still recording "
            "or an evaluation; try again when it has ended"
        ) from None
    except OSError:
        os.close(fd)
        return RunLock(path, None)  # a file system without locks: nothing to hold
    _write_owner(fd)
    return RunLock(path, fd)


# -- helpers ---------------------------------------------------------------------------------------


def _make_parent(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)  # the root of many runs: shared on purpose
    except OSError as exc:
        raise InputError(f"{directory}: cannot create ({_why(exc)})") from None


def _claim(path: Path) -> RunLock:
    lock_path = path / LOCK_FILE
    try:
        fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        owner = _owner(lock_path)
        raise InputError(
            f"{path}: already taken by another run ({_describe(owner)}); a run directory "
            "belongs to one run: give a new --out DIR"
        ) from None
    except OSError as exc:
        raise InputError(f"{path}: cannot create {LOCK_FILE} ({_why(exc)})") from None
    if fcntl is not None:
        # without lock support here the O_EXCL claim above still makes it ours alone
        with suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _write_owner(fd)
    lock = RunLock(path, fd)
    # Taken an existing empty directory: something may have been put in since we looked.
    others = sorted(p.name for p in path.iterdir() if p.name != LOCK_FILE)
    if others:
        lock.release()
        lock_path.unlink(missing_ok=True)
        raise InputError(f"{path}: not empty ({', '.join(others[:3])}): give a new --out DIR")
    return lock


def _refuse_if_not_empty(path: Path) -> None:
    try:
        children = sorted(path.iterdir())
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({_why(exc)})") from None
    if not children:
        return
    hint = "a run directory belongs to one run: give a new --out DIR (or none, for reports/…)"
    if looks_like_run(path):
        held = [m for m in RUN_MARKERS if (path / m).exists()]
        owner = _owner(path / LOCK_FILE)
        by = f", {_describe(owner)}" if owner else ""
        raise InputError(f"{path}: already a run directory ({', '.join(held)}{by}); {hint}")
    runs = [c.name for c in children if c.is_dir() and looks_like_run(c)]
    if runs:
        more = f" and {len(runs) - 2} more" if len(runs) > 2 else ""
        raise InputError(f"{path}: holds run directories ({', '.join(runs[:2])}{more}); {hint}")
    names = ", ".join(c.name for c in children[:3]) + (" …" if len(children) > 3 else "")
    raise InputError(f"{path}: not empty ({names}); --out must be a new or empty directory")


def _write_owner(fd: int) -> None:
    """Say in the lock file who holds it (for the message another process gets)."""
    text = (
        f"pid={os.getpid()}\nhost={socket.gethostname()}\n"
        f"since={dt.datetime.now().astimezone().isoformat(timespec='seconds')}\n"
    )
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode(), 0)
    except OSError:
        pass  # the lock is what matters; the note is a courtesy


def _owner(lock_path: Path) -> dict[str, str]:
    try:
        text = lock_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    pairs = (line.partition("=") for line in text.splitlines())
    return {key.strip(): value.strip() for key, sep, value in pairs if sep}


def _describe(owner: dict[str, str]) -> str:
    if not owner.get("pid"):
        return f"see {LOCK_FILE}"
    where = f" on {owner['host']}" if owner.get("host") else ""
    since = f" since {owner['since']}" if owner.get("since") else ""
    return f"pid {owner['pid']}{where}{since}"


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)
