"""Campaigns: ``bench evaluate LOG...`` on local processes, a LocalCluster and separate Dask
processes; discovery of logs; campaign.json, junit.xml and campaign.html against per-log truth."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bench.campaign import discover, is_log, run_campaign
from bench.campaign.progress import CampaignProgress
from bench.errors import InputError
from bench.evaluate import evaluate_path
from bench.summary import SEVERITY, exit_code, read_summary
from tests.conftest import DBC_DIR
from tests.test_evaluate import _plan_text, _restbus, make_run_dir

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, dbcs) -> Path:
    """logs/: three run directories (marginal, fail, aborted), a Parquet file, a corrupt one,
    a text .log that is not candump, a hidden directory; and plan.yaml beside logs/."""
    root = tmp_path_factory.mktemp("campaign")
    logs = root / "logs"
    make_run_dir(logs / "ok", dbcs)
    make_run_dir(logs / "hot", dbcs, hot=True)
    make_run_dir(logs / "abort", dbcs, abort=True)
    files = logs / "drives" / "2026"
    files.mkdir(parents=True)
    pq.write_table(_restbus(dbcs, duration=4.0), files / "a.parquet")
    (files / "corrupt.parquet").write_bytes(b"PAR1 truncated")
    (files / "notes.log").write_text("build started\n")
    (logs / ".cache").mkdir()
    pq.write_table(_restbus(dbcs, duration=1.0), logs / ".cache" / "hidden.parquet")
    (root / "plan.yaml").write_text(_plan_text(DBC_DIR))
    return root


EXPECTED = {
    "ok__20260110-080000-fixture": "marginal",
    "hot__20260110-080000-fixture": "fail",
    "abort__20260110-080000-fixture": "aborted",
    "drives__2026__a.parquet": "inconclusive",  # step-scoped checks without step events
    "drives__2026__corrupt.parquet": "error",
}


def _quiet(total: int) -> CampaignProgress:
    import io

    from rich.console import Console

    return CampaignProgress(total, Console(file=io.StringIO()))


# -- discovery -------------------------------------------------------------------------------------


def test_discover_finds_each_log_once_with_unique_names(tree: Path) -> None:
    found = discover([tree / "logs", tree / "logs" / "drives" / "2026" / "a.parquet"])
    assert sorted(e.label for e in found.logs) == sorted(EXPECTED)  # a.parquet not twice
    assert all(e.path.is_absolute() for e in found.logs)
    assert any("notes.log" in s and "not a candump" in s for s in found.skipped)
    assert not any("hidden" in str(e.path) for e in found.logs)
    # run directories are logs, not searched: their frames/ segments are not separate logs
    assert not any("part-" in e.label for e in found.logs)
    # the same file name in two places gets two run directories
    twice = discover([tree / "logs/ok", tree / "logs/hot"])
    assert [e.label for e in twice.logs] == [
        "20260110-080000-fixture",
        "20260110-080000-fixture-2",
    ]
    with pytest.raises(InputError, match="no such log"):
        discover([tree / "nope"])


def test_discover_takes_the_readers_formats(tmp_path: Path) -> None:
    import gzip

    logs = tmp_path / "logs"
    logs.mkdir()
    line = b"(1700000000.000000) can0 100#0102\n"
    (logs / "night.log.gz").write_bytes(gzip.compress(line))
    (logs / "build.log.gz").write_bytes(gzip.compress(b"compiling\n"))
    (logs / "drive.trc").write_text(";$FILEVERSION=2.1\n")
    (logs / "readme.txt").write_text("not a log")
    found = discover([logs])
    assert [e.label for e in found.logs] == ["drive.trc", "night.log.gz"]
    assert [s.rsplit("/", 1)[1] for s in found.skipped] == [
        "build.log.gz: a .log file that is not a candump log"
    ]


def test_a_folder_of_logs_with_a_plan_file_is_searched(tmp_path: Path, tree: Path) -> None:
    """A plan.yaml beside logs does not make the folder one run directory (its logs were lost)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    for name in ("a.parquet", "b.parquet"):
        shutil.copyfile(tree / "logs/drives/2026/a.parquet", logs / name)
    (logs / "plan.yaml").write_text("name: x\n")
    assert not is_log(logs)
    assert [e.label for e in discover([logs]).logs] == ["a.parquet", "b.parquet"]


