"""A message on two channels, or in both directions, is never judged as one stream.

Logs are written with python-can's own BLF and ASC writers: a restbus on channel 0 and its copy
on channel 1 (a gateway, 0.3 ms later), the same bus captured twice (identical timestamps), the
tester's own sends echoed as ``tx``, and the false PASS a mixed stream would give: the BMS dead on
channel 0 half way through while its forwarded copy goes on on channel 1. Without a selection the
frame-timing checks of a mixed message are inconclusive (never pass, never fail); with the plan's
``judge:`` or ``bench evaluate --channel/--direction`` they are judged on the chosen stream,
whatever the batch size, and a re-evaluation of the run directory reproduces the summary.
"""

from __future__ import annotations

import json
from pathlib import Path

import can
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.channels import FrameSelection, StreamMix
from bench.cli import cli
from bench.evaluate import evaluate_log, evaluate_path, judge_batches
from bench.frames import FRAME_SCHEMA
from bench.plan import load_plan
from bench.stream import BATCH_ENV
from tests.test_streaming import comparable

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "logs"
TIMING = ["Pack status cycle time", "Pack status present", "Pack status alive counter",
          "Pack status CRC"]  # fmt: skip
PLAN = """\
name: Channels
dbc: [{dbc}/battery.dbc, {dbc}/motor.dbc, {dbc}/vehicle.dbc]
{judge}
checks:
  - {{name: Pack status cycle time, cycle_time: BMS_PackStatus, tolerance: 10%}}
  - {{name: Pack status present, timeout: BMS_PackStatus, max_gap: 100ms}}
  - {{name: Pack status alive counter, counter: BMS_PackStatus.AliveCounter}}
  - {{name: Pack status CRC, crc: BMS_PackStatus}}
  - {{name: SOC in range, signal: BMS_PackStatus.SOC, min: 0, max: 100}}
"""


def plan_file(tmp_path: Path, judge: str = "") -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN.format(dbc=ROOT / "dbc", judge=judge), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def bus(dbcs) -> pa.Table:
    """About 10 s of the restbus on channel 0 (valid counters and CRCs)."""
    from benchmarks._synthetic import restbus_frames

    return restbus_frames(4000, dbcs, seed=3, channel="0")


def relabel(table: pa.Table, channel: str | None = None, direction: str | None = None,
            shift: float = 0.0) -> pa.Table:  # fmt: skip
    if channel is not None:
        column = pa.array([channel] * table.num_rows, pa.string())
        table = table.set_column(table.schema.get_field_index("channel"), "channel", column)
    if direction is not None:
        column = pa.array([direction] * table.num_rows, pa.string())
        table = table.set_column(table.schema.get_field_index("direction"), "direction", column)
    if shift:
        ts = pc.add(table.column("timestamp"), shift)
        table = table.set_column(table.schema.get_field_index("timestamp"), "timestamp", ts)
    return table


def joined(*tables: pa.Table) -> pa.Table:
    return pa.concat_tables(tables).sort_by("timestamp")


def write_log(table: pa.Table, path: Path) -> Path:
    """``table`` written by python-can's writer for ``path``'s suffix (BLF, ASC)."""
    writer = can.BLFWriter(path) if path.suffix == ".blf" else can.ASCWriter(path)
    with writer:
        for row in table.to_pylist():
            writer.on_message_received(
                can.Message(
                    timestamp=row["timestamp"],
                    arbitration_id=row["arbitration_id"],
                    is_extended_id=row["is_extended_id"],
                    is_fd=row["is_fd"],
                    bitrate_switch=row["bitrate_switch"],
                    dlc=len(row["data"]),
                    data=row["data"],
                    channel=int(row["channel"]),
                    is_rx=row["direction"] == "rx",
                )
            )
    return path


def verdicts(summary) -> dict[str, str]:
    return {c.name: c.verdict for c in summary.checks}


def result(summary, name: str):
    return next(c for c in summary.checks if c.name == name)


