"""Bad data is refused with its place; frames survive the formats that can hold them; the
candump reader bench writes itself agrees with python-can's wherever python-can is right."""

from __future__ import annotations

import gzip
import math
import random
import re

import can
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.errors import InputError
from bench.frames import FRAME_SCHEMA, find_problem, from_messages
from bench.logfiles import BACKWARD_TOLERANCE_S, read_frames, write_frames

T0 = 1_700_000_000.0
ASC_HEADER = (
    "date Tue Nov 14 22:13:20.000 2023\nbase hex  timestamps absolute\ninternal events logged\n"
    "Begin Triggerblock Tue Nov 14 22:13:20.000 2023\n   0.000000 Start of measurement\n"
)


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def message(**kwargs) -> can.Message:
    defaults = {"timestamp": T0, "arbitration_id": 0x123, "is_extended_id": False, "channel": "0"}
    return can.Message(**{**defaults, **kwargs})


# -- candump ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "place", "words"),
    [
        ("(1600000000.000000) can0 123#ABC", ":1:32:", "odd number of hex digits"),
        ("(1600000000.000000) can0 123#AB T X", ":1:35:", "unexpected 'X'"),
        ("(1600000000.000000) can0 123#AB X", ":1:33:", "direction 'X' is not R or T"),
        ("(1600000000.000000) can0 12#AB", ":1:26:", "CAN id '12' is not 3"),
        ("(1600000000.000000) can0 1G3#AB", ":1:26:", "CAN id '1G3'"),
        ("(16000x0000.000000) can0 123#AB", ":1:2:", "is not a number"),
        ("(nan) can0 123#AB", ":1:2:", "is not finite"),
        ("(1600000000.000000) can0 123#0011223344556677889A", ":1:30:", "at most 8"),
        ("(1600000000.000000) can0 123##0112233445566778899", ":1:32:", "FD frame with 9"),
        ("(1600000000.000000) can0 123#AZ", ":1:31:", "'Z' is not a hexadecimal digit"),
        ("1600000000.000000 can0 123#AB", ":1:1:", "no '(timestamp)'"),
        ("(1600000000.000000) can0 123#R9", ":1:31:", "remote frame DLC '9'"),
    ],
)
def test_candump_bad_line_names_line_and_column(tmp_path, line, place, words):
    path = write(tmp_path, "bad.log", line + "\n")
    with pytest.raises(InputError) as info:
        read_frames(path)
    message = str(info.value)
    assert message.startswith(f"{path}{place}") and words in message, message


def test_candump_cut_last_line_is_truncation(tmp_path):
    path = write(tmp_path, "cut.log", "(1600000000.000000) can0 123#ABCD\n(1600000000.1")
    with pytest.raises(InputError, match=r"cut\.log:2:.*cut off"):
        read_frames(path)


def test_candump_error_frames_are_error_frames(tmp_path):
    """CAN_ERR_FLAG set: an error frame whatever its class, with class, data, channel and
    direction kept, as a SocketCAN bus gives it (python-can's reader keeps only a bus error)."""
    path = write(
        tmp_path,
        "errors.log",
        "(1600000000.000000) can1 20000004#0004000000000000 R\n"
        "(1600000000.100000) can0 20000080#\n"
        "(1600000000.200000) can0 123#11\n",
    )
    frames = read_frames(path).frames.to_pylist()
    assert [f["is_error_frame"] for f in frames] == [True, True, False]
    assert frames[0]["arbitration_id"] == 0x04 and frames[0]["channel"] == "can1"
    assert frames[0]["data"] == bytes([0, 4, 0, 0, 0, 0, 0, 0])
    with can.CanutilsLogReader(str(path)) as reader:
        theirs = list(reader)
    assert [m.is_error_frame for m in theirs] == [False, True, False]  # python-can's miss


def test_candump_round_trip_of_every_flag(tmp_path):
    messages = [
        message(data=b"\x01\x02", is_rx=False),
        message(timestamp=T0 + 0.000001, arbitration_id=0x1ABCDEF0, is_extended_id=True),
        message(timestamp=T0 + 0.1, is_remote_frame=True, dlc=4),
        message(timestamp=T0 + 0.2, is_fd=True, bitrate_switch=True, data=bytes(12), dlc=12),
        message(timestamp=T0 + 0.3, is_fd=True, data=bytes(64), dlc=64, is_rx=False),
        message(timestamp=T0 + 0.4, is_error_frame=True, arbitration_id=0x10, data=bytes(8)),
    ]
    table = from_messages(messages)
    write_frames(table, tmp_path / "x.log")
    back = read_frames(tmp_path / "x.log").frames
    for name in FRAME_SCHEMA.names:
        expected = table.column(name).to_pylist()
        if name == "channel":
            expected = ["can0"] * len(expected)
        if name == "is_extended_id":
            expected[-1] = True  # an error frame's id is 29 bits
        assert back.column(name).to_pylist() == expected, name


