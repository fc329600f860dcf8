"""The log files of ``../shared/cases/logs`` (copied to ``tests/data/logs``), each with the right
answer its README row gives: ``bench convert`` exits 0 with the frames, or 2 with one line naming
the file, the place and the reason — never a traceback or "internal error"."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import can
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.errors import InputError
from bench.logfiles import read_frames, write_frames

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "logs"


def bench(*args: str, tz: str = "UTC") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "TZ": tz},
    )


def refused(src: Path, dst: Path) -> str:
    """The one stderr line of a ``bench convert`` that must exit 2; nothing written."""
    result = bench("convert", str(src), str(dst))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bench: error: ") and "Traceback" not in result.stderr
    assert "internal error" not in lines[0]
    assert not dst.exists()
    return lines[0]


def test_every_case_file_is_a_test_here():
    names = {p.name for p in DATA.iterdir()}
    tested = {
        "asc-without-triggerblock.asc",
        "asc-unparseable-date.asc",
        "asc-garbage-lines.asc",
        "candump-odd-hex.log",
        "candump-no-hash.log",
        "data-as-string.parquet",
        "timestamp-null.parquet",
        "sub-millisecond-start.parquet",
        "channel-256.parquet",
    }
    assert names - {"mf4-corrupt-record-count.mf4"} == tested


def test_asc_without_triggerblock_reads_as_python_can(tmp_path):
    path = DATA / "asc-without-triggerblock.asc"
    result = bench("convert", str(path), str(tmp_path / "out.parquet"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    frames = pq.read_table(tmp_path / "out.parquet")
    with can.ASCReader(str(path)) as reader:
        theirs = list(reader)
    assert frames.num_rows == len(theirs) == 2
    assert frames.column("data").to_pylist() == [bytes(m.data) for m in theirs]
    # the date line (4:09:35 pm, read as UTC) plus the offsets
    start = datetime(2014, 5, 27, 16, 9, 35, tzinfo=UTC).timestamp()
    assert frames.column("timestamp").to_pylist() == [start + 0.019968, start + 0.029968]


@pytest.mark.parametrize("closing", ["End Triggerblock", "end triggerblock", "END TRIGGERBLOCK"])
def test_asc_closing_line_in_any_case(tmp_path, closing):
    path = tmp_path / "log.asc"
    path.write_text((DATA / "asc-without-triggerblock.asc").read_text() + closing + "\n")
    loaded = read_frames(path)
    assert loaded.frames.num_rows == 2 and loaded.skipped == [] and loaded.notes == []


@pytest.mark.parametrize("tz", ["UTC", "Asia/Shanghai"])
def test_asc_unparseable_date_is_one_warning_and_relative_timestamps(tmp_path, tz):
    result = bench(
        "convert", str(DATA / "asc-unparseable-date.asc"), str(tmp_path / "out.parquet"), tz=tz
    )
    assert result.returncode == 0, result.stderr
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 1 and "start date unknown" in warnings[0], result.stderr
    assert "line 1" in warnings[0] and "relative" in warnings[0]
    frames = pq.read_table(tmp_path / "out.parquet")
    assert frames.column("timestamp").to_pylist() == [1.0, 2.0]
    assert frames.column("data").to_pylist()[0] == bytes(range(1, 9))


def test_asc_garbage_lines_frame_with_a_bad_id_names_line_and_column(tmp_path):
    line = refused(DATA / "asc-garbage-lines.asc", tmp_path / "out.parquet")
    assert "asc-garbage-lines.asc:22:10: 'ZZZ' is not a hexadecimal CAN id" in line


def test_asc_garbage_lines_are_counted_and_named(tmp_path):
    """Without the bad frame line, the two garbage lines are skipped, counted and named; the
    statistics, status and J1939 TP lines are skipped quietly; the frames are python-can's."""
    lines = (DATA / "asc-garbage-lines.asc").read_text().splitlines(keepends=True)
    path = tmp_path / "garbage.asc"
    path.write_text("".join(line for line in lines if " ZZZ " not in line))
    result = bench("convert", str(path), str(tmp_path / "out.parquet"))
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines() == [
        "skipped garbage.asc: 2 unrecognised line(s) skipped (line 20, 21)"
    ]
    frames = read_frames(tmp_path / "out.parquet").frames
    with can.ASCReader(str(path)) as reader:
        theirs = list(reader)
    assert frames.num_rows == len(theirs)
    assert frames.column("data").to_pylist() == [bytes(m.data) for m in theirs]