def stop_pack_status(table: pa.Table, after: float) -> pa.Table:
    """``table`` without BMS_PackStatus (0x100) frames after ``after`` s of the log: a dead BMS."""
    ts = table.column("timestamp").to_numpy()
    ids = table.column("arbitration_id").to_numpy()
    keep = ~((ids == 0x100) & (ts > ts[0] + after))
    return table.filter(pa.array(keep))


# -- judged as one stream: never a verdict ----------------------------------------------------


@pytest.mark.parametrize("suffix", [".blf", ".asc"])
@pytest.mark.parametrize(
    "kind",
    ["gateway", "duplicate capture", "tx echo"],
)
def test_a_mixed_message_makes_its_timing_checks_inconclusive(tmp_path, bus, suffix, kind):
    copy = {
        "gateway": relabel(bus, channel="1", shift=0.0003),
        "duplicate capture": relabel(bus, channel="1"),
        "tx echo": relabel(bus, direction="tx", shift=0.0001),
    }[kind]
    log = write_log(joined(bus, copy), tmp_path / f"log{suffix}")
    summary, out = evaluate_path(log, plan_file(tmp_path), out_dir=tmp_path / "out")
    got = verdicts(summary)
    assert all(got[name] == "inconclusive" for name in TIMING), got
    assert got["SOC in range"] == "pass"  # a signal-value check stays judged
    reason = result(summary, "Pack status cycle time").message
    assert "BMS_PackStatus" in reason and ("--channel" in reason or "--direction" in reason)
    sent = int(pc.sum(pc.equal(bus.column("arbitration_id"), 0x100)).as_py())
    assert f": {sent}," in reason  # each stream's frame count
    mixed = summary.bus["mixed_messages"]["BMS_PackStatus"]
    assert [s["frames"] for s in mixed] == [sent, sent]
    data = json.loads((out / "summary.json").read_text())
    assert "BMS_PackStatus" in data["bus"]["mixed_messages"]
    assert summary.verdict == "inconclusive"
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "BMS_PackStatus" in html and "more than one stream" in html


def test_the_dead_ecu_hidden_by_its_copy_never_passes(tmp_path, bus):
    """BMS dead on channel 0 after 4 s; the gateway's copy on channel 1 goes on."""
    alive = relabel(bus, channel="1", shift=0.0003)
    log = write_log(joined(stop_pack_status(bus, 4.0), alive), tmp_path / "dead.blf")
    plan = plan_file(tmp_path)
    mixed, _ = evaluate_path(log, plan, out_dir=tmp_path / "mixed")
    assert verdicts(mixed)["Pack status present"] == "inconclusive"
    assert mixed.verdict != "pass"
    on0, _ = evaluate_path(log, plan, out_dir=tmp_path / "c0", selection=FrameSelection(("0",)))
    assert verdicts(on0)["Pack status present"] == "fail"
    on1, _ = evaluate_path(log, plan, out_dir=tmp_path / "c1", selection=FrameSelection(("1",)))
    assert all(verdicts(on1)[name] == "pass" for name in TIMING), verdicts(on1)


def test_the_dead_ecu_fails_when_its_channel_is_chosen_in_the_plan(tmp_path, bus):
    """The timeout runs to the end of the log, not to the last judged frame."""
    log = write_log(
        joined(stop_pack_status(bus, 4.0), relabel(bus, channel="1", shift=0.0003)),
        tmp_path / "dead.asc",
    )
    plan = plan_file(tmp_path, "judge: {channels: [0], direction: rx}")
    summary, _ = evaluate_path(log, plan, out_dir=tmp_path / "out")
    assert verdicts(summary)["Pack status present"] == "fail"
    selection = summary.bus["selection"]
    assert selection["channels"] == ["0"] and selection["origin"] == "plan"
    assert selection["frames_left_out"] == bus.num_rows
    assert summary.bus["mixed_messages"] == {}
    assert summary.frames == 2 * bus.num_rows - int(
        np.sum(
            (bus.column("arbitration_id").to_numpy() == 0x100)
            & (bus.column("timestamp").to_numpy() > bus.column("timestamp").to_numpy()[0] + 4)
        )
    )


