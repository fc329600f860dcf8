"""Importers, exporters and ``bench convert``: every format round-trips; bad input is one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import can
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.errors import InputError
from bench.frames import FRAME_SCHEMA, from_messages
from bench.logfiles import convert, read_frames, write_frames
from bench.record import SegmentWriter

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_700_000_000.0


def sample_messages() -> list[can.Message]:
    """Classic and FD, 11- and 29-bit, rx and tx, remote and error frames, two channels."""
    messages = []
    for i in range(60):
        extended = i % 5 == 0
        fd = i % 7 == 0
        data = bytes((i * 7 + k) & 0xFF for k in range(64 if fd else i % 9))
        messages.append(
            can.Message(
                timestamp=T0 + i * 0.010 + (i % 3) * 1e-6,
                arbitration_id=(0x18FF50E5 + i) if extended else 0x100 + i,
                is_extended_id=extended,
                is_fd=fd,
                bitrate_switch=fd and i % 2 == 0,
                data=data,
                channel="1" if i % 4 == 0 else "0",
                is_rx=i % 3 != 0,
            )
        )
    messages.append(
        can.Message(
            timestamp=T0 + 0.6005,
            arbitration_id=0x321,
            is_extended_id=False,
            is_remote_frame=True,
            dlc=4,
            channel="0",
        )
    )
    messages.append(
        can.Message(timestamp=T0 + 0.6007, is_error_frame=True, is_extended_id=False, channel="0")
    )
    messages.append(  # a CAN FD error frame the bench sent (tx), with an error class and data
        can.Message(
            timestamp=T0 + 0.6009,
            is_error_frame=True,
            is_fd=True,
            bitrate_switch=True,
            arbitration_id=0x04,
            is_extended_id=True,
            dlc=8,
            data=bytes(range(8)),
            channel="1",
            is_rx=False,
        )
    )
    return messages


@pytest.fixture
def sample() -> pa.Table:
    return from_messages(sample_messages())


def _error_frames_as(table: pa.Table, *, direction: bool, fd: bool, content: bool) -> pa.Table:
    """What a format keeps of error frames: the rest of ``table`` unchanged."""
    rows = table.to_pylist()
    for row in rows:
        if row["is_error_frame"]:
            if not content:
                # python-can's can.Message default for an error frame read from ASC
                row.update(arbitration_id=0, is_extended_id=True, dlc=0, data=b"")
            if not fd:
                row.update(is_fd=False)
            if not direction and not (fd and row["is_fd"]):
                row.update(direction="rx")
            row.update(bitrate_switch=row["bitrate_switch"] and content and fd)
    return pa.Table.from_pylist(rows, schema=FRAME_SCHEMA)


def _candump(table: pa.Table) -> pa.Table:
    rows = table.to_pylist()
    for row in rows:
        row["channel"] = f"can{row['channel']}"
        if row["is_error_frame"] and row["arbitration_id"] == 0:
            row["arbitration_id"] = 0x80  # no error class: a bus error, as python-can writes
        row["is_extended_id"] = row["is_extended_id"] or row["is_error_frame"]
    return pa.Table.from_pylist(rows, schema=FRAME_SCHEMA)


# Per format: the frames it gives back (what it keeps, README's formats table), and how close
# the timestamps are (every format keeps the microsecond).
KEEPS = {
    ".parquet": lambda t: t,
    ".blf": lambda t: _error_frames_as(t, direction=False, fd=False, content=True),
    ".mf4": lambda t: t,
    ".asc": lambda t: _error_frames_as(t, direction=False, fd=True, content=False),
    ".log": _candump,
    ".asc.gz": lambda t: _error_frames_as(t, direction=False, fd=True, content=False),
    ".blf.gz": lambda t: _error_frames_as(t, direction=False, fd=False, content=True),
    ".log.gz": _candump,
}
FORMATS = KEEPS


def assert_same_frames(back: pa.Table, expected: pa.Table) -> None:
    assert back.num_rows == expected.num_rows
    for name in FRAME_SCHEMA.names:
        if name != "timestamp":
            assert back.column(name).to_pylist() == expected.column(name).to_pylist(), name
    ours = expected.column("timestamp").to_pylist()
    theirs = back.column("timestamp").to_pylist()
    # to the microsecond: the same value when rounded to 6 decimals
    assert [round(t, 6) for t in theirs] == [round(t, 6) for t in ours]


@pytest.mark.parametrize("suffix", list(KEEPS))
def test_round_trip(sample, tmp_path, suffix):
    path = tmp_path / f"log{suffix}"
    write_frames(sample, path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    loaded = read_frames(path)
    assert loaded.skipped == [] and loaded.notes == []
    assert loaded.frames.schema.equals(FRAME_SCHEMA)
    assert_same_frames(loaded.frames, KEEPS[suffix](sample))


def test_channel_names_are_numbered_for_numbered_formats(tmp_path):
    table = from_messages(
        [
            can.Message(timestamp=T0 + i, arbitration_id=1, is_extended_id=False, channel=name)
            for i, name in enumerate(["vcan0", "2", "vcan1", "vcan0"])
        ]
    )
    write_frames(table, tmp_path / "x.blf")
    assert read_frames(tmp_path / "x.blf").frames.column("channel").to_pylist() == [
        "0",
        "2",
        "1",
        "0",
    ]


def test_read_frames_sorts_by_time(tmp_path):
    messages = sample_messages()
    table = from_messages(list(reversed(messages)))
    pq.write_table(table, tmp_path / "reversed.parquet")
    back = read_frames(tmp_path / "reversed.parquet").frames
    timestamps = back.column("timestamp").to_pylist()
    assert timestamps == sorted(timestamps)
    assert back.column("arbitration_id").to_pylist() == [m.arbitration_id for m in messages]


def test_minimal_parquet_with_five_columns_reads(tmp_path):
    path = tmp_path / "minimal.parquet"
    pq.write_table(
        pa.table(
            {
                "timestamp": [0.0, 0.01],
                "arbitration_id": pa.array([0x100, 0x18FF50E5], pa.uint32()),
                "is_extended_id": [False, True],
                "dlc": pa.array([2, 0], pa.uint8()),
                "data": [b"\x01\x02", b""],
            }
        ),
        path,
    )
    frames = read_frames(path).frames
    assert frames.schema.equals(FRAME_SCHEMA)
    assert frames.column("direction").to_pylist() == ["rx", "rx"]
    assert frames.column("is_error_frame").to_pylist() == [False, False]


def test_segment_directory_and_run_directory(sample, tmp_path):
    run = tmp_path / "run"
    with SegmentWriter(run / "frames", max_frames=25) as writer:
        writer.write_table(sample)
    assert len(writer.segments) == 3
    for path in (run, run / "frames"):
        loaded = read_frames(path)
        assert loaded.skipped == []
        assert loaded.frames.equals(sample)


def test_corrupt_segment_is_skipped_and_reported(sample, tmp_path, caplog):
    frames = tmp_path / "frames"
    with SegmentWriter(frames, max_frames=20) as writer:
        writer.write_table(sample)
    bad = writer.segments[1]
    bad.write_bytes(bad.read_bytes()[:100])  # torn by something other than the recorder
    (frames / "part-00007.parquet.tmp").write_bytes(b"PAR1")  # the recorder died writing it
    loaded = read_frames(frames)
    assert loaded.frames.num_rows == sample.num_rows - 20
    assert len(loaded.skipped) == 2
    assert loaded.skipped[0].startswith("part-00007.parquet.tmp: incomplete segment")
    assert loaded.skipped[1].startswith("part-00001.parquet: not a readable Parquet file")
    assert all("\n" not in line for line in loaded.skipped)
    assert "part-00001.parquet" in caplog.text
    expected = pa.concat_tables([sample.slice(0, 20), sample.slice(40)])
    assert loaded.frames.equals(expected)


def test_directory_without_readable_segments(tmp_path):
    with pytest.raises(InputError, match="no frame segments"):
        read_frames(tmp_path)
    (tmp_path / "part-00000.parquet").write_bytes(b"garbage")
    with pytest.raises(InputError, match="no readable segment"):
        read_frames(tmp_path)


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("suffix", [".parquet", ".blf", ".asc", ".log", ".mf4"])
def test_truncated_file_is_one_line_input_error(sample, tmp_path, suffix):
    path = tmp_path / f"cut{suffix}"
    write_frames(sample, path)
    _truncate(path, 0.6 if suffix != ".log" else 0.5003)
    with pytest.raises(InputError) as info:
        read_frames(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message
    assert any(word in message for word in ("truncated", "corrupt", "not a", "unfinished"))


@pytest.mark.parametrize("suffix", [".parquet", ".blf", ".asc", ".log", ".mf4"])
def test_garbage_and_empty_files_are_input_errors(tmp_path, suffix):
    for name, content in (("garbage", bytes(range(256)) * 40), ("empty", b"")):
        path = tmp_path / f"{name}{suffix}"
        path.write_bytes(content)
        with pytest.raises(InputError) as info:
            read_frames(path)
        assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_corrupt_asc_line_is_an_input_error(sample, tmp_path):
    path = tmp_path / "bad.asc"
    write_frames(sample, path)
    lines = path.read_text().splitlines()
    lines.insert(len(lines) // 2, "   0.500000 1  123  Rx   d 8 zz zz zz")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"bad\.asc:\d+:30: 'zz' is not a data byte"):
        read_frames(path)


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(InputError, match="unknown log format"):
        (tmp_path / "x.csv").write_text("")
        read_frames(tmp_path / "x.csv")
    with pytest.raises(InputError, match="no such"):
        read_frames(tmp_path / "missing.blf")
    with pytest.raises(InputError, match="cannot write"):
        write_frames(from_messages([]), tmp_path / "x.csv")


def test_convert_chain_keeps_frames(sample, tmp_path):
    pq.write_table(sample, tmp_path / "a.parquet")
    assert convert(tmp_path / "a.parquet", tmp_path / "b.blf").frames == sample.num_rows
    assert convert(tmp_path / "b.blf", tmp_path / "c.mf4").frames == sample.num_rows
    assert convert(tmp_path / "c.mf4", tmp_path / "segments").frames == sample.num_rows
    back = read_frames(tmp_path / "segments").frames
    assert_same_frames(back, KEEPS[".blf"](sample))
    with pytest.raises(InputError, match="output is the input"):
        convert(tmp_path / "a.parquet", tmp_path / "a.parquet")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_bench_convert_command(sample, tmp_path):
    src = tmp_path / "in.parquet"
    pq.write_table(sample, src)
    result = run_cli("convert", str(src), str(tmp_path / "out.asc"))
    assert result.returncode == 0, result.stderr
    assert f"{sample.num_rows} frames" in result.stdout
    assert read_frames(tmp_path / "out.asc").frames.num_rows == sample.num_rows


@pytest.mark.parametrize("suffix", [".parquet", ".blf", ".asc", ".mf4"])
def test_bench_convert_bad_input_exits_2_with_one_line(sample, tmp_path, suffix):
    src = tmp_path / f"in{suffix}"
    write_frames(sample, src)
    _truncate(src)
    result = run_cli("convert", str(src), str(tmp_path / "out.parquet"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bench: error: ") and str(src) in lines[0]
    assert not (tmp_path / "out.parquet").exists()


@pytest.mark.parametrize("suffix", [".blf", ".asc", ".mf4"])
def test_bench_convert_to_segments_of_bad_input_leaves_no_directory(sample, tmp_path, suffix):
    """A segment directory (DST without suffix) made by a convert that failed is removed too;
    one that existed before stays."""
    src = tmp_path / f"in{suffix}"
    write_frames(sample, src)
    _truncate(src)
    result = run_cli("convert", str(src), str(tmp_path / "segments"))
    assert result.returncode == 2, result.stderr
    assert not (tmp_path / "segments").exists()
    (tmp_path / "there").mkdir()
    assert run_cli("convert", str(src), str(tmp_path / "there")).returncode == 2
    assert (tmp_path / "there").is_dir()


def test_mf4_column_reader_equals_python_can_on_its_own_files(tmp_path):
    """A file written by python-can's MF4Writer reads the same as through its MF4Reader."""
    path = tmp_path / "python-can.mf4"
    messages = [m for m in sample_messages() if not m.is_error_frame]
    for message in messages:
        message.channel = int(message.channel)
    with can.MF4Writer(str(path)) as writer:
        for message in messages:
            writer.on_message_received(message)
    ours = read_frames(path).frames
    reader = can.MF4Reader(str(path))
    theirs = from_messages(sorted(reader, key=lambda m: m.timestamp))
    reader.stop()
    assert ours.num_rows == len(messages)
    for name in FRAME_SCHEMA.names:
        assert ours.column(name).to_pylist() == theirs.column(name).to_pylist(), name


def test_plain_parquet_directory_reads_in_name_order_without_events(sample, tmp_path):
    pq.write_table(sample.slice(30), tmp_path / "b.parquet")
    pq.write_table(sample.slice(0, 30), tmp_path / "a.parquet")
    pq.write_table(pa.table({"timestamp": [0.0], "kind": ["note"]}), tmp_path / "events.parquet")
    loaded = read_frames(tmp_path)
    assert loaded.skipped == []
    assert loaded.frames.equals(sample)