def test_discover_follows_links_once(tmp_path: Path, tree: Path) -> None:
    logs = tmp_path / "logs"
    (logs / "a").mkdir(parents=True)
    shutil.copyfile(tree / "logs/drives/2026/a.parquet", logs / "a" / "x.parquet")
    (logs / "a" / "loop").symlink_to(logs)  # a link to a parent
    (logs / "latest").symlink_to(logs / "a")  # the same folder under a second name
    found = discover([logs])
    assert [e.label for e in found.logs] == ["a__x.parquet"]


def test_is_log(tree: Path) -> None:
    run = tree / "logs" / "ok" / "20260110-080000-fixture"
    assert is_log(run) and is_log(run / "frames") and is_log(run / "events.parquet")
    assert not is_log(tree / "logs") and not is_log(tree / "logs" / "ok")


# -- a campaign on local processes -----------------------------------------------------------------


@pytest.fixture(scope="module")
def local(tree: Path):
    out = tree / "campaign-local"
    return run_campaign([tree / "logs"], tree / "plan.yaml", out_dir=out, jobs=2,
                        progress=_quiet(5))  # fmt: skip


def test_every_log_has_its_row_and_the_exit_code_is_the_worst(local) -> None:
    data = json.loads((local.out_dir / "campaign.json").read_text())
    assert {log["label"]: log["verdict"] for log in data["logs"]} == EXPECTED
    error = next(log for log in data["logs"] if log["status"] == "error")
    assert "corrupt.parquet" in error["error"] and "not a readable Parquet" in error["error"]
    assert error["exit_code"] == 2
    assert data["exit_code"] == 3 == local.exit_code  # the aborted run is the worst
    assert data["verdict"] == "aborted"
    assert data["counts"] == {"aborted": 1, "fail": 1, "error": 1, "inconclusive": 1,
                              "marginal": 1}  # fmt: skip
    assert data["executor"] == {"jobs": 2}
    assert any("notes.log" in s for s in data["skipped"])


def test_each_run_directory_is_what_a_single_evaluate_makes(local, tree: Path) -> None:
    data = json.loads((local.out_dir / "campaign.json").read_text())
    for log in data["logs"]:
        if log["status"] != "ok":
            assert not (local.out_dir / log["label"] / "summary.json").exists()
            continue
        run_dir = local.out_dir / log["run_dir"]
        summary = read_summary(run_dir / "summary.json")
        single_dir = tree / f"single-{log['label']}"  # a new one per log: never overwritten
        single, _ = evaluate_path(Path(log["log"]), tree / "plan.yaml", out_dir=single_dir)
        assert summary.model_dump() == single.model_dump()
        assert [(c["name"], c["verdict"], c["observed"], c["margin"]) for c in log["checks"]] == [
            (c.name, c.verdict, c.observed, c.margin) for c in summary.checks
        ]
        assert log["exit_code"] == exit_code(summary.verdict)
        assert (run_dir / "report.html").is_file() and (run_dir / "frames").is_dir()
        evaluate_path(run_dir)  # each run directory re-evaluates on its own
        assert read_summary(run_dir / "summary.json").model_dump() == summary.model_dump()


def test_worst_observed_value_per_check(local) -> None:
    data = json.loads((local.out_dir / "campaign.json").read_text())
    judged = [log for log in data["logs"] if log["status"] == "ok"]
    for column in data["checks"]:
        rows = [(log["label"], c) for log in judged for c in log["checks"]
                if c["name"] == column["name"]]  # fmt: skip
        # the slow way: worst verdict, then the smallest margin
        worst = max(SEVERITY[c["verdict"]] for _, c in rows)
        candidates = [(label, c) for label, c in rows if SEVERITY[c["verdict"]] == worst]
        margins = [c["margin"] for _, c in candidates if c["margin"] is not None]
        assert column["worst"]["verdict"] == candidates[0][1]["verdict"]
        if margins:
            assert column["worst"]["margin"] == min(margins)
        counts = {}
        for _, c in rows:
            counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
        assert column["counts"] == counts
    hottest = next(c for c in data["checks"] if c["name"] == "Max cell temperature")
    assert hottest["worst"]["log"] == "hot__20260110-080000-fixture"
    assert hottest["worst"]["verdict"] == "fail" and hottest["worst"]["value"] == 60.0