def test_a_tx_echo_is_resolved_by_the_direction(tmp_path, bus):
    log = write_log(joined(bus, relabel(bus, direction="tx", shift=0.0001)), tmp_path / "e.blf")
    summary, _ = evaluate_path(
        log, plan_file(tmp_path), out_dir=tmp_path / "out", selection=FrameSelection((), "rx")
    )
    assert all(verdicts(summary)[name] == "pass" for name in TIMING), verdicts(summary)


# -- the choice is recorded: re-evaluating reproduces it ---------------------------------------


def test_cli_channel_is_stored_and_reproduced(tmp_path, bus):
    log = write_log(joined(bus, relabel(bus, channel="1", shift=0.0003)), tmp_path / "log.blf")
    plan, out = plan_file(tmp_path), tmp_path / "out"
    runner = CliRunner()
    first = runner.invoke(cli, ["evaluate", str(log), "--plan", str(plan), "--out", str(out),
                                "--channel", "1"])  # fmt: skip
    assert first.exit_code == 0, first.output
    stored = json.loads((out / "selection.json").read_text())
    assert stored["channels"] == ["1"]
    before = (out / "summary.json").read_bytes()
    again = runner.invoke(cli, ["evaluate", str(out)])
    assert again.exit_code == 0, again.output
    assert (out / "summary.json").read_bytes() == before
    everything = runner.invoke(cli, ["evaluate", str(out), "--channel", "all"])
    assert everything.exit_code == 4 or "INCONCLUSIVE" in everything.output, everything.output


def test_a_channel_without_frames_is_said_not_silent(tmp_path, bus):
    log = write_log(bus, tmp_path / "log.blf")
    summary, _ = evaluate_path(
        log, plan_file(tmp_path), out_dir=tmp_path / "out", selection=FrameSelection(("7",))
    )
    assert set(verdicts(summary).values()) == {"inconclusive"}
    assert "channel(s) 7 absent" in result(summary, "SOC in range").message
    assert any("'7' has no frame" in line for line in summary.skipped), summary.skipped
    assert summary.bus["selection"]["channels_without_frames"] == ["7"]


def test_plan_judge_section_is_checked(tmp_path):
    from bench.errors import InputError

    for bad in ("judge: {direction: both}", "judge: {channels: [[1]]}", "judge: {chan: [1]}"):
        with pytest.raises(InputError):
            load_plan(plan_file(tmp_path, bad))


# -- streaming: the same for every batch size -------------------------------------------------


def _frames(rows: list[tuple[float, int, str, str]]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            dict(timestamp=t, channel=c, arbitration_id=i, is_extended_id=False,
                 is_remote_frame=False, is_error_frame=False, is_fd=False, bitrate_switch=False,
                 dlc=8, data=bytes(8), direction=d)
            for t, i, c, d in rows
        ],
        schema=FRAME_SCHEMA,
    )  # fmt: skip


def _reference_mixed(rows, dbcs) -> dict[str, set]:
    """Slow and obvious: per message, the set of (channel, direction) of its frames."""
    seen: dict[str, set] = {}
    for _, frame_id, channel, direction in rows:
        message = dbcs.message_by_id(frame_id, False)
        if message is not None:
            seen.setdefault(message.name, set()).add((channel, direction))
    return {
        m: s for m, s in seen.items() if len({c for c, _ in s}) > 1 or len({d for _, d in s}) > 1
    }


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 10, allow_nan=False),
            st.sampled_from([0x100, 0x101, 0x200, 0x7FE]),
            st.sampled_from(["0", "1", ""]),
            st.sampled_from(["rx", "tx"]),
        ),
        max_size=60,
    ),
    st.integers(1, 7),
)
def test_mixing_is_counted_the_same_in_any_batches(dbcs, rows, size):
    rows = sorted(rows)
    table = _frames(rows)
    whole, batched = StreamMix(), StreamMix()
    whole.add(table)
    for start in range(0, table.num_rows, size):
        batched.add(table.slice(start, size))
    assert batched.counts == whole.counts
    want = _reference_mixed(rows, dbcs)
    got = whole.mixed(dbcs)
    assert set(got) == set(want)
    for name, streams in got.items():
        assert {(s["channel"], s["direction"]) for s in streams} == want[name]


