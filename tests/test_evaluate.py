"""evaluate_log / evaluate_path / ``bench evaluate``: outputs, reproducibility, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.e2e import Protector
from bench.errors import InputError
from bench.evaluate import evaluate_log, evaluate_path
from bench.frames import FRAME_SCHEMA
from bench.summary import exit_code, read_summary
from tests.conftest import DBC_DIR
from tests.test_checks_context import events

DBC_FILES = ("battery.dbc", "motor.dbc", "vehicle.dbc")

PLAN = """\
name: Evaluate fixture
site: Heihe
dut: {{vin: LTEST1}}
dbc: [{dbc}]
steps:
  - {{name: soak, duration: 2s}}
  - {{name: warm_up, duration: 4s}}
  - {{name: drive, duration: 3.5s}}
checks:
  - {{name: Max cell temperature, signal: BMS_Temps.MaxCellTemp, max: 55, marginal_max: 50}}
  - name: Min cell temperature while driving
    signal: BMS_Temps.MinCellTemp
    min: -40
    when: BMS_PackStatus.PackCurrent > 50
    during: [drive]
  - {{name: Pack warms, signal: BMS_Temps.MinCellTemp, reaches: ">= 0", within: 8s, after: warm_up}}
  - {{name: Pack status cycle time, cycle_time: BMS_PackStatus, tolerance: 10%}}
  - {{name: Pack status counter, counter: BMS_PackStatus.AliveCounter}}
  - {{name: Pack status CRC, crc: BMS_PackStatus}}
  - {{name: Temps timeout, timeout: BMS_Temps, max_gap: 250ms}}
  - {{name: Bus, bus: {{max_unknown_ids: 5}}}}