def random_candump(rng: random.Random, n: int) -> str:
    lines = []
    for i in range(n):
        extended = rng.random() < 0.3
        can_id = f"{rng.randrange(1 << 29):08X}" if extended else f"{rng.randrange(1 << 11):03X}"
        kind = rng.random()
        if kind < 0.1:
            frame = f"{can_id}#R{rng.choice(['', '0', '3', '8'])}"
        elif kind < 0.3:
            length = rng.choice([0, 1, 8, 12, 16, 20, 24, 32, 48, 64])
            frame = f"{can_id}##{rng.choice('0123')}{rng.randbytes(length).hex()}"
        else:
            frame = f"{can_id}#{rng.randbytes(rng.randrange(9)).hex().upper()}"
        direction = rng.choice(["", " R", " T"])
        channel = rng.choice(["can0", "vcan1", "3"])
        lines.append(
            f"({1_600_000_000 + i * 0.001 + rng.random() * 1e-4:.6f}) {channel} {frame}{direction}"
        )
    return "\n".join(lines) + "\n"


def test_candump_reader_agrees_with_python_can_on_generated_logs(tmp_path):
    """bench reads candump itself (module docstring says why); where python-can is right —
    every line but error frames — both give the same frames."""
    path = write(tmp_path, "random.log", random_candump(random.Random(12), 3000))
    ours = read_frames(path).frames.to_pylist()
    with can.CanutilsLogReader(str(path)) as reader:
        theirs = from_messages(list(reader)).to_pylist()
    assert len(ours) == len(theirs) == 3000
    for mine, reference in zip(ours, theirs, strict=True):
        if mine["is_remote_frame"]:
            reference["dlc"] = mine["dlc"]  # python-can: "R3" is DLC 3 too, but checks nothing
        assert mine == reference


# -- ASC -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "column", "words"),
    [
        ("   1.000000 1  123             Rx   d 8 01 02 03", 39, "DLC 8 promises 8 data bytes"),
        ("   1.000000 1  123             Xx   d 2 01 02", 32, "direction 'Xx' is not Rx or Tx"),
        ("   1.000000 1  123             Rx   d 2 01 0G", 44, "'0G' is not a data byte"),
        # python-can reads these three, guessing (see bench/logfiles/asc.py): bench refuses them
        (
            "   1.000000 1  123             Rx   d 2 01 02 03",
            47,
            "DLC 2 promises 2 data bytes, the line has more (1 extra)",
        ),
        (
            "   1.000000 1  123             Rx   x 2 01 02",
            37,
            "frame type 'x' is not d (data) or r (remote)",
        ),
        ("   1.000000 1  123             rx   d 2 01 02", 32, "direction 'rx' is not Rx or Tx"),
        (
            "   1.000000 CANFD   1 Rx        300  Name  1 0 9  8 01 02 03 04 05 06 07 08 0 0",
            51,
            "data length 8 does not match DLC 9 (12 bytes)",
        ),
        (
            "   1.000000 CANFD   1 Rx        300  Name  1 0 8  8 01 02 03",
            51,
            "data length 8 promises 8 data bytes",
        ),
        ("   1.000000 CANFD   1 Up        300  1 0 1 1 01", 23, "direction 'Up'"),
    ],
)
def test_asc_bad_frame_line_names_line_and_column(tmp_path, line, column, words):
    path = write(tmp_path, "bad.asc", ASC_HEADER + line + "\nEnd TriggerBlock\n")
    with pytest.raises(InputError) as info:
        read_frames(path)
    message = str(info.value)
    assert message.startswith(f"{path}:6:{column}: ") and words in message, message


def test_asc_trailing_canoe_fields_after_the_data_are_not_extra_bytes(tmp_path):
    line = "   1.000000 1  123             Rx   d 2 01 02  Length = 0 BitCount = 0 ID = 291"
    frames = read_frames(write(tmp_path, "canoe.asc", ASC_HEADER + line + "\n")).frames
    assert frames.column("data").to_pylist() == [b"\x01\x02"]