def test_candump_odd_hex_names_line_1(tmp_path):
    line = refused(DATA / "candump-odd-hex.log", tmp_path / "out.parquet")
    assert "candump-odd-hex.log:1:" in line and "odd number of hex digits" in line


def test_candump_without_hash_names_line_2_and_the_shape(tmp_path):
    line = refused(DATA / "candump-no-hash.log", tmp_path / "out.parquet")
    assert "candump-no-hash.log:2:" in line
    assert "'123ABCD' has no '#'" in line and "(1600000000.000000) can0 123#DEADBEEF" in line


def test_parquet_data_as_string_is_refused(tmp_path):
    line = refused(DATA / "data-as-string.parquet", tmp_path / "out.asc")
    assert "data-as-string.parquet: column 'data' has type string; it must be binary" in line


def test_parquet_null_timestamp_names_column_and_row(tmp_path):
    line = refused(DATA / "timestamp-null.parquet", tmp_path / "out.asc")
    assert "timestamp-null.parquet: row 1, column 'timestamp': null" in line


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_parquet_non_finite_timestamp_names_column_and_row(tmp_path, value):
    table = pq.read_table(DATA / "sub-millisecond-start.parquet")
    timestamps = table.column("timestamp").to_pylist()
    timestamps[1] = value
    path = tmp_path / "bad.parquet"
    pq.write_table(table.set_column(0, "timestamp", [timestamps]), path)
    with pytest.raises(InputError) as info:
        read_frames(path)
    assert str(info.value) == (
        f"{path}: row 1, column 'timestamp': timestamp {value} is not a finite number"
    )


@pytest.mark.parametrize("tz", ["UTC", "Asia/Shanghai"])
@pytest.mark.parametrize("suffix", [".asc", ".blf", ".mf4", ".log", ".trc", ".asc.gz"])
def test_sub_millisecond_start_survives_to_the_microsecond(tmp_path, tz, suffix):
    src = DATA / "sub-millisecond-start.parquet"
    out = tmp_path / f"out{suffix}"
    assert bench("convert", str(src), str(out), tz=tz).returncode == 0
    back = tmp_path / "back.parquet"
    result = bench("convert", str(out), str(back), tz="Asia/Shanghai" if tz == "UTC" else "UTC")
    assert result.returncode == 0, result.stderr
    ours = pq.read_table(src).column("timestamp").to_pylist()
    theirs = pq.read_table(back).column("timestamp").to_pylist()
    assert (
        [round(t, 6) for t in theirs]
        == [round(t, 6) for t in ours]
        == [
            1579857014.345944,
            1579857014.445944,
        ]
    )


def test_asc_date_is_the_logs_start_not_the_conversion_time(tmp_path):
    out = tmp_path / "out.asc"
    assert bench("convert", str(DATA / "sub-millisecond-start.parquet"), str(out)).returncode == 0
    lines = out.read_text().splitlines()
    # 1579857014.345944 is Fri 2020-01-24 09:10:14.345944 UTC
    assert lines[0] == "date Fri Jan 24 09:10:14.345 2020"
    assert lines[3] == "Begin Triggerblock Fri Jan 24 09:10:14.345 2020"
    assert lines[5].split()[0] == "0.000944"


def test_asc_start_date_kept_through_a_conversion(tmp_path):
    """An ASC whose first frame comes 0.019968 s after its date keeps that date."""
    out = tmp_path / "out.asc"
    assert bench("convert", str(DATA / "asc-without-triggerblock.asc"), str(out)).returncode == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "date Tue May 27 16:09:35.000 2014"
    assert lines[5].split()[0] == "0.019968"


def test_channel_256_to_mf4_is_refused_naming_the_limit(tmp_path):
    line = refused(DATA / "channel-256.parquet", tmp_path / "out.mf4")
    assert f"{tmp_path / 'out.mf4'}: MF4" in line and "0…255" in line and "channel 256" in line