"""


def _plan_text(dbc_dir: Path) -> str:
    return PLAN.format(dbc=", ".join(str(dbc_dir / name) for name in DBC_FILES))


def _restbus(dbcs, duration: float = 10.0, *, hot: bool = False) -> pa.Table:
    """BMS_PackStatus every 20 ms and BMS_Temps every 100 ms; the pack warms from -10 °C."""
    rows: list[tuple[float, int, bytes]] = []
    status = Protector(dbcs.message("BMS_PackStatus"))
    temps = Protector(dbcs.message("BMS_Temps"))
    for t in np.arange(0, duration, 0.02).round(6):
        current = 100.0 if 6.0 <= t < 9.0 else 10.0
        rows.append((t, 0x100, status.encode({"PackCurrent": current, "SOC": 60})))
        if round(t * 50) % 5 == 0:
            warm = -10.0 + 2.0 * t
            rows.append(
                (t + 0.001, 0x102, temps.encode({"MinCellTemp": warm,
                                                  "MaxCellTemp": 60.0 if hot else warm + 5}))
            )  # fmt: skip
    rows.append((duration / 2, 0x7AB, b"\x01" * 8))  # one unknown id
    n = len(rows)
    return pa.Table.from_pydict(
        {
            "timestamp": [r[0] for r in rows],
            "channel": ["bench0"] * n,
            "arbitration_id": [r[1] for r in rows],
            "is_extended_id": [False] * n,
            "is_remote_frame": [False] * n,
            "is_error_frame": [False] * n,
            "is_fd": [False] * n,
            "bitrate_switch": [False] * n,
            "dlc": [len(r[2]) for r in rows],
            "data": [r[2] for r in rows],
            "direction": ["rx"] * n,
        },
        schema=FRAME_SCHEMA,
    ).sort_by("timestamp")


def _run_events(abort: bool = False) -> pa.Table:
    start = {
        "started_at": "2026-01-10T08:00:00+08:00",
        "mode": "lockstep",
        "interface": "virtual",
        "channel": "bench0",
        "bitrate": 500000,
        "seed": 7,
        "software": {"bench": "0.1.0"},
        "inject": [],
    }
    rows = [
        (0.0, "run_start", "run", start),
        (0.0, "step_start", "soak"),
        (2.0, "step_end", "soak", {"status": "done"}),
        (2.0, "step_start", "warm_up"),
        (6.0, "step_end", "warm_up", {"status": "done"}),
        (6.0, "step_start", "drive"),
        (9.5, "step_end", "drive", {"status": "done"}),
        (9.99, "run_end", "run", {"ended_at": "2026-01-10T08:00:10+08:00"}),
    ]
    if abort:
        rows.insert(-1, (9.6, "abort", "No BMS fault", {"reason": "FaultLevel 3 > 1",
                                                          "check": "No BMS fault"}))  # fmt: skip
    return events(*rows)


def make_run_dir(root: Path, dbcs, *, hot: bool = False, abort: bool = False) -> Path:
    """A run directory as the runner leaves it: two segments, events, plan and DBC copies."""
    run = root / "20260110-080000-fixture"
    (run / "frames").mkdir(parents=True)
    (run / "dbc").mkdir()
    for name in DBC_FILES:
        shutil.copyfile(DBC_DIR / name, run / "dbc" / name)
    # the plan names DBCs relative to where it ran from: not resolvable inside the run dir
    (run / "plan.yaml").write_text(_plan_text(Path("../../dbc")))
    frames = _restbus(dbcs, hot=hot)
    half = frames.num_rows // 2
    pq.write_table(frames.slice(0, half), run / "frames" / "part-00000.parquet")
    pq.write_table(frames.slice(half), run / "frames" / "part-00001.parquet")
    pq.write_table(_run_events(abort), run / "events.parquet")
    return run


@pytest.fixture
def plan_file(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(_plan_text(DBC_DIR))
    return path


# -- the pure function -----------------------------------------------------------------------------


def test_evaluate_log_verdicts_and_metadata(dbcs, plan_file):
    from bench.plan import load_plan

    plan = load_plan(plan_file)
    summary, decoded = evaluate_log(_restbus(dbcs), plan, _run_events())
    by_name = {c.name: c for c in summary.checks}
    assert by_name["Max cell temperature"].verdict == "pass"
    assert by_name["Min cell temperature while driving"].verdict == "pass"
    warm = by_name["Pack warms"]
    assert warm.verdict == "pass" and warm.observed == pytest.approx(3.001, abs=0.01)
    assert by_name["Pack status cycle time"].verdict == "pass"
    assert by_name["Pack status counter"].verdict == "pass"
    assert by_name["Pack status CRC"].verdict == "pass"
    assert by_name["Temps timeout"].verdict == "pass"
    assert by_name["Bus"].verdict == "marginal"  # one unknown id, five allowed
    assert summary.verdict == "marginal" and exit_code(summary.verdict) == 0
    assert summary.mode == "lockstep" and summary.seed == 7 and summary.interface == "virtual"
    assert summary.started_at == "2026-01-10T08:00:00+08:00"
    assert summary.ended_at == "2026-01-10T08:00:10+08:00"
    assert [s.name for s in summary.steps] == ["soak", "warm_up", "drive"]
    assert summary.bus["unknown_frames"] == 1 and summary.bus["unknown_ids"] == {"0x7AB": 1}
    assert summary.bus["bitrate"] == 500000
    assert summary.frames == decoded.stats.total_frames
    assert [d["file"] for d in summary.dbc] == list(DBC_FILES)


def test_without_events_step_scoped_checks_are_inconclusive(dbcs, plan_file):
    from bench.plan import load_plan

    summary, _ = evaluate_log(_restbus(dbcs), load_plan(plan_file))
    by_name = {c.name: c for c in summary.checks}
    for name in ("Min cell temperature while driving", "Pack warms"):
        assert by_name[name].verdict == "inconclusive"
        assert "no step events" in by_name[name].message
    assert by_name["Max cell temperature"].verdict == "pass"
    assert summary.verdict == "inconclusive" and summary.mode == "evaluate"


def test_abort_event_makes_the_run_aborted(dbcs, plan_file):
    from bench.plan import load_plan

    summary, _ = evaluate_log(_restbus(dbcs), load_plan(plan_file), _run_events(abort=True))
    assert summary.verdict == "aborted" and exit_code(summary.verdict) == 3
    assert summary.aborted.reason == "FaultLevel 3 > 1"
    assert summary.aborted.check == "No BMS fault" and summary.aborted.time == 9.6


def test_minimal_frame_table_evaluates(dbcs, plan_file):
    from bench.plan import load_plan

    full = _restbus(dbcs)
    minimal = full.select(["timestamp", "arbitration_id", "is_extended_id", "dlc", "data"])
    summary, _ = evaluate_log(minimal, load_plan(plan_file), _run_events())
    assert {c.name: c.verdict for c in summary.checks}["Pack status CRC"] == "pass"


# -- run directories -------------------------------------------------------------------------------


def test_reevaluating_a_run_directory_reproduces_summary_byte_for_byte(tmp_path, dbcs):
    run = make_run_dir(tmp_path, dbcs, hot=True)
    summary, target = evaluate_path(run)
    assert target == run
    first = (run / "summary.json").read_bytes()
    first_junit = (run / "junit.xml").read_bytes()
    assert summary.verdict == "fail"
    assert {c.name: c.verdict for c in summary.checks}["Max cell temperature"] == "fail"
    assert (run / "signals" / "BMS_Temps.parquet").is_file()
    # again, by another spelling of the same directory, and with the plan given explicitly
    summary2, _ = evaluate_path(run / "frames", run / "plan.yaml")
    assert (run / "summary.json").read_bytes() == first
    assert (run / "junit.xml").read_bytes() == first_junit
    assert summary2 == summary
    assert read_summary(run / "summary.json") == summary


def test_another_log_judged_against_a_runs_plan_uses_the_runs_dbc_copies(tmp_path, dbcs):
    """``bench evaluate LOG --plan RUN/plan.yaml``: the plan's ``../../dbc`` is not there; its
    run's ``dbc/`` copies are what it ran with (as ``bench evaluate RUN`` uses them)."""
    run = make_run_dir(tmp_path, dbcs, hot=True)
    assert not (run / "../../dbc").resolve().joinpath(DBC_FILES[0]).exists()
    log = tmp_path / "bench-log.parquet"
    pq.write_table(_restbus(dbcs, hot=True), log)
    summary, target = evaluate_path(log, run / "plan.yaml", out_dir=tmp_path / "judged")
    expected, _ = evaluate_path(run)
    judged = {c.name: (c.verdict, c.observed) for c in summary.checks}
    in_run = {c.name: (c.verdict, c.observed) for c in expected.checks}
    assert judged["Max cell temperature"] == in_run["Max cell temperature"] == ("fail", 60.0)
    assert sorted(p.name for p in (target / "dbc").iterdir()) == sorted(DBC_FILES)
    assert (target / "dbc" / DBC_FILES[0]).read_bytes() == (run / "dbc" / DBC_FILES[0]).read_bytes()
    # a project folder with a plan.yaml and a dbc/ but no recording is not a run: not taken
    folder = tmp_path / "project"
    (folder / "dbc").mkdir(parents=True)
    shutil.copyfile(run / "plan.yaml", folder / "plan.yaml")
    with pytest.raises(InputError, match="DBC file not found"):
        evaluate_path(log, folder / "plan.yaml", out_dir=tmp_path / "not-judged")


