"""The recorder: atomic, bounded Parquet segments that survive kill -9; the event log."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import can
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.errors import HarnessError, InputError
from bench.frames import FRAME_SCHEMA, from_messages
from bench.logfiles import read_frames
from bench.record import (
    JOURNAL_EVERY_S,
    EventLog,
    RecordError,
    SegmentWriter,
    read_journal,
    recover_frames,
)
from bench.rundir import list_journals, list_segments, read_events

ROOT = Path(__file__).resolve().parent.parent


def numbered(start: int, count: int) -> list[can.Message]:
    """Messages whose payload is their sequence number, so loss and order are visible."""
    return [
        can.Message(
            timestamp=i * 0.001,
            arbitration_id=0x100 + i % 7,
            data=i.to_bytes(8, "little"),
            is_rx=i % 2 == 0,
        )
        for i in range(start, start + count)
    ]


def read_sequence(frames_dir: Path) -> list[int]:
    tables = [pq.read_table(p) for p in list_segments(frames_dir)]
    if not tables:
        return []
    data = pa.concat_tables(tables).column("data").to_pylist()
    return [int.from_bytes(d, "little") for d in data]


RECORDER_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import can
    from bench.record import SegmentWriter

    writer = SegmentWriter(Path(sys.argv[1]), max_frames=500, max_seconds=3600)
    i = 0
    while True:
        batch = [can.Message(timestamp=i + k, arbitration_id=0x123,
                             data=(i + k).to_bytes(8, "little")) for k in range(50)]
        writer.write_messages(batch, direction="rx")
        i += 50
        print(len(writer.segments), flush=True)
    """
)


