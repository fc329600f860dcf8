"""BLF, ASC, TRC, candump and MF4 files (and ``.gz``) stream: read in chunks, judged in batches.

(a) Every format's chunked reader gives, chunk after chunk, what reading the whole file gives
    (frames, skipped lines, notes, start date), and :class:`~bench.stream.FrameBatches` over a
    file gives the frames and notes of :func:`~bench.logfiles.read_frames`.
(b) ``bench evaluate`` of such a file with ``BENCH_EVAL_BATCH`` tiny (1000 frames) and huge (one
    batch) gives the in-memory summary (:func:`bench.evaluate.evaluate_log` on the whole log):
    verdicts, observed values, margins, evidence, notes — on a generated log in every format,
    on every log of the test data and of the real-world corpus.
(c) Errors found late in a file are the whole-file read's, and leave nothing behind; frames
    later than the reordering horizon make the log be read whole, with the same summary.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.errors import InputError
from bench.evaluate import evaluate_path
from bench.frames import FRAME_SCHEMA
from bench.logfiles import convert, read_frames, write_frames
from bench.logfiles.base import Source as LogSource
from bench.logfiles.base import format_of, whole
from bench.stream import BATCH_ENV, FrameBatches
from tests.test_logfiles_corpus import LOGS as CORPUS_LOGS
from tests.test_streaming import comparable, in_memory, streamed

ROOT = Path(__file__).resolve().parents[1]
PLAN = ROOT / "tests" / "plans" / "good.yaml"
TEST_LOGS = sorted(
    p for p in (ROOT / "tests" / "data" / "logs").iterdir() if p.suffix not in (".parquet",)
)
#: Every file format bench reads in chunks; TRC holds classic data frames only.
SUFFIXES = [".blf", ".blf.gz", ".asc", ".asc.gz", ".trc", ".trc.gz", ".log", ".log.gz", ".mf4"]
HUGE = 10**9


def _with_error_and_remote_frames(table: pa.Table) -> pa.Table:
    """``table`` with an error frame every 2 s and a remote frame every 5 s of its span: MF4
    keeps them in groups of their own, which the reader merges in time order."""
    ts = table.column("timestamp").to_numpy()
    errors = np.arange(ts[0] + 0.25, ts[-1], 2.0)
    remotes = np.arange(ts[0] + 0.5, ts[-1], 5.0)
    rows = [
        dict(timestamp=float(t), channel="0", arbitration_id=0x4, is_extended_id=True,
             is_remote_frame=False, is_error_frame=True, is_fd=False, bitrate_switch=False,
             dlc=8, data=bytes(8), direction="rx")
        for t in errors
    ] + [
        dict(timestamp=float(t), channel="0", arbitration_id=0x7FF, is_extended_id=False,
             is_remote_frame=True, is_error_frame=False, is_fd=False, bitrate_switch=False,
             dlc=8, data=b"", direction="rx")
        for t in remotes
    ]  # fmt: skip
    extra = pa.Table.from_pylist(rows, schema=FRAME_SCHEMA)
    joined = pa.concat_tables([table, extra])
    return joined.sort_by("timestamp")


@pytest.fixture(scope="module")
def logs(dbcs, tmp_path_factory) -> dict[str, Path]:
    """The same generated restbus log (about 60 s, 24,000 frames) in every format."""
    from benchmarks._synthetic import restbus_frames

    root = tmp_path_factory.mktemp("logs")
    frames = restbus_frames(24_000, dbcs, seed=5)
    mixed = _with_error_and_remote_frames(frames)
    classic = frames.filter(pc.invert(frames.column("is_fd")))
    made = {}
    for suffix in SUFFIXES:
        path = root / f"log{suffix}"
        write_frames(classic if suffix.startswith(".trc") else mixed, path)
        made[suffix] = path
    return made


def _same_reads(a, b) -> None:
    assert a.frames.equals(b.frames)
    assert (a.skipped, a.notes, a.start) == (b.skipped, b.notes, b.start)


# -- (a) readers in chunks ---------------------------------------------------------------------


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_chunks_are_the_whole_read(logs, suffix):
    path = logs[suffix]
    fmt, gz = format_of(path)
    source = LogSource(path, gz)
    parts = list(fmt.chunks(source, 997))
    assert len(parts) > 20
    assert all(p.frames.num_rows <= 997 for p in parts)
    _same_reads(whole(parts), fmt.read(source))


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_frame_batches_of_a_file_are_read_frames(logs, suffix):
    path = logs[suffix]
    batches = FrameBatches(path, 1000)
    got = pa.concat_tables(list(batches))
    loaded = read_frames(path)
    assert got.equals(loaded.frames)
    assert (batches.skipped, batches.notes, batches.start) == (
        loaded.skipped,
        loaded.notes,
        loaded.start,
    )


def test_mf4_groups_are_merged_in_time_order(logs):
    """Data, error and remote frames sit in three channel groups: read in chunks, they come
    out in time order (no step back, so no note and no whole-log fallback)."""
    path = logs[".mf4"]
    fmt, _ = format_of(path)
    parts = list(fmt.chunks(LogSource(path), 500))
    ts = np.concatenate([p.frames.column("timestamp").to_numpy() for p in parts])
    assert np.all(np.diff(ts) >= 0)
    kinds = pa.concat_tables([p.frames for p in parts]).column("is_error_frame").to_numpy()
    assert kinds.sum() > 20 and not kinds[:5].all()
    assert not read_frames(path).notes


@pytest.mark.parametrize("log", CORPUS_LOGS, ids=lambda p: p.name)
def test_corpus_logs_read_in_chunks_as_whole(log):
    try:
        loaded = read_frames(log)
    except InputError as exc:
        with pytest.raises(InputError) as caught:
            list(FrameBatches(log, 3))
        assert str(caught.value) == str(exc)
        return
    batches = FrameBatches(log, 3)
    parts = list(batches)
    got = pa.concat_tables(parts) if parts else FRAME_SCHEMA.empty_table()
    assert got.equals(loaded.frames)
    assert (batches.skipped, batches.notes, batches.start) == (
        loaded.skipped,
        loaded.notes,
        loaded.start,
    )


# -- (b) bench evaluate: tiny batches == one batch == in memory ----------------------------------


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_every_format_evaluates_streamed_as_in_memory(monkeypatch, tmp_path, logs, suffix):
    log = logs[suffix]
    want = in_memory(log, PLAN)
    assert streamed(monkeypatch, log, PLAN, tmp_path / "one", HUGE) == want
    assert streamed(monkeypatch, log, PLAN, tmp_path / "tiny", 1000) == want
    verdicts = [c["verdict"] for c in want["checks"]]
    assert "pass" in verdicts and want["frames"] > 20_000
    # the copy in the run directory is the log, in time order, and re-evaluates the same
    copy = read_frames(tmp_path / "tiny" / "frames").frames
    assert copy.equals(read_frames(log).frames)
    again, _ = evaluate_path(tmp_path / "tiny", tmp_path / "tiny" / "plan.yaml")
    assert comparable(again)["checks"] == want["checks"]
    assert comparable(again)["verdict"] == want["verdict"]


@pytest.mark.parametrize(
    "log", [*TEST_LOGS, *CORPUS_LOGS], ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_test_and_corpus_logs_evaluate_streamed_as_in_memory(monkeypatch, tmp_path, log):
    try:
        want = in_memory(log, PLAN)
    except InputError as exc:
        monkeypatch.setenv(BATCH_ENV, "3")
        with pytest.raises(InputError) as caught:
            evaluate_path(log, PLAN, out_dir=tmp_path / "out")
        assert str(caught.value) == str(exc)
        assert not (tmp_path / "out").exists()
        return
    assert streamed(monkeypatch, log, PLAN, tmp_path / "tiny", 3) == want
    assert streamed(monkeypatch, log, PLAN, tmp_path / "one", HUGE) == want


# -- (c) late errors, late frames, convert ---------------------------------------------------------


@pytest.mark.parametrize("suffix", [".asc", ".asc.gz", ".log"])
def test_a_bad_line_near_the_end_is_the_whole_reads_error(monkeypatch, tmp_path, logs, suffix):
    """Several batches are judged before reading reaches the bad line: the error is the one
    the whole read gives (same place), exit 2, and nothing of the evaluation is left."""
    source = logs[suffix]
    opener = gzip.open if suffix.endswith(".gz") else open
    with opener(source, "rt") as file:
        lines = file.readlines()
    at = len(lines) - 50
    lines.insert(at, lines[at].replace(" 8 ", " 8 zz ", 1) if ".asc" in suffix else "junk\n")
    log = tmp_path / f"bad{suffix}"
    with opener(log, "wt") as file:
        file.writelines(lines)
    with pytest.raises(InputError) as whole_read:
        read_frames(log)
    assert f":{at + 1}:" in str(whole_read.value)
    monkeypatch.setenv(BATCH_ENV, "1000")
    with pytest.raises(InputError) as caught:
        evaluate_path(log, PLAN, out_dir=tmp_path / "out")
    assert str(caught.value) == str(whole_read.value)
    assert not (tmp_path / "out").exists()


def test_a_frame_later_than_the_horizon_reads_the_log_whole(monkeypatch, tmp_path, dbcs):
    """A frame 40 s out of place (beyond the 30 s reordering horizon): read whole and sorted,
    with the in-memory note, and the same summary."""
    from benchmarks._synthetic import restbus_frames

    frames = restbus_frames(24_000, dbcs, seed=6)
    order = np.arange(frames.num_rows)
    order = np.concatenate([order[:100], order[101:20_000], [100], order[20_000:]])
    log = tmp_path / "late.log"
    write_frames(frames, tmp_path / "sorted.log")
    lines = (tmp_path / "sorted.log").read_text().splitlines(keepends=True)
    log.write_text("".join(lines[i] for i in order))
    want = in_memory(log, PLAN)
    assert any("frames sorted by timestamp" in line for line in want["skipped"])
    assert streamed(monkeypatch, log, PLAN, tmp_path / "out", 1000) == want


@pytest.mark.parametrize("suffix", [".blf", ".asc.gz", ".mf4"])
def test_convert_to_parquet_streams_the_same_frames(monkeypatch, tmp_path, logs, suffix):
    monkeypatch.setenv(BATCH_ENV, "777")
    log = logs[suffix]
    done = convert(log, tmp_path / "out.parquet")
    want = read_frames(log).frames
    assert done.frames == want.num_rows
    assert pq.read_table(tmp_path / "out.parquet").equals(want)
    convert(log, tmp_path / "segments")
    assert read_frames(tmp_path / "segments").frames.equals(want)


# -- the MF4 merge against the obviously-correct one: concatenate the groups, sort (stable) --------


def _group(times: list[float], group: int) -> pa.Table:
    n = len(times)
    return pa.table(
        {
            "timestamp": pa.array(sorted(times), pa.float64()),
            "group": pa.array([group] * n, pa.int64()),
        }
    )


def _chunked(table: pa.Table, rows: int):
    return iter([table.slice(i, rows) for i in range(0, table.num_rows, rows)])


@settings(max_examples=300, deadline=None, database=None)
@given(
    groups=st.lists(
        st.lists(st.integers(0, 40).map(lambda t: t / 4), min_size=0, max_size=40),
        min_size=1,
        max_size=3,
    ),
    read=st.integers(1, 9),
    rows=st.integers(1, 12),
)
def test_mf4_merge_is_the_stable_sort_of_the_groups(groups, read, rows):
    """Any group sizes, ties within and across groups, any read and output chunk sizes."""
    from bench.logfiles.mf4 import _merged

    tables = [_group(times, g) for g, times in enumerate(groups)]
    readers = [_chunked(t, read) for t in tables]
    firsts = [next(r, None) for r in readers]
    out = list(_merged(firsts, readers, rows))
    assert all(t.num_rows <= rows for t in out)
    got = pa.concat_tables(out) if out else tables[0].slice(0, 0)
    whole = pa.concat_tables(tables)
    want = whole.take(pc.sort_indices(whole, sort_keys=[("timestamp", "ascending")]))
    assert got.to_pydict() == want.to_pydict()


def test_an_mf4_group_out_of_time_order_is_read_whole(monkeypatch, tmp_path, dbcs):
    """A channel group whose own timestamps go back (the merge cannot put it in place): the
    log is read whole and sorted, with the in-memory note, and judged the same."""
    from bench.logfiles import mf4
    from bench.logfiles.base import NeedsWholeLog
    from benchmarks._synthetic import restbus_frames

    frames = restbus_frames(24_000, dbcs, seed=7)
    order = np.arange(frames.num_rows)
    order = np.concatenate([order[:100], order[101:20_000], [100], order[20_000:]])
    log = tmp_path / "late.mf4"
    mf4.write(frames.take(pa.array(order)), log, None)  # not sorted: write() as given
    with pytest.raises(NeedsWholeLog):
        list(mf4.chunks(LogSource(log), 1000))
    want = in_memory(log, PLAN)
    assert any("frames sorted by timestamp" in line for line in want["skipped"])
    assert streamed(monkeypatch, log, PLAN, tmp_path / "out", 1000) == want