def test_asc_quiet_lines_pass_and_others_are_counted(tmp_path):
    body = [
        "// a comment",
        "   0.100000 1  Statistic: D 0 R 0 XD 0 XR 0 E 0 O 0 B 0.00%",
        "   0.200000 CAN 1 Status:chip status error active",
        "   0.300000 1  J1939TP FEE3p        6    0  0   -   Rx   d 3 01 02 03",
        "   0.400000 SV: 1 0 1 ::Engine::Speed = 3",
        "   0.500000 1  123             Rx   d 1 07",
        "something an exporter wrote",
        "",
        "   0.600000 1  123             Rx   d 1 08",
        "   0.700000 1  LIN 12 ab",
    ]
    path = write(tmp_path, "mixed.asc", ASC_HEADER + "\n".join(body) + "\n")
    loaded = read_frames(path)
    assert loaded.frames.column("data").to_pylist() == [b"\x07", b"\x08"]
    assert loaded.skipped == ["mixed.asc: 2 unrecognised line(s) skipped (line 12, 15)"]


def test_asc_trigger_blocks_each_start_at_their_date(tmp_path):
    text = (
        ASC_HEADER
        + "   0.500000 1  123             Rx   d 1 07\nEnd TriggerBlock\n"
        + "Begin Triggerblock Tue Nov 14 22:13:30.500 2023\n"
        + "   0.250000 1  123             Rx   d 1 08\nEnd TriggerBlock\n"
    )
    frames = read_frames(write(tmp_path, "two.asc", text)).frames
    assert frames.column("timestamp").to_pylist() == [T0 + 0.5, T0 + 10.75]


def test_asc_without_any_date_is_relative_and_said(tmp_path):
    text = "base hex  timestamps absolute\nno internal events logged\n"
    text += "   0.500000 1  123             Rx   d 1 07\n"
    loaded = read_frames(write(tmp_path, "nodate.asc", text))
    assert loaded.frames.column("timestamp").to_pylist() == [0.5]
    assert loaded.notes == [
        "nodate.asc: no date line; timestamps are relative to the start of measurement"
    ]


def test_asc_frame_python_can_swallows_is_reported(tmp_path):
    """python-can's header parser consumes the first line after the header when no "internal
    events logged" line ends it; the frame there is lost, and bench says so."""
    text = "base hex  timestamps absolute\n   0.500000 1  123             Rx   d 1 07\n"
    text += "   0.600000 1  123             Rx   d 1 08\n"
    loaded = read_frames(write(tmp_path, "swallow.asc", text))
    assert loaded.frames.column("data").to_pylist() == [b"\x08"]
    assert loaded.skipped == ["swallow.asc: 1 unrecognised line(s) skipped (line 2)"]


def test_asc_of_garbage_is_not_an_asc_file(tmp_path):
    path = write(tmp_path, "junk.asc", "hello\nworld\n")
    expected = r"not a valid ASC file \(no frame; unrecognised line\(s\) 1, 2\)"
    with pytest.raises(InputError, match=expected):
        read_frames(path)


# -- frame table checks ----------------------------------------------------------------------------


def table_of(**columns) -> pa.Table:
    base = {
        "timestamp": [0.0, 0.1, 0.2],
        "arbitration_id": pa.array([1, 2, 3], pa.uint32()),
        "is_extended_id": [False] * 3,
        "dlc": pa.array([1, 1, 1], pa.uint8()),
        "data": [b"\x01", b"\x02", b"\x03"],
    }
    base.update(columns)
    return pa.table(base)


@pytest.mark.parametrize(
    ("columns", "row", "column", "words"),
    [
        ({"direction": ["rx", "tx", "out"]}, 2, "direction", "direction 'out' is not rx or tx"),
        ({"direction": ["rx", None, "tx"]}, 1, "direction", "direction None"),
        ({"dlc": pa.array([1, 2, 1], pa.uint8())}, 1, "data", "DLC 2 does not match the 1"),
        ({"dlc": pa.array([1, 1, 9], pa.uint8())}, 2, "data", "DLC 9 does not match the 1"),
        (
            {"is_fd": [False, True, False], "dlc": pa.array([1, 1, 1], pa.uint8())},
            None,
            None,
            None,
        ),
        (
            {"is_fd": [False, False, True], "data": [b"\x01", b"\x02", bytes(9)]},
            2,
            "data",
            "CAN FD frame with 9 data bytes",
        ),
        ({"is_remote_frame": [False, True, False]}, 1, "data", "remote frame with 1 data bytes"),
        ({"arbitration_id": pa.array([1, None, 3], pa.uint32())}, 1, "arbitration_id", "null"),
    ],
)
def test_frame_problems_name_row_and_column(tmp_path, columns, row, column, words):
    table = table_of(**columns)
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    if row is None:
        read_frames(path)  # an FD frame of 1 byte is fine
        return
    with pytest.raises(InputError) as info:
        read_frames(path)
    message = str(info.value)
    assert message.startswith(f"{path}: row {row}, column {column!r}: ") and words in message


