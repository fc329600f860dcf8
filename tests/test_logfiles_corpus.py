"""Every real-world log of ``../shared/corpus/logs`` reads as python-can reads it, in any time zone.

The reference is python-can's own reader run under ``TZ=UTC`` (its ASC reader turns dates into
timestamps with the machine's time zone; bench reads ASC dates as UTC, so the two agree there).
bench's reading must give the same frames — timestamp to the bit, id, flags, DLC, data, channel,
direction — under ``TZ=UTC`` and under ``TZ=Asia/Shanghai`` (8 h away, no DST) and
``TZ=America/Los_Angeles`` (a zone with DST).
"""

from __future__ import annotations

import gzip
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import can
import pytest

from bench.errors import InputError
from bench.frames import FRAME_SCHEMA, from_messages
from bench.logfiles import read_frames
from bench.logfiles.base import format_of


def _corpus() -> Path:
    here = Path(__file__).resolve()
    # the repository's parent holds shared/ (a worktree sits one level deeper, in wt/)
    for parent in (here.parents[2], here.parents[3]):
        if (parent / "shared" / "corpus").is_dir():
            return parent / "shared" / "corpus"
    return here.parents[2] / "shared" / "corpus"


CORPUS = _corpus() / "logs"
LOGS = (
    sorted(p for p in CORPUS.rglob("*") if p.is_file() and format_of(p)) if CORPUS.is_dir() else []
)
ZONES = ("UTC", "Asia/Shanghai", "America/Los_Angeles")

pytestmark = pytest.mark.skipif(not LOGS, reason=f"no corpus of logs at {CORPUS}")


@contextmanager
def time_zone(zone: str) -> Iterator[None]:
    previous = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = previous
        time.tzset()


def python_can_frames(path: Path) -> list[dict]:
    """The frames python-can reads from ``path`` under TZ=UTC, as frame-table rows."""
    with time_zone("UTC"):
        if path.name.lower().endswith(".asc.gz"):
            # can.LogReader drops its keyword arguments for .gz files (python-can 4.6)
            text = gzip.open(path, "rt")  # noqa: SIM115 (closed by the reader)
            reader = can.ASCReader(text, relative_timestamp=False)
        else:
            kwargs = {"relative_timestamp": False} if path.suffix.lower() == ".asc" else {}
            reader = can.LogReader(str(path), **kwargs)
        with reader:
            messages = list(reader)
    rows = from_messages(messages).to_pylist()
    return sorted(rows, key=lambda row: row["timestamp"])  # bench sorts by time (stable)


def test_the_corpus_has_every_format():
    formats = {format_of(p)[0].name for p in LOGS}
    assert {"ASC", "BLF", "TRC"} <= formats, formats


# Where bench is stricter than python-can on purpose (bench/logfiles/asc.py): the file is refused
# with its place. single_frame.asc is a classic line "d 40" with 64 data bytes; python-can keeps 8.
STRICTER = {"single_frame.asc": ":6:37: '40' is not a DLC (one hexadecimal digit)"}


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.name)
def test_corpus_log_reads_as_python_can_reads_it(path, zone):
    if path.name in STRICTER:
        with time_zone(zone), pytest.raises(InputError) as info:
            read_frames(path)
        assert str(info.value) == f"{path}{STRICTER[path.name]}"
        assert len(python_can_frames(path)) == 1  # python-can reads it, dropping 56 bytes
        return
    expected = python_can_frames(path)
    with time_zone(zone):
        ours = read_frames(path).frames.to_pylist()
    assert len(ours) == len(expected)
    for row, (mine, theirs) in enumerate(zip(ours, expected, strict=True)):
        for name in FRAME_SCHEMA.names:
            assert mine[name] == theirs[name], (row, name, mine, theirs)


def test_python_can_alone_depends_on_the_time_zone():
    """Why bench does not take python-can's absolute ASC timestamps (the issue's 8 h)."""
    path = next((p for p in LOGS if p.name == "test_CanMessage.asc"), None)
    if path is None:
        pytest.skip("test_CanMessage.asc is not in the corpus")
    readings = []
    for zone in ("UTC", "Asia/Shanghai"):
        with time_zone(zone):
            with can.ASCReader(str(path), relative_timestamp=False) as reader:
                readings.append(next(iter(reader)).timestamp)
            ours = read_frames(path).frames.column("timestamp")[0].as_py()
        assert ours == readings[0]
    assert readings[0] - readings[1] == 8 * 3600