def test_junit_has_one_suite_per_log(local) -> None:
    root = ET.parse(local.out_dir / "junit.xml").getroot()
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == set(EXPECTED)
    error = suites["drives__2026__corrupt.parquet"]
    assert error.get("errors") == "1" and error.find("testcase/error") is not None
    hot = suites["hot__20260110-080000-fixture"]
    failed = [c.get("name") for c in hot.iter("testcase") if c.find("failure") is not None]
    assert "Max cell temperature" in failed
    assert {c.get("classname") for c in hot.iter("testcase")} == {"hot__20260110-080000-fixture"}
    assert float(hot.get("time")) > 0
    assert int(root.get("tests")) == sum(int(s.get("tests")) for s in suites.values())
    assert int(root.get("failures")) == sum(int(s.get("failures")) for s in suites.values())


def test_campaign_page_is_self_contained_with_the_matrix(local) -> None:
    page = (local.out_dir / "campaign.html").read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # no network
    assert "default-src 'none'" in page
    matrix = page[page.index('id="matrix"') :]
    for label in EXPECTED:
        assert f'data-log="{label}"' in matrix
    assert matrix.count('class="cell"') == 5 * 8  # 5 logs × 8 checks, errors shown as "—"
    assert 'href="hot__20260110-080000-fixture/report.html"' in page
    assert "not a readable Parquet" in page
    assert len(page) < 200_000  # no plotly bundle on this page


def test_serial_and_parallel_agree(local, tree: Path) -> None:
    serial = run_campaign([tree / "logs"], tree / "plan.yaml", out_dir=tree / "campaign-serial",
                          jobs=1, progress=_quiet(5))  # fmt: skip
    assert serial.data["executor"] == {"jobs": 1}
    assert _verdicts(serial.data) == _verdicts(local.data)
    assert len({r.worker for r in serial.results}) == 1  # this process
    # a second campaign into the same --out replaces its run directories
    again = run_campaign([tree / "logs"], tree / "plan.yaml", out_dir=tree / "campaign-serial",
                         jobs=1, progress=_quiet(5))  # fmt: skip
    assert _verdicts(again.data) == _verdicts(local.data)


def test_an_earlier_campaigns_run_of_a_log_now_absent_is_removed(tree: Path, tmp_path: Path):
    """--out of an earlier campaign: the run directory of a log this campaign does not have
    would otherwise sit beside the new campaign.json (and be listed by bench runs)."""
    out = tmp_path / "campaign"
    parquet = tree / "logs/drives/2026/a.parquet"
    first = run_campaign([tree / "logs/ok", parquet], tree / "plan.yaml", out_dir=out,
                         jobs=1, progress=_quiet(2))  # fmt: skip
    gone, kept = (out / log["run_dir"] for log in first.data["logs"])
    (out / "my-notes").mkdir()  # a user's own folder, and a run directory bench did not list
    (out / "my-notes" / "summary.json").write_text("{}")
    second = run_campaign([parquet], tree / "plan.yaml", out_dir=out, jobs=1,
                          progress=_quiet(1))  # fmt: skip
    assert [log["label"] for log in second.data["logs"]] == [kept.name]
    assert not gone.exists() and kept.is_dir() and (out / "my-notes" / "summary.json").is_file()
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted([kept.name, "my-notes"])


def _verdicts(data: dict) -> dict:
    return {
        log["label"]: (
            log["verdict"],
            [(c["name"], c["verdict"], c["observed"]) for c in log["checks"]],
        )
        for log in data["logs"]
    }


# -- a worker that dies ----------------------------------------------------------------------------


def _dies_on_poison(task):
    """Run in a pool process: the process itself exits (as the kernel's OOM killer would end it)
    while judging the log labelled ``poison``; other logs return a result at once."""
    from bench.campaign.task import LogResult

    if task.label == "poison":
        os._exit(9)
    return LogResult(task.label, task.log, task.run_dir, "ok", "pass", 0, worker=str(os.getpid()))


def test_a_dead_worker_process_loses_only_its_log(tmp_path: Path) -> None:
    from bench.campaign.executors import run_tasks
    from bench.campaign.task import LogTask

    labels = ["a", "b", "poison", "c", "d", "e"]
    tasks = [LogTask(str(tmp_path / n), n, str(tmp_path / "out" / n), "plan.yaml") for n in labels]
    results = list(run_tasks(tasks, jobs=2, function=_dies_on_poison))
    assert sorted(r.label for r in results) == sorted(labels)  # each log exactly once
    by_label = {r.label: r for r in results}
    lost = by_label["poison"]
    assert lost.status == "error" and lost.exit_code == 3 and "died" in lost.error
    assert all(by_label[n].verdict == "pass" for n in labels if n != "poison")
    assert len({r.worker for r in results if r.status == "ok"}) >= 2  # fresh pools, new processes


