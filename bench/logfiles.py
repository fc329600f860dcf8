"""Log files in and out: the project's Parquet, BLF, ASC, MF4 and candump ``.log`` ↔ frame table.

DESIGN.md first placed these importers in ``bench.record``; they live here because reading and
writing other tools' log formats is a separate concept from recording a run (the recorder only
ever writes Parquet segments), and ``bench evaluate``/``bench convert`` need them without a run.

Every format goes through its library: python-can's ``BLFReader``/``BLFWriter``, ``ASCReader``/
``ASCWriter`` and ``CanutilsLogReader``/``CanutilsLogWriter``. MF4 goes through asammdf directly,
in python-can's ``MF4Writer``/``MF4Reader`` layout (same groups and record types, the latter
imported from python-can), a million frames at a time: ``MF4Writer`` extends the file one message
at a time and ``MF4Reader`` builds one ``can.Message`` per frame, which takes minutes for a
multi-million-frame log. Layouts the column reader does not handle go through ``MF4Reader``.

Three integrity checks are ours because the readers stop silently at a cut: a BLF whose size
differs from the size in its header, an ASC without its closing ``End TriggerBlock`` line, and a
candump log whose last line has no newline are truncated.

What each format keeps: Parquet keeps everything. BLF, ASC and MF4 number their channels, so
channel names that are not numbers are numbered in order of first appearance (and read back as
those numbers); candump keeps names but not the DLC of remote frames. All keep direction.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import can
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import InputError, one_line
from .frames import FRAME_SCHEMA, from_messages, normalize, to_messages
from .record import SegmentWriter
from .rundir import EVENTS_FILE, FRAMES_DIR, SEGMENT_PATTERN, TMP_SUFFIX, list_segments

log = logging.getLogger(__name__)

PARQUET_SUFFIXES = (".parquet", ".pq")
FORMATS = (".parquet", ".blf", ".asc", ".mf4", ".log")
_MDF_MAGIC = (b"MDF     ", b"UnFinMF ")


@dataclass
class LoadedLog:
    """A frame table read from a log, and the parts that had to be skipped (one line each)."""

    frames: pa.Table
    skipped: list[str] = field(default_factory=list)
    source: Path | None = None


# -- reading ---------------------------------------------------------------------------------------


def read_frames(path: Path) -> LoadedLog:
    """Read a log into a frame table sorted by timestamp.

    ``path`` is a Parquet file, a directory of Parquet segments (or a run directory: its
    ``frames/``), or a BLF, ASC, MF4 or candump ``.log`` file. Truncated or corrupt input is an
    :class:`InputError` naming the file and the reason; in a directory of segments a corrupt
    segment is skipped with a warning instead and listed in :attr:`LoadedLog.skipped`.
    """
    path = Path(path)
    if path.is_dir():
        return _read_segment_dir(path)
    if not path.exists():
        raise InputError(f"{path}: no such log file or directory")
    suffix = path.suffix.lower()
    readers: dict[str, Callable[[Path], pa.Table]] = {
        ".blf": _read_blf,
        ".asc": _read_asc,
        ".log": _read_candump,
        ".mf4": _read_mf4,
    }
    if suffix in PARQUET_SUFFIXES:
        table = _read_parquet(path)
    elif suffix in readers:
        table = readers[suffix](path)
    else:
        raise InputError(f"{path}: unknown log format {suffix or '(no suffix)'!r}; {_known()}")
    return LoadedLog(sort_by_time(table), [], path)


def _known() -> str:
    return "expected .parquet, .blf, .asc, .mf4, .log (candump) or a directory of segments"


def sort_by_time(table: pa.Table) -> pa.Table:
    """Sort by timestamp (stable) unless already sorted, which recorded logs are."""
    if table.num_rows < 2:
        return table
    timestamps = table.column("timestamp")
    if timestamps.null_count == 0:
        values = timestamps.to_numpy()
        if bool(np.all(values[1:] >= values[:-1])):
            return table
    return table.take(pc.sort_indices(table, sort_keys=[("timestamp", "ascending")]))


def _read_parquet(path: Path) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({_reason(exc)})") from None
    return normalize(table, source=str(path))


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
            tables.append(_read_parquet(segment))
        except InputError as exc:
            skipped.append(f"{segment.name}: {str(exc).removeprefix(str(segment) + ': ')}")
    for line in skipped:
        log.warning("%s: skipped %s", directory, line)
    if not tables:
        reason = "no frame segments (part-NNNNN.parquet)" if not segments else "no readable segment"
        detail = f": {'; '.join(skipped)}" if skipped else ""
        raise InputError(f"{directory}: {reason}{detail}")
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    return LoadedLog(sort_by_time(table), skipped, directory)


def _from_reader(path: Path, kind: str, messages: Callable[[], Iterable[can.Message]]) -> pa.Table:
    try:
        return from_messages(messages())
    except InputError:
        raise
    except UnicodeDecodeError as exc:
        problem = f"not a text {kind} file ({exc.reason} at byte {exc.start})"
    except Exception as exc:  # readers raise struct.error, zlib.error, ValueError, their own …
        problem = f"corrupt {kind} file ({_reason(exc)})"
    # raised outside the handler: no reference to the reader's traceback (and its half-open
    # file objects) survives, so they are released here and not at interpreter exit
    raise InputError(f"{path}: {problem}")


def _read_blf(path: Path) -> pa.Table:
    def messages() -> Iterator[can.Message]:
        reader = can.BLFReader(str(path))
        try:
            actual = path.stat().st_size
            # BLFReader stops silently at a cut; the header says how long the file should be
            if reader.file_size != actual:
                raise InputError(
                    f"{path}: truncated or unfinished BLF file "
                    f"(header says {reader.file_size} bytes, file has {actual})"
                )
            yield from reader
        finally:
            reader.stop()

    return _from_reader(path, "BLF", messages)


def _read_asc(path: Path) -> pa.Table:
    _require_text_tail(
        path,
        "ASC",
        lambda tail: tail.rstrip().endswith(b"End TriggerBlock"),
        "truncated ASC file (no closing 'End TriggerBlock')",
    )

    def messages() -> Iterator[can.Message]:
        reader = can.ASCReader(str(path), relative_timestamp=False)
        try:
            yield from reader
        finally:
            reader.stop()

    return _from_reader(path, "ASC", messages)


def _read_candump(path: Path) -> pa.Table:
    _require_text_tail(
        path,
        "candump",
        lambda tail: not tail or tail.endswith(b"\n"),
        "truncated candump log (the last line is cut off)",
    )

    def messages() -> Iterator[can.Message]:
        reader = can.CanutilsLogReader(str(path))
        try:
            yield from reader
        finally:
            reader.stop()

    return _from_reader(path, "candump", messages)


def _require_text_tail(path: Path, kind: str, ok: Callable[[bytes], bool], problem: str) -> None:
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{path}: empty {kind} file")
    with open(path, "rb") as file:
        file.seek(max(0, size - 256))
        tail = file.read()
    if not ok(tail):
        raise InputError(f"{path}: {problem}")


@contextmanager
def _quiet_asammdf() -> Iterator[None]:
    """asammdf objects that failed to open complain from ``__del__``; keep stderr one line."""
    previous = sys.unraisablehook
    sys.unraisablehook = lambda _: None
    try:
        yield
    finally:
        gc.collect()
        sys.unraisablehook = previous


def _read_mf4(path: Path) -> pa.Table:
    with open(path, "rb") as file:
        magic = file.read(8)
    if magic not in _MDF_MAGIC:
        raise InputError(f"{path}: not an MF4 file (no MDF header)")
    with _quiet_asammdf():
        try:
            table = _read_mf4_columns(path)
        except Exception as exc:  # asammdf raises MdfException, ValueError, struct.error …
            problem = f"corrupt MF4 file ({_reason(exc)})"
        else:
            if table is not None:
                return table

            def messages() -> Iterator[can.Message]:
                reader = can.MF4Reader(str(path))
                try:
                    yield from reader
                finally:
                    reader.stop()

            return _from_reader(path, "MF4", messages)
    raise InputError(f"{path}: {problem}")


_MF4_KINDS = ("CAN_DataFrame", "CAN_ErrorFrame", "CAN_RemoteFrame")


def _read_mf4_columns(path: Path, chunk: int = 1 << 20) -> pa.Table | None:
    """ASAM bus logging groups read as whole columns, the way python-can's ``MF4Reader`` reads
    them frame by frame (same groups, fields and defaults); None for layouts it cannot handle
    (payloads not stored as fixed-size byte arrays), which then go through ``MF4Reader``."""
    from asammdf import MDF, Source
    from asammdf.blocks.v4_constants import FLAG_CG_BUS_EVENT

    mdf = MDF(str(path))
    try:
        start = mdf.header.start_time.timestamp()
        tables = []
        for index, group in enumerate(mdf.groups):
            channel_group = group.channel_group
            source = channel_group.acq_source
            if (
                not channel_group.flags & FLAG_CG_BUS_EVENT
                or channel_group.cycles_nr == 0
                or source is None
                or not source.source_type & Source.SOURCE_BUS
                or source.bus_type != Source.BUS_TYPE_CAN
            ):
                continue
            names = {channel.name for channel in group.channels}
            kind = next((k for k in _MF4_KINDS if k in names), None)
            if kind is None:
                continue
            for offset in range(0, channel_group.cycles_nr, chunk):
                signal = mdf.get(kind, index, record_offset=offset, record_count=chunk, raw=False)
                table = _mf4_table(kind, signal.samples, signal.timestamps + start)
                if table is None:
                    return None
                tables.append(table)
    finally:
        mdf.close()
    if not tables:
        return FRAME_SCHEMA.empty_table()
    return pa.concat_tables(tables)


def _mf4_table(kind: str, samples: np.ndarray, timestamps: np.ndarray) -> pa.Table | None:
    n = len(samples)
    names = samples.dtype.names or ()

    def column(name: str) -> np.ndarray | None:
        return samples[f"{kind}.{name}"] if f"{kind}.{name}" in names else None

    def flag(name: str, default: bool) -> np.ndarray:
        values = column(name)
        return np.full(n, default) if values is None else values.astype(bool)

    ids = column("ID")
    direction = column("Dir")
    if direction is None:
        rx = np.ones(n, dtype=bool)
    elif direction.dtype.kind == "S":
        rx = direction == b"Rx"
    else:
        rx = direction == 0
    channels = column("BusChannel")
    lengths, data = np.zeros(n, dtype=np.int32), None
    payload, size = column("DataBytes"), column("DataLength")
    if kind != "CAN_RemoteFrame" and payload is not None and size is not None:
        if payload.dtype != np.uint8 or payload.ndim != 2:
            return None
        lengths = np.minimum(size.astype(np.int32), payload.shape[1])
        # row-major boolean selection: each frame's first `length` bytes, frames in order
        values = payload[np.arange(payload.shape[1]) < lengths[:, None]]
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
        data = pa.Array.from_buffers(
            pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(values)]
        )
    dlc = column("DLC") if kind == "CAN_RemoteFrame" else lengths  # python-can: dlc = len(data)
    remote = np.full(n, True) if kind == "CAN_RemoteFrame" else flag("RTR", False)
    return pa.Table.from_pydict(
        {
            "timestamp": pa.array(timestamps.astype(np.float64)),
            "channel": (
                pa.repeat(pa.scalar("", pa.string()), n)
                if channels is None
                else pa.array(channels.astype(np.int64)).cast(pa.string())
            ),
            "arbitration_id": pa.array(
                np.zeros(n, np.uint32) if ids is None else (ids & 0x1FFFFFFF).astype(np.uint32)
            ),
            "is_extended_id": pa.array(flag("IDE", True)),  # can.Message's default
            "is_remote_frame": pa.array(remote),
            "is_error_frame": pa.array(np.full(n, kind == "CAN_ErrorFrame")),
            "is_fd": pa.array(flag("EDL", False)),
            "bitrate_switch": pa.array(flag("BRS", False)),
            "dlc": pa.array(np.asarray(dlc).astype(np.uint8)),
            "data": data if data is not None else pa.repeat(pa.scalar(b"", pa.binary()), n),
            "direction": pa.array(np.where(rx, "rx", "tx")).cast(pa.string()),
        },
        schema=FRAME_SCHEMA,
    )


def _reason(exc: BaseException) -> str:
    return one_line(str(exc) or type(exc).__name__)[:200]


# -- writing ---------------------------------------------------------------------------------------


def write_frames(table: pa.Table, path: Path) -> None:
    """Write a frame table as ``.parquet``, ``.blf``, ``.asc``, ``.log`` (candump) or ``.mf4``.

    A path without a suffix becomes a directory of Parquet segments, like a run's ``frames/``.
    The file appears under its name only once complete (written as ``<name>.tmp`` first).
    """
    path = Path(path)
    table = normalize(table)
    suffix = path.suffix.lower()
    if suffix == "":
        with SegmentWriter(path, journal=False) as writer:  # a conversion: nothing to lose
            writer.write_table(table)
        return
    writers: dict[str, Callable[[pa.Table, Path], None]] = {
        ".parquet": _write_parquet,
        ".pq": _write_parquet,
        ".blf": lambda t, p: _write_with(can.BLFWriter(str(p)), t, numbered_channels=True),
        ".asc": lambda t, p: _write_with(can.ASCWriter(str(p)), t, numbered_channels=True),
        ".log": lambda t, p: _write_with(can.CanutilsLogWriter(str(p)), t),
        ".mf4": _write_mf4,
    }
    if suffix not in writers:
        raise InputError(f"{path}: cannot write format {suffix!r}; {_known()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # the temporary name keeps the suffix: asammdf would otherwise append ".mf4" itself
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        writers[suffix](table, tmp)
        tmp.replace(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror or _reason(exc)})") from None
    finally:
        tmp.unlink(missing_ok=True)


def _write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, row_group_size=1 << 20)


def _channel_numbers(table: pa.Table) -> pa.Table:
    """Replace channel names by numbers (BLF/ASC/MF4 only store numbers); numbers stay."""
    names = table.column("channel").to_pylist()
    numbers: dict[str, int] = {}
    for name in dict.fromkeys(names):
        if name and name.isdigit():
            numbers[name] = int(name)
    next_free = 0
    for name in dict.fromkeys(names):
        if name and name not in numbers:
            while next_free in numbers.values():
                next_free += 1
            numbers[name] = next_free
            next_free += 1
    channels = pa.array([str(numbers[n]) if n else "" for n in names], pa.string())
    return table.set_column(table.schema.get_field_index("channel"), "channel", channels)


def _write_with(
    writer: can.io.generic.MessageWriter, table: pa.Table, *, numbered_channels: bool = False
) -> None:
    if numbered_channels:
        table = _channel_numbers(table)
    try:
        for message in to_messages(table):
            if numbered_channels and message.channel is not None:
                message.channel = int(message.channel)
            writer.on_message_received(message)
    finally:
        writer.stop()


def _write_mf4(table: pa.Table, path: Path, chunk: int = 500_000) -> None:
    """MF4 bus logging in python-can's ``MF4Writer`` layout, written a chunk at a time."""
    from asammdf import MDF, Signal
    from asammdf.blocks.v4_blocks import SourceInformation
    from asammdf.blocks.v4_constants import BUS_TYPE_CAN, SOURCE_BUS
    from can.io.mf4 import ERR_DTYPE, RTR_DTYPE, STD_DTYPE

    table = _channel_numbers(table)
    timestamps = table.column("timestamp").to_numpy()
    start = float(timestamps.min()) if timestamps.size else 0.0
    mdf = MDF(version="4.10")
    # python-can's MF4Reader adds the header start time back to the relative timestamps
    mdf.header.start_time = datetime.fromtimestamp(start, UTC)
    source = SourceInformation(source_type=SOURCE_BUS, bus_type=BUS_TYPE_CAN)
    kinds = (
        ("CAN_DataFrame", STD_DTYPE),
        ("CAN_ErrorFrame", ERR_DTYPE),
        ("CAN_RemoteFrame", RTR_DTYPE),
    )
    for name, dtype in kinds:
        mdf.append(
            Signal(
                name=name,
                samples=np.array([], dtype=dtype),
                timestamps=np.array([], dtype="<f8"),
                source=source,
            )
        )
    error = table.column("is_error_frame").to_numpy(zero_copy_only=False)
    remote = table.column("is_remote_frame").to_numpy(zero_copy_only=False) & ~error
    group_of = np.where(error, 1, np.where(remote, 2, 0))
    for offset in range(0, table.num_rows, chunk):
        part = table.slice(offset, chunk)
        groups = group_of[offset : offset + chunk]
        for index, (name, dtype) in enumerate(kinds):
            rows = np.flatnonzero(groups == index)
            if rows.size:
                records = _mf4_records(part.take(pa.array(rows)), name, dtype)
                relative = timestamps[offset + rows] - start
                mdf.extend(index, [(relative, None), (records, None)])
    try:
        mdf.save(str(path), compression=2, overwrite=True)
    finally:
        mdf.close()


