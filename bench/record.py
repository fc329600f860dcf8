"""The recorder: frames journalled as they come and closed into Parquet segments; the event log.

"The log is the truth" (DESIGN.md): every frame received and sent ends up in
``frames/part-NNNNN.parquet`` of the run directory, and a crash loses at most the last second.

How (names from :mod:`bench.rundir.layout`):

* **Journal.** The open segment's frames are appended to ``frames/part-NNNNN.arrows``, an Arrow
  IPC *stream* (a schema, then one record batch per append), at least every
  :data:`JOURNAL_EVERY_S` seconds of wall time: the runner hands its frames over that often and
  :meth:`SegmentWriter.poll` writes whatever is older. Each append is a ``write(2)`` of a whole
  batch, so a ``kill -9`` loses only frames not yet handed over (≤ 0.25 s); a batch torn by the
  kill is dropped on recovery, the batches before it kept.
* **fsync policy.** A background thread fsyncs the journal every :data:`FSYNC_EVERY_S` seconds
  when it grew (off the runner's thread: an fsync can take tens of ms, and the abort path must
  not wait for one). A power loss therefore loses at most about ``JOURNAL_EVERY_S +
  FSYNC_EVERY_S`` = 0.75 s plus one fsync. Closed segments, their directory entry and
  ``events.parquet`` are fsynced before they count as written.
* **Segments.** A segment closes when it holds ``max_frames`` frames or is ``max_seconds`` old:
  its frames (also kept in memory, so memory stays bounded by ``max_frames``) are written to
  ``part-NNNNN.parquet.tmp``, fsynced, renamed to ``part-NNNNN.parquet`` and the directory
  fsynced; only then is the journal deleted. A reader never sees half a segment.
* **Recovery.** :func:`recover_run` (called by ``bench evaluate`` and ``bench report`` of a run
  directory no process holds) turns every journal left by a killed run into its segment, drops
  journals whose segment was already closed, and records an ``abort`` event (kind ``crash``)
  when the run has a ``run_start`` but no ``run_end``: the directory then evaluates as
  ``aborted`` with everything that reached the disk.

Write failures (ENOSPC, EROFS, ENOENT, EIO …) raise :class:`RecordError`, an :class:`OSError`
(and a :class:`~bench.errors.HarnessError`, exit 3) carrying ``filename``, ``errno`` and
``strerror``; its message is one line naming the path and the reason.

The importers and exporters of other log formats live in :mod:`bench.logfiles`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import can
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import HarnessError
from .frames import FRAME_SCHEMA, append_message, empty_rows, normalize
from .rundir import (
    EVENT_SCHEMA,
    EVENTS_FILE,
    FRAMES_DIR,
    SEGMENT_PATTERN,
    TMP_SUFFIX,
    journal_name,
    list_journals,
    list_segments,
    parse_events,
    read_events,
    segment_index,
    segment_name,
)

log = logging.getLogger(__name__)

JOURNAL_EVERY_S = 0.25
"""Frames reach the journal at least this often (wall time): the kill -9 loss bound."""
FSYNC_EVERY_S = 0.5
"""The journal is fsynced at least this often while it grows: with the above, the power-loss
bound."""

# events that matter for verdicts are on disk as soon as they happen
EVENT_KINDS_FLUSHED_AT_ONCE = frozenset({"step_start", "step_end", "abort", "run_end"})


class RecordError(OSError, HarnessError):
    """A write of the recording failed: ``filename`` is the path, ``strerror`` the reason.

    An :class:`OSError` (``errno`` kept) so callers can treat it like any storage failure, and
    a :class:`~bench.errors.HarnessError` (exit 3).
    """

    def __init__(self, path: Path | str, cause: OSError | str, action: str = "write") -> None:
        if isinstance(cause, OSError):
            # Arrow's own OSErrors wrap the reason in prose; the errno says it in one phrase
            reason = os.strerror(cause.errno) if cause.errno else (cause.strerror or str(cause))
            super().__init__(cause.errno, " ".join(reason.split()), str(path))
        else:
            super().__init__(None, cause, str(path))
        self.action = action

    def __str__(self) -> str:
        return f"{self.filename}: cannot {self.action} ({self.strerror})"


def _write_atomically(table: pa.Table, path: Path, *, fsync: bool) -> None:
    """Write ``<path>.tmp``, close, fsync, rename: the final name only ever holds a whole file."""
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        with open(tmp, "wb") as sink:
            pq.write_table(table, sink, row_group_size=max(table.num_rows, 1))
            if fsync:
                sink.flush()
                os.fsync(sink.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):  # a full disk gets the partial file's space back
            tmp.unlink(missing_ok=True)
        raise RecordError(path, exc) from None
    if fsync:
        _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not possible on every platform; the rename itself is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- the journal -----------------------------------------------------------------------------------


class _Journal:
    """The open segment's Arrow IPC stream file; appends whole record batches."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._sink = pa.OSFile(str(path), "wb")  # unbuffered: each batch is a write(2)
            self._writer = pa.ipc.new_stream(self._sink, FRAME_SCHEMA)
        except OSError as exc:
            raise RecordError(path, exc) from None
        self.batches = 0

    def append(self, batch: pa.RecordBatch) -> None:
        try:
            # written_at: when this batch reached the OS (recovery reports it; the crash-loss
            # benchmark measures from it)
            self._writer.write_batch(batch, custom_metadata={"written_at": repr(time.time())})
        except OSError as exc:
            raise RecordError(self.path, exc) from None
        self.batches += 1

    def close(self) -> None:
        # the segment is already safe in Parquet; the journal is deleted next
        for closer in (self._writer.close, self._sink.close):
            with suppress(OSError, pa.ArrowException):
                closer()


