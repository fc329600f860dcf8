"""Vector BLF (``.blf``, ``.blf.gz``) through python-can's ``BLFReader`` and ``BLFWriter``.

Two checks are bench's own: ``BLFReader`` stops silently at a cut, so a file whose size differs
from the size in its header is truncated; and a problem names the byte offset python-can had
reached and the number of the frame. BLF dates are UTC (python-can reads the header's SYSTEMTIME
as UTC), so timestamps do not depend on the machine's time zone. The writer starts the log at
the log's own start (floored to the millisecond, as the header holds ms) and stores offsets in
nanoseconds. python-can writes and reads error frames as ``CAN_ERROR_EXT`` objects, which hold no
direction and no FD flags (BLF's ``CAN_FD_ERROR_64`` is not read by python-can): those are lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import can
import pyarrow as pa

from ..errors import InputError
from ..frames import BadValue, FrameProblem, from_messages
from .base import (
    LogFormat,
    Read,
    Source,
    channel_limit,
    floor_ms,
    numbered_channels,
    reason,
    register,
    whole,
    write_messages,
)

#: python-can stores channel + 1 in a 16-bit field.
HIGHEST_CHANNEL = 0xFFFE
#: every BLF object starts with this signature in a 16-byte base header
_OBJECT = b"LOBJ"
_OBJECT_HEADER = 16


class _ObjectOffsets:
    """The binary file ``BLFReader`` reads, noting where each object it reads starts.

    ``BLFReader`` reads a whole log container (and decompresses it) before it yields the
    container's first frame, so the file position at a failure is the *end* of the bad object;
    a corrupt container must be named by its start. Reads are per object, not per frame."""

    def __init__(self, file: Any) -> None:
        self._file = file
        self.object_start = 0  # the last object whose header was read
        self.read_start = 0  # the last read (a header that is not an object's)

    def read(self, size: int = -1) -> bytes:
        at = self._file.tell()
        data = self._file.read(size)
        self.read_start = at
        if size == _OBJECT_HEADER and data[:4] == _OBJECT:
            self.object_start = at
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


def read(source: Source) -> Read:
    return whole(chunks(source, None))


def chunks(source: Source, rows: int | None) -> Iterator[Read]:
    """The file in chunks of ``rows`` frames (see :data:`bench.logfiles.base.Chunker`):
    ``BLFReader`` is an iterator, decompressing one log container at a time."""
    path = source.path
    state = {"offset": 0, "frames": 0}
    start: list[float | None] = []

    def messages() -> Iterator[can.Message]:
        file = _ObjectOffsets(source.open_binary())
        reader = can.BLFReader(file)
        try:
            # python-can gives 0 for a header without a date (SYSTEMTIME all zeros)
            start.append(reader.start_timestamp or None)
            if not source.gz and reader.file_size != path.stat().st_size:
                # BLFReader stops silently at a cut; the header says how long the file should be
                raise InputError(
                    f"{path}: truncated or unfinished BLF file "
                    f"(header says {reader.file_size} bytes, file has {path.stat().st_size})"
                )
            for message in reader:
                state["frames"] += 1
                yield message
        except can.io.blf.BLFParseError:
            state["offset"] = file.read_start  # the header without an object's signature
            raise
        except Exception:
            state["offset"] = file.object_start  # the object being read or unpacked
            raise
        finally:
            reader.stop()

    def describe_from(first: int) -> Callable[[FrameProblem], str]:
        def describe(problem: FrameProblem) -> str:
            number = first + problem.row + 1
            return f"{path}: frame {number} (CAN object {number}): {problem.reason}"

        return describe

    given = messages()
    first = 0
    try:
        while True:
            problem = None
            try:
                table = from_messages(given if rows is None else islice(given, rows))
            except InputError:
                raise
            except BadValue as exc:
                problem = f"{path}: frame {first + exc.problem.row + 1}: {exc.problem.reason}"
            except Exception as exc:  # BLFParseError, struct.error, zlib.error, EOFError (gzip) …
                problem = (
                    f"{path}: corrupt BLF file at byte offset {state['offset']} "
                    f"(after frame {state['frames']}): {reason(exc)}"
                )
            if problem is not None:
                # raised outside the handler: the reader's half-open file is released here
                raise InputError(problem)
            last = rows is None or table.num_rows < rows
            yield Read(table, describe_from(first), start=start[0] if start else None)
            first += table.num_rows
            if last:
                return
    finally:
        given.close()


def write(table: pa.Table, path: Path, start: float | None) -> None:
    table = numbered_channels(table)
    channel_limit(table, path, "BLF", HIGHEST_CHANNEL)
    writer = can.BLFWriter(str(path))
    timestamps = table.column("timestamp").to_numpy()
    if timestamps.size:
        first = float(timestamps.min())
        # python-can would start at the first frame; the log's own start is kept instead
        writer.start_timestamp = floor_ms(first if start is None or start > first else start)
    write_messages(writer, table)


FORMAT = register(
    LogFormat(
        "BLF",
        (".blf",),
        read,
        write,
        keeps="timestamps to the ns with the log's start date (UTC); numbered channels; "
        "direction, remote, FD, BRS; error frames keep id and data but not direction or FD",
        chunks=chunks,
    )
)
