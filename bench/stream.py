"""A log read as bounded batches in time order: what streaming evaluation walks over.

:class:`FrameBatches` yields the frames of a log as Arrow tables of about ``batch_rows`` frames,
in exactly the order :func:`bench.logfiles.read_frames` would give the whole log (a stable sort
by timestamp), without ever holding the whole log:

* Parquet segments (a run directory, a directory of segments) are read one segment at a time,
  a single Parquet file one row group at a time (``pyarrow.parquet.ParquetFile.iter_batches``),
  other files (BLF, ASC, TRC, candump, MF4 and their ``.gz`` forms) a chunk of ``batch_rows``
  frames at a time from their python-can/asammdf readers
  (:attr:`bench.logfiles.base.LogFormat.chunks`). Such files have no statistics to give the
  log's span before the first batch (:meth:`FrameBatches.span`): ``bench evaluate`` writes their
  frames into the run directory's segments first (the copy it keeps anyway), then judges those.
* Frames out of order (the recorder writes frames in arrival order from several sources,
  seconds apart in lockstep) are put in order in a buffer that holds :data:`HORIZON_S` seconds
  of log time: rows older than the newest timestamp minus the horizon are final. A frame that
  comes later still than that (older than what was already handed out) cannot be put in place
  without the whole log: :class:`NeedsWholeLog` is raised, and the caller starts again with one
  batch (the in-memory case of the same code).
* A batch never ends inside a run of equal timestamps: a frame at exactly the time of a sample
  is in the same batch as the sample, so an as-of join (``side="right"``) inside a batch sees
  every frame at or before its time.

Every frame is checked on columns as it is read (:func:`bench.frames.find_problem`), the row
named in the whole file's numbering.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import InputError
from .frames import FrameProblem, find_problem, normalize
from .logfiles import BACKWARD_TOLERANCE_S, checked, open_log_file, parquet, read_frames
from .logfiles.base import NeedsWholeLog, Source, reason
from .remote import RemoteFile, arrow_source, local_copy
from .rundir import EVENTS_FILE, FRAMES_DIR, SEGMENT_PATTERN, TMP_SUFFIX, list_segments

log = logging.getLogger(__name__)

#: Frames per batch; ``BENCH_EVAL_BATCH`` (frames) overrides it, e.g. 1 to prove batch borders.
BATCH_ROWS = 1 << 18
BATCH_ENV = "BENCH_EVAL_BATCH"
#: Log time a batch waits for frames that arrive late (recorder segments are in arrival order).
HORIZON_S = 30.0


def batch_rows(default: int = BATCH_ROWS) -> int:
    """The batch size: ``BENCH_EVAL_BATCH`` if set (frames, ≥ 1), else ``default``."""
    text = os.environ.get(BATCH_ENV)
    if not text:
        return default
    try:
        value = int(float(text))
    except ValueError:
        raise InputError(f"{BATCH_ENV}={text!r}: not a number of frames") from None
    if value < 1:
        raise InputError(f"{BATCH_ENV}={text!r}: must be at least 1 frame")
    return value


class FrameBatches:
    """The frames of ``path`` (as :func:`~bench.logfiles.read_frames` takes it) in time order,
    in batches of about ``rows`` frames (``None``: one batch, the whole log).

    After iterating: ``skipped`` and ``notes`` as in :class:`~bench.logfiles.LoadedLog`,
    ``start`` the log's own start date, ``frames`` the number of frames.
    """

    def __init__(self, path: Path | RemoteFile, rows: int | None) -> None:
        # a RemoteFile (bench.remote): a Parquet file in object storage, read in place
        self.path = path if isinstance(path, RemoteFile) else Path(path)
        self.rows = rows
        self.skipped: list[str] = []
        self.notes: list[str] = []
        self.start: float | None = None
        self.frames = 0
        self._pending: pa.Table | None = None
        self._bound = -np.inf  # every frame handed out is older than this
        self._quiet = True  # recorder segments are sorted without a note
        self._back = _BackSteps()

    def span(self) -> tuple[float, float] | None:
        """(first, last) frame time from the Parquet files' statistics, without reading any
        frames; None where a file has none (then judge in one batch). The batches are checked
        against it as they pass (:class:`NeedsWholeLog` if it was wrong)."""
        if self.rows is None:
            return None
        path = self.path
        if path.is_dir():
            directory = path / FRAMES_DIR if (path / FRAMES_DIR).is_dir() else path
            files = list_segments(directory) or sorted(
                p for p in directory.glob("*.parquet") if p.is_file() and p.name != EVENTS_FILE
            )
        elif path.suffix in (".parquet", ".pq") and path.is_file():
            files = [path]
        else:
            return None
        first, last, rows = np.inf, -np.inf, 0
        for file in files:
            try:
                where, filesystem = arrow_source(file)
                metadata = pq.read_metadata(where, filesystem=filesystem)
                column = metadata.schema.to_arrow_schema().get_field_index("timestamp")
            except (OSError, pa.ArrowException):
                continue  # unreadable: skipped when read, and said so
            if column < 0:
                continue
            for index in range(metadata.num_row_groups):
                group = metadata.row_group(index)
                if not group.num_rows:
                    continue
                stats = group.column(column).statistics
                if stats is None or not stats.has_min_max:
                    return None
                first, last = min(first, float(stats.min)), max(last, float(stats.max))
                rows += group.num_rows
        return (first, last) if rows and np.isfinite(first) and np.isfinite(last) else None

    # -- sources ---------------------------------------------------------------------------

    def _parts(self) -> Iterator[pa.Table]:
        path = self.path
        if self.rows is None or (
            isinstance(path, RemoteFile) and path.suffix not in (".parquet", ".pq")
        ):
            with local_copy(path) as readable:  # a RemoteFile is downloaded for this
                loaded = read_frames(readable)  # whole; the reader sorts and notes, we slice
            self.skipped, self.notes, self.start = loaded.skipped, loaded.notes, loaded.start
            yield loaded.frames
            return
        if path.is_dir():
            yield from self._segments(path)
            return
        if path.suffix not in (".parquet", ".pq"):
            yield from self._chunks(path)
            return
        if not path.exists():
            raise InputError(f"{path}: no such log file or directory")
        if path.stat().st_size == 0:
            raise InputError(f"{path}: empty Parquet file")
        self._quiet = False
        yield from _row_groups(path, self._back)

    def _chunks(self, path: Path) -> Iterator[pa.Table]:
        """A BLF, ASC, TRC, candump or MF4 file (or ``.gz``) in its reader's chunks, each
        checked; the reader's notes, skipped lines and start date once it is read."""
        fmt, source = open_log_file(path)
        assert fmt.chunks is not None, f"{fmt.name} is read by row group"
        self._quiet = False
        last = None
        for read in fmt.chunks(source, self.rows):
            table = checked(read)
            self._back.feed(_timestamps(table))
            last = read
            yield table
        if last is not None:
            self.skipped, self.notes, self.start = list(last.skipped), list(last.notes), last.start

    def _segments(self, path: Path) -> Iterator[pa.Table]:
        directory = path / FRAMES_DIR if (path / FRAMES_DIR).is_dir() else path
        segments = list_segments(directory)
        if not segments:
            segments = sorted(
                p for p in directory.glob("*.parquet") if p.is_file() and p.name != EVENTS_FILE
            )
        self.skipped = [
            f"{p.name}: incomplete segment (the recorder stopped while writing it)"
            for p in sorted(directory.glob("*" + TMP_SUFFIX))
            if SEGMENT_PATTERN.match(p.name.removesuffix(TMP_SUFFIX))
        ]
        readable = 0
        for segment in segments:
            try:
                read = parquet.read(Source(segment))
            except InputError as exc:
                self.skipped.append(f"{segment.name}: {str(exc).removeprefix(str(segment) + ': ')}")
                continue
            readable += 1
            yield checked(read)
        for line in self.skipped:
            log.warning("%s: skipped %s", directory, line)
        if not readable:
            why = "no frame segments (part-NNNNN.parquet)" if not segments else (
                "no readable segment")  # fmt: skip
            detail = f": {'; '.join(self.skipped)}" if self.skipped else ""
            raise InputError(f"{directory}: {why}{detail}")

    # -- ordering --------------------------------------------------------------------------

    def __iter__(self) -> Iterator[pa.Table]:
        for part in self._parts():
            if self.rows is None:
                self.frames += part.num_rows
                yield part
                continue
            yield from self._push(part)
        if self._pending is not None and self._pending.num_rows:
            self.frames += self._pending.num_rows
            yield from _slices(self._pending, self.rows)
        self._pending = None
        if not self._quiet:
            self.notes.extend(self._back.note(self.path))
        for line in self.notes:
            log.warning("%s", line)

    def _push(self, part: pa.Table) -> Iterator[pa.Table]:
        if not part.num_rows:
            return
        ts = _timestamps(part)
        if float(ts.min()) < self._bound:
            raise NeedsWholeLog(f"a frame at t = {float(ts.min())!r} came after later ones")
        pending = part if self._pending is None else pa.concat_tables([self._pending, part])
        times = _timestamps(pending)
        if times.size > 1 and not bool(np.all(times[1:] >= times[:-1])):
            order = pc.sort_indices(pending, sort_keys=[("timestamp", "ascending")])
            pending = pending.take(order)  # Arrow's sort is stable, as read_frames' sort
            times = _timestamps(pending)
        cut = float(times[-1]) - HORIZON_S
        # final: strictly older than the cut, so equal timestamps stay in one batch
        end = int(np.searchsorted(times, cut, side="left"))
        if end < (self.rows or 0):
            self._pending = pending  # less than a batch is final yet: wait for more
            return
        self._bound = cut  # everything handed out is older: a later frame must not be
        final, self._pending = pending.slice(0, end), pending.slice(end)
        self.frames += final.num_rows
        yield from _slices(final, self.rows or final.num_rows)


