"""The project's own format: a Parquet frame table (a file, or a directory of segments).

Everything is kept. Problems name the row (counted from 0, as pandas and pyarrow do) and column.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError
from ..frames import FrameProblem, normalize
from .base import LogFormat, Read, Source, reason, register


def read(source: Source) -> Read:
    path = source.path
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({reason(exc)})") from None

    def describe(problem: FrameProblem) -> str:
        return f"{path}: row {problem.row}, column {problem.column!r}: {problem.reason}"

    return Read(normalize(table, source=str(path)), describe)


def write(table: pa.Table, path: Path, start: float | None) -> None:
    del start  # timestamps are absolute
    pq.write_table(table, path, row_group_size=1 << 20)


FORMAT = register(
    LogFormat(
        "Parquet",
        (".parquet", ".pq"),
        read,
        write,
        gzip=False,
        keeps="everything (the frame table of DESIGN.md), timestamps as written",
    )
)