def test_kill_9_loses_at_most_the_open_segment(tmp_path):
    frames_dir = tmp_path / "frames"
    process = subprocess.Popen(
        [sys.executable, "-c", RECORDER_SCRIPT, str(frames_dir)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, "recorder exited early"
            if int(line) >= 4:
                break
        # a few more writes so the kill lands with an open, partly filled segment
        for _ in range(3):
            process.stdout.readline()
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    segments = list_segments(frames_dir)
    assert len(segments) >= 4
    sequence = read_sequence(frames_dir)
    # everything up to the last closed segment, in order, nothing missing, nothing torn
    assert sequence == list(range(len(segments) * 500))
    for path in segments:
        assert pq.read_metadata(path).num_rows == 500
    # and the importer reads the directory the killed recorder left; the only thing it may skip
    # is the segment the kill interrupted while it was being written
    loaded = read_frames(frames_dir)
    assert loaded.frames.num_rows == len(segments) * 500
    assert all(".parquet.tmp: incomplete segment" in line for line in loaded.skipped)
    assert len(loaded.skipped) <= 1


def test_segments_are_bounded_and_memory_stays_flat(tmp_path):
    writer = SegmentWriter(tmp_path / "frames", max_frames=1000, max_seconds=3600)
    peak_pending = 0
    retained = []
    for start in range(0, 20_000, 700):  # batches that straddle segment boundaries
        writer.write_messages(numbered(start, 700))
        peak_pending = max(peak_pending, writer.pending_frames)
        retained.append(pa.total_allocated_bytes())
    writer.close()
    assert peak_pending < 1000
    assert writer.frames_written == 20_300
    assert len(writer.segments) == 21
    assert [pq.read_metadata(p).num_rows for p in writer.segments] == [1000] * 20 + [300]
    assert read_sequence(tmp_path / "frames") == list(range(20_300))
    # Arrow memory held between writes does not grow with the number of frames written
    assert max(retained[-10:]) <= 2 * max(retained[:10]) + 1_000_000


def test_segment_closes_when_max_seconds_old(tmp_path):
    now = [0.0]
    writer = SegmentWriter(tmp_path, max_frames=10_000, max_seconds=5.0, clock=lambda: now[0])
    writer.write_messages(numbered(0, 10))
    now[0] = 4.9
    writer.write_messages(numbered(10, 10))
    assert writer.segments == []
    now[0] = 5.0
    writer.poll()
    assert [p.name for p in writer.segments] == ["part-00000.parquet"]
    writer.write_messages(numbered(20, 5))
    now[0] = 20.0
    writer.write_messages([])  # no frames arrived: the age check still runs
    assert len(writer.segments) == 2
    writer.close()
    assert read_sequence(tmp_path) == list(range(25))


def test_segment_content_schema_direction_and_no_temp_files(tmp_path):
    with SegmentWriter(tmp_path, max_frames=100) as writer:
        writer.write_messages(numbered(0, 10))
        writer.write_messages(numbered(10, 5), direction="tx")
        writer.flush()  # the runner's abort path
        writer.flush()  # nothing open: no empty segment
    assert [p.name for p in writer.segments] == ["part-00000.parquet"]
    table = pq.read_table(writer.segments[0])
    assert table.schema.equals(FRAME_SCHEMA)
    assert table.column("direction").to_pylist() == ["rx", "tx"] * 5 + ["tx"] * 5
    assert not list(tmp_path.glob("*.tmp"))


def test_numbering_continues_after_existing_segments(tmp_path):
    with SegmentWriter(tmp_path, max_frames=5) as writer:
        writer.write_messages(numbered(0, 10))
    with SegmentWriter(tmp_path, max_frames=5) as writer:
        writer.write_messages(numbered(10, 3))
    assert [p.name for p in list_segments(tmp_path)] == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    assert read_sequence(tmp_path) == list(range(13))


def test_write_table_accepts_minimal_frame_tables(tmp_path):
    minimal = pa.table(
        {
            "timestamp": [1.0, 2.0],
            "arbitration_id": pa.array([1, 2], pa.uint32()),
            "is_extended_id": [False, True],
            "dlc": pa.array([1, 0], pa.uint8()),
            "data": [b"\x01", b""],
        }
    )
    with SegmentWriter(tmp_path) as writer:
        writer.write_table(minimal)
    table = pq.read_table(writer.segments[0])
    assert table.column("direction").to_pylist() == ["rx", "rx"]
    assert table.column("is_extended_id").to_pylist() == [False, True]
    with pytest.raises(InputError, match="missing column"):
        SegmentWriter(tmp_path / "other").write_table(pa.table({"timestamp": [1.0]}))


def test_closed_writer_refuses_frames(tmp_path):
    writer = SegmentWriter(tmp_path)
    writer.close()
    with pytest.raises(HarnessError):
        writer.write_messages(numbered(0, 1))


def test_event_log_round_trip_and_crash_safety(tmp_path):
    path = tmp_path / "events.parquet"
    log = EventLog(path)
    log.add(0.0, "step_start", "soak", {"ambient_c": -30})
    # a step event is on disk at once, before close: a crash keeps it
    assert read_events(path).column("name").to_pylist() == ["soak"]
    log.add(5.0, "note", "chamber", None)
    log.add(2.0, "stimulus", "VCU_Command", {"KeyOn": 1})
    log.add(7200.0, "step_end", "soak")
    log.close()
    table = read_events(tmp_path)  # a run directory works too
    assert table.column("timestamp").to_pylist() == [0.0, 2.0, 5.0, 7200.0]
    assert table.column("kind").to_pylist() == ["step_start", "stimulus", "note", "step_end"]
    assert json.loads(table.column("detail")[0].as_py()) == {"ambient_c": -30}
    assert json.loads(table.column("detail")[2].as_py()) == {}
    # reopening keeps what was there
    with EventLog(path) as again:
        again.add(7300.0, "abort", "limit", {"signal": "BMS_Status.FaultLevel"})
    assert read_events(path).num_rows == 5


def test_read_events_missing_and_corrupt(tmp_path):
    assert read_events(tmp_path / "events.parquet").num_rows == 0
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(InputError) as info:
        read_events(bad)
    assert str(bad) in str(info.value) and "\n" not in str(info.value)


def test_messages_and_tables_keep_their_order_one_frame_at_a_time(tmp_path):
    with SegmentWriter(tmp_path, max_frames=7) as writer:
        for i in range(20):
            writer.write_messages(numbered(i, 1))  # a caller that records frame by frame
        writer.write_table(
            pa.Table.from_pylist(
                [
                    {
                        "timestamp": 0.0,
                        "arbitration_id": 1,
                        "is_extended_id": False,
                        "dlc": 8,
                        "data": i.to_bytes(8, "little"),
                    }
                    for i in range(20, 30)
                ],
            )
        )
        writer.write_messages(numbered(30, 4))
    assert read_sequence(tmp_path) == list(range(34))
    assert [pq.read_metadata(p).num_rows for p in writer.segments] == [7, 7, 7, 7, 6]


# -- the journal: what a kill -9 or a power loss leaves -------------------------------------------


def _recovered_sequence(frames_dir: Path, scratch: Path) -> list[int]:
    """What recovery makes of ``frames_dir`` as it is now (a copy: the writer stays open)."""
    if scratch.exists():
        shutil.rmtree(scratch)
    shutil.copytree(frames_dir, scratch)
    recover_frames(scratch, fsync=False)
    assert not list_journals(scratch)
    return read_sequence(scratch)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(st.integers(0, 120), min_size=1, max_size=12),
    max_frames=st.integers(1, 300),
    tables=st.booleans(),
)
def test_every_frame_handed_over_survives_a_kill_at_any_moment(
    tmp_path, batches, max_frames, tables
):
    """With journal_every_s=0 (the runner's setting) each hand-over is in the journal at once:
    killed after any call, closed segments + the recovered journal hold every frame so far."""
    run = tmp_path / f"run-{time.monotonic_ns()}"
    writer = SegmentWriter(run, max_frames=max_frames, max_seconds=3600, journal_every_s=0.0,
                           fsync=False)  # fmt: skip
    written = 0
    for size in batches:
        if tables:
            writer.write_table(from_messages(numbered(written, size)))
        else:
            writer.write_messages(numbered(written, size))
        written += size
        assert _recovered_sequence(run, tmp_path / "scratch") == list(range(written))
    writer.close()
    assert read_sequence(run) == list(range(written)) and not list_journals(run)


def test_journal_interval_bounds_what_is_not_yet_on_disk(tmp_path):
    now = [0.0]
    writer = SegmentWriter(tmp_path / "f", max_seconds=3600, clock=lambda: now[0], fsync=False)
    writer.write_messages(numbered(0, 10))
    now[0] = 0.1
    writer.write_messages(numbered(10, 10))  # younger than JOURNAL_EVERY_S: still in memory
    assert _recovered_sequence(tmp_path / "f", tmp_path / "s") == []
    now[0] = JOURNAL_EVERY_S
    writer.poll()  # no frames arrived, the interval passed: journalled
    assert _recovered_sequence(tmp_path / "f", tmp_path / "s") == list(range(20))
    writer.close()


def test_a_torn_last_batch_is_dropped_and_the_rest_kept(tmp_path):
    frames_dir = tmp_path / "frames"
    writer = SegmentWriter(frames_dir, max_seconds=3600, journal_every_s=0.0, fsync=False)
    for start in range(0, 50, 10):
        writer.write_messages(numbered(start, 10))
    journal = list_journals(frames_dir)[0]
    whole = journal.read_bytes()
    sizes = []  # file size after each batch: where the batches end
    reader = read_journal(journal)
    assert reader.batches == 5 and not reader.torn and reader.written_at is not None
    for cut in range(len(whole) - 1, 0, -37):  # a kill landing anywhere in the file
        torn = tmp_path / "torn.arrows"
        torn.write_bytes(whole[:cut])
        found = read_journal(torn)
        rows = found.table.num_rows
        assert rows % 10 == 0 and 0 <= rows < 50
        data = found.table.column("data").to_pylist()
        assert [int.from_bytes(d, "little") for d in data] == list(range(rows))
        sizes.append((cut, rows))
    assert {rows for _, rows in sizes} == {0, 10, 20, 30, 40}  # every batch boundary was seen
    writer.close()


def test_journal_of_a_closed_segment_is_dropped_not_doubled(tmp_path):
    """Killed between the segment's rename and the journal's removal: the segment wins."""
    frames_dir = tmp_path / "frames"
    writer = SegmentWriter(frames_dir, max_seconds=3600, journal_every_s=0.0, fsync=False)
    writer.write_messages(numbered(0, 30))
    journal = list_journals(frames_dir)[0]
    kept = journal.read_bytes()
    writer.close()
    journal.write_bytes(kept)  # as if the unlink never happened
    (frames_dir / "part-00000.parquet.tmp").write_bytes(b"half")  # and a torn temp beside it
    assert recover_frames(frames_dir, fsync=False) == []
    assert read_sequence(frames_dir) == list(range(30))
    assert sorted(p.name for p in frames_dir.iterdir()) == ["part-00000.parquet"]


def test_numbering_continues_after_a_killed_runs_journal(tmp_path):
    frames_dir = tmp_path / "frames"
    writer = SegmentWriter(frames_dir, max_seconds=3600, journal_every_s=0.0, fsync=False)
    writer.write_messages(numbered(0, 5))  # journal part-00000.arrows, writer then "killed"
    with SegmentWriter(frames_dir, fsync=False) as again:
        again.write_messages(numbered(5, 5))
    assert [p.name for p in list_segments(frames_dir)] == ["part-00001.parquet"]
    recover_frames(frames_dir, fsync=False)
    assert read_sequence(frames_dir) == list(range(10))


def _mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                            capture_output=True, text=True)  # fmt: skip
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")