# -- Dask ------------------------------------------------------------------------------------------


def test_local_cluster_of_worker_processes(tree: Path, local) -> None:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        host="127.0.0.1",
    ) as cluster:  # fmt: skip
        outcome = run_campaign(
            [tree / "logs"], tree / "plan.yaml", out_dir=tree / "campaign-dask",
            scheduler=cluster.scheduler_address, progress=_quiet(5),
        )  # fmt: skip
        worker_pids = {w.pid for w in cluster.workers.values()}
    assert outcome.data["executor"] == {"scheduler": cluster.scheduler_address}
    assert _verdicts(outcome.data) == _verdicts(local.data)
    ran_on = {int(r.worker.rsplit(":", 1)[1]) for r in outcome.results}
    assert ran_on <= worker_pids and os.getpid() not in ran_on
    assert outcome.exit_code == 3


def _bench(
    *args: str, env: dict | None = None, timeout: float = 180
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True,
        timeout=timeout, env=env, cwd=ROOT,
    )  # fmt: skip


def test_separate_scheduler_and_two_workers(tree: Path, local, tmp_path: Path) -> None:
    """``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1, bench as a client."""
    dask = shutil.which("dask", path=str(Path(sys.executable).parent)) or shutil.which("dask")
    if dask is None:
        pytest.skip("the dask command is not installed")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    scheduler_file = tmp_path / "scheduler.json"
    started: list[subprocess.Popen] = []
    try:
        started.append(subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(scheduler_file)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert scheduler_file.exists(), "the scheduler did not start within 60 s"
        time.sleep(0.2)  # written, then flushed
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        # w1 as the README starts bench's workers (no MALLOC_TRIM_THRESHOLD_), w2 as Dask does
        readme = {k: v for k, v in env.items() if k != "MALLOC_TRIM_THRESHOLD_"}
        readme["DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON"] = '{"MALLOC_TRIM_THRESHOLD_": None}'
        for name, worker_env in (("w1", readme), ("w2", env)):
            started.append(subprocess.Popen(
                [dask, "worker", address, "--nworkers", "1", "--nthreads", "1", "--name", name,
                 "--no-dashboard", "--host", "127.0.0.1"],
                env=worker_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))  # fmt: skip
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=90)
            worker_pids = set(client.run(os.getpid).values())  # the nannies' worker processes
            trim = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
            names = {a: w["name"] for a, w in client.scheduler_info()["workers"].items()}
        assert {names[a]: v is None for a, v in trim.items()} == {"w1": True, "w2": False}
        out = tmp_path / "campaign"
        result = _bench("evaluate", str(tree / "logs"), "--plan", str(tree / "plan.yaml"),
                        "--out", str(out), "--scheduler", address, env=env)  # fmt: skip
        assert result.returncode == 3, result.stderr  # the aborted run
        data = json.loads((out / "campaign.json").read_text())
        assert _verdicts(data) == _verdicts(local.data)
        assert data["executor"] == {"scheduler": address}
        ran_on = {int(log["worker"].rsplit(":", 1)[1]) for log in data["logs"]}
        assert ran_on <= worker_pids and len(worker_pids) == 2
        assert "[5/5]" in result.stdout  # plain progress lines: not a terminal
    finally:
        for process in reversed(started):
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


# -- the command -----------------------------------------------------------------------------------


