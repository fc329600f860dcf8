"""The run directory: one owner of its names, exclusive creation, a lock held for the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pytest

from bench.errors import EXIT_INPUT, InputError
from bench.rundir import (
    LOCK_FILE,
    Event,
    RunDirBusy,
    claim_run_dir,
    create_run_dir,
    lock_run_dir,
    new_run_dir,
    parse_events,
    read_events,
)

from .conftest import ROOT

PLANS = Path(__file__).parent / "runner_plans"
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}


def test_new_run_dirs_in_one_second_stay_apart(tmp_path):
    import datetime as dt

    now = dt.datetime(2026, 1, 2, 3, 4, 5)
    first = new_run_dir(tmp_path, "heihe", now)
    second = new_run_dir(tmp_path, "heihe", now)
    assert first.path.name == "20260102-030405-heihe"
    assert second.path.name == "20260102-030405-heihe-1"
    owner = (first.path / LOCK_FILE).read_text()
    assert f"pid={os.getpid()}" in owner
    first.release()
    second.release()


def test_out_dir_new_or_empty_is_taken(tmp_path):
    with claim_run_dir(tmp_path / "a" / "b") as lock:  # parents are made
        assert (lock.path / LOCK_FILE).is_file() and lock.held
    (tmp_path / "empty").mkdir()
    with create_run_dir(tmp_path / "empty", tmp_path, "x") as lock:
        assert lock.path == tmp_path / "empty"


@pytest.mark.parametrize(
    "prepare, message",
    [
        (lambda d: (d / "frames").mkdir(parents=True), "already a run directory"),
        (lambda d: (d / "summary.json").parent.mkdir() or (d / "summary.json").write_text("{}"),
         "already a run directory"),
        (lambda d: (d / "20260101-000000-x" / "frames").mkdir(parents=True),
         "holds run directories"),
        (lambda d: d.mkdir() or (d / "notes.txt").write_text("mine"), "not empty"),
    ],
)  # fmt: skip
def test_out_dir_holding_anything_is_refused(tmp_path, prepare, message):
    target = tmp_path / "out"
    prepare(target)
    before = sorted(p.relative_to(target) for p in target.rglob("*"))
    with pytest.raises(InputError, match=message) as caught:
        claim_run_dir(target)
    assert caught.value.exit_code == EXIT_INPUT
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == before  # untouched


def test_out_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="names a file"):
        claim_run_dir(tmp_path / "f")


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from bench.rundir import claim_run_dir
    lock = claim_run_dir(Path(sys.argv[1]))
    print("held", flush=True)
    time.sleep(600)
    """
)


def test_a_held_run_dir_is_busy_for_others_and_free_once_its_holder_dies(tmp_path):
    target = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(target)], stdout=subprocess.PIPE, text=True, env=ENV
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirBusy, match=f"pid {holder.pid}") as caught:
            lock_run_dir(target)
        assert caught.value.exit_code == EXIT_INPUT
        with pytest.raises(InputError, match="already"):
            claim_run_dir(target)
    finally:
        holder.kill()  # kill -9: the kernel drops the flock with the process
        holder.wait(timeout=30)
        holder.stdout.close()
    with lock_run_dir(target) as lock:
        assert lock.held
        with lock_run_dir(target) as again:  # this process holds it: a run judging itself
            assert not again.held
    with pytest.raises(InputError, match="already a run directory"):
        claim_run_dir(target)  # free, but still another run's directory