class _Syncer:
    """fsyncs the files it is told about every ``period`` seconds, off the caller's thread.

    It opens the file by name for each fsync (fsync needs no write access), so the writer can
    close and delete a journal at any time without sharing a descriptor. The directory is fsynced
    once per new file too: a power loss must not take the new file's name with it. A failed
    fsync is kept and raised to the writer by :meth:`check`.
    """

    def __init__(self, period: float) -> None:
        self.period = period
        self._dirty: Path | None = None
        self._synced_dirs: set[Path] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self.error: RecordError | None = None
        self._thread = threading.Thread(target=self._run, name="bench-journal-fsync", daemon=True)
        self._thread.start()

    def touched(self, path: Path) -> None:
        with self._lock:
            self._dirty = path

    def check(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def stop(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.period)
            with self._lock:
                path, self._dirty = self._dirty, None
            if path is None:
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # the segment closed meanwhile: its Parquet file was fsynced
            except OSError as exc:
                self.error = RecordError(path, exc, "fsync")
                continue
            try:
                os.fsync(fd)
            except OSError as exc:
                self.error = RecordError(path, exc, "fsync")
            finally:
                os.close(fd)
            if path not in self._synced_dirs:
                _fsync_dir(path.parent)
                self._synced_dirs.add(path)


# -- segments --------------------------------------------------------------------------------------


class SegmentWriter:
    """Stream frames into ``frames_dir/part-NNNNN.parquet`` segments (see the module docstring).

    ``clock`` decides a segment's age and the journal's interval (``time.monotonic`` by
    default: the loss bound is about wall time, even when the run uses a simulated clock).
    ``journal=False`` keeps the open segment in memory only (converters, benchmarks: nothing to
    lose); ``fsync=False`` never fsyncs (tests).
    """

    def __init__(
        self,
        frames_dir: Path,
        *,
        max_frames: int = 200_000,
        max_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        fsync: bool = True,
        journal: bool = True,
        journal_every_s: float = JOURNAL_EVERY_S,
    ) -> None:
        if max_frames < 1:
            raise ValueError("max_frames must be at least 1")
        if max_seconds <= 0:
            raise ValueError("max_seconds must be positive")
        self.frames_dir = Path(frames_dir)
        self.max_frames = max_frames
        self.max_seconds = max_seconds
        self.journal_every_s = journal_every_s
        self._clock = clock
        self._fsync = fsync
        self._use_journal = journal
        try:
            self.frames_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecordError(self.frames_dir, exc, "create") from None
        taken = [segment_index(p) for p in (*list_segments(self.frames_dir),
                                            *list_journals(self.frames_dir))]  # fmt: skip
        # continue numbering after what is there: never overwrite a recorded segment
        self._next_index = max((i for i in taken if i is not None), default=-1) + 1
        self._pending: list[pa.Table | pa.RecordBatch] = []
        # messages collect as column lists (about 1 µs each) and become a batch in bulk:
        # building a table per call would cost ~100 µs, too slow for frame-by-frame callers
        self._rows: dict[str, list] = empty_rows()
        self._pending_frames = 0
        self._unjournalled = 0  # pending frames not yet in the journal
        self._opened_at: float | None = None
        self._journalled_at = clock()
        self._journal: _Journal | None = None
        self._syncer: _Syncer | None = None
        self._closed = False
        self.frames_written = 0
        self.segments: list[Path] = []

    # -- writing ---------------------------------------------------------------------------------

    @property
    def pending_frames(self) -> int:
        """Frames of the open segment held in memory (never more than ``max_frames``)."""
        return self._pending_frames

    def write_messages(self, messages: Sequence[can.Message], direction: str | None = None) -> None:
        """Record python-can messages; ``direction`` (``rx``/``tx``) overrides ``msg.is_rx``.

        Cheap enough to call for every single frame. Raises :class:`RecordError`.
        """
        self._check_open()
        rows = self._rows
        for msg in messages:
            if self._opened_at is None:
                self._opened_at = self._clock()
            append_message(rows, msg, direction)
            self._pending_frames += 1
            self._unjournalled += 1
            if self._pending_frames >= self.max_frames:
                self.flush()
                rows = self._rows
        self.poll()

    def write_table(self, table: pa.Table) -> None:
        """Record a frame table (normalized to :data:`~bench.frames.FRAME_SCHEMA`)."""
        self._check_open()
        table = normalize(table, source="recorded frames")
        self._collect_rows()
        start = 0
        while start < table.num_rows:
            if self._opened_at is None:
                self._opened_at = self._clock()
            take = min(self.max_frames - self._pending_frames, table.num_rows - start)
            self._pending.append(table.slice(start, take))
            self._pending_frames += take
            self._unjournalled += take
            start += take
            if self._pending_frames >= self.max_frames:
                self.flush()
        self.poll()

    def poll(self) -> None:
        """Journal frames older than ``journal_every_s``; close the segment at ``max_seconds``.

        Call it when no frames arrive, at least every ``journal_every_s``.
        """
        if self._syncer is not None:
            self._syncer.check()
        now = self._clock()
        if self._opened_at is not None and now - self._opened_at >= self.max_seconds:
            self.flush()
        elif self._unjournalled and now - self._journalled_at >= self.journal_every_s:
            self.sync_journal()

    def sync_journal(self) -> None:
        """Append every frame not yet journalled to the journal now."""
        self._collect_rows()
        self._journalled_at = self._clock()
        if not self._use_journal or not self._unjournalled:
            return
        if self._journal is None:
            self._journal = _Journal(self.frames_dir / journal_name(self._next_index))
            if self._fsync and self._syncer is None:
                self._syncer = _Syncer(FSYNC_EVERY_S)
        # the unjournalled frames are the tail of the pending tables
        todo, tail = self._unjournalled, []
        for part in reversed(self._pending):
            if todo <= 0:
                break
            take = min(todo, part.num_rows)
            tail.append(part.slice(part.num_rows - take, take))
            todo -= take
        for part in reversed(tail):
            batches = part.to_batches() if isinstance(part, pa.Table) else [part]
            for batch in batches:
                self._journal.append(batch)
        self._unjournalled = 0
        if self._syncer is not None:
            self._syncer.touched(self._journal.path)

    def flush(self) -> None:
        """Close the open segment now (the runner calls this on abort). Raises RecordError."""
        self._collect_rows()
        if not self._pending_frames:
            self._pending, self._opened_at = [], None
            return
        table = pa.Table.from_batches(
            [b for part in self._pending for b in _batches(part)], schema=FRAME_SCHEMA
        ).combine_chunks()
        path = self.frames_dir / segment_name(self._next_index)
        _write_atomically(table, path, fsync=self._fsync)
        self._drop_journal()
        self._next_index += 1
        self.frames_written += table.num_rows
        self.segments.append(path)
        self._pending, self._pending_frames, self._opened_at = [], 0, None
        self._unjournalled = 0

    def close(self) -> None:
        """Close the open segment; a recording that saw no frame still gets one empty segment
        (readers and reports can then say "zero frames" instead of failing on a missing file).
        """
        if self._closed:
            return
        try:
            self.flush()
            if not self.segments:
                path = self.frames_dir / segment_name(self._next_index)
                _write_atomically(FRAME_SCHEMA.empty_table(), path, fsync=self._fsync)
                self.segments.append(path)
        finally:
            self._closed = True
            if self._syncer is not None:
                self._syncer.stop()
        if self._syncer is not None:
            self._syncer.check()

    def _drop_journal(self) -> None:
        if self._journal is None:
            return
        self._journal.close()
        try:
            self._journal.path.unlink(missing_ok=True)
        except OSError as exc:
            # the segment is safe; recovery drops a journal whose segment exists
            log.warning("%s: journal not removed (%s)", self._journal.path, exc.strerror)
        self._journal = None

    def _check_open(self) -> None:
        if self._closed:
            raise HarnessError(f"{self.frames_dir}: recorder already closed")

    def _collect_rows(self) -> None:
        """Turn buffered messages into a batch, keeping their place among written tables."""
        if self._rows["timestamp"]:
            self._pending.append(pa.RecordBatch.from_pydict(self._rows, schema=FRAME_SCHEMA))
            self._rows = empty_rows()

    def __enter__(self) -> SegmentWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _batches(part: pa.Table | pa.RecordBatch) -> list[pa.RecordBatch]:
    return part.to_batches() if isinstance(part, pa.Table) else [part]


# -- recovery --------------------------------------------------------------------------------------


@dataclass
class Recovered:
    """What :func:`read_journal` found in one journal."""

    path: Path
    table: pa.Table
    batches: int
    torn: bool  # the file ended inside a batch (the kill landed mid-write): that batch dropped
    written_at: float | None  # wall time (epoch s) the last whole batch was written


def read_journal(path: Path) -> Recovered:
    """Every whole record batch of a journal; a torn last batch (or header) is tolerated."""
    batches: list[pa.RecordBatch] = []
    written_at = None
    torn = False
    try:
        with pa.memory_map(str(path)) as source:
            reader = pa.ipc.open_stream(source)
            while True:
                try:
                    batch, meta = reader.read_next_batch_with_custom_metadata()
                except StopIteration:
                    break
                # a write cut short by a full disk can leave a body that parses but is not
                # whole (offsets past the data): only a fully valid batch counts
                batch.validate(full=True)
                batches.append(batch)
                if meta is not None and b"written_at" in meta:
                    written_at = float(meta[b"written_at"])
    except (pa.ArrowInvalid, pa.ArrowException, OSError, ValueError):
        torn = True  # killed mid-write: what was whole before stays
    table = pa.Table.from_batches(batches, schema=FRAME_SCHEMA) if batches else (
        FRAME_SCHEMA.empty_table())  # fmt: skip
    return Recovered(Path(path), table, len(batches), torn, written_at)


def recover_frames(frames_dir: Path, *, fsync: bool = True) -> list[Recovered]:
    """Turn the journals of ``frames_dir`` into segments; drop journals already closed.

    Returns what each recovered journal held. Raises :class:`RecordError` if a segment cannot be
    written (the journal then stays for the next try).
    """
    recovered = []
    for journal in list_journals(frames_dir):
        index = segment_index(journal)
        assert index is not None
        segment = journal.with_name(segment_name(index))
        tmp = segment.with_name(segment.name + TMP_SUFFIX)
        if not segment.exists():
            found = read_journal(journal)
            _write_atomically(found.table, segment, fsync=fsync)
            recovered.append(found)
        # the journal is the whole segment: a .tmp the kill interrupted is superseded
        for stale in (tmp, journal):
            try:
                stale.unlink(missing_ok=True)
            except OSError as exc:
                raise RecordError(stale, exc, "remove") from None
    return recovered


def recover_run(run_dir: Path, *, fsync: bool = True) -> list[str]:
    """Recover a run directory left by a killed run; returns one line per thing done.

    Journals become segments (:func:`recover_frames`). A run with a ``run_start`` and no
    ``run_end`` never finished: an ``abort`` event (name ``crash``) is added at its last
    recorded time, so the directory evaluates as ``aborted`` instead of a step that looks
    incomplete. The caller must hold the directory (:func:`bench.rundir.lock_run_dir`).
    """
    run_dir = Path(run_dir)
    done: list[str] = []
    frames_dir = run_dir / FRAMES_DIR
    recovered = recover_frames(frames_dir, fsync=fsync) if frames_dir.is_dir() else []
    for found in recovered:
        torn = ", a torn last batch dropped" if found.torn else ""
        done.append(f"{found.path.name}: {found.table.num_rows} frames recovered{torn}")
    events_path = run_dir / EVENTS_FILE
    if not events_path.exists():
        return done
    events = parse_events(read_events(events_path))
    kinds = {e.kind for e in events}
    if "run_start" not in kinds or "run_end" in kinds or "abort" in kinds:
        return done  # finished, or it recorded why it stopped (only its run_end was lost)
    last = _last_time(frames_dir, events)
    reason = (
        "the run ended without run_end (process killed or power lost); "
        "everything that reached the disk was recovered"
    )
    with EventLog(events_path, fsync=fsync) as events_log:
        events_log.add(
            last,
            "abort",
            "crash",
            {
                "kind": "crash",
                "reason": reason,
                "recovered": [f.path.name for f in recovered],
                "recovered_frames": sum(f.table.num_rows for f in recovered),
            },
        )
    done.append(f"{EVENTS_FILE}: abort event added ({reason})")
    return done


def _last_time(frames_dir: Path, events: Sequence[object]) -> float:
    """The latest time recorded: the last frame of the last segment, else the last event."""
    times = [e.time for e in events if math.isfinite(e.time)]  # type: ignore[attr-defined]
    segments = list_segments(frames_dir) if frames_dir.is_dir() else []
    for segment in reversed(segments):
        try:
            column = pq.read_table(segment, columns=["timestamp"]).column("timestamp")
        except (OSError, pa.ArrowException):
            continue
        if len(column):
            value = pa.compute.max(column).as_py()
            if value is not None and math.isfinite(value):
                times.append(float(value))
            break
    return max(times) if times else 0.0


# -- events ----------------------------------------------------------------------------------------


class EventLog:
    """Step starts/ends, stimuli, aborts and notes, kept in ``events.parquet``.

    Events are few, so the whole file is rewritten atomically on every flush: it is always a
    complete Parquet file. Step, abort and run-end events are flushed when added; others at
    least every ``max_seconds`` (checked when events are added and by :meth:`poll`) and on
    close. Write failures raise :class:`RecordError`; the events stay in memory for a later
    flush.
    """

    def __init__(self, path: Path, *, max_seconds: float = 1.0, fsync: bool = True) -> None:
        self.path = Path(path)
        self.max_seconds = max_seconds
        self._fsync = fsync
        self._rows: dict[str, list] = {name: [] for name in EVENT_SCHEMA.names}
        self._dirty = False
        self._last_flush = time.monotonic()
        if self.path.exists():
            # reopening a run's log (recovery adding its abort event) keeps what is there
            existing = read_events(self.path)
            for name in EVENT_SCHEMA.names:
                self._rows[name] = existing.column(name).to_pylist()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecordError(self.path.parent, exc, "create") from None

    def __len__(self) -> int:
        return len(self._rows["timestamp"])

    def add(self, timestamp: float, kind: str, name: str, detail: dict | None = None) -> None:
        self._rows["timestamp"].append(float(timestamp))
        self._rows["kind"].append(str(kind))
        self._rows["name"].append(str(name))
        self._rows["detail"].append(json.dumps(detail or {}, sort_keys=True, default=str))
        self._dirty = True
        if kind in EVENT_KINDS_FLUSHED_AT_ONCE:
            self.flush()
        else:
            self.poll()

    def poll(self) -> None:
        """Flush if events wait and the last flush is ``max_seconds`` old."""
        if self._dirty and time.monotonic() - self._last_flush >= self.max_seconds:
            self.flush()

    def table(self) -> pa.Table:
        return pa.Table.from_pydict(self._rows, schema=EVENT_SCHEMA)

    def flush(self) -> None:
        if self._dirty or not self.path.exists():
            _write_atomically(self.table(), self.path, fsync=self._fsync)
            self._dirty = False
        self._last_flush = time.monotonic()

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = [
    "EVENT_SCHEMA",
    "FRAME_SCHEMA",
    "FSYNC_EVERY_S",
    "JOURNAL_EVERY_S",
    "SEGMENT_PATTERN",
    "TMP_SUFFIX",
    "EventLog",
    "RecordError",
    "Recovered",
    "SegmentWriter",
    "list_segments",
    "read_events",
    "read_journal",
    "recover_frames",
    "recover_run",
    "segment_name",
]