def test_cli_campaign_errors_are_one_line(tree: Path, tmp_path: Path) -> None:
    logs, plan = str(tree / "logs"), str(tree / "plan.yaml")
    no_plan = _bench("evaluate", logs, str(tree / "logs" / "ok"))
    assert no_plan.returncode == 2 and "--plan" in no_plan.stderr
    assert no_plan.stderr.count("\n") == 1
    missing = _bench("evaluate", logs, str(tmp_path / "nope"), "--plan", plan)
    assert missing.returncode == 2 and "nope: no such log" in missing.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    none = _bench("evaluate", str(empty), "--plan", plan, "--out", str(tmp_path / "o1"))
    assert none.returncode == 2 and "no logs found" in none.stderr
    assert not (tmp_path / "o1").exists()
    both = _bench("evaluate", logs, "--plan", plan, "--jobs", "2", "--scheduler", "tcp://x:1")
    assert both.returncode == 2 and "not both" in both.stderr
    bad = _bench("evaluate", logs, "--plan", plan, "--scheduler", "127.0.0.1:8786")
    assert bad.returncode == 2 and "tcp://HOST:PORT" in bad.stderr
    # nothing listens on port 9 of 127.0.0.1: exit 3, one line, nothing written
    gone = _bench("evaluate", logs, "--plan", plan, "--scheduler", "tcp://127.0.0.1:9",
                  "--out", str(tmp_path / "o2"))  # fmt: skip
    assert gone.returncode == 3 and "cannot reach the Dask scheduler" in gone.stderr
    assert gone.stderr.count("\n") == 1 and not (tmp_path / "o2").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("x")
    taken = _bench("evaluate", logs, "--plan", plan, "--out", str(foreign))
    assert taken.returncode == 2 and "not a campaign directory" in taken.stderr


def test_progress_bar_on_a_terminal_plain_lines_otherwise(local) -> None:
    import io

    from rich.console import Console

    screen = Console(file=io.StringIO(), force_terminal=True, width=120, color_system=None)
    with CampaignProgress(len(local.results), screen) as progress:
        for result in local.results:
            progress.done(result)
    text = screen.file.getvalue()
    assert "judging logs" in text and "5/5" in text and "━" in text  # the bar
    assert "FAIL          hot__20260110-080000-fixture" in text  # not passed: printed above it
    assert "ok__20260110-080000-fixture" not in text  # a pass is only counted
    pipe = Console(file=io.StringIO(), force_terminal=False)
    with CampaignProgress(len(local.results), pipe) as progress:
        for result in local.results:
            progress.done(result)
    lines = pipe.file.getvalue().splitlines()
    assert len(lines) == 5 and lines[0].startswith("[1/5] ") and "\x1b[" not in lines[0]


def test_ctrl_c_keeps_what_was_judged_and_exits_3(tree: Path, tmp_path: Path) -> None:
    import signal

    logs = tmp_path / "logs"
    for index in range(40):
        shutil.copytree(tree / "logs" / "ok" / "20260110-080000-fixture", logs / f"run-{index:02d}")
    out = tmp_path / "campaign"
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "evaluate", str(logs), "--plan",
         str(tree / "plan.yaml"), "--out", str(out), "--jobs", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        first = process.stdout.readline()  # the first log is judged
        assert first.startswith("[ 1/40] "), first + process.stderr.read()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 3 and "interrupted" in stderr
    data = json.loads((out / "campaign.json").read_text())
    assert data["interrupted"] is True and 1 <= len(data["logs"]) < 40
    suites = ET.parse(out / "junit.xml").getroot().findall("testsuite")
    assert len(suites) == len(data["logs"])


def test_full_disk_is_one_line_exit_3_and_no_half_files(tree: Path, tmp_path: Path) -> None:
    """--out on a 4 kB tmpfs: the logs' copies do not fit (error rows; a log that could not be
    judged leaves nothing behind), nor does the summary."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(disk)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        result = _bench("evaluate", str(tree / "logs"), "--plan", str(tree / "plan.yaml"),
                        "--out", str(disk / "campaign"), "--jobs", "1")  # fmt: skip
        assert result.returncode == 3
        assert "No space left on device" in result.stdout  # the rows that were judged, said so
        errors = [line for line in result.stderr.splitlines() if line.startswith("bench: ")]
        assert len(errors) == 1 and "cannot write the campaign summary" in errors[0]
        assert "Traceback" not in result.stderr
        assert not list((disk / "campaign").glob("*.tmp"))
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_cli_two_passing_logs_exit_0(tree: Path, tmp_path: Path) -> None:
    ok = tree / "logs" / "ok" / "20260110-080000-fixture"
    result = _bench("evaluate", str(ok), str(ok / "frames"), "--plan", str(tree / "plan.yaml"),
                    "--out", str(tmp_path / "c"), "--jobs", "1")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "campaign: MARGINAL (1 logs" in result.stdout  # frames/ is the same run: once