def test_corrupt_segment_is_skipped_and_named(tmp_path, dbcs):
    run = make_run_dir(tmp_path, dbcs)
    (run / "frames" / "part-00002.parquet").write_bytes(b"PAR1 this is not parquet")
    summary, _ = evaluate_path(run)
    assert len(summary.skipped) == 1 and "part-00002.parquet" in summary.skipped[0]
    assert summary.frames > 0
    again = (run / "summary.json").read_bytes()
    evaluate_path(run)
    assert (run / "summary.json").read_bytes() == again


def test_in_place_with_another_plan_is_refused(tmp_path, dbcs, plan_file):
    run = make_run_dir(tmp_path, dbcs)
    other = tmp_path / "other.yaml"
    other.write_text(_plan_text(DBC_DIR).replace("max: 55", "max: 58"))
    with pytest.raises(InputError, match="another plan"):
        evaluate_path(run, other)
    _, target = evaluate_path(run, other, out_dir=tmp_path / "elsewhere")
    assert target == tmp_path / "elsewhere" and (target / "frames").is_dir()
    assert (target / "plan.yaml").read_text() == other.read_text()


def test_a_plain_parquet_log_gets_a_self_contained_directory(tmp_path, dbcs, plan_file):
    log = tmp_path / "log.parquet"
    pq.write_table(_restbus(dbcs), log)
    out = tmp_path / "out"
    summary, target = evaluate_path(log, plan_file, out_dir=out)
    assert target == out
    assert sorted(p.name for p in (out / "dbc").iterdir()) == sorted(DBC_FILES)
    assert (out / "frames" / "part-00000.parquet").is_file()
    assert (out / "plan.yaml").read_text() == plan_file.read_text()
    assert summary.plan_file == "plan.yaml"
    first = (out / "summary.json").read_bytes()
    evaluate_path(out)  # the directory alone re-evaluates
    assert (out / "summary.json").read_bytes() == first


