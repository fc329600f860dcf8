"""A second Ctrl-C / SIGTERM during evaluation or reporting: exit 3, one line saying what was
left undone, the recording untouched. Real signals to a real `bench` process."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.evaluate import evaluate_path
from bench.record import list_segments

from .conftest import ROOT

PLANS = Path(__file__).parent / "runner_plans"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def _bench(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.cli", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip


def _wait_for(process: subprocess.Popen, text: str, timeout: float = 120) -> None:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        if text in line:
            return
        assert time.monotonic() < deadline, f"no {text!r} in time"
    pytest.fail(f"{text!r} never printed")


def _catches(process: subprocess.Popen, signum: int, timeout: float = 120) -> None:
    """Wait until the process has its own handler for ``signum`` (``SigCgt`` in /proc): a signal
    sent before would meet Python's default and say nothing of what the command does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        status = Path(f"/proc/{process.pid}/status").read_text()
        caught = int(
            next(ln for ln in status.splitlines() if ln.startswith("SigCgt:")).split()[1], 16
        )
        if caught >> (signum - 1) & 1 and (signum != signal.SIGINT or caught >> 14 & 1):
            return
        time.sleep(0.002)
    pytest.fail("the command never installed its signal handler")


def _error_line(stderr: str) -> str:
    """The one ``bench: error:`` line, last on stderr (warnings of the log reader may precede)."""
    errors = [line for line in stderr.strip().splitlines() if line.startswith("bench: error:")]
    assert len(errors) == 1 and stderr.strip().splitlines()[-1] == errors[0], stderr
    return errors[0]


def _recording(run_dir: Path) -> dict[str, str]:
    """sha256 of every file of the recording (frames and events)."""
    files = [*list_segments(run_dir / "frames"), run_dir / "events.parquet"]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_second_signal_during_the_runs_evaluation_says_what_is_undone(tmp_path, signum):
    run_dir = tmp_path / "run"
    process = _bench("run", str(PLANS / "long.yaml"), "--out", str(run_dir), "--plain")
    _wait_for(process, "'wait' started")
    time.sleep(2.0)  # some frames to judge
    process.send_signal(signum)  # first: stop the run (safe state, recording closed)
    _wait_for(process, "recorded ")  # the run's last line before it is judged
    process.send_signal(signum)  # second: during the evaluation
    stdout, stderr = process.communicate(timeout=120)
    name = signal.Signals(signum).name
    assert process.returncode == 3, stderr
    line = _error_line(stderr)
    assert line.startswith(f"bench: error: {name} during evaluation: {run_dir} not judged")
    assert "the recording is intact" in line and "Traceback" not in stdout + stderr
    assert not (run_dir / "summary.json").exists()
    # The recording is whole: every segment readable, the abort and the run's end recorded.
    before = _recording(run_dir)
    summary, _ = evaluate_path(run_dir)
    assert summary.verdict == "aborted" and f"received {name}" in summary.aborted.reason
    assert summary.frames > 1000
    assert _recording(run_dir) == before


@pytest.fixture(scope="module")
def big_run(tmp_path_factory) -> Path:
    """A recorded run with enough frames that judging it takes a while."""
    run_dir = tmp_path_factory.mktemp("big") / "run"
    process = _bench("run", str(PLANS / "long.yaml"), "--out", str(run_dir), "--plain")
    _wait_for(process, "'wait' started")
    time.sleep(6.0)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=120)
    return run_dir


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_bench_evaluate_is_exit_3_and_one_line(big_run, tmp_path, signum):
    out = tmp_path / "eval"
    before = _recording(big_run)
    process = _bench("evaluate", str(big_run), "--out", str(out))
    _catches(process, signum)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 3, stderr
    line = _error_line(stderr)
    assert line.startswith(f"bench: error: {signal.Signals(signum).name} during evaluation")
    assert "not judged" in line and "Traceback" not in stderr
    assert _recording(big_run) == before


def test_signal_during_bench_report_is_exit_3_and_one_line(big_run, tmp_path):
    page = tmp_path / "page.html"
    process = _bench("report", str(big_run), "--out", str(page))
    _catches(process, signal.SIGTERM)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 3, stderr
    line = _error_line(stderr)
    assert line.startswith("bench: error: SIGTERM during reporting: ") and "not written" in line
    assert not page.exists()