@pytest.mark.parametrize("selection", [None, FrameSelection(("1",)), FrameSelection((), "rx")])
def test_batches_judge_as_one(monkeypatch, tmp_path, bus, selection):
    """BENCH_EVAL_BATCH=13 and 997 give the summary of the whole log in memory."""

    frames = joined(stop_pack_status(bus, 4.0), relabel(bus, channel="1", shift=0.0003),
                    relabel(bus.slice(0, 300), direction="tx", shift=0.0001))  # fmt: skip
    log = tmp_path / "log.parquet"
    import pyarrow.parquet as pq

    pq.write_table(frames, log, row_group_size=500)
    plan = plan_file(tmp_path)
    want = comparable(evaluate_log(frames, load_plan(plan), selection=selection)[0])
    for batch in (13, 997):
        monkeypatch.setenv(BATCH_ENV, str(batch))
        got, _ = evaluate_path(log, plan, out_dir=tmp_path / f"b{batch}", selection=selection)
        assert comparable(got) == want


@pytest.fixture(scope="module")
def small_plan(tmp_path_factory):
    return load_plan(plan_file(tmp_path_factory.mktemp("plan")))


SELECTIONS = [None, FrameSelection(("0",)), FrameSelection((), "rx"), FrameSelection(("1",), "tx")]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 400).map(lambda ms: ms / 1000),
            st.sampled_from([0x100, 0x200]),
            st.sampled_from(["0", "1"]),
            st.sampled_from(["rx", "tx"]),
        ),
        min_size=1,
        max_size=40,
    ),
    st.lists(st.integers(1, 40), max_size=6),
    st.sampled_from(SELECTIONS),
)
def test_judging_in_any_batches_is_judging_in_one(small_plan, rows, cuts, selection):
    """Random frames on two channels and directions, cut into random batches (never inside a
    run of equal timestamps): the summary of the whole log, and timing checks inconclusive
    exactly when the slow reference finds BMS_PackStatus on two streams among the judged."""
    rows = sorted(rows)
    table = _frames(rows)
    times = [t for t, *_ in rows]
    bounds, start = [], 0
    for size in cuts:
        end = min(start + size, len(rows))
        while 0 < end < len(rows) and times[end] == times[end - 1]:
            end += 1
        if end > start:
            bounds.append((start, end))
        start = end
    if start < len(rows):
        bounds.append((start, len(rows)))
    batches = [table.slice(a, b - a) for a, b in bounds]
    want = evaluate_log(table, small_plan, selection=selection)[0]
    got = judge_batches(batches, small_plan, span=(times[0], times[-1]), selection=selection)
    assert comparable(got) == comparable(want)
    chosen = selection or FrameSelection()
    streams = {
        (c, d)
        for _, i, c, d in rows
        if i == 0x100
        and (not chosen.channels or c in chosen.channels)
        and (chosen.direction is None or d == chosen.direction)
    }
    is_mixed = len({c for c, _ in streams}) > 1 or len({d for _, d in streams}) > 1
    for name in TIMING:
        said = "more than one stream" in result(got, name).message
        assert said == is_mixed, (name, streams, result(got, name).message)
        if is_mixed:
            assert result(got, name).verdict == "inconclusive"


# -- the real-world corpus ---------------------------------------------------------------------


