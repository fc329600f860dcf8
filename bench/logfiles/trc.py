"""PCAN-View trace (``.trc``, ``.trc.gz``) through python-can's ``TRCReader`` and ``TRCWriter``.

python-can reads versions 1.0 to 2.1 (1.0 has no start time: timestamps stay relative, said in
a note) and skips record types it does not read (status ``ST``, error ``ER``, …) with a log line
only: bench counts them and names their lines. Its writer writes version 2.1 with classic data
frames only; bench refuses to write error, remote and FD frames to TRC rather than drop them.
Timestamps: the start is days since 1899-12-30 in UTC, offsets in µs. Channels are PCAN's bus
numbers as python-can reads them (from 1); bench writes channel N as bus N, so they round-trip.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import can
import pyarrow as pa

from .base import (
    LogFormat,
    Read,
    Source,
    numbered_channels,
    refuse_frames,
    register,
    whole,
    write_messages,
)
from .text import Lines, TextFormat, collect, text_read

_QUIET = re.compile(r"\s*(;|$)")
# status (ST), error counter (EC) and event (EV) records, version 1.3 warnings, version 1.0 bus
# state lines ("FFFFFFFF 4 00 00 00 08 -- -- -- -- BUSHEAVY"); error frames (ER) are counted
_STATUS = re.compile(r"\s(ST|EC|EV|Warng)\s|\sBUS[A-Z]+\s*$")


def quiet(line: str) -> bool:
    return _QUIET.match(line) is not None or _STATUS.search(line) is not None


TRC = TextFormat("TRC", quiet, lambda line: None)


def read(source: Source) -> Read:
    return whole(chunks(source, None))


def chunks(source: Source, rows: int | None) -> Iterator[Read]:
    """The file in chunks of ``rows`` frames (see :data:`bench.logfiles.base.Chunker`)."""
    readers: list[can.TRCReader] = []

    def make(lines: Lines) -> can.TRCReader:
        readers.append(can.TRCReader(lines))
        return readers[0]

    # python-can logs every line it cannot read; bench reports them once, with line numbers
    logger = logging.getLogger("can.io.trc")
    level = logger.level
    logger.setLevel(logging.ERROR)
    frames = 0
    try:
        for collected in collect(source, TRC, make, rows=rows):
            frames += collected.frames.num_rows
            if not collected.last:
                yield text_read(source, TRC, collected)
                continue
            start = readers[0].start_time.timestamp() if readers and readers[0].start_time else None
            notes = []
            if start is None and frames:
                notes.append(f"{source.path.name}: no start time; timestamps are relative")
            yield text_read(source, TRC, collected, notes=notes, start=start)
    finally:
        logger.setLevel(level)


def write(table: pa.Table, path: Path, start: float | None) -> None:
    del start  # python-can's TRCWriter starts the trace at its first frame
    refuse_frames(
        table,
        path,
        "TRC (python-can writes version 2.1 data frames only)",
        {
            "is_error_frame": "error frames",
            "is_remote_frame": "remote frames",
            "is_fd": "CAN FD frames",
        },
    )
    write_messages(_Writer(str(path)), numbered_channels(table))


class _Writer(can.TRCWriter):
    """python-can's ``TRCWriter`` writing channel N as bus N: python-can writes bus N + 1 but
    its reader gives bus N back as channel N, so every round trip would shift the channel."""

    def on_message_received(self, msg: can.Message) -> None:
        if isinstance(msg.channel, int):
            msg.channel -= 1
        super().on_message_received(msg)


FORMAT = register(
    LogFormat(
        "TRC",
        (".trc",),
        read,
        write,
        keeps="timestamps to the µs (start date of the first frame, UTC); numbered channels; "
        "direction; writes classic data frames only (refuses error, remote and FD frames)",
        chunks=chunks,
    )
)
