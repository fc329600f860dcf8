"""Log files in and out: Parquet, BLF, ASC, TRC, MF4 and candump ``.log`` ↔ frame table.

One module per format (as python-can's ``can.io``), each registering a
:class:`~bench.logfiles.base.LogFormat`; this module picks one by suffix (``.gz`` forms of the
text formats and BLF too), checks every frame read, and sorts by time. They live apart from
``bench.record`` because reading other tools' formats is a separate concept from recording a run
(the recorder only ever writes Parquet segments).

Timestamps are absolute seconds since 1970 in UTC, whatever the machine's time zone: dates in
files are read as UTC (ASC dates carry no zone: their wall clock is taken as UTC). Where a log
has no usable date the timestamps stay relative to its start and :attr:`LoadedLog.notes` says so.
The log's own start date (:attr:`LoadedLog.start`) is carried to the writers by :func:`convert`.

Every frame read is checked (:func:`bench.frames.find_problem`): null or non-finite timestamps,
unknown directions and payloads that do not match their DLC are an :class:`InputError` naming the
place (``file:line:column``, ``row N, column C``, ``frame N``). Frames of a log file whose
timestamps go back by more than :data:`BACKWARD_TOLERANCE_S` are sorted by time and the sort is
reported in :attr:`LoadedLog.notes`; smaller steps back (jitter between channels) and the
recorder's own segments (written in arrival order from several sources) are sorted quietly.
"""

from __future__ import annotations

import gzip
import logging
import shutil
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import InputError
from ..frames import FRAME_SCHEMA, find_problem, normalize
from ..record import SegmentWriter
from ..rundir import EVENTS_FILE, FRAMES_DIR, SEGMENT_PATTERN, TMP_SUFFIX, list_segments
from . import asc, blf, candump, mf4, parquet, trc  # noqa: F401 (each registers its format)
from .base import REGISTRY, LogFormat, Read, Source, format_of, known_formats, reason

log = logging.getLogger(__name__)

PARQUET_SUFFIXES = (".parquet", ".pq")
FORMATS = tuple(REGISTRY)
#: Steps back in time up to this many seconds are sorted without a note (channel jitter).
BACKWARD_TOLERANCE_S = 0.001


@dataclass
class LoadedLog:
    """A frame table read from a log, sorted by time.

    ``skipped``: parts that had to be skipped, one line each (corrupt segments, unrecognised
    lines); ``notes``: other things the reader of a result must know (start date unknown,
    frames sorted); ``start``: the log's own start date (seconds since 1970, UTC) where the
    format stores one.
    """

    frames: pa.Table
    skipped: list[str] = field(default_factory=list)
    source: Path | None = None
    notes: list[str] = field(default_factory=list)
    start: float | None = None


# -- reading ---------------------------------------------------------------------------------------


def read_frames(path: Path) -> LoadedLog:
    """Read a log into a frame table sorted by timestamp.

    ``path`` is a Parquet file, a directory of Parquet segments (or a run directory: its
    ``frames/``), or a BLF, ASC, TRC, MF4 or candump ``.log`` file (``.gz`` forms too). Bad or
    truncated input is an :class:`InputError` naming the file, the place and the reason; in a
    directory of segments a corrupt segment is skipped with a warning instead and listed in
    :attr:`LoadedLog.skipped`.
    """
    path = Path(path)
    if path.is_dir():
        return _read_segment_dir(path)
    fmt, source = open_log_file(path)
    read = fmt.read(source)
    checked(read)
    notes = list(read.notes)
    frames = sort_by_time(read.frames, path, notes)
    for line in notes:
        log.warning("%s", line)
    return LoadedLog(frames, list(read.skipped), path, notes, read.start)


def open_log_file(path: Path) -> tuple[LogFormat, Source]:
    """The format and source of a log file, or the :class:`InputError` saying why not (no such
    file, unknown suffix, empty file)."""
    if not path.exists():
        raise InputError(f"{path}: no such log file or directory")
    found = format_of(path)
    if found is None:
        suffix = "".join(path.suffixes[-2:]) or "(no suffix)"
        raise InputError(f"{path}: unknown log format {suffix!r}; {known_formats()}")
    fmt, gz = found
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty {fmt.name} file")
    return fmt, Source(path, gz)