TP_DBC = """\
VERSION ""
NS_ :
BS_:
BU_: ECU
BO_ 2565603072 TP_DT: 8 ECU
 SG_ Sequence : 0|8@1+ (1,0) [0|255] "" ECU
"""
TP_PLAN = """\
name: J1939 transport on two channels
dbc: [tp.dbc]
checks:
  - {name: TP.DT every 50 ms, cycle_time: TP_DT, period: 50ms, tolerance: 10%}
  - {name: Sequence in range, signal: TP_DT.Sequence, min: 1, max: 4}
"""


def test_corpus_two_channel_capture_is_never_one_stream(tmp_path):
    """python-can's logfile.asc (CANoe): a J1939 TP.DT (0x18EBFF00) at 50 ms on CAN 1 at 3 s
    and on CAN 2 at 20 s. As one stream its gaps are 50 ms and 17 s (a cycle_time FAIL for the
    wrong reason); bench says inconclusive, and judges each channel when asked."""
    log = CORPUS / "python-can" / "logfile.asc"
    if not log.is_file():
        pytest.skip(f"{log}: the real-world corpus is absent (a bare clone)")
    (tmp_path / "tp.dbc").write_text(TP_DBC, encoding="utf-8")
    plan = tmp_path / "plan.yaml"
    plan.write_text(TP_PLAN, encoding="utf-8")
    mixed, _ = evaluate_path(log, plan, out_dir=tmp_path / "mixed")
    assert verdicts(mixed) == {"TP.DT every 50 ms": "inconclusive", "Sequence in range": "pass"}
    streams = mixed.bus["mixed_messages"]["TP_DT"]
    assert [(s["channel"], s["frames"]) for s in streams] == [("0", 4), ("1", 4)]
    assert mixed.bus["channels"] == {"0": 8, "1": 7, "2": 2, "3": 2, "4": 1}
    # CAN 1: gaps 50.0, 49.3, 51.1 ms; CAN 2: 49.9, 49.6, 44.2 ms (outside 45…55 ms)
    for channel, want in (("0", "pass"), ("1", "fail")):
        one, _ = evaluate_path(
            log, plan, out_dir=tmp_path / channel, selection=FrameSelection((channel,))
        )
        assert verdicts(one)["TP.DT every 50 ms"] == want
        assert one.bus["selection"]["frames_left_out"] == 20 - (8 if channel == "0" else 7)


def test_corpus_logs_report_their_channels(tmp_path):
    if not CORPUS.is_dir():
        pytest.skip(f"{CORPUS}: the real-world corpus is absent (a bare clone)")
    from bench.logfiles import read_frames

    found = {}
    for path in sorted((CORPUS / "python-can").iterdir()):
        try:
            frames = read_frames(path).frames
        except Exception:
            continue
        mix = StreamMix()
        mix.add_seen(frames)
        mix.add(frames)
        found[path.name] = (sorted(mix.seen_channels), {d for *_, d in mix.counts})
    multi = {name for name, (channels, _) in found.items() if len(channels) > 1}
    assert multi, found  # the corpus has multi-channel captures: this test sees them


def test_a_campaign_judges_the_chosen_channel_of_every_log(tmp_path, bus):
    """``bench evaluate A B --channel 1``: LogTask carries the choice to each log's worker."""
    two = joined(stop_pack_status(bus, 4.0), relabel(bus, channel="1", shift=0.0003))
    logs = [write_log(two, tmp_path / "a.blf"), write_log(two, tmp_path / "b.asc")]
    out = tmp_path / "campaign"
    args = ["evaluate", *map(str, logs), "--plan", str(plan_file(tmp_path)), "--out", str(out),
            "--jobs", "1", "--channel", "1"]  # fmt: skip
    done = CliRunner().invoke(cli, args)
    assert done.exit_code == 0, done.output
    data = json.loads((out / "campaign.json").read_text())
    for entry in data["logs"]:
        assert {c["verdict"] for c in entry["checks"]} == {"pass"}, entry["checks"]
        assert any("not judged" in line for line in entry["skipped"])
        run = json.loads((out / entry["run_dir"] / "selection.json").read_text())
        assert run["channels"] == ["1"]