def test_a_full_disk_raises_record_error_naming_path_and_reason(tmp_path):
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "256k")
    try:
        writer = SegmentWriter(disk / "frames", max_seconds=3600, journal_every_s=0.0)
        with pytest.raises(OSError) as caught:  # what the runner catches
            for start in range(0, 1_000_000, 2000):
                writer.write_messages(numbered(start, 2000))
        error = caught.value
        assert isinstance(error, RecordError) and isinstance(error, HarnessError)
        assert error.errno == errno.ENOSPC and error.exit_code == 3
        assert error.filename.startswith(str(disk / "frames" / "part-"))
        assert str(error) == f"{error.filename}: cannot write (No space left on device)"
        with pytest.raises(RecordError, match="No space left"):
            EventLog(disk / "events.parquet").add(0.0, "abort", "x", {"pad": "x" * 400_000})
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_read_only_frames_directory_raises_record_error(tmp_path):
    frames_dir = tmp_path / "frames"
    writer = SegmentWriter(frames_dir, max_seconds=3600, journal_every_s=0.0, fsync=False)
    writer.write_messages(numbered(0, 5))
    bind = subprocess.run(["mount", "--bind", "-o", "ro", str(frames_dir), str(frames_dir)],
                          capture_output=True, text=True)  # fmt: skip
    if bind.returncode != 0:
        pytest.skip(f"cannot bind-mount read-only here: {bind.stderr.strip()}")
    try:
        with pytest.raises(RecordError) as caught:
            writer.flush()
        assert caught.value.errno == errno.EROFS and str(frames_dir) in str(caught.value)
    finally:
        subprocess.run(["umount", "-l", str(frames_dir)], check=False)