def _mf4_records(part: pa.Table, name: str, dtype: np.dtype) -> np.ndarray:
    records = np.zeros(part.num_rows, dtype=dtype)
    column = part.column
    channels = column("channel").to_pylist()
    records[f"{name}.BusChannel"] = [int(c) if c else 0 for c in channels]
    records[f"{name}.ID"] = column("arbitration_id").to_numpy()
    records[f"{name}.IDE"] = column("is_extended_id").to_numpy(zero_copy_only=False)
    records[f"{name}.Dir"] = column("direction").to_numpy(zero_copy_only=False) == "tx"
    fd = column("is_fd").to_numpy(zero_copy_only=False)
    lengths = pc.binary_length(column("data").fill_null(b"")).to_numpy(zero_copy_only=False)
    if name == "CAN_RemoteFrame":
        records[f"{name}.DLC"] = column("dlc").to_numpy()
        records[f"{name}.DataLength"] = column("dlc").to_numpy()
        return records
    dlc = column("dlc").to_numpy().copy()
    dlc[fd] = [can.util.len2dlc(int(n)) for n in lengths[fd]]
    records[f"{name}.DLC"] = dlc
    records[f"{name}.DataLength"] = lengths
    records[f"{name}.EDL"] = fd
    records[f"{name}.BRS"] = column("bitrate_switch").to_numpy(zero_copy_only=False)
    payload = records[f"{name}.DataBytes"]
    for width in np.unique(lengths):
        # frames of one length: their bytes are one contiguous block per frame
        rows = np.flatnonzero(lengths == width)
        if width:
            data = column("data").take(pa.array(rows)).combine_chunks()
            values = np.frombuffer(data.buffers()[2], np.uint8)
            offsets = np.frombuffer(data.buffers()[1], np.int32)[data.offset]
            payload[rows, :width] = values[offsets : offsets + rows.size * width].reshape(
                rows.size, width
            )
    return records


# -- converting ------------------------------------------------------------------------------------


def convert(src: Path, dst: Path) -> int:
    """Convert a log between formats (by suffix); returns the number of frames written."""
    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise InputError(f"{dst}: output is the input")
    loaded = read_frames(src)
    write_frames(loaded.frames, dst)
    return loaded.frames.num_rows


__all__ = [
    "FORMATS",
    "FRAME_SCHEMA",
    "LoadedLog",
    "convert",
    "read_frames",
    "sort_by_time",
    "write_frames",
]
