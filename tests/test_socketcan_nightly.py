"""scripts/nightly.sh for real: vehicle processes on vcan0, plans, reports, pruning, exit codes and
no process left behind, also when the nightly itself is stopped mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bench.bus import kernel_has_socketcan

from .conftest import ROOT

SCRIPT = ROOT / "scripts" / "nightly.sh"
PLANS = Path(__file__).parent / "runner_plans"
DAY_S = 86_400

pytestmark = [
    pytest.mark.socketcan,
    pytest.mark.skipif(
        not kernel_has_socketcan() or not Path("/sys/class/net/vcan0").exists(),
        reason="needs SocketCAN and vcan0 (scripts/vcan-up.sh or run-in-vcan-vm.sh)",
    ),
]


def _ours() -> set[int]:
    """Processes this test could have left: vehicles and bench runs started from this tree."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "virtual_bus" in cmdline or "runner_plans" in cmdline:
            found.add(int(entry.name))
    return found


def _nightly(tmp_path: Path, **env: str) -> subprocess.Popen:
    environment = {
        **os.environ,
        "NIGHTLY_PLAN_DIR": str(PLANS),
        "NIGHTLY_OUT": str(tmp_path / "reports"),
        "NIGHTLY_TESTS": "0",  # the plans only: the deep tests are the suite's own business
        **env,
    }
    return subprocess.Popen(
        ["bash", str(SCRIPT)], env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


def _failures(reports: Path) -> str:
    """What failed in each run, for the assertion message."""
    lines = []
    for summary in sorted(reports.glob("*/summary.json")):
        checks = json.loads(summary.read_text())["checks"]
        bad = [f"{c['name']}: {c['message']}" for c in checks if c["verdict"] != "pass"]
        lines += [summary.parent.name, *bad]
    return "\n".join(lines)


def _wait_gone(pids: set[int]) -> set[int]:
    end = time.monotonic() + 60
    while time.monotonic() < end and _ours() - pids:
        time.sleep(0.1)
    return _ours() - pids


def test_a_night_of_one_short_plan_passes_reports_and_prunes(tmp_path):
    before = _ours()
    reports = tmp_path / "reports"
    old = reports / "20200101-020000-old_plan"
    recent = reports / "20990101-020000-recent_plan"
    unrelated = reports / "keep-me"
    for folder in (old, recent, unrelated):
        folder.mkdir(parents=True)
    stale = time.time() - 10 * DAY_S
    os.utime(old, (stale, stale))
    os.utime(unrelated, (stale, stale))
    process = _nightly(tmp_path, NIGHTLY_PLANS="vcan.yaml", NIGHTLY_KEEP_DAYS="7")
    output, _ = process.communicate(timeout=1200)
    assert process.returncode == 0, output[-3000:] + _failures(reports)
    runs = sorted(reports.glob("*-vcan"))
    assert len(runs) == 1
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert summary["verdict"] == "pass" and summary["mode"] == "realtime"
    for name in ("junit.xml", "events.parquet", "run.log"):
        assert (runs[0] / name).is_file(), name
    assert not old.exists() and recent.exists() and unrelated.exists()  # only its own, only old
    (night,) = reports.glob("nightly-*.txt")
    assert night.read_text().startswith("vcan.yaml pass (exit 0) ")
    assert "pruned 1 run directory older than 7 days" in output
    assert not _wait_gone(before), "processes left behind"


def test_a_failing_plan_makes_the_night_fail_with_the_worst_exit_code(tmp_path):
    before = _ours()
    plan_list = tmp_path / "nightly.list"
    plan_list.write_text(
        "# plan  [bench run options]  [-- vehicle options]\n"
        "vcan.yaml --seed 1\n"
        "vcan.yaml -- --inject stop:BMS_PackStatus@4s\n"  # the BMS goes silent: abort check
    )
    process = _nightly(tmp_path, NIGHTLY_PLAN_LIST=str(plan_list))
    output, _ = process.communicate(timeout=1200)
    assert process.returncode == 3, output
    (night,) = (tmp_path / "reports").glob("nightly-*.txt")
    lines = night.read_text().splitlines()
    verdicts = [line.split(" (exit")[0] for line in lines]
    assert verdicts == ["vcan.yaml pass", "vcan.yaml ABORTED"], _failures(tmp_path / "reports")
    assert not _wait_gone(before), "processes left behind"


def test_stopping_the_nightly_mid_run_stops_run_and_vehicle_and_keeps_the_log(tmp_path):
    before = _ours()
    process = _nightly(tmp_path, NIGHTLY_PLANS="hold.yaml")
    reports = tmp_path / "reports"
    end = time.monotonic() + 600
    while not list(reports.glob("*-hold/run.log")) and time.monotonic() < end:
        time.sleep(0.2)
    assert list(reports.glob("*-hold/run.log")), "the run never started"
    time.sleep(2)  # frames flowing both ways
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 3, output
    (run,) = reports.glob("*-hold")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["verdict"] == "aborted" and "SIGTERM" in summary["aborted"]["reason"]
    assert not _wait_gone(before), "processes left behind"
