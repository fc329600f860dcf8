"""The frame table: one row per CAN frame, the contract between recorder, importers and decoder.

Columns follow ``can.Message`` (DESIGN.md). A table holding only ``timestamp``, ``arbitration_id``,
``is_extended_id``, ``dlc`` and ``data`` is complete enough: :func:`normalize` adds the missing
flags as false and ``direction`` as ``rx``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import can
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import InputError

FRAME_SCHEMA = pa.schema(
    [
        ("timestamp", pa.float64()),
        ("channel", pa.string()),
        ("arbitration_id", pa.uint32()),
        ("is_extended_id", pa.bool_()),
        ("is_remote_frame", pa.bool_()),
        ("is_error_frame", pa.bool_()),
        ("is_fd", pa.bool_()),
        ("bitrate_switch", pa.bool_()),
        ("dlc", pa.uint8()),
        ("data", pa.binary()),
        ("direction", pa.string()),
    ]
)

REQUIRED_COLUMNS = ("timestamp", "arbitration_id", "is_extended_id", "dlc", "data")
_DEFAULTS = {
    "channel": "",
    "is_remote_frame": False,
    "is_error_frame": False,
    "is_fd": False,
    "bitrate_switch": False,
    "direction": "rx",
}


def empty_table() -> pa.Table:
    return FRAME_SCHEMA.empty_table()


def normalize(table: pa.Table, *, source: str = "frame table") -> pa.Table:
    """Return ``table`` with exactly the columns of :data:`FRAME_SCHEMA`, in order and typed.

    Missing optional columns are filled with their defaults; a missing required column is an
    :class:`InputError` naming ``source``.
    """
    missing = [name for name in REQUIRED_COLUMNS if name not in table.column_names]
    if missing:
        raise InputError(f"{source}: not a frame table, missing column(s) {', '.join(missing)}")
    columns = []
    for field in FRAME_SCHEMA:
        if field.name in table.column_names:
            column = table.column(field.name)
            if field.name == "data" and not _is_binary(column.type):
                # Arrow casts a string to binary without a word: "0102" would become the
                # payload 30 31 30 32, judged as if it were what the bus carried
                raise InputError(
                    f"{source}: column 'data' has type {column.type}; it must be binary "
                    "(the payload bytes), not text or numbers"
                )
            if not column.type.equals(field.type):
                try:
                    column = column.cast(field.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise InputError(
                        f"{source}: column {field.name!r} has type {column.type}, "
                        f"expected {field.type}"
                    ) from exc
        else:
            # pa.repeat builds the column without a Python list of num_rows items
            column = pa.repeat(pa.scalar(_DEFAULTS[field.name], field.type), table.num_rows)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=FRAME_SCHEMA)


def _is_binary(type_: pa.DataType) -> bool:
    return (
        pa.types.is_binary(type_)
        or pa.types.is_large_binary(type_)
        or pa.types.is_fixed_size_binary(type_)
    )


#: Payload lengths a CAN FD frame can have (DLC 0…15).
FD_LENGTHS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64)
DIRECTIONS = ("rx", "tx")


@dataclass(frozen=True)
class FrameProblem:
    """The first bad frame of a table: its row (0-based), the column and the reason."""

    row: int
    column: str
    reason: str


def find_problem(table: pa.Table) -> FrameProblem | None:
    """The first row (lowest index) whose frame cannot be right, or None.

    ``table`` is a normalized frame table. Checked, on whole columns: no null in a required
    column; timestamps finite (NaN and ±inf are refused: a NaN gap would pass a cycle-time
    check); ids fit 29 bits (an error frame's id, its error class, too);
    ``direction`` is ``rx`` or ``tx``; the payload matches the DLC — a classic data frame
    carries ``min(dlc, 8)`` bytes (DLC 9…15 mean 8 bytes on classic CAN), an FD frame one of
    :data:`FD_LENGTHS` with ``dlc`` equal to its length (python-can's convention), a remote
    frame none. Error frames carry whatever the adapter reported.
    """
    found: list[FrameProblem] = []

    def first(mask: np.ndarray, column: str, reason: object) -> None:
        rows = np.flatnonzero(mask)
        if rows.size:
            row = int(rows[0])
            found.append(FrameProblem(row, column, reason(row) if callable(reason) else reason))

    for name in REQUIRED_COLUMNS:
        column = table.column(name)
        if column.null_count:
            first(column.is_null().to_numpy(zero_copy_only=False), name, "null")
    timestamps = table.column("timestamp").fill_null(0.0).to_numpy(zero_copy_only=False)
    first(
        ~np.isfinite(timestamps),
        "timestamp",
        lambda row: f"timestamp {timestamps[row]} is not a finite number",
    )
    # 29 bits; a standard id above 0x7FF is not refused: real BLF files hold such frames and
    # python-can reads them (python-can's own test files among them)
    ids = table.column("arbitration_id").fill_null(0).to_numpy(zero_copy_only=False)
    first(
        ids > 0x1FFFFFFF,
        "arbitration_id",
        lambda row: f"CAN id 0x{int(ids[row]):X} does not fit 29 bits",
    )
    direction = table.column("direction")
    known = pc.is_in(direction, value_set=pa.array(DIRECTIONS)).fill_null(False)
    bad = ~known.to_numpy(zero_copy_only=False)
    first(bad, "direction", lambda row: f"direction {direction[row].as_py()!r} is not rx or tx")
    first(*_payload_problem(table))
    return min(found, key=lambda p: p.row) if found else None


def _payload_problem(table: pa.Table) -> tuple[np.ndarray, str, object]:
    def flag(name: str) -> np.ndarray:
        return table.column(name).fill_null(False).to_numpy(zero_copy_only=False)

    length = pc.binary_length(table.column("data")).fill_null(0).to_numpy(zero_copy_only=False)
    dlc = table.column("dlc").fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    error, remote, fd = flag("is_error_frame"), flag("is_remote_frame"), flag("is_fd")
    data = ~error & ~remote
    classic_bad = data & ~fd & (length != np.minimum(dlc, 8))
    fd_bad = data & fd & ((length != dlc) | ~np.isin(length, FD_LENGTHS))
    remote_bad = ~error & remote & (length != 0)

    def reason(row: int) -> str:
        n, d = int(length[row]), int(dlc[row])
        if remote_bad[row]:
            return f"remote frame with {n} data bytes (a remote frame carries none)"
        if fd_bad[row] and n not in FD_LENGTHS:
            return f"CAN FD frame with {n} data bytes (FD lengths: {_fd_lengths()})"
        kind = "CAN FD" if fd[row] else "classic"
        return f"DLC {d} does not match the {n} data bytes of this {kind} frame"

    return classic_bad | fd_bad | remote_bad, "data", reason


def _fd_lengths() -> str:
    return ", ".join(str(n) for n in FD_LENGTHS)


def empty_rows() -> dict[str, list]:
    """Column lists to collect frames into with :func:`append_message`."""
    return {name: [] for name in FRAME_SCHEMA.names}


def append_message(rows: dict[str, list], msg: can.Message, direction: str | None) -> None:
    """Add one python-can message to column lists; ``direction`` overrides ``msg.is_rx``."""
    rows["timestamp"].append(msg.timestamp)
    rows["channel"].append("" if msg.channel is None else str(msg.channel))
    rows["arbitration_id"].append(msg.arbitration_id)
    rows["is_extended_id"].append(msg.is_extended_id)
    rows["is_remote_frame"].append(msg.is_remote_frame)
    rows["is_error_frame"].append(msg.is_error_frame)
    rows["is_fd"].append(msg.is_fd)
    rows["bitrate_switch"].append(msg.bitrate_switch)
    rows["dlc"].append(msg.dlc)
    rows["data"].append(bytes(msg.data))
    rows["direction"].append(direction or ("rx" if msg.is_rx else "tx"))


def message_row(msg: can.Message) -> tuple:
    """One python-can message as a tuple in :data:`FRAME_SCHEMA`'s column order.

    A tuple per message and one transpose at the end (:func:`table_from_rows`) is about twice
    as fast as eleven list appends per message, which matters for multi-million-frame imports.
    """
    return (
        msg.timestamp,
        "" if msg.channel is None else str(msg.channel),
        msg.arbitration_id,
        msg.is_extended_id,
        msg.is_remote_frame,
        msg.is_error_frame,
        msg.is_fd,
        msg.bitrate_switch,
        msg.dlc,
        bytes(msg.data),
        "rx" if msg.is_rx else "tx",
    )


class BadValue(ValueError):
    """A value a reader gave that the frame table cannot hold (an id beyond 32 bits, a negative
    DLC …): the row (0-based, in the order given), the column and the reason."""

    def __init__(self, problem: FrameProblem) -> None:
        super().__init__(problem.reason)
        self.problem = problem


def table_from_rows(rows: list[tuple]) -> pa.Table:
    """Frame table from :func:`message_row` tuples; :class:`BadValue` for one it cannot hold."""
    if not rows:
        return FRAME_SCHEMA.empty_table()
    columns = list(zip(*rows, strict=True))
    try:
        arrays = [pa.array(c, f.type) for c, f in zip(columns, FRAME_SCHEMA, strict=True)]
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
        raise BadValue(_first_bad_value(columns)) from None
    return pa.Table.from_arrays(arrays, schema=FRAME_SCHEMA)


def _first_bad_value(columns: list[tuple]) -> FrameProblem:
    """The slow path, only after a failure: the first value that does not fit its column."""
    for row in range(len(columns[0])):
        for column, field in zip(columns, FRAME_SCHEMA, strict=True):
            try:
                pa.array([column[row]], field.type)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
                return FrameProblem(
                    row, field.name, f"{field.name} {column[row]!r} does not fit {field.type}"
                )
    return FrameProblem(0, "", "a value does not fit the frame table")


def from_messages(messages: Iterable[can.Message], *, direction: str | None = None) -> pa.Table:
    """Frame table from python-can messages; ``direction`` overrides each message's ``is_rx``."""
    if direction is None:
        return table_from_rows([message_row(msg) for msg in messages])
    rows = empty_rows()
    for msg in messages:
        append_message(rows, msg, direction)
    return pa.Table.from_pydict(rows, schema=FRAME_SCHEMA)


def to_messages(table: pa.Table) -> Iterator[can.Message]:
    """python-can messages from a frame table (for writing BLF/ASC/… through python-can)."""
    table = normalize(table)
    for batch in table.to_batches():
        columns = batch.to_pydict()
        for i in range(batch.num_rows):
            yield can.Message(
                timestamp=columns["timestamp"][i],
                channel=columns["channel"][i] or None,
                arbitration_id=columns["arbitration_id"][i],
                is_extended_id=columns["is_extended_id"][i],
                is_remote_frame=columns["is_remote_frame"][i],
                is_error_frame=columns["is_error_frame"][i],
                is_fd=columns["is_fd"][i],
                bitrate_switch=columns["bitrate_switch"][i],
                dlc=columns["dlc"][i],
                data=columns["data"][i],
                is_rx=columns["direction"][i] != "tx",
                check=False,
            )
