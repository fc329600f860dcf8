"""Vector ASC (``.asc``, ``.asc.gz``): python-can's ``ASCReader``/``ASCWriter`` with three fixes.

Timestamps. python-can turns the date line into seconds with the *machine's* time zone, so the
same file gives timestamps 8 h apart under ``TZ=UTC`` and ``TZ=Asia/Shanghai``. An ASC date
carries no zone; bench reads it as UTC (the wall clock of the logging PC, kept as written), so
a file gives the same absolute timestamps everywhere: python-can reads relative times
(``relative_timestamp=True``) and bench adds the start of the trigger block in UTC, the same
float addition python-can does, so under ``TZ=UTC`` the two agree to the bit. A date python-can
cannot parse, or no date at all, leaves the start unknown: timestamps stay relative, said once.

Writing. python-can writes the conversion time as the log's date, its milliseconds without zero
padding (45 ms as ``.45``, read back as 450 ms), and measures offsets from the first frame while
the date holds only milliseconds, shifting every frame by the first frame's sub-millisecond
part. bench writes the log's own start, floored to the millisecond, in both date
lines, and every offset from that, so each timestamp survives to the microsecond. CAN FD error
frames are written as ``CANFD … ErrorFrame`` lines, which python-can reads back with FD and
direction (it writes them as classic ones).

Strictness. No ``End TriggerBlock`` is needed (python-can needs none; BusMaster and several
exporters write none). Lines ASC allows to be skipped (comments, header, trigger block,
statistics, chip status, J1939 TP, system variables) pass quietly; a line that looks like a frame
and is not a valid one is an error naming its line and column; anything else is counted. Where
python-can reads a classic frame line by guessing — a type token other than ``d``/``r`` taken as
data, a direction other than exactly ``Rx`` taken as Tx, data bytes beyond the DLC dropped —
bench refuses the line instead (a guessed frame would be judged as if it had been on the bus).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import can
import pyarrow as pa
from can.util import channel2int, dlc2len

from ..errors import InputError
from .base import (
    LogFormat,
    Read,
    Source,
    floor_ms,
    numbered_channels,
    register,
    whole,
    write_messages,
)
from .text import Lines, TextFormat, collect, text_read, tokens

_TIME = r"\s*\d+\.\d+\s+"
_QUIET = re.compile(
    "|".join(
        [
            r"\s*$",
            r"\s*//",
            r"\s*date\s",
            r"\s*base\s",
            r"\s*(no\s+)?internal\s+events\s+logged",
            r"\s*begin\s+triggerblock",
            r"\s*end\s+triggerblock",
            _TIME + r"start\s+of\s+measurement",
            _TIME + r"(can(fd)?\s+)?\d+\s+(statistic:|status:|chip\s+status|j1939tp\s)",
            _TIME + r"(sv:|ev:|log\s+trigger|trigger|marker|breakpoint|stop\s+of\s+measurement)",
        ]
    ),
    re.IGNORECASE,
)
_CLASSIC_LIKE = re.compile(_TIME + r"\d+\s+\S+\s+(\S+\s+[dr](\s|$)|(rx|tx)(\s|$))", re.IGNORECASE)
_FD_LIKE = re.compile(_TIME + r"canfd\s", re.IGNORECASE)
_HEADER_DATE = re.compile(r"\s*date\s+\w+\s+(?P<date>.+)", re.IGNORECASE)
_TRIGGER_DATE = re.compile(r"\s*begin\s+triggerblock\s+\w+\s+(?P<date>.+)", re.IGNORECASE)
_HEX = re.compile(r"[0-9a-fA-F]+")
_BYTE = re.compile(r"[0-9a-fA-F]{1,2}")

# python-can's own month names and formats (ASCReader._datetime_to_timestamp), read as UTC
_MONTHS = {
    "Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "May": 5, "Jun": 6, "Jul": 7, "Aug": 8, "Sep": 9,
    "Oct": 10, "Nov": 11, "Dec": 12, "Mär": 3, "Mai": 5, "Okt": 10, "Dez": 12,
}  # fmt: skip
_DATE_FORMATS = (
    "%m %d %I:%M:%S.%f %p %Y",
    "%m %d %I:%M:%S %p %Y",
    "%m %d %H:%M:%S.%f %Y",
    "%m %d %H:%M:%S %Y",
)


def parse_date(text: str) -> float | None:
    """Seconds since 1970 of an ASC date (``Sep 30 15:06:13.191 2017``) read as UTC, or None."""
    for name, number in _MONTHS.items():
        text = text.replace(name, f"{number:02d}")
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    return None


def quiet(line: str) -> bool:
    return _QUIET.match(line) is not None


def diagnose(line: str) -> tuple[int, str] | None:
    """``(column, reason)`` for a line that looks like an ASC frame but is not a valid one."""
    if _FD_LIKE.match(line):
        return _diagnose_fd(list(tokens(line)))
    if _CLASSIC_LIKE.match(line):
        return _diagnose_classic(list(tokens(line)))
    return None


def _check_id(column: int, token: str) -> tuple[int, str] | None:
    digits = token[:-1] if token[-1:].lower() == "x" else token
    if not _HEX.fullmatch(digits):
        return column, f"{token!r} is not a hexadecimal CAN id"
    return None


def _check_direction(column: int, token: str) -> tuple[int, str] | None:
    # Exact case: python-can matches frame lines case-blind but reads every direction other
    # than "Rx" as Tx, so "rx" would silently become a sent frame.
    if token not in ("Rx", "Tx"):
        return column, f"direction {token!r} is not Rx or Tx"
    return None


def _check_bytes(
    parts: list[tuple[int, str]], dlc_at: tuple[int, str], count: int, what: str
) -> tuple[int, str] | None:
    data = parts[:count]
    for column, token in data:
        if not _BYTE.fullmatch(token):
            return column, f"{token!r} is not a data byte (two hexadecimal digits)"
    if len(data) < count:
        return dlc_at[
            0
        ], f"{what} {dlc_at[1]} promises {count} data bytes, the line has {len(data)}"
    return None


def _diagnose_classic(parts: list[tuple[int, str]]) -> tuple[int, str] | None:
    if len(parts) > 2 and parts[2][1].lower().startswith("errorframe"):
        return None
    if len(parts) < 5:
        return parts[-1][0], "incomplete frame line (expected: time channel id Rx|Tx d dlc data)"
    found = _check_id(*parts[2]) or _check_direction(*parts[3])
    if found:
        return found
    column, kind = parts[4]
    if kind.lower() == "r":
        return None
    if kind.lower() != "d":
        return column, f"frame type {kind!r} is not d (data) or r (remote)"
    if len(parts) < 6 or not re.fullmatch(r"[0-9a-fA-F]", parts[5][1]):
        at = parts[5] if len(parts) > 5 else parts[4]
        return at[0], f"{at[1]!r} is not a DLC (one hexadecimal digit)"
    count = min(8, dlc2len(int(parts[5][1], 16)))
    found = _check_bytes(parts[6:], parts[5], count, "DLC")
    if found is None and len(parts) > 6 + count and _BYTE.fullmatch(parts[6 + count][1]):
        # python-can keeps the first DLC bytes and drops the rest without a word; a byte more
        # than the DLC promises means the DLC or the data is wrong, and bench cannot tell which
        # (CANoe's trailing "Length = … BitCount = … ID = …" fields are not bytes: they pass).
        extra = sum(1 for _, token in parts[6 + count :] if _BYTE.fullmatch(token))
        column = parts[6 + count][0]
        dlc = parts[5][1]
        return column, f"DLC {dlc} promises {count} data bytes, the line has more ({extra} extra)"
    return found


def _diagnose_fd(parts: list[tuple[int, str]]) -> tuple[int, str] | None:
    if len(parts) < 4:
        return parts[-1][0], "incomplete CANFD line (expected: time CANFD channel Rx|Tx id …)"
    if not parts[2][1].isdigit():
        return parts[2][0], f"channel {parts[2][1]!r} is not a number"
    found = _check_direction(*parts[3])
    if found or (len(parts) > 4 and parts[4][1].lower().startswith("errorframe")):
        return found
    rest = parts[4:]
    if len(rest) < 5:
        return parts[-1][0], "incomplete CANFD frame line (expected: id [name] brs esi dlc length)"
    found = _check_id(*rest[0])
    if found:
        return found
    rest = rest[1:] if rest[1][1].isdigit() else rest[2:]  # a symbolic name may follow the id
    if len(rest) < 4:
        return parts[-1][0], "incomplete CANFD frame line (expected: brs esi dlc length data)"
    (brs_at, brs), (esi_at, esi), (dlc_at, dlc), (length_at, length) = rest[:4]
    for column, token, name in ((brs_at, brs, "BRS"), (esi_at, esi, "ESI")):
        if token not in ("0", "1"):
            return column, f"{name} flag {token!r} is not 0 or 1"
    if not re.fullmatch(r"[0-9a-fA-F]", dlc):
        return dlc_at, f"{dlc!r} is not a DLC (one hexadecimal digit)"
    if not length.isdigit():
        return length_at, f"data length {length!r} is not a number"
    if int(length) and dlc2len(int(dlc, 16)) != int(length):
        return length_at, (
            f"data length {length} does not match DLC {dlc} ({dlc2len(int(dlc, 16))} bytes)"
        )
    return _check_bytes(rest[4:], (length_at, length), int(length), "data length")


ASC = TextFormat("ASC", quiet, diagnose)


class _Starts:
    """The start of the current trigger block, from the header and ``Begin Triggerblock`` lines
    (python-can's rule: a trigger block's date replaces the header's)."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.first: float | None = None
        self.undated: list[str] = []
        self.seen_date = False

    def lines(self, lines: list[tuple[int, str]]) -> None:
        for number, text in lines:
            match = _HEADER_DATE.match(text) or _TRIGGER_DATE.match(text)
            if match is None:
                continue
            self.seen_date = True
            self.start = parse_date(match.group("date"))
            if self.start is None:
                self.undated.append(f"line {number}: {match.group('date').strip()!r}")
            elif self.first is None:
                self.first = self.start

    def adjust(self, message: can.Message) -> None:
        if self.start is not None:
            message.timestamp += self.start


class _DlcWarnings(logging.Filter):
    """python-can only logs a warning when an FD line's DLC and data length disagree; bench
    hears it (and keeps it off stderr) and refuses the line."""

    def __init__(self) -> None:
        super().__init__()
        self.heard = False

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("DLC vs Data Length mismatch"):
            self.heard = True
            return False
        return True


def read(source: Source) -> Read:
    return whole(chunks(source, None))


def chunks(source: Source, rows: int | None) -> Iterator[Read]:
    """The file in chunks of ``rows`` frames (see :data:`bench.logfiles.base.Chunker`)."""
    starts = _Starts()
    warnings = _DlcWarnings()

    def check(message: can.Message, lines: Lines) -> None:
        # python-can reads any direction but "Rx" of a CANFD line as Tx, and only warns when
        # its DLC and data length disagree
        if warnings.heard or (message.is_fd and lines.text.split(None, 4)[3] not in ("Rx", "Tx")):
            found = _diagnose_fd(list(tokens(lines.text))) or (1, "DLC and data length differ")
            raise InputError(f"{source.path}:{lines.number}:{found[0]}: {found[1]}")
        if not message.is_fd and not message.is_error_frame:
            # Stricter than python-can on the classic frames it does read: it takes any type
            # token but "r" as data ("x" too), any direction but "Rx" as Tx ("rx" too) and drops
            # data bytes beyond the DLC. Each is a line bench cannot read with certainty, so it
            # is refused with its place rather than recorded as a guess.
            found = _diagnose_classic(list(tokens(lines.text)))
            if found is not None:
                raise InputError(f"{source.path}:{lines.number}:{found[0]}: {found[1]}")
        starts.adjust(message)

    logger = logging.getLogger("can.io.asc")
    logger.addFilter(warnings)
    frames = 0
    try:
        for collected in collect(
            source,
            ASC,
            lambda lines: can.ASCReader(lines, relative_timestamp=True),
            rows=rows,
            on_lines=starts.lines,
            adjust=check,
        ):
            frames += collected.frames.num_rows
            if not collected.last:
                yield text_read(source, ASC, collected)
                continue
            notes = []
            if starts.undated:
                notes.append(
                    f"{source.path.name}: start date unknown ({starts.undated[0]} is not a date "
                    "python-can reads); timestamps are relative to the start of measurement"
                )
            elif not starts.seen_date and frames:
                notes.append(
                    f"{source.path.name}: no date line; timestamps are relative to the start "
                    "of measurement"
                )
            yield text_read(source, ASC, collected, notes=notes, start=starts.first)
    finally:
        logger.removeFilter(warnings)


class _Writer(can.ASCWriter):
    """python-can's ``ASCWriter`` writing the log's own start (UTC, floored to the millisecond)
    as its date, offsets from that start, and CAN FD error frames as ``CANFD`` lines."""

    def __init__(self, path: Path, start: float) -> None:
        self._start = floor_ms(start)
        super().__init__(str(path))

    def _format_header_datetime(self, dt: datetime | None) -> str:
        # python-can passes the conversion time (datetime.now()) and a local-time start; both
        # date lines are the log's start instead, as a UTC wall clock
        # python-can writes the milliseconds without zero padding (".45" for 45 ms), which
        # reads back as 450 ms; three digits always, as CANoe writes them
        start = datetime.fromtimestamp(self._start, UTC)
        return start.strftime(self.FORMAT_DATE.format(f"{start.microsecond // 1000:03d}"))

    def log_event(self, message: str, timestamp: float | None = None) -> None:
        if not self.header_written:
            self.file.write(f"Begin Triggerblock {self._format_header_datetime(None)}\n")
            self.header_written = True
            self.started = self.last_timestamp = self._start
            super().log_event("Start of measurement", self._start)
        super().log_event(message, timestamp)

    def on_message_received(self, msg: can.Message) -> None:
        if msg.is_error_frame and msg.is_fd:
            channel = channel2int(msg.channel)
            channel = self.channel if channel is None else channel + 1
            direction = "Rx" if msg.is_rx else "Tx"
            self.log_event(f"CANFD {channel:>3} {direction:<4} ErrorFrame", msg.timestamp)
            return
        super().on_message_received(msg)


def write(table: pa.Table, path: Path, start: float | None) -> None:
    timestamps = table.column("timestamp").to_numpy()
    first = float(timestamps.min()) if timestamps.size else 0.0
    start = first if start is None or start > first else start
    write_messages(_Writer(path, start), numbered_channels(table))


FORMAT = register(
    LogFormat(
        "ASC",
        (".asc",),
        read,
        write,
        keeps="timestamps to the µs with the log's start date (read as UTC); numbered channels; "
        "direction, remote, FD, BRS; error frames without id and data, and classic error "
        "frames without direction",
        chunks=chunks,
    )
)