def test_out_never_overwrites_another_run_directory(tmp_path, dbcs, plan_file):
    """A recorded run may be the only copy: another log's evaluation is refused, nothing touched."""
    run = make_run_dir(tmp_path, dbcs)
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    log = tmp_path / "other.parquet"
    pq.write_table(_restbus(dbcs, 2.0), log)
    with pytest.raises(InputError, match="is a run directory"):
        evaluate_path(log, plan_file, out_dir=run)
    after = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before
    # a campaign re-judging the same log into the directory it made before may replace it
    out = tmp_path / "camp"
    evaluate_path(log, plan_file, out_dir=out)
    evaluate_path(log, plan_file, out_dir=out, replace=True)


def test_default_output_is_a_new_reports_directory(tmp_path, dbcs, plan_file, monkeypatch):
    log = tmp_path / "log.parquet"
    pq.write_table(_restbus(dbcs, duration=1.0), log)
    monkeypatch.chdir(tmp_path)
    _, target = evaluate_path(log, plan_file)
    assert target.parent == Path("reports") and target.name.endswith("-plan")
    assert (target / "summary.json").is_file()


def test_junit_one_testcase_per_check(tmp_path, dbcs):
    run = make_run_dir(tmp_path, dbcs, hot=True)
    summary, _ = evaluate_path(run)
    root = ET.parse(run / "junit.xml").getroot()
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == len(summary.checks)
    assert {c.get("classname") for c in cases} == {"Evaluate fixture"}
    failing = next(c for c in cases if c.get("name") == "Max cell temperature")
    message = failing.find("failure").get("message")
    assert "60" in message and "55" in message and "first evidence window" in message
    suite = root.find("testsuite")
    assert suite.get("failures") == "1" and suite.get("tests") == str(len(cases))


# -- the command -----------------------------------------------------------------------------------


def bench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_cli_exit_codes(tmp_path, dbcs):
    ok = make_run_dir(tmp_path / "ok", dbcs)
    result = bench("evaluate", str(ok))
    assert result.returncode == 0, result.stderr
    assert "verdict: MARGINAL" in result.stdout
    report = ok / "report.html"
    assert result.stdout.splitlines()[-1] == (
        f"report: {report}" if report.is_file() else f"report: none written in {ok}"
    )
    hot = make_run_dir(tmp_path / "hot", dbcs, hot=True)
    assert bench("evaluate", str(hot)).returncode == 1
    aborted = make_run_dir(tmp_path / "abort", dbcs, abort=True)
    assert bench("evaluate", str(aborted)).returncode == 3
    data = json.loads((aborted / "summary.json").read_text())
    assert data["verdict"] == "aborted"