def _bench(*args: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "bench.cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


def test_kill_9_of_bench_run_loses_under_a_second_and_evaluates_aborted(tmp_path):
    """A real `bench run` in lockstep killed 3 s in (before its first segment closes at 10 s):
    `bench evaluate` recovers the journal and judges the run as aborted by the crash."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    plan = ROOT / "tests" / "runner_plans" / "long.yaml"
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "run", str(plan), "--out", str(out), "--plain"],
        stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    for line in process.stdout:
        if "'wait' started" in line:
            break
    time.sleep(3.0)
    killed_at = time.time()
    process.kill()
    process.wait(timeout=30)
    process.stdout.close()
    journals = list_journals(out / "frames")
    assert journals, "the open segment must be journalled"
    last_write = read_journal(journals[-1]).written_at
    assert killed_at - last_write < 1.0  # the figure itself is benchmarks/bench_crash_loss.py
    result = _bench("evaluate", out)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "aborted" and "killed" in summary["aborted"]["reason"]
    assert summary["frames"] > 1000 and not list_journals(out / "frames")
    events = read_events(out).column("kind").to_pylist()
    assert events.count("abort") == 1
    # evaluating again changes nothing: the recovery happened once
    again = _bench("evaluate", out)
    assert again.returncode == 3
    assert json.loads((out / "summary.json").read_text()) == summary


def test_bench_report_of_a_killed_run_recovers_and_evaluates_it(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    plan = ROOT / "tests" / "runner_plans" / "long.yaml"
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "run", str(plan), "--out", str(out), "--plain"],
        stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    for line in process.stdout:
        if "'wait' started" in line:
            break
    time.sleep(1.0)
    process.kill()
    process.wait(timeout=30)
    process.stdout.close()
    result = _bench("report", out)
    assert result.returncode == 0, result.stderr
    assert (out / "report.html").is_file() and not list_journals(out / "frames")
    assert json.loads((out / "summary.json").read_text())["verdict"] == "aborted"