def checked(read: Read) -> pa.Table:
    """``read.frames`` if every frame can be right, else the :class:`InputError` for the first."""
    problem = find_problem(read.frames)
    if problem is not None:
        raise InputError(read.describe(problem))
    return read.frames


def sort_by_time(
    table: pa.Table, source: Path | None = None, notes: list | None = None
) -> pa.Table:
    """Sort by timestamp (stable) unless already sorted, which recorded logs are.

    Steps back by more than :data:`BACKWARD_TOLERANCE_S` are reported in ``notes`` (the first
    row, 0-based in the order read, its timestamp and the one before it, and how many).
    """
    if table.num_rows < 2:
        return table
    values = table.column("timestamp").to_numpy()
    steps = values[1:] - values[:-1]
    if bool(np.all(steps >= 0)):
        return table
    back = np.flatnonzero(steps < -BACKWARD_TOLERANCE_S)
    if back.size and notes is not None:
        row = int(back[0]) + 1
        name = source.name if source is not None else "frames"
        notes.append(
            f"{name}: timestamps go back {back.size} time(s) by up to {-steps.min():.6f} s "
            f"(first at row {row}: {float(values[row])!r} after {float(values[row - 1])!r}); "
            "frames sorted by timestamp"
        )
    return table.take(pc.sort_indices(table, sort_keys=[("timestamp", "ascending")]))


def _read_segment_dir(path: Path) -> LoadedLog:
    directory = path / FRAMES_DIR if (path / FRAMES_DIR).is_dir() else path
    segments = list_segments(directory)
    if not segments:
        # a directory of Parquet files not named by the recorder is read in name order
        # (a run's events.parquet beside them is not frames)
        segments = sorted(
            p for p in directory.glob("*.parquet") if p.is_file() and p.name != EVENTS_FILE
        )
    skipped = [
        f"{p.name}: incomplete segment (the recorder stopped while writing it)"
        for p in sorted(directory.glob("*" + TMP_SUFFIX))
        if SEGMENT_PATTERN.match(p.name.removesuffix(TMP_SUFFIX))
    ]
    tables = []
    for segment in segments:
        try:
            read = parquet.read(Source(segment))
        except InputError as exc:
            skipped.append(f"{segment.name}: {str(exc).removeprefix(str(segment) + ': ')}")
            continue
        tables.append(checked(read))
    for line in skipped:
        log.warning("%s: skipped %s", directory, line)
    if not tables:
        reason_ = (
            "no frame segments (part-NNNNN.parquet)" if not segments else "no readable segment"
        )
        detail = f": {'; '.join(skipped)}" if skipped else ""
        raise InputError(f"{directory}: {reason_}{detail}")
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    # the recorder writes frames as they arrive from several sources (received, sent, several
    # buses), seconds apart in lockstep: its segments are sorted without a note
    return LoadedLog(sort_by_time(table), skipped, directory)


# -- writing ---------------------------------------------------------------------------------------


def write_frames(table: pa.Table, path: Path, *, start: float | None = None) -> None:
    """Write a frame table in the format of ``path``'s suffix (``.asc.gz`` etc. compressed).

    A path without a suffix becomes a directory of Parquet segments, like a run's ``frames/``.
    ``start`` is the log's own start date (seconds since 1970, UTC; default: the first frame),
    kept where the format has a date. The file appears under its name only once complete
    (written as ``.<name>.tmp<suffix>`` first). A frame the format cannot hold (a channel number
    above its limit, a kind of frame it has no record for) is an :class:`InputError`.
    """
    path = Path(path)
    table = normalize(table)
    if not path.suffix:
        with SegmentWriter(path, journal=False) as writer:  # a conversion: nothing to lose
            writer.write_table(table)
        return
    found = format_of(path)
    if found is None or found[0].write is None:
        raise InputError(f"{path}: cannot write this format; {known_formats()}")
    fmt, gz = found
    assert fmt.write is not None
    if fmt.name != "Parquet":
        # log formats are in time order; python-can's writers clamp or garble a step back
        table = sort_by_time(table)
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = path.with_suffix("") if gz else path
    # the temporary name keeps the suffix: asammdf would otherwise append ".mf4" itself
    tmp = path.with_name(f".{plain.stem}.tmp{plain.suffix}")
    packed = path.with_name(f".{path.name}.tmp")
    try:
        try:
            fmt.write(table, tmp, start)
        except InputError as exc:
            # writers name the file they write, the temporary one; the person gave `path`
            raise InputError(str(exc).replace(str(tmp), str(path))) from None
        if gz:
            with open(tmp, "rb") as src, gzip.open(packed, "wb") as dst:
                shutil.copyfileobj(src, dst)
            packed.replace(path)
        else:
            tmp.replace(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror or reason(exc)})") from None
    finally:
        tmp.unlink(missing_ok=True)
        packed.unlink(missing_ok=True)


