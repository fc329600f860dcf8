"""Storage failing under a run: real full disks, read-only mounts and removed directories.

Each test makes the failure happen for real (root mounts a small tmpfs, bind-mounts a directory
read-only, removes the run directory) while a plan runs on the in-process virtual vehicle, and
checks the promise: the safe state goes out, the run stops with exit 3 and one line naming the
path and the reason, the segments already on disk stay readable, and the directory evaluates as
``aborted`` (once space is back, where it was space). Where mounting is refused (no root, a
container without CAP_SYS_ADMIN) the tests skip, saying so.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bench.evaluate import evaluate_path
from bench.liveview import NullStream
from bench.plan import load_plan
from bench.record import list_segments, read_events
from bench.run import RunOptions, run_plan

from .conftest import ROOT

PLANS = Path(__file__).parent / "runner_plans"
SAFE_ID = 0x300  # VCU_Command: the plan's safe state


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mount {' '.join(args)} refused here: {done.stderr.strip()}")


def _remount_read_only(path: Path) -> None:
    """``mount -o remount,bind,ro``, again while the kernel answers "busy": it refuses while a
    file is open for writing there (the run's journal between hand-overs), so a single try
    lost the race now and then and the test skipped instead of testing."""
    deadline = time.monotonic() + 30
    while True:
        done = subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], capture_output=True,
                              text=True)  # fmt: skip
        if done.returncode == 0:
            return
        if "busy" not in done.stderr or time.monotonic() > deadline:
            pytest.skip(f"mount -o remount,bind,ro {path} refused here: {done.stderr.strip()}")
        time.sleep(0.001)


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextlib.contextmanager
def tmpfs(where: Path, size: str):
    where.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
    try:
        yield where
    finally:
        _umount(where)


class _When(threading.Thread):
    """Runs ``action`` as soon as ``condition()`` holds (polled every millisecond). ``join()``
    re-raises what the action raised: a mount refused in the thread (pytest.skip) would
    otherwise vanish with it, and the test fail later as if the run had ignored the fault (seen
    once at load 8: "assert 0 == 3" after an hour simulated)."""

    def __init__(self, condition, action) -> None:
        super().__init__(daemon=True)
        self.condition, self.action = condition, action
        self.raised: BaseException | None = None

    def run(self) -> None:
        deadline = time.monotonic() + 60
        while not self.condition() and time.monotonic() < deadline:
            time.sleep(0.001)
        try:
            self.action()
        except BaseException as exc:
            self.raised = exc

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self.raised is not None:
            raise self.raised


def _when(condition, action) -> _When:
    thread = _When(condition, action)
    thread.start()
    return thread


def _remove(directory: Path) -> None:
    """rm -rf, again while the run writes new files into it (rm then finds it not empty)."""
    for _ in range(100):
        subprocess.run(["rm", "-rf", str(directory)], capture_output=True)
        if not directory.exists():
            return


def _segments(run_dir: Path) -> int:
    try:
        return len(list_segments(run_dir / "frames"))
    except OSError:
        return 0


def _run(run_dir: Path, plan: str = "short.yaml"):
    options = RunOptions(
        out_dir=run_dir, stream=NullStream(), handle_signals=False, max_segment_frames=2000
    )
    return run_plan(load_plan(PLANS / plan), options)


def _assert_aborted_for_storage(result, path_part: str, reason: str) -> None:
    assert result.exit_code == 3
    assert result.stopped is not None and result.stopped.kind == "storage"
    assert path_part in result.stopped.reason and reason in result.stopped.reason
    assert "\n" not in result.stopped.reason


def _safe_state_frames(run_dir: Path, after: float) -> int:
    frames = [f for p in list_segments(run_dir / "frames") for f in pq.read_table(p).to_pylist()]
    return sum(
        1 for f in frames
        if f["direction"] == "tx" and f["arbitration_id"] == SAFE_ID and f["timestamp"] >= after
    )  # fmt: skip


def test_disk_full_mid_run_aborts_and_the_directory_evaluates_aborted(tmp_path):
    # 256 KiB hold the inputs and a few segments of 2,000 frames: the run fills it itself.
    with tmpfs(tmp_path / "disk", "256k") as disk:
        run_dir = disk / "run"
        result = _run(run_dir)
        _assert_aborted_for_storage(result, str(run_dir / "frames"), "No space left on device")
        assert result.summary is None  # no room for signals/ and summary.json either
        kept = list_segments(run_dir / "frames")
        assert kept and all(pq.read_table(p).num_rows for p in kept[:-1])  # intact on disk
        assert not list((run_dir / "frames").glob("*.tmp"))  # the partial segment went
        # The partial segment's space took the events: the abort is on disk, with its reason.
        events = read_events(run_dir).to_pylist()
        abort = next(e for e in events if e["kind"] == "abort")
        assert "No space left on device" in abort["detail"]
        assert events[-1]["kind"] == "run_end"
        assert any(e["kind"] == "safe_state" for e in events)
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)  # space back
        summary, _ = evaluate_path(run_dir)
        assert summary.verdict == "aborted" and "No space left" in summary.aborted.reason


def _can_bind_read_only(tmp_path: Path) -> None:
    """Skip unless a read-only bind mount works here (tried on a scratch directory first: the
    real one happens in a thread, where a refusal could not skip the test)."""
    trial = tmp_path / "trial"
    trial.mkdir()
    _mount("--bind", str(trial), str(trial))
    try:
        _mount("-o", "remount,bind,ro", str(trial))
    finally:
        _umount(trial)


def test_frames_directory_made_read_only_mid_run(tmp_path):
    _can_bind_read_only(tmp_path)
    run_dir = tmp_path / "run"
    frames = run_dir / "frames"

    def read_only() -> None:
        _mount("--bind", str(frames), str(frames))
        _remount_read_only(frames)

    thread = _when(lambda: _segments(run_dir) >= 2, read_only)
    try:
        result = _run(run_dir, "long.yaml")  # an hour simulated: the fault comes first
    finally:
        thread.join()
        _umount(frames)
    _assert_aborted_for_storage(result, str(frames), "Read-only file system")
    events = read_events(run_dir).to_pylist()
    abort = next(e for e in events if e["kind"] == "abort")
    assert "Read-only file system" in abort["detail"]
    assert events[-1]["kind"] == "run_end"
    assert _safe_state_frames(run_dir, abort["timestamp"]) == 0  # no segment after the fault ...
    assert "safe state sent: VCU_Command" in (run_dir / "run.log").read_text()  # ... but sent
    assert "ABORT (storage)" in (run_dir / "run.log").read_text()
    summary, _ = evaluate_path(run_dir)
    assert summary.verdict == "aborted"
    assert summary.frames == sum(pq.read_table(p).num_rows for p in list_segments(frames))


def test_run_directory_removed_mid_run_is_made_again_and_evaluates_aborted(tmp_path):
    run_dir = tmp_path / "run"

    thread = _when(lambda: _segments(run_dir) >= 2, lambda: _remove(run_dir))
    result = _run(run_dir, "long.yaml")  # an hour simulated: the removal comes first
    thread.join()
    _assert_aborted_for_storage(result, str(run_dir), os.strerror(errno.ENOENT))
    # Made again with the plan and DBCs, the frames still in memory and every event since the
    # start (kept in memory): evaluable on its own.
    assert (run_dir / "plan.yaml").is_file() and list((run_dir / "dbc").glob("*.dbc"))
    events = read_events(run_dir).to_pylist()
    assert events[0]["kind"] == "run_start" and events[-1]["kind"] == "run_end"
    abort = next(e for e in events if e["kind"] == "abort")
    assert _safe_state_frames(run_dir, abort["timestamp"]) >= 1  # the safe state, recorded
    assert result.summary is not None and result.summary.verdict == "aborted"


def test_cli_exits_3_with_one_line_when_the_run_directory_goes(tmp_path):
    run_dir = tmp_path / "run"
    log = run_dir / "run.log"

    def started_driving() -> bool:
        with contextlib.suppress(OSError):
            return "'wait' started" in log.read_text()
        return False

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "bench.cli", "run", str(PLANS / "long.yaml"), "--out",
               str(run_dir), "--plain"]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)  # fmt: skip
    thread = _when(started_driving, lambda: _remove(run_dir))
    out, err = process.communicate(timeout=300)
    thread.join()
    assert process.returncode == 3, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error: "), err
    assert str(run_dir) in lines[0] and os.strerror(errno.ENOENT) in lines[0]
    assert "Traceback" not in out + err
    assert "ABORT (storage)" in out and "safe state sent" in out
    evaluated = subprocess.run(
        [sys.executable, "-m", "bench.cli", "evaluate", str(run_dir)], env=env,
        capture_output=True, text=True,
    )  # fmt: skip
    assert evaluated.returncode == 3 and "verdict: ABORTED" in evaluated.stdout, evaluated.stderr


@contextlib.contextmanager
def failing_disk(where: Path):
    """An ext2 file system whose device fails once ~250 KiB are written: a loop device on a
    sparse 64 MiB image that lives on a 600 KiB tmpfs (the loop driver's writes then fail, and
    the kernel reports it to fsync as it would a dying disk's)."""
    lower = where / "lower"
    upper = where / "disk"
    upper.mkdir(parents=True)
    with tmpfs(lower, "600k"):
        image = lower / "disk.img"
        with image.open("wb") as sparse:
            sparse.truncate(64 << 20)
        subprocess.run(["mkfs.ext2", "-q", "-F", str(image)], check=True, capture_output=True)
        attached = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True,
                                  text=True)  # fmt: skip
        if attached.returncode != 0:
            pytest.skip(f"no loop device here: {attached.stderr.strip()}")
        device = attached.stdout.strip()
        try:
            _mount(device, str(upper))
            try:
                yield upper
            finally:
                _umount(upper)
        finally:
            subprocess.run(["losetup", "-d", device], capture_output=True)


def test_device_failing_under_the_file_system_mid_run(tmp_path):
    with failing_disk(tmp_path) as disk:
        run_dir = disk / "run"
        result = _run(run_dir)
        # The kernel reports the loop device's failed writes at fsync, as EIO or (newer kernels
        # pass the lower file system's reason on) ENOSPC.
        reason = "Input/output error" if "Input/output" in result.stopped.reason else "No space"
        _assert_aborted_for_storage(result, str(run_dir / "frames"), reason)
        assert not list((run_dir / "frames").glob("*.tmp"))
        kept = list_segments(run_dir / "frames")
        assert kept and all(pq.read_table(p).num_rows == 2000 for p in kept)  # intact
        summary, _ = evaluate_path(run_dir, out_dir=tmp_path / "judged")  # judged elsewhere
        assert summary.verdict == "aborted"