@pytest.mark.parametrize("suffix", [".asc", ".blf", ".log", ".parquet"])
def test_channel_256_written_where_the_format_holds_it(tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    assert bench("convert", str(DATA / "channel-256.parquet"), str(out)).returncode == 0
    channels = read_frames(out).frames.column("channel").to_pylist()
    assert channels == (["can256"] * 2 if suffix == ".log" else ["256"] * 2)


def test_blf_refuses_channels_beyond_its_16_bits(tmp_path):
    table = pq.read_table(DATA / "channel-256.parquet")
    table = table.set_column(1, "channel", [["65535", "65535"]])
    with pytest.raises(InputError, match=r"BLF holds channel numbers 0…65534; row 0"):
        write_frames(table, tmp_path / "out.blf")


def test_asc_date_with_few_milliseconds_keeps_three_digits(tmp_path):
    """python-can writes 45 ms as ".45", which reads back as 450 ms."""
    table = pq.read_table(DATA / "sub-millisecond-start.parquet")
    start = datetime(2020, 1, 24, 9, 10, 14, 45_000, tzinfo=UTC).timestamp() + 0.000321
    table = table.set_column(0, "timestamp", [[start, start + 0.1]])
    write_frames(table, tmp_path / "out.asc")
    assert (tmp_path / "out.asc").read_text().splitlines()[0] == "date Fri Jan 24 09:10:14.045 2020"
    back = read_frames(tmp_path / "out.asc").frames.column("timestamp").to_pylist()
    assert [round(t, 6) for t in back] == [round(start, 6), round(start + 0.1, 6)]


def _cycle_plan(tmp_path: Path) -> Path:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        f"name: cycle\ndbc: [{ROOT / 'dbc' / 'battery.dbc'}]\n"
        "checks:\n  - {name: Pack status cycle time, cycle_time: BMS_PackStatus, tolerance: 10%}\n"
    )
    return plan


def _pack_status(timestamps: list[float]) -> pa.Table:
    n = len(timestamps)
    return pa.table(
        {
            "timestamp": timestamps,
            "arbitration_id": pa.array([256] * n, pa.uint32()),
            "is_extended_id": [False] * n,
            "dlc": pa.array([8] * n, pa.uint8()),
            "data": [bytes(8)] * n,
        }
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_evaluate_of_a_non_finite_timestamp_is_exit_2_naming_the_row(tmp_path, value):
    """Issue 11: a NaN gap must not pass a cycle-time check, nor break summary.json."""
    log = tmp_path / "log.parquet"
    pq.write_table(_pack_status([0.0, 0.02, value, 0.06]), log)
    result = bench(
        "evaluate", str(log), "--plan", str(_cycle_plan(tmp_path)), "--out", str(tmp_path / "out")
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        f"bench: error: {log}: row 2, column 'timestamp': timestamp {value} is not a finite number"
    )


def test_evaluate_reports_the_sort_of_a_log_going_back_in_time(tmp_path):
    log = tmp_path / "log.parquet"
    stamps = [i * 0.02 for i in range(50)]  # BMS_PackStatus every 20 ms
    stamps[10:20] = stamps[10:20][::-1]  # ten frames written in reverse
    pq.write_table(_pack_status(stamps), log)
    out = tmp_path / "out"
    result = bench("evaluate", str(log), "--plan", str(_cycle_plan(tmp_path)), "--out", str(out))
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    (note,) = summary["skipped"]
    assert note.startswith("log.parquet: timestamps go back 9 time(s) by up to 0.020000 s")
    assert note.endswith("frames sorted by timestamp")
    assert summary["checks"][0]["verdict"] == "pass"


def test_mf4_with_a_damaged_record_count_is_refused_not_read_for_ever(tmp_path):
    """Found by mutating a written MF4: a channel group claiming 1.9e14 records kept bench
    reading empty chunks for ever."""
    line = refused(DATA / "mf4-corrupt-record-count.mf4", tmp_path / "out.parquet")
    assert "corrupt MF4 file (channel group 2 (CAN_RemoteFrame) says 190215511605248" in line