RACER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from bench.errors import InputError
    from bench.rundir import claim_run_dir
    go = float(sys.argv[2])
    while time.time() < go:
        pass
    try:
        lock = claim_run_dir(Path(sys.argv[1]))
    except InputError as exc:
        print("refused", exc, flush=True)
    else:
        print("claimed", flush=True)
        time.sleep(1.0)
    """
)


def test_many_processes_claiming_one_out_dir_at_once_one_wins(tmp_path):
    for attempt in range(3):
        target = tmp_path / f"run{attempt}"
        go = time.time() + 2.0
        racers = [
            subprocess.Popen([sys.executable, "-c", RACER, str(target), repr(go)],
                             stdout=subprocess.PIPE, text=True, env=ENV)
            for _ in range(4)
        ]  # fmt: skip
        outputs = [r.communicate(timeout=60)[0] for r in racers]
        assert sum(o.startswith("claimed") for o in outputs) == 1, outputs
        assert sum(o.startswith("refused") for o in outputs) == 3, outputs


def _bench_run(out: Path, plan: str = "short.yaml") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "run", str(PLANS / plan), "--out", str(out), "--plain"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=ROOT,
    )


def test_two_bench_runs_started_together_into_one_out_never_mix(tmp_path):
    out = tmp_path / "shared"
    runs = [_bench_run(out), _bench_run(out)]
    results = [(*r.communicate(timeout=600), r.returncode) for r in runs]
    results = [(code, out_, err) for out_, err, code in results]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, EXIT_INPUT], results
    loser = next(r for r in results if r[0] == EXIT_INPUT)
    assert "Traceback" not in loser[2]
    assert loser[2].count("\n") == 1 and str(out) in loser[2], loser[2]  # one line, exit 2
    events = parse_events(read_events(out))
    assert [e.kind for e in events].count("run_start") == 1
    assert [e.kind for e in events].count("run_end") == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "pass"  # the winner exited 0 beside a passing summary
    # its frames are one run's: every step once, frames in time order without a restart
    steps = [e.name for e in events if e.kind == "step_start"]
    assert steps == ["settle", "key_on", "drive", "key_off"]
    # a third run into the finished directory is refused before anything is sent
    before = sorted((p.name, p.stat().st_size) for p in (out / "frames").iterdir())
    third = _bench_run(out)
    _, stderr = third.communicate(timeout=300)
    assert third.returncode == EXIT_INPUT and "already a run directory" in stderr, stderr
    assert sorted((p.name, p.stat().st_size) for p in (out / "frames").iterdir()) == before


def test_evaluate_of_a_directory_a_run_is_recording_into_is_refused(tmp_path):
    out = tmp_path / "live"
    run = _bench_run(out, "long.yaml")
    try:
        deadline = time.monotonic() + 120
        for line in run.stdout:
            if "'wait' started" in line or time.monotonic() > deadline:
                break
        result = subprocess.run(
            [sys.executable, "-m", "bench.cli", "evaluate", str(out)],
            capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300,
        )  # fmt: skip
        assert result.returncode == EXIT_INPUT, result.stderr
        assert f"pid {run.pid}" in result.stderr and "Traceback" not in result.stderr
        assert not (out / "summary.json").exists()
    finally:
        run.send_signal(signal.SIGTERM)
        run.communicate(timeout=300)
    assert run.returncode == 3
    assert json.loads((out / "summary.json").read_text())["verdict"] == "aborted"


def test_one_event_parser_for_every_reader(tmp_path):
    table = pa.table(
        {
            "timestamp": [2.0, None, 1.0],
            "kind": ["step_end", "note", "step_start"],
            "name": ["a", "b", "a"],
            "detail": ['{"status": "done"}', "not json", "[1]"],
        }
    )
    events = parse_events(table)
    assert [e.kind for e in events] == ["step_start", "step_end", "note"]  # no time goes last
    assert events[0] == Event(1.0, "step_start", "a", {"value": [1]})
    assert events[2].detail == {"raw": "not json"}
    from bench.checks.context import Event as ChecksEvent
    from bench.report.source import RunDir

    assert ChecksEvent is Event
    assert RunDir.events.func.__annotations__["return"] == "list[Event]"


def test_copied_inputs_replace_an_earlier_dbc_set_and_refuse_colliding_names(tmp_path):
    from bench.rundir import DBC_DIR, PLAN_FILE, check_dbc_names, copy_inputs, sha256_of

    run = tmp_path / "run"
    (run / DBC_DIR).mkdir(parents=True)
    (run / DBC_DIR / "old.dbc").write_text('VERSION "old"\n')
    plan = tmp_path / "p.yaml"
    plan.write_text("name: x\n")
    dbc = ROOT / "dbc" / "battery.dbc"
    copy_inputs(run, plan, [dbc])
    assert (run / PLAN_FILE).read_text() == "name: x\n"
    assert [p.name for p in (run / DBC_DIR).iterdir()] == ["battery.dbc"]
    assert sha256_of(run / DBC_DIR / "battery.dbc") == sha256_of(dbc)
    (tmp_path / "a").mkdir()
    twin = tmp_path / "a" / "battery.dbc"
    twin.write_bytes(dbc.read_bytes())
    with pytest.raises(InputError, match=r"two DBC files named battery\.dbc"):
        check_dbc_names([dbc, twin])
