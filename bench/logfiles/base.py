"""What every log format shares: the registry, how a file is opened, what a reader returns.

One module per format (``asc``, ``blf``, ``candump``, ``mf4``, ``parquet``, ``trc``) registers a
:class:`LogFormat` here, as python-can's ``can.io`` keeps one module per format behind
``LogReader``/``Logger``. A ``.gz`` form is the same format read and written through gzip.

Every file format is read in chunks (:attr:`LogFormat.chunks`): python-can's readers are
iterators, so a reader hands out a frame table every ``rows`` frames and holds no more than
that, which is what lets ``bench evaluate`` judge a log of any length in flat memory
(:mod:`bench.stream`). Reading the whole file (:attr:`LogFormat.read`) is the same code with one
chunk (:func:`whole`).
"""

from __future__ import annotations

import gzip
import io
import math
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

import can
import pyarrow as pa

from ..errors import InputError, one_line
from ..frames import FrameProblem, to_messages


@dataclass
class Read:
    """What a format reader returns, before bench's own checks and sorting.

    ``frames`` is a frame table in file order; ``describe(problem)`` is the one-line error for a
    bad row, naming its place in the file (``path:12:30`` for line 12 column 30, ``path: row 3,
    column 'data'`` for Parquet, ``path: frame 7`` for binary formats);
    ``skipped`` says what was skipped and where (one line each); ``notes`` are other things a
    reader of the result must know; ``start`` is the log's own start (seconds since 1970, UTC)
    where the format stores one.
    """

    frames: pa.Table
    describe: Callable[[FrameProblem], str]
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    start: float | None = None


class NeedsWholeLog(Exception):
    """Frames came too far out of order to be put in order chunk by chunk: read the whole log in
    one batch instead (:class:`bench.stream.FrameBatches`)."""


@dataclass(frozen=True)
class Source:
    """A log file to read: its path and whether it is gzip-compressed (``.asc.gz``)."""

    path: Path
    gz: bool = False

    def open_binary(self) -> IO[bytes]:
        return gzip.open(self.path, "rb") if self.gz else open(self.path, "rb")

    def open_text(self) -> io.TextIOWrapper:
        # UTF-8 with undecodable bytes kept as surrogates: a Latin-1 comment does not stop a
        # log, a line of binary junk is reported as an unrecognised line, never a crash
        return io.TextIOWrapper(self.open_binary(), encoding="utf-8", errors="surrogateescape")


Reader = Callable[[Source], Read]
#: ``chunks(source, rows)``: the file as :class:`Read` chunks of at most ``rows`` frames (None:
#: one chunk) in file order. Each chunk's ``describe`` names places in the whole file; the
#: *last* chunk (possibly without frames) carries the file's ``skipped`` and ``notes``, and
#: ``start`` once the reader knows it. Errors are raised when reading reaches them, with their
#: place, as :class:`InputError`.
Chunker = Callable[[Source, "int | None"], Iterator[Read]]
Writer = Callable[[pa.Table, Path, "float | None"], None]


@dataclass(frozen=True)
class LogFormat:
    """One log format: its suffixes, its reader and writer, and what it keeps (for the docs)."""

    name: str
    suffixes: tuple[str, ...]
    read: Reader
    write: Writer | None
    gzip: bool = True
    keeps: str = ""
    chunks: Chunker | None = None


def whole(parts: Iterable[Read]) -> Read:
    """The chunks of one file as one :class:`Read` (``describe`` still names the right place)."""
    reads = list(parts)
    if len(reads) == 1:
        return reads[0]
    offsets = [0]
    for read in reads[:-1]:
        offsets.append(offsets[-1] + read.frames.num_rows)

    def describe(problem: FrameProblem) -> str:
        index = bisect_right(offsets, problem.row) - 1
        return reads[index].describe(replace(problem, row=problem.row - offsets[index]))

    last = reads[-1]
    frames = pa.concat_tables([read.frames for read in reads])
    return Read(frames, describe, list(last.skipped), list(last.notes), last.start)


REGISTRY: dict[str, LogFormat] = {}


def register(fmt: LogFormat) -> LogFormat:
    for suffix in fmt.suffixes:
        REGISTRY[suffix] = fmt
    return fmt


def format_of(path: Path) -> tuple[LogFormat, bool] | None:
    """The format of ``path`` by its suffix (``.asc``, ``.asc.gz`` …), and whether it is gzip."""
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    if gz:
        suffixes = suffixes[:-1]
    if not suffixes or suffixes[-1] not in REGISTRY:
        return None
    fmt = REGISTRY[suffixes[-1]]
    if gz and not fmt.gzip:
        return None
    return fmt, gz


def known_formats() -> str:
    names = sorted({s for s in REGISTRY})
    gz = sorted({s + ".gz" for s, f in REGISTRY.items() if f.gzip})
    return f"expected {', '.join(names)}, {', '.join(gz)} or a directory of Parquet segments"


def reason(exc: BaseException) -> str:
    """A library exception as a short reason for one line."""
    return one_line(str(exc) or type(exc).__name__)[:200]


def floor_ms(timestamp: float) -> float:
    """``timestamp`` rounded down to the millisecond (dates in ASC/BLF headers hold ms)."""
    return math.floor(round(timestamp * 1000, 3)) / 1000


def channel_limit(table: pa.Table, path: Path, kind: str, highest: int) -> None:
    """Refuse channel numbers a format cannot hold, naming the limit and the first row."""
    for row, name in enumerate(table.column("channel").to_pylist()):
        if name and name.isdigit() and int(name) > highest:
            raise InputError(
                f"{path}: {kind} holds channel numbers 0…{highest}; "
                f"row {row} has channel {name} (write Parquet, ASC or candump instead)"
            )


def refuse_frames(table: pa.Table, path: Path, kind: str, flags: dict[str, str]) -> None:
    """Refuse frames a writer would drop (``flags``: column → what the format lacks)."""
    for column, what in flags.items():
        values = table.column(column).to_pylist()
        if True in values:
            row = values.index(True)
            raise InputError(f"{path}: {kind} cannot hold {what} (row {row}); write BLF or ASC")


def numbered_channels(table: pa.Table) -> pa.Table:
    """Channel names replaced by numbers (BLF, ASC, MF4 and TRC only store numbers).

    Names that are numbers keep them; other names get the lowest free numbers in order of first
    appearance; no channel (``""``) stays none (the writer's default channel).
    """
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


def write_messages(writer: can.io.generic.MessageWriter, table: pa.Table) -> None:
    """Hand every frame of ``table`` to a python-can writer (numeric channels as ints)."""
    try:
        for message in to_messages(table):
            if isinstance(message.channel, str) and message.channel.isdigit():
                message.channel = int(message.channel)
            writer.on_message_received(message)
    finally:
        writer.stop()