def test_cli_bad_input_is_one_line_exit_2(tmp_path, dbcs, plan_file):
    missing = bench("evaluate", str(tmp_path / "nope.parquet"), "--plan", str(plan_file))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "nope.parquet" in missing.stderr
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 truncated")
    result = bench("evaluate", str(corrupt), "--plan", str(plan_file), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "corrupt.parquet" in result.stderr and not (tmp_path / "o").exists()
    bad_plan = tmp_path / "bad.yaml"
    bad_plan.write_text("name: x\ndbc: [nowhere.dbc]\nchecks: []\n")
    log = tmp_path / "log.parquet"
    pq.write_table(_restbus(dbcs, duration=1.0), log)
    result = bench("evaluate", str(log), "--plan", str(bad_plan))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    no_plan = bench("evaluate", str(log))
    assert no_plan.returncode == 2 and "--plan" in no_plan.stderr


def test_out_dir_is_replaced_not_mixed_and_foreign_dirs_refused(tmp_path, dbcs, plan_file):
    long_log, short_log = tmp_path / "long.parquet", tmp_path / "short.parquet"
    pq.write_table(_restbus(dbcs, duration=4.0), long_log)
    pq.write_table(_restbus(dbcs, duration=1.0), short_log)
    out = tmp_path / "out"
    evaluate_path(long_log, plan_file, out_dir=out)
    (out / "frames" / "part-00007.parquet").write_bytes(b"stale")
    with pytest.raises(InputError, match="is a run directory"):  # bench evaluate --out
        evaluate_path(short_log, plan_file, out_dir=out)
    # a campaign replaces the directory it made, never mixing two logs
    summary, _ = evaluate_path(short_log, plan_file, out_dir=out, replace=True)
    assert [p.name for p in (out / "frames").iterdir()] == ["part-00000.parquet"]
    assert summary.frames == pq.read_metadata(short_log).num_rows
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        evaluate_path(short_log, plan_file, out_dir=foreign)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def test_segment_directory_with_events_is_copied_as_a_run(tmp_path, dbcs, plan_file):
    segments = tmp_path / "segments"
    segments.mkdir()
    frames = _restbus(dbcs)
    pq.write_table(frames.slice(0, 300), segments / "a.parquet")
    pq.write_table(frames.slice(300), segments / "b.parquet")
    pq.write_table(_run_events(), segments / "events.parquet")
    summary, out = evaluate_path(segments, plan_file, out_dir=tmp_path / "out")
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["a.parquet", "b.parquet"]
    assert (out / "events.parquet").is_file() and summary.mode == "lockstep"
    first = (out / "summary.json").read_bytes()
    evaluate_path(out)
    assert (out / "summary.json").read_bytes() == first


def test_a_log_from_elsewhere_is_dated_by_its_frames(tmp_path, dbcs, plan_file):
    """No run_start event: a wall-clock log is dated by its first and last frame (so bench runs
    orders a campaign of road-test logs), reproduced by re-evaluating its run directory; a log
    in relative time (a lockstep run's, an undated ASC's) stays undated."""
    frames = _restbus(dbcs)
    driven = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    dated = frames.set_column(0, "timestamp", pa.compute.add(frames.column("timestamp"), driven))
    log = tmp_path / "road.parquet"
    pq.write_table(dated, log)
    summary, target = evaluate_path(log, plan_file, out_dir=tmp_path / "road")
    assert summary.started_at == "2026-01-01T00:00:00.000+00:00"
    assert summary.ended_at is not None and summary.ended_at.startswith("2026-01-01T00:00:09.")
    again, _ = evaluate_path(target)
    assert (again.started_at, again.ended_at) == (summary.started_at, summary.ended_at)
    relative = tmp_path / "lockstep.parquet"
    pq.write_table(frames, relative)
    undated, _ = evaluate_path(relative, plan_file, out_dir=tmp_path / "lockstep")
    assert undated.started_at is None and undated.ended_at is None
