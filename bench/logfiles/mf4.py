"""ASAM MDF 4 bus logging (``.mf4``) through asammdf, in python-can's ``MF4Writer`` layout.

Read and written a million frames at a time with asammdf directly: python-can's ``MF4Writer``
extends the file one message at a time and ``MF4Reader`` builds one ``can.Message`` per frame,
which takes minutes for a multi-million-frame log. Same groups, record types and defaults as
python-can's classes (the record types are imported from python-can); the column reader is
tested against ``MF4Reader``, and layouts it does not handle go through ``MF4Reader``. The
header's start time is UTC. python-can's records hold the channel in 8 bits: channels above 255
are refused with exit 2.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import can
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InputError
from ..frames import FRAME_SCHEMA, FrameProblem, from_messages
from .base import (
    LogFormat,
    NeedsWholeLog,
    Read,
    Source,
    channel_limit,
    numbered_channels,
    reason,
    register,
    whole,
)

_MDF_MAGIC = (b"MDF     ", b"UnFinMF ")
#: python-can's MF4 records store BusChannel as uint8.
HIGHEST_CHANNEL = 255


def read(source: Source) -> Read:
    return whole(chunks(source, None))


def chunks(source: Source, rows: int | None) -> Iterator[Read]:
    """The file in chunks of ``rows`` frames in time order across its channel groups (see
    :data:`bench.logfiles.base.Chunker`; None: one chunk in the same order).

    Bounded memory: ``MDF.get(record_offset=, record_count=)`` reads only the data blocks that
    hold those records (asammdf skips the blocks before the offset by their sizes, without
    reading them), so each group is read ``rows`` records at a time and the groups (data, error,
    remote frames: each in time order) are merged by timestamp (:func:`_merged`). A layout the
    column reader does not handle goes through python-can's ``MF4Reader``, also an iterator."""
    path = source.path
    with open(path, "rb") as file:
        magic = file.read(8)
    if magic not in _MDF_MAGIC:
        raise InputError(f"{path}: not an MF4 file (no MDF header)")
    first = 0
    parts = _whole_columns(path) if rows is None else _read_mf4_columns(path, rows, merge=True)
    while True:
        problem = None
        # asammdf is kept quiet while it reads, not while bench judges what it read
        with _quiet_asammdf():
            try:
                table, start = next(parts)
            except StopIteration:
                return
            except NeedsWholeLog:
                raise
            except Exception as exc:  # asammdf raises MdfException, ValueError, struct.error …
                problem = f"corrupt MF4 file ({reason(exc)})"
                if "seek out of range" in problem:  # asammdf's whole word on a cut-off file
                    problem = _beyond_end(path) or problem
            if problem is not None:
                parts.close()
        if problem is not None:
            raise InputError(f"{path}: {problem}")
        yield Read(table, _describe(path, first), start=start)
        first += table.num_rows


