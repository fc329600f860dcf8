"""The frame table: one row per CAN frame, the contract between recorder, importers and decoder.

Columns follow ``can.Message`` (DESIGN.md). A table holding only ``timestamp``, ``arbitration_id``,
``is_extended_id``, ``dlc`` and ``data`` is complete enough: :func:`normalize` adds the missing
flags as false and ``direction`` as ``rx``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import can
import pyarrow as pa

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


def from_messages(messages: Iterable[can.Message], *, direction: str | None = None) -> pa.Table:
    """Frame table from python-can messages; ``direction`` overrides each message's ``is_rx``."""
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