def test_classic_dlc_above_8_with_8_bytes_is_a_frame():
    table = from_messages([message(dlc=12, data=bytes(8))])
    assert find_problem(table) is None


# -- time order ------------------------------------------------------------------------------------


def test_backward_steps_are_sorted_and_reported(tmp_path):
    path = tmp_path / "back.parquet"
    pq.write_table(table_of(timestamp=[5.0, 1.0, 2.0]), path)
    loaded = read_frames(path)
    assert loaded.frames.column("timestamp").to_pylist() == [1.0, 2.0, 5.0]
    assert loaded.frames.column("data").to_pylist() == [b"\x02", b"\x03", b"\x01"]
    assert loaded.notes == [
        "back.parquet: timestamps go back 1 time(s) by up to 4.000000 s "
        "(first at row 1: 1.0 after 5.0); frames sorted by timestamp"
    ]


def test_jitter_within_the_tolerance_is_sorted_quietly(tmp_path):
    path = tmp_path / "jitter.parquet"
    jitter = BACKWARD_TOLERANCE_S / 2
    pq.write_table(table_of(timestamp=[1.0, 1.0 - jitter, 2.0]), path)
    loaded = read_frames(path)
    assert loaded.notes == []
    assert loaded.frames.column("data").to_pylist() == [b"\x02", b"\x01", b"\x03"]


# -- formats ---------------------------------------------------------------------------------------


def classic_messages() -> list[can.Message]:
    return [
        message(
            timestamp=T0 + i * 0.010003 + 0.000007,
            arbitration_id=0x100 + i if i % 2 else 0x18FF0000 + i,
            is_extended_id=not i % 2,
            data=bytes(range(i % 9)),
            channel=str(i % 2),
            is_rx=i % 3 != 0,
        )
        for i in range(40)
    ]


@pytest.mark.parametrize("suffix", [".trc", ".trc.gz"])
def test_trc_round_trip_of_classic_frames(tmp_path, suffix):
    table = from_messages(classic_messages())
    write_frames(table, tmp_path / f"x{suffix}")
    back = read_frames(tmp_path / f"x{suffix}").frames
    for name in FRAME_SCHEMA.names:
        if name == "timestamp":
            assert [round(t, 6) for t in back.column(name).to_pylist()] == [
                round(t, 6) for t in table.column(name).to_pylist()
            ]
        else:
            assert back.column(name).to_pylist() == table.column(name).to_pylist(), name


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ({"is_fd": True, "data": bytes(12)}, "CAN FD frames"),
        ({"is_remote_frame": True, "dlc": 2}, "remote frames"),
        ({"is_error_frame": True}, "error frames"),
    ],
)
def test_trc_refuses_frames_it_would_drop(tmp_path, kind, words):
    table = from_messages([*classic_messages()[:3], message(timestamp=T0 + 1, **kind)])
    with pytest.raises(InputError, match=rf"x\.trc: TRC .* cannot hold {words} \(row 3\)"):
        write_frames(table, tmp_path / "x.trc")
    assert list(tmp_path.iterdir()) == []


def test_blf_corruption_names_the_byte_offset(tmp_path):
    write_frames(from_messages(classic_messages() * 50), tmp_path / "x.blf")
    data = bytearray((tmp_path / "x.blf").read_bytes())
    data[200:260] = bytes(60)  # inside the first log container
    (tmp_path / "x.blf").write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"x\.blf: corrupt BLF file at byte offset \d+"):
        read_frames(tmp_path / "x.blf")


def _blf_objects(data: bytes) -> list[int]:
    """Start offsets of the objects (log containers) of a BLF file, after its header."""
    offset, starts = int.from_bytes(data[4:8], "little"), []
    while offset < len(data):
        assert data[offset : offset + 4] == b"LOBJ"
        starts.append(offset)
        size = int.from_bytes(data[offset + 8 : offset + 12], "little")
        offset += size + size % 4
    return starts