def _beyond_end(path: Path, limit: int = 100_000) -> str | None:
    """The first block a cut-off file refers to past its end, found by following every link
    from the header (HD at byte 64); asammdf says only "seek out of range" for such a file.
    An MF4 block is ``##XX``, 4 reserved bytes, its length and its link count (8 bytes each),
    then the links. Only on the error path; at most ``limit`` blocks are visited."""
    size = path.stat().st_size
    seen: set[int] = set()
    todo = [64]
    with open(path, "rb") as file:
        while todo and len(seen) < limit:
            address = todo.pop()
            if address in seen:
                continue
            seen.add(address)
            header = b""
            if address < size:
                file.seek(address)
                header = file.read(24)
            length = int.from_bytes(header[8:16], "little") if len(header) == 24 else 0
            if len(header) < 24 or address + length > size:
                return (
                    f"truncated MF4 file: the block at byte offset {address} runs past its "
                    f"end ({size} bytes)"
                )
            if header[:2] != b"##":
                return None  # not a block: corrupt, not cut off; asammdf's reason stands
            count = int.from_bytes(header[16:24], "little")
            links = file.read(8 * min(count, (length - 24) // 8))
            todo.extend(
                link
                for i in range(0, len(links) - 7, 8)
                if (link := int.from_bytes(links[i : i + 8], "little"))
            )
    return None


def _describe(path: Path, first: int) -> Callable[[FrameProblem], str]:
    def describe(problem: FrameProblem) -> str:
        return f"{path}: frame {first + problem.row + 1}: {problem.reason}"

    return describe


def _whole_columns(path: Path) -> Iterator[tuple[pa.Table, float | None]]:
    """The whole file as one table, its groups merged in time order as when streamed (so
    both see the same order); a group out of time order: the groups one after the other
    (sorted by the caller, with its note), as the streamed path falls back to."""
    try:
        parts = list(_read_mf4_columns(path, WHOLE_CHUNK, merge=True))
    except NeedsWholeLog:
        parts = list(_read_mf4_columns(path, WHOLE_CHUNK, merge=False))
    tables = [table for table, _ in parts]
    yield pa.concat_tables(tables), parts[-1][1]


@contextmanager
def _quiet_asammdf() -> Iterator[None]:
    """asammdf logs each damaged block as an ERROR with a traceback line, and objects that failed
    to open complain from ``__del__``; bench says it in one line, so both are kept off stderr."""
    previous = sys.unraisablehook
    sys.unraisablehook = lambda _: None
    logger = logging.getLogger("asammdf")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        gc.collect()
        sys.unraisablehook = previous
        logger.setLevel(level)


_MF4_KINDS = ("CAN_DataFrame", "CAN_ErrorFrame", "CAN_RemoteFrame")
#: Records read from a group at a time when the whole file is read.
WHOLE_CHUNK = 1 << 20


def _read_mf4_columns(
    path: Path, chunk: int, *, merge: bool
) -> Iterator[tuple[pa.Table, float | None]]:
    """ASAM bus logging groups read as whole columns, the way python-can's ``MF4Reader`` reads
    them frame by frame (same groups, fields and defaults), as (table, start) pairs of about
    ``chunk`` frames: merged in time order across groups (``merge``) or each group's in turn;
    at least one (empty) table. Layouts it cannot handle (payloads not stored as fixed-size
    byte arrays) go through ``MF4Reader``."""
    from asammdf import MDF

    mdf = MDF(str(path))
    given = False
    try:
        start = _utc(mdf.header.start_time).timestamp()
        readers = [_group_tables(mdf, i, kind, start, chunk) for i, kind in _bus_groups(mdf)]
        firsts = [next(reader, None) for reader in readers]
        if any(first is _UNHANDLED for first in firsts):
            yield from _python_can_tables(path, chunk, start)
            return
        if merge:
            tables = _merged(firsts, readers, chunk)
        else:
            tables = (
                table
                for first, reader in zip(firsts, readers, strict=True)
                if first is not None
                for table in (first, *reader)
            )
        for table in tables:
            given = True
            yield table, start
        if not given:
            yield FRAME_SCHEMA.empty_table(), start
    finally:
        mdf.close()


def _bus_groups(mdf: Any) -> list[tuple[int, str]]:
    """(group index, frame kind) of the CAN bus logging groups that hold records."""
    from asammdf import Source
    from asammdf.blocks.v4_constants import FLAG_CG_BUS_EVENT

    found = []
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
        if kind is not None:
            found.append((index, kind))
    return found


_UNHANDLED: Any = object()  # a group's layout the column reader does not handle


def _group_tables(mdf: Any, index: int, kind: str, start: float, chunk: int) -> Iterator[Any]:
    """One group's frames, ``chunk`` records at a time (:data:`_UNHANDLED` for a layout the
    column reader cannot read)."""
    expected = mdf.groups[index].channel_group.cycles_nr
    records = 0
    while records < expected:
        signal = mdf.get(kind, index, record_offset=records, record_count=chunk, raw=False)
        table = _mf4_table(kind, signal.samples, signal.timestamps + start)
        if table is None:
            if records:  # one group, one record layout: cannot change half-way
                raise _Corrupt(f"channel group {index} ({kind}) changes its record layout")
            yield _UNHANDLED
            return
        records += len(signal.samples)
        if len(signal.samples):
            yield table
        if len(signal.samples) < chunk:
            break
    if records != expected:
        # a damaged record count would otherwise send the loop on for ever
        raise _Corrupt(
            f"channel group {index} ({kind}) says {expected} records, its data holds {records}"
        )


def _merged(firsts: list[Any], readers: list[Iterator[Any]], rows: int) -> Iterator[pa.Table]:
    """The groups' tables merged in time order, as the whole file sorted (stable) would be, and
    as python-can's ``MF4Reader`` merges its per-group iterators (``heapq.merge``, stable).

    Rows strictly older than the oldest last timestamp any unfinished group has read are
    final; ties keep group order, as the stable sort of the groups one after the other does.
    A group whose own timestamps go back cannot be merged this way: :class:`NeedsWholeLog`."""
    buffers: list[pa.Table | None] = list(firsts)
    live = [table is not None for table in firsts]
    last = [_last_time(t) if t is not None else -np.inf for t in firsts]
    for table in firsts:
        if table is not None:
            _require_sorted(table, -np.inf)
    while True:
        waiting = [last[g] for g in range(len(readers)) if live[g]]
        cut = min(waiting) if waiting else np.inf
        out = []
        for g, table in enumerate(buffers):
            if table is None or not table.num_rows:
                continue
            times = _times(table)
            end = int(np.searchsorted(times, cut, side="left"))
            if end:
                out.append(table.slice(0, end))
                buffers[g] = table.slice(end)
        if out:
            merged = pa.concat_tables(out) if len(out) > 1 else out[0]
            if len(out) > 1:
                merged = merged.take(
                    pc.sort_indices(merged, sort_keys=[("timestamp", "ascending")])
                )
            yield from _pieces(merged, rows)
        if not waiting:
            return
        # the group that holds the cut back reads on (every live group at the cut: progress)
        for g in range(len(readers)):
            if live[g] and last[g] == cut:
                table = next(readers[g], None)
                if table is None:
                    live[g] = False
                    continue
                _require_sorted(table, last[g])
                held = buffers[g]
                buffers[g] = (
                    table if held is None or not held.num_rows else pa.concat_tables([held, table])
                )
                last[g] = _last_time(table)


def _pieces(table: pa.Table, rows: int) -> Iterator[pa.Table]:
    for offset in range(0, table.num_rows, rows):
        yield table.slice(offset, rows)


def _times(table: pa.Table) -> np.ndarray:
    return np.asarray(table.column("timestamp").to_numpy(), dtype=np.float64)


def _last_time(table: pa.Table) -> float:
    return float(_times(table)[-1]) if table.num_rows else -np.inf


def _require_sorted(table: pa.Table, before: float) -> None:
    times = _times(table)
    if times.size and (times[0] < before or bool(np.any(times[1:] < times[:-1]))):
        raise NeedsWholeLog("a channel group of the MF4 file is not in time order")


def _python_can_tables(
    path: Path, rows: int, start: float | None
) -> Iterator[tuple[pa.Table, float | None]]:
    """Frames through python-can's ``MF4Reader`` (an iterator), ``rows`` at a time."""
    reader = can.MF4Reader(str(path))
    try:
        messages = iter(reader)
        while True:
            table = from_messages(islice(messages, rows))
            yield table, start
            if table.num_rows < rows:
                return
    finally:
        reader.stop()


class _Corrupt(Exception):
    """The file contradicts itself (reported as a corrupt MF4 file)."""


def _utc(moment: datetime) -> datetime:
    """asammdf gives the header time zone-aware; a naive one is taken as UTC, never local."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


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


def write(table: pa.Table, path: Path, start: float | None, chunk: int = 500_000) -> None:
    """MF4 bus logging in python-can's ``MF4Writer`` layout, written a chunk at a time."""
    from asammdf import MDF, Signal
    from asammdf.blocks.v4_blocks import SourceInformation
    from asammdf.blocks.v4_constants import BUS_TYPE_CAN, SOURCE_BUS
    from can.io.mf4 import ERR_DTYPE, RTR_DTYPE, STD_DTYPE

    table = numbered_channels(table)
    channel_limit(table, path, "MF4 (python-can's bus logging records)", HIGHEST_CHANNEL)
    timestamps = table.column("timestamp").to_numpy()
    first = float(timestamps.min()) if timestamps.size else 0.0
    start = first if start is None or start > first else start
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


FORMAT = register(
    LogFormat(
        "MF4",
        (".mf4",),
        read,
        write,
        gzip=False,
        keeps="timestamps to the ns with the log's start date (UTC); channels 0…255; "
        "direction, remote, FD, BRS, error frames with id, data, direction, FD and BRS",
        chunks=chunks,
    )
)
