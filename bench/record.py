"""The recorder: frames streamed to Parquet segments, step events to ``events.parquet``.

"The log is the truth" (DESIGN.md): every frame received and sent ends up in
``frames/part-NNNNN.parquet`` of the run directory. A segment is collected in memory, written to
``part-NNNNN.parquet.tmp``, closed (and fsynced) and only then renamed to its final name, so a
reader never sees half a segment and a crash or ``kill -9`` loses at most the open one. A segment
is closed when it holds ``max_frames`` frames or is ``max_seconds`` old (by the writer's clock,
checked on every write and by :meth:`SegmentWriter.poll`), so memory stays flat however long a
run lasts.

Buffering a whole segment (instead of appending row groups to an open Parquet file) gives the same
loss bound with one large row group per segment, which makes reading back fast.

The importers and exporters of other log formats live in :mod:`bench.logfiles`: reading a BLF or
an MF4 has nothing to do with recording a run, even though DESIGN.md first put both here.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

import can
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import HarnessError, InputError
from .frames import FRAME_SCHEMA, append_message, empty_rows, normalize

SEGMENT_PATTERN = re.compile(r"^part-(\d{5,})\.parquet$")
TMP_SUFFIX = ".tmp"

EVENT_SCHEMA = pa.schema(
    [
        ("timestamp", pa.float64()),
        ("kind", pa.string()),
        ("name", pa.string()),
        ("detail", pa.string()),  # JSON object
    ]
)
# events that matter for verdicts are on disk as soon as they happen
EVENT_KINDS_FLUSHED_AT_ONCE = frozenset({"step_start", "step_end", "abort"})


def segment_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def list_segments(frames_dir: Path) -> list[Path]:
    """Closed segments of a directory in order (temporary files of an open segment excluded)."""
    found = []
    for path in frames_dir.iterdir():
        match = SEGMENT_PATTERN.match(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


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
        raise HarnessError(f"{path}: cannot write ({exc.strerror or exc})") from None
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


class SegmentWriter:
    """Stream frames into ``frames_dir/part-NNNNN.parquet`` segments (see the module docstring).

    ``clock`` decides a segment's age (``time.monotonic`` by default: the loss bound is about
    wall time, even when the run itself uses a simulated clock).
    """

    def __init__(
        self,
        frames_dir: Path,
        *,
        max_frames: int = 200_000,
        max_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        fsync: bool = True,
    ) -> None:
        if max_frames < 1:
            raise ValueError("max_frames must be at least 1")
        if max_seconds <= 0:
            raise ValueError("max_seconds must be positive")
        self.frames_dir = Path(frames_dir)
        self.max_frames = max_frames
        self.max_seconds = max_seconds
        self._clock = clock
        self._fsync = fsync
        try:
            self.frames_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HarnessError(f"{self.frames_dir}: cannot create ({exc.strerror})") from None
        existing = list_segments(self.frames_dir)
        # continue numbering after segments already there: never overwrite a recorded segment
        self._next_index = (
            int(SEGMENT_PATTERN.match(existing[-1].name).group(1)) + 1 if existing else 0
        )
        self._pending: list[pa.Table] = []
        # messages collect as column lists (about 1 µs each) and become a table in bulk:
        # building a table per call would cost ~100 µs, too slow for frame-by-frame callers
        self._rows: dict[str, list] = empty_rows()
        self._pending_frames = 0
        self._opened_at: float | None = None
        self._closed = False
        self.frames_written = 0
        self.segments: list[Path] = []

    # -- writing ---------------------------------------------------------------------------------

    @property
    def pending_frames(self) -> int:
        """Frames held in memory for the open segment (never more than ``max_frames``)."""
        return self._pending_frames

    def write_messages(self, messages: Sequence[can.Message], direction: str | None = None) -> None:
        """Record python-can messages; ``direction`` (``rx``/``tx``) overrides ``msg.is_rx``.

        Cheap enough to call for every single frame.
        """
        self._check_open()
        rows = self._rows
        for msg in messages:
            if self._opened_at is None:
                self._opened_at = self._clock()
            append_message(rows, msg, direction)
            self._pending_frames += 1
            if self._pending_frames >= self.max_frames:
                self.flush()
                rows = self._rows
        self.poll()

    def _check_open(self) -> None:
        if self._closed:
            raise HarnessError(f"{self.frames_dir}: recorder already closed")

    def _collect_rows(self) -> None:
        """Turn buffered messages into a table, keeping their place among written tables."""
        if self._rows["timestamp"]:
            self._pending.append(pa.Table.from_pydict(self._rows, schema=FRAME_SCHEMA))
            self._rows = empty_rows()

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
            start += take
            if self._pending_frames >= self.max_frames:
                self.flush()
        self.poll()

    def poll(self) -> None:
        """Close the open segment if it is ``max_seconds`` old; call it when no frames arrive."""
        if self._opened_at is not None and self._clock() - self._opened_at >= self.max_seconds:
            self.flush()

    def flush(self) -> None:
        """Close the open segment now (the runner calls this on abort)."""
        self._collect_rows()
        if not self._pending_frames:
            self._pending, self._opened_at = [], None
            return
        table = pa.concat_tables(self._pending).combine_chunks()
        path = self.frames_dir / segment_name(self._next_index)
        _write_atomically(table, path, fsync=self._fsync)
        self._next_index += 1
        self.frames_written += table.num_rows
        self.segments.append(path)
        self._pending, self._pending_frames, self._opened_at = [], 0, None

    def close(self) -> None:
        if not self._closed:
            self.flush()
            if not self.segments:
                # A recording that saw no frame is still a frame table: readers and reports can
                # then say "zero frames" instead of failing on a missing file.
                self._pending = [FRAME_SCHEMA.empty_table()]
                self._pending_frames = 0
                path = self.frames_dir / segment_name(self._next_index)
                _write_atomically(FRAME_SCHEMA.empty_table(), path, fsync=self._fsync)
                self.segments.append(path)
                self._pending = []
            self._closed = True

    def __enter__(self) -> SegmentWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


# -- events ----------------------------------------------------------------------------------------


class EventLog:
    """Step starts/ends, stimuli, aborts and notes, kept in ``events.parquet``.

    Events are few, so the whole file is rewritten atomically on every flush: it is always a
    complete Parquet file. Step and abort events are flushed when added; others at least every
    ``max_seconds`` (checked when events are added) and on close.
    """

    def __init__(self, path: Path, *, max_seconds: float = 1.0, fsync: bool = True) -> None:
        self.path = Path(path)
        self.max_seconds = max_seconds
        self._fsync = fsync
        self._rows: dict[str, list] = {name: [] for name in EVENT_SCHEMA.names}
        self._dirty = False
        self._last_flush = time.monotonic()
        if self.path.exists():
            # reopening a run's log (e.g. a resumed run) keeps what is there
            existing = read_events(self.path)
            for name in EVENT_SCHEMA.names:
                self._rows[name] = existing.column(name).to_pylist()
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        return len(self._rows["timestamp"])

    def add(self, timestamp: float, kind: str, name: str, detail: dict | None = None) -> None:
        self._rows["timestamp"].append(float(timestamp))
        self._rows["kind"].append(str(kind))
        self._rows["name"].append(str(name))
        self._rows["detail"].append(json.dumps(detail or {}, sort_keys=True, default=str))
        self._dirty = True
        if (
            kind in EVENT_KINDS_FLUSHED_AT_ONCE
            or time.monotonic() - self._last_flush >= self.max_seconds
        ):
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


def read_events(path: Path) -> pa.Table:
    """The events of ``events.parquet`` (or of a run directory), sorted by time (stable).

    A missing file is an empty table: logs from elsewhere have no step events.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "events.parquet"
    if not path.exists():
        return EVENT_SCHEMA.empty_table()
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{path}: not a readable events file ({_reason(exc)})") from None
    missing = [n for n in ("timestamp", "kind", "name") if n not in table.column_names]
    if missing:
        raise InputError(f"{path}: not an events file, missing column(s) {', '.join(missing)}")
    if "detail" not in table.column_names:
        table = table.append_column("detail", pa.array(["{}"] * table.num_rows, pa.string()))
    try:
        table = table.select(EVENT_SCHEMA.names).cast(EVENT_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InputError(f"{path}: events columns have the wrong types ({_reason(exc)})") from None
    return table.sort_by([("timestamp", "ascending")]) if table.num_rows else table


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


__all__ = [
    "EVENT_SCHEMA",
    "FRAME_SCHEMA",
    "EventLog",
    "SegmentWriter",
    "list_segments",
    "read_events",
    "segment_name",
]
