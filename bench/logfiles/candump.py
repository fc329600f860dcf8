"""candump ``-L`` logs (``.log``, ``.log.gz``): read by bench, written by python-can's writer.

Why bench parses this format itself instead of python-can's ``CanutilsLogReader``: that reader
reads an id with ``CAN_ERR_FLAG`` (0x20000000) as a data frame unless ``CAN_ERR_BUSERROR`` is
also set, and drops the channel, direction, error class and error data of the error frames it
does see; it turns an odd number of hex digits (``123#ABC``) into the payload ``ab0c``; and it
fails with ``not enough values to unpack`` naming no line. The format is one regular line
(``(1600000000.000000) can0 123#DEADBEEF``, python-can adds `` R``/`` T`` for direction), so bench
reads it with one expression and names line and column of every problem. Where python-can's
reader reads a line, bench reads the same frame (tested on generated logs and on every corpus
``.log``); the differences are the fixes above. Error frames read as SocketCAN delivers them
(and as python-can's SocketCAN bus does): ``is_error_frame``, the error class in
``arbitration_id``, the error details in ``data``.

A candump log has no line that may be skipped except blank ones: any other line that is not a
frame is an error. A last line without its newline means the log was cut off.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path

import can
import pyarrow as pa

from ..errors import InputError
from ..frames import FD_LENGTHS, FrameProblem, table_from_rows
from .base import LogFormat, Read, Source, reason, register, whole, write_messages

CAN_ERR_FLAG = 0x20000000
CAN_ERR_BUSERROR = 0x00000080
CAN_EFF_MASK = 0x1FFFFFFF
_LINE = re.compile(
    r"\s*\((?P<time>[^)\s]*)\)\s+(?P<channel>\S+)\s+(?P<id>[^#\s]*)(?P<sep>##?)(?P<data>\S*)"
    r"(?:\s+(?P<dir>\S+))?\s*$"
)
_HEX = re.compile(r"[0-9a-fA-F]*")


def looks_like_candump(head: bytes) -> bool:
    """Whether a ``.log`` file starting with ``head`` (its first bytes) is a candump log:
    ``candump -l`` lines start with ``(timestamp)``; an empty file is an (empty) candump log.
    A folder of logs holds build and tool ``.log`` files too: those are not logs to judge."""
    head = head.lstrip()
    return not head or head.startswith(b"(")


_SHAPE = "a candump line looks like '(1600000000.000000) can0 123#DEADBEEF [R|T]'"


class _Problem(Exception):
    def __init__(self, column: int, why: str) -> None:
        self.column, self.why = column, why


def _parse(line: str) -> tuple:
    """One candump line as a row of the frame table, or :class:`_Problem`."""
    match = _LINE.match(line)
    if match is None:
        raise _Problem(*_locate_shape(line))
    try:
        timestamp = float(match["time"])
    except ValueError:
        why = f"timestamp {match['time']!r} is not a number"
        raise _Problem(match.start("time") + 1, why) from None
    if timestamp != timestamp or timestamp in (float("inf"), float("-inf")):
        raise _Problem(match.start("time") + 1, f"timestamp {match['time']!r} is not finite")
    can_id = match["id"]
    if len(can_id) not in (3, 8) or not _HEX.fullmatch(can_id):
        raise _Problem(
            match.start("id") + 1,
            f"CAN id {can_id!r} is not 3 (standard) or 8 (extended) hexadecimal digits",
        )
    value = int(can_id, 16)
    extended = len(can_id) == 8
    error = bool(value & CAN_ERR_FLAG)
    fd = match["sep"] == "##"
    data_text, column = match["data"], match.start("data") + 1
    brs = False
    dlc: int | None = None
    remote = False
    if fd:
        if not data_text or data_text[0] not in "0123456789abcdefABCDEF":
            raise _Problem(column, "a CAN FD frame (##) needs its flags digit after ##")
        brs = bool(int(data_text[0], 16) & 0x01)
        data_text, column = data_text[1:], column + 1
    elif data_text[:1] in ("R", "r"):
        remote = True
        rest = data_text[1:]
        if rest and not (len(rest) == 1 and rest.isdigit() and int(rest) <= 8):
            raise _Problem(column + 1, f"remote frame DLC {rest!r} is not 0…8")
        dlc, data_text = (int(rest) if rest else 0), ""
    elif "_" in data_text:
        # can-utils writes a classic DLC of 9…15 as 8 bytes and "_<dlc>"
        data_text, _, code = data_text.partition("_")
        if len(data_text) != 16 or len(code) != 1 or not _HEX.fullmatch(code) or int(code, 16) < 9:
            raise _Problem(column + len(data_text), "'_DLC' needs 8 data bytes and a DLC 9…F")
        dlc = int(code, 16)
    if not _HEX.fullmatch(data_text):
        bad = next(i for i, c in enumerate(data_text) if c not in "0123456789abcdefABCDEF")
        raise _Problem(column + bad, f"{data_text[bad]!r} is not a hexadecimal digit")
    if len(data_text) % 2:
        raise _Problem(
            column + len(data_text) - 1,
            f"odd number of hex digits in the payload ({len(data_text)}): every byte is two",
        )
    data = bytes.fromhex(data_text)
    if fd and len(data) not in FD_LENGTHS:
        raise _Problem(column, f"CAN FD frame with {len(data)} data bytes (DLC has no such length)")
    if not fd and not error and len(data) > 8:
        raise _Problem(column, f"classic frame with {len(data)} data bytes (at most 8; ## for FD)")
    direction = "rx"
    if match["dir"] is not None:
        if match["dir"] not in ("R", "T", "r", "t"):
            raise _Problem(match.start("dir") + 1, f"direction {match['dir']!r} is not R or T")
        direction = "rx" if match["dir"] in ("R", "r") else "tx"
    channel = match["channel"]
    return (
        timestamp,
        channel,
        value & CAN_EFF_MASK,
        extended,
        remote,
        error,
        fd,
        brs,
        len(data) if dlc is None else dlc,
        data,
        direction,
    )


def _locate_shape(line: str) -> tuple[int, str]:
    """Where a line stops looking like candump, for lines the expression does not match."""
    stripped = line.lstrip()
    indent = len(line) - len(stripped) + 1
    if not stripped.startswith("("):
        return indent, f"no '(timestamp)' at the start; {_SHAPE}"
    parts = stripped.split()
    if len(parts) < 3:
        return len(line.rstrip()) + 1, f"missing channel or ID#DATA; {_SHAPE}"
    frame_at = line.index(parts[2], line.index(parts[1]) + len(parts[1])) + 1
    if "#" not in parts[2]:
        return frame_at, f"{parts[2]!r} has no '#' between the CAN id and the data; {_SHAPE}"
    extra = line.index(parts[-1], frame_at) + 1
    return extra, f"unexpected {parts[-1]!r} after the frame; {_SHAPE}"


def read(source: Source) -> Read:
    return whole(chunks(source, None))


def chunks(source: Source, rows: int | None) -> Iterator[Read]:
    """The file in chunks of ``rows`` frames (see :data:`bench.logfiles.base.Chunker`)."""
    path = source.path
    found: list[tuple] = []
    first = 0  # frames handed out before ``found``
    problem = None
    number, text = 0, ""
    try:
        with source.open_text() as file:
            for number, text in enumerate(file, 1):
                if not text.strip():
                    continue
                try:
                    found.append(_parse(text))
                except _Problem as exc:
                    problem = f"{path}:{number}:{exc.column}: {exc.why}"
                    if not text.endswith("\n"):
                        problem += " (the last line is cut off: truncated log?)"
                    break
                if rows is not None and len(found) >= rows:
                    yield Read(table_from_rows(found), _describe(source, first))
                    first, found = first + len(found), []
            else:
                if text and not text.endswith("\n"):
                    problem = f"{path}:{number}: truncated candump log (the last line is cut off)"
    except (OSError, EOFError) as exc:
        place = f" after line {number}" if number else ""
        problem = f"{path}: corrupt or truncated candump log{place} ({reason(exc)})"
    if problem is not None:
        raise InputError(problem)
    if not first and not found:
        raise InputError(f"{path}: empty candump log (no frame)")
    yield Read(table_from_rows(found), _describe(source, first))


def _describe(source: Source, first: int) -> Callable[[FrameProblem], str]:
    """Places of a chunk whose first frame is frame ``first`` (0-based) of the file."""

    def describe(problem: FrameProblem) -> str:
        return f"{source.path}:{_frame_line(source, first + problem.row)}: {problem.reason}"

    return describe


def _frame_line(source: Source, row: int) -> int:
    """The line number of frame ``row`` (0-based): blank lines hold no frame."""
    with source.open_text() as file:
        frames = ((n, t) for n, t in enumerate(file, 1) if t.strip())
        return next(islice(frames, row, None))[0]


class _Writer(can.CanutilsLogWriter):
    """python-can's writer, except for error frames and the DLC of remote frames: python-can
    writes every error frame as a bare bus error without data, class, FD flag or direction, and
    every remote frame as ``R``; bench writes the error class (a bus error when it has none, as
    python-can does), data and direction, and a remote frame's DLC as can-utils does (``R4``)."""

    def on_message_received(self, msg: can.Message) -> None:
        if msg.is_remote_frame and not msg.is_error_frame and msg.dlc:
            # can-utils writes a remote frame's DLC after the R (python-can drops it)
            channel = msg.channel if msg.channel not in (None, "") else self.channel
            if isinstance(channel, int) or (isinstance(channel, str) and channel.isdigit()):
                channel = f"can{channel}"
            can_id = (
                f"{msg.arbitration_id:08X}" if msg.is_extended_id else f"{msg.arbitration_id:03X}"
            )
            direction = "R" if msg.is_rx else "T"
            self.file.write(f"({msg.timestamp:f}) {channel} {can_id}#R{msg.dlc} {direction}\n")
            return
        if not msg.is_error_frame:
            super().on_message_received(msg)
            return
        channel = msg.channel if msg.channel not in (None, "") else self.channel
        if isinstance(channel, int) or (isinstance(channel, str) and channel.isdigit()):
            channel = f"can{channel}"
        can_id = CAN_ERR_FLAG | (msg.arbitration_id or CAN_ERR_BUSERROR)
        separator = f"##{0x01 if msg.bitrate_switch else 0:X}" if msg.is_fd else "#"
        direction = "R" if msg.is_rx else "T"
        line = f"({msg.timestamp:f}) {channel} {can_id:08X}{separator}{msg.data.hex().upper()}"
        self.file.write(f"{line} {direction}\n")


def write(table: pa.Table, path: Path, start: float | None) -> None:
    del start  # candump timestamps are absolute; the log has no start date
    write_messages(_Writer(str(path)), table)


FORMAT = register(
    LogFormat(
        "candump",
        (".log",),
        read,
        write,
        keeps="timestamps to the µs; channel names; direction, remote, FD, BRS, error frames "
        "(with class and data); not the DLC of FD frames beyond their length",
        chunks=chunks,
    )
)