# -- converting ------------------------------------------------------------------------------------


@dataclass
class Converted:
    """What :func:`convert` read: how many frames it wrote, what it skipped and noted, the
    log's own start date."""

    frames: int
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    start: float | None = None


def convert(src: Path, dst: Path) -> Converted:
    """Convert a log between formats (by suffix), keeping its start date where both have one.

    To Parquet (a file, or a directory of segments: ``dst`` without suffix) the log is read
    and written batch by batch in time order (:class:`bench.stream.FrameBatches`), in memory
    flat in its length; to the other formats it is read whole (their writers need the whole
    log: channel numbering, start date, time order). Returns what was read (``skipped`` and
    ``notes`` are for the person converting).
    """
    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise InputError(f"{dst}: output is the input")
    if not dst.suffix or dst.suffix.lower() in PARQUET_SUFFIXES:
        return _convert_to_parquet(src, dst)
    loaded = read_frames(src)
    write_frames(loaded.frames, dst, start=loaded.start)
    return Converted(loaded.frames.num_rows, loaded.skipped, loaded.notes, loaded.start)


def _convert_to_parquet(src: Path, dst: Path) -> Converted:
    from ..stream import FrameBatches, NeedsWholeLog, batch_rows  # bench.stream reads with this

    for rows in (batch_rows(), None):
        batches = FrameBatches(src, rows)
        sink = _ParquetSink(dst)
        try:
            for table in batches:
                sink.write(table)
            sink.close()
        except NeedsWholeLog:
            sink.discard()
            continue  # frames later than the reordering horizon: read whole and sorted
        except BaseException:
            sink.discard()
            raise
        return Converted(batches.frames, batches.skipped, batches.notes, batches.start)
    raise AssertionError("one batch never needs the whole log again")  # pragma: no cover


class _ParquetSink:
    """A Parquet file (written as ``.<name>.tmp.parquet``, renamed once complete) or a directory
    of segments, written a table at a time; :meth:`discard` leaves nothing of it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
        self._file: pq.ParquetWriter | None = None
        self._segments: SegmentWriter | None = None
        self._made_dir = not path.suffix and not path.exists()  # discard removes it again
        try:
            if not path.suffix:
                self._segments = SegmentWriter(path, journal=False)  # nothing to lose
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._file = pq.ParquetWriter(self._tmp, FRAME_SCHEMA)
        except OSError as exc:
            raise InputError(f"{path}: cannot write ({exc.strerror or reason(exc)})") from None

    def write(self, table: pa.Table) -> None:
        try:
            if self._segments is not None:
                self._segments.write_table(table)
            elif self._file is not None and table.num_rows:
                if not table.schema.equals(FRAME_SCHEMA):
                    table = normalize(table).cast(FRAME_SCHEMA)
                self._file.write_table(table)
        except OSError as exc:
            raise InputError(f"{self.path}: cannot write ({exc.strerror or reason(exc)})") from None

    def close(self) -> None:
        try:
            if self._segments is not None:
                self._segments.close()
            elif self._file is not None:
                self._file.close()
                self._tmp.replace(self.path)
        except OSError as exc:
            raise InputError(f"{self.path}: cannot write ({exc.strerror or reason(exc)})") from None

    def discard(self) -> None:
        if self._segments is not None:
            with suppress(Exception):
                self._segments.close()
            for segment in self._segments.segments:
                segment.unlink(missing_ok=True)
            if self._made_dir:
                with suppress(OSError):  # only if empty: never what was there before
                    self.path.rmdir()
        if self._file is not None:
            with suppress(Exception):
                self._file.close()
            self._tmp.unlink(missing_ok=True)


__all__ = [
    "BACKWARD_TOLERANCE_S",
    "FORMATS",
    "FRAME_SCHEMA",
    "Converted",
    "LoadedLog",
    "convert",
    "read_frames",
    "sort_by_time",
    "write_frames",
]