def test_blf_corruption_names_the_start_of_the_bad_container(tmp_path):
    """BLFReader has read the whole container when it fails: the place is its start, not the
    position reading stopped at (the next container, which is intact)."""
    write_frames(from_messages(classic_messages() * 400), tmp_path / "x.blf")
    data = bytearray((tmp_path / "x.blf").read_bytes())
    starts = _blf_objects(bytes(data))
    assert len(starts) >= 3
    bad = starts[1]
    data[bad + 100 : bad + 140] = bytes(range(40))  # inside the second container's zlib data
    (tmp_path / "x.blf").write_bytes(bytes(data))
    with pytest.raises(InputError) as raised:
        read_frames(tmp_path / "x.blf")
    assert f"corrupt BLF file at byte offset {bad} (after frame" in str(raised.value)
    data[bad : bad + 4] = b"XXXX"  # a header without the object signature
    (tmp_path / "x.blf").write_bytes(bytes(data))
    with pytest.raises(InputError, match=rf"corrupt BLF file at byte offset {bad} \(after frame"):
        read_frames(tmp_path / "x.blf")


def test_gz_text_logs_read_like_the_plain_ones(tmp_path):
    table = from_messages(classic_messages())
    for suffix in (".asc", ".log", ".blf"):
        write_frames(table, tmp_path / f"x{suffix}")
        write_frames(table, tmp_path / f"x{suffix}.gz")
        plain = read_frames(tmp_path / f"x{suffix}").frames
        packed = read_frames(tmp_path / f"x{suffix}.gz").frames
        assert plain.equals(packed), suffix
        assert (tmp_path / f"x{suffix}.gz").read_bytes()[:2] == b"\x1f\x8b"


def test_microseconds_survive_every_format(tmp_path):
    rng = random.Random(3)
    stamps = sorted(T0 + rng.random() * 86_400 for _ in range(200))
    table = from_messages([message(timestamp=round(t, 6), data=b"\x01") for t in stamps])
    for suffix in (".asc", ".blf", ".mf4", ".log", ".trc"):
        write_frames(table, tmp_path / f"x{suffix}")
        back = read_frames(tmp_path / f"x{suffix}").frames.column("timestamp").to_pylist()
        assert all(math.isclose(a, b, abs_tol=5e-7) for a, b in zip(back, stamps, strict=True))


def test_an_id_beyond_32_bits_names_its_line(tmp_path):
    line = "   1.000000 1  123456789ABx     Rx   d 1 01"
    path = write(tmp_path, "huge.asc", ASC_HEADER + line + "\n")
    with pytest.raises(InputError) as info:
        read_frames(path)
    assert str(info.value).startswith(f"{path}:6: arbitration_id 1250999896491 does not fit")


def test_an_id_beyond_29_bits_names_its_row(tmp_path):
    path = tmp_path / "wide.parquet"
    pq.write_table(table_of(arbitration_id=pa.array([1, 0x3FFFFFFF, 3], pa.uint32())), path)
    with pytest.raises(InputError) as info:
        read_frames(path)
    assert str(info.value) == (
        f"{path}: row 1, column 'arbitration_id': CAN id 0x3FFFFFFF does not fit 29 bits"
    )


@pytest.mark.parametrize("suffix", [".asc.gz", ".log.gz"])
def test_a_truncated_gz_text_log_names_the_last_line_read(tmp_path, suffix):
    """A gzip stream cut short fails inside gzip, not on a line: the place is the line reached."""
    write_frames(from_messages(classic_messages() * 100), tmp_path / f"x{suffix}")
    data = (tmp_path / f"x{suffix}").read_bytes()
    (tmp_path / f"x{suffix}").write_bytes(data[: len(data) * 9 // 10])
    with pytest.raises(InputError) as raised:
        read_frames(tmp_path / f"x{suffix}")
    message = str(raised.value)
    assert "corrupt or truncated" in message, message
    line = int(re.search(r" after line (\d+) \(", message).group(1))
    whole = gzip.decompress(data).decode().splitlines()
    assert 0 < line < len(whole)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])  # 0.999: asammdf names the block itself
def test_a_cut_off_mf4_names_the_block_past_its_end(tmp_path, keep):
    """asammdf says only "seek out of range"; bench names the first block beyond the cut."""
    write_frames(from_messages(classic_messages() * 20), tmp_path / "x.mf4")
    data = (tmp_path / "x.mf4").read_bytes()
    size = int(len(data) * keep)
    (tmp_path / "x.mf4").write_bytes(data[:size])
    with pytest.raises(InputError) as raised:
        read_frames(tmp_path / "x.mf4")
    found = re.search(
        r"truncated MF4 file: the block at byte offset (\d+) runs past", str(raised.value)
    )
    assert found, str(raised.value)
    assert f"its end ({size} bytes)" in str(raised.value)
    address = int(found.group(1))
    assert data[address : address + 2] == b"##"  # a real block of the whole file
    assert address + int.from_bytes(data[address + 8 : address + 16], "little") > size
