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
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import can
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InputError
from ..frames import FRAME_SCHEMA, FrameProblem, from_messages
from .base import LogFormat, Read, Source, channel_limit, numbered_channels, reason, register

_MDF_MAGIC = (b"MDF     ", b"UnFinMF ")
#: python-can's MF4 records store BusChannel as uint8.
HIGHEST_CHANNEL = 255


def read(source: Source) -> Read:
    path = source.path
    table, start = _read_mf4(path)

    def describe(problem: FrameProblem) -> str:
        return f"{path}: frame {problem.row + 1}: {problem.reason}"

    return Read(table, describe, start=start)


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


def _read_mf4(path: Path) -> tuple[pa.Table, float | None]:
    with open(path, "rb") as file:
        magic = file.read(8)
    if magic not in _MDF_MAGIC:
        raise InputError(f"{path}: not an MF4 file (no MDF header)")
    with _quiet_asammdf():
        try:
            table, start = _read_mf4_columns(path)
        except Exception as exc:  # asammdf raises MdfException, ValueError, struct.error …
            problem = f"corrupt MF4 file ({reason(exc)})"
        else:
            if table is not None:
                return table, start

            def messages() -> Iterator[can.Message]:
                reader = can.MF4Reader(str(path))
                try:
                    yield from reader
                finally:
                    reader.stop()

            try:
                return from_messages(messages()), start
            except Exception as exc:
                problem = f"corrupt MF4 file ({reason(exc)})"
    raise InputError(f"{path}: {problem}")


_MF4_KINDS = ("CAN_DataFrame", "CAN_ErrorFrame", "CAN_RemoteFrame")


def _read_mf4_columns(path: Path, chunk: int = 1 << 20) -> tuple[pa.Table | None, float | None]:
    """ASAM bus logging groups read as whole columns, the way python-can's ``MF4Reader`` reads
    them frame by frame (same groups, fields and defaults); None for layouts it cannot handle
    (payloads not stored as fixed-size byte arrays), which then go through ``MF4Reader``."""
    from asammdf import MDF, Source
    from asammdf.blocks.v4_constants import FLAG_CG_BUS_EVENT

    mdf = MDF(str(path))
    try:
        start = _utc(mdf.header.start_time).timestamp()
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
            records = 0
            while records < channel_group.cycles_nr:
                signal = mdf.get(kind, index, record_offset=records, record_count=chunk, raw=False)
                table = _mf4_table(kind, signal.samples, signal.timestamps + start)
                if table is None:
                    return None, start
                tables.append(table)
                records += len(signal.samples)
                if len(signal.samples) < chunk:
                    break
            if records != channel_group.cycles_nr:
                # a damaged record count would otherwise send the loop on for ever
                raise _Corrupt(
                    f"channel group {index} ({kind}) says {channel_group.cycles_nr} records, "
                    f"its data holds {records}"
                )
    finally:
        mdf.close()
    if not tables:
        return FRAME_SCHEMA.empty_table(), start
    return pa.concat_tables(tables), start


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
    )
)