def _timestamps(table: pa.Table) -> np.ndarray:
    return np.asarray(table.column("timestamp").to_numpy(), dtype=np.float64)


def _slices(table: pa.Table, rows: int) -> Iterator[pa.Table]:
    """``table`` in slices of about ``rows`` rows, never cutting a run of equal timestamps."""
    times = _timestamps(table)
    start = 0
    while start < table.num_rows:
        end = min(start + rows, table.num_rows)
        if end < table.num_rows:
            # move the end past every frame at the same time as the last one kept
            end = int(np.searchsorted(times, times[end - 1], side="right"))
        yield table.slice(start, end - start)
        start = end


def _check(table: pa.Table, path: Path, first_row: int) -> None:
    problem = find_problem(table)
    if problem is not None:
        problem = replace(problem, row=problem.row + first_row)
        raise InputError(_describe(path, problem))


def _describe(path: Path, problem: FrameProblem) -> str:
    return f"{path}: row {problem.row}, column {problem.column!r}: {problem.reason}"


class _BackSteps:
    """Steps back in time of a file read in parts, for the note ``sort_by_time`` writes."""

    def __init__(self) -> None:
        self.last: float | None = None
        self.count = 0
        self.lowest = 0.0
        self.first: tuple[int, float, float] | None = None
        self.rows = 0

    def feed(self, ts: np.ndarray) -> None:
        if not ts.size:
            return
        joined = ts if self.last is None else np.concatenate(([self.last], ts))
        offset = self.rows - (0 if self.last is None else 1)
        steps = joined[1:] - joined[:-1]
        if steps.size:
            self.lowest = min(self.lowest, float(steps.min()))
            back = np.flatnonzero(steps < -BACKWARD_TOLERANCE_S)
            if back.size and self.first is None:
                row = int(back[0]) + 1
                self.first = (offset + row, float(joined[row]), float(joined[row - 1]))
            self.count += int(back.size)
        self.last = float(ts[-1])
        self.rows += ts.size

    def note(self, path: Path) -> list[str]:
        if not self.count or self.first is None:
            return []
        row, now, before = self.first
        return [
            f"{path.name}: timestamps go back {self.count} time(s) by up to {-self.lowest:.6f} s "
            f"(first at row {row}: {now!r} after {before!r}); frames sorted by timestamp"
        ]


def _row_groups(path: Path | RemoteFile, back: _BackSteps) -> Iterator[pa.Table]:
    try:
        where, filesystem = arrow_source(path)
        file = pq.ParquetFile(where, filesystem=filesystem)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({reason(exc)})") from None
    first = 0
    try:
        for index in range(file.num_row_groups):
            table = normalize(file.read_row_group(index), source=str(path))
            _check(table, path, first)
            back.feed(_timestamps(table))
            first += table.num_rows
            yield table
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({reason(exc)})") from None
    if file.num_row_groups == 0:
        yield normalize(file.schema_arrow.empty_table(), source=str(path))


__all__ = ["BATCH_ENV", "BATCH_ROWS", "HORIZON_S", "FrameBatches", "NeedsWholeLog", "batch_rows"]
