"""bench runs: the DuckDB index of run directories, metric trends, damaged runs."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from bench.errors import InputError
from bench.report.runs import (
    Metric,
    as_json,
    index_runs,
    print_runs,
    sparkline,
    table_rows,
    trends,
)
from bench.summary import read_summary

from .runfixtures import cached_run, copy_run


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three nights of the Heihe plan, a Turpan run, and two broken directories."""
    root = tmp_path_factory.mktemp("reports")
    for day, scenario in ((18, "heihe"), (19, "turpan"), (20, "heihe")):
        run = cached_run(root / "staging", scenario=scenario)
        name = f"202511{day:02d}-010000-{scenario}"
        run.rename(root / name)
        summary = json.loads((root / name / "summary.json").read_text())
        summary["started_at"] = dt.datetime(2025, 11, day, 1, tzinfo=dt.UTC).isoformat()
        (root / name / "summary.json").write_text(json.dumps(summary))
    shutil.rmtree(root / "staging")
    (root / "20251121-010000-broken" / "frames").mkdir(parents=True)
    (root / "20251121-010000-broken" / "summary.json").write_text('{"plan": "x", "verdict": ')
    (root / "20251117-010000-unfinished" / "frames").mkdir(parents=True)
    (root / "notes").mkdir()  # not a run: ignored
    return root


def test_index_lists_runs_in_date_order(root: Path) -> None:
    rows = index_runs(root)
    assert [r.name for r in rows] == [
        "20251117-010000-unfinished",
        "20251118-010000-heihe",
        "20251119-010000-turpan",
        "20251120-010000-heihe",
        "20251121-010000-broken",
    ]
    ok = [r for r in rows if r.status == "ok"]
    assert [r.verdict for r in ok] == ["marginal", "fail", "marginal"]
    assert [r.site for r in ok] == ["Heihe", "Turpan", "Heihe"]
    assert all(r.frames == 22800 and r.duration_s == pytest.approx(60, abs=0.1) for r in ok)
    assert [r.failed for r in ok] == [0, 1, 0]


def test_damaged_runs_are_listed_not_fatal(root: Path) -> None:
    rows = {r.name: r for r in index_runs(root)}
    assert rows["20251117-010000-unfinished"].status == "damaged"
    assert rows["20251117-010000-unfinished"].reason == "summary.json missing"
    assert "damaged summary" in rows["20251121-010000-broken"].reason
    assert "notes" not in rows


HEIHE, TURPAN = "Heihe cold soak and start", "Turpan hot drive"
MAX_TEMP = "BMS_Temps.MaxCellTemp:max"


def test_metric_trend(root: Path) -> None:
    metric = Metric.parse(MAX_TEMP)
    rows = [r for r in index_runs(root, metric) if r.status == "ok"]
    expected = [
        pq.read_table(Path(r.path) / "signals/BMS_Temps.parquet")
        .column("MaxCellTemp")
        .to_numpy()
        .max()
        for r in rows
    ]
    values = [r.metrics[MAX_TEMP] for r in rows]
    assert values == pytest.approx(expected)
    assert values[1] > 55 > values[0]
    assert sparkline(values) == "▁█▁"
    header, body = table_rows(rows, metric)
    assert header[-2] == MAX_TEMP
    # the change is against the previous run of the same plan: Turpan has none before it
    assert body[1][-2] == f"{values[1]:.6g}"
    assert body[2][-2] == f"{values[2]:.6g} (+0)"  # the same Heihe run, two nights later
    assert trends(rows, metric) == [
        (f"{MAX_TEMP} [{HEIHE}]", "▁▁"),
        (f"{MAX_TEMP} [{TURPAN}]", "▁"),
    ]


def test_repeated_metrics_and_plan_filter(root: Path, tmp_path: Path) -> None:
    metrics = [Metric.parse(MAX_TEMP), Metric.parse("MCU_Temps.InverterTemp:p95")]
    rows = index_runs(root, metrics, plan=HEIHE)
    assert [r.name for r in rows] == ["20251118-010000-heihe", "20251120-010000-heihe"]
    for row in rows:
        inverter = pq.read_table(Path(row.path) / "signals/MCU_Temps.parquet")["InverterTemp"]
        assert row.metrics["MCU_Temps.InverterTemp:p95"] == pytest.approx(
            float(np.quantile(inverter.to_numpy(), 0.95))
        )
        assert row.metrics[MAX_TEMP] is not None
    header, _ = table_rows(rows, metrics)
    assert header[-3:] == [MAX_TEMP, "MCU_Temps.InverterTemp:p95", "run"]
    assert [t for t, _ in trends(rows, metrics)] == [MAX_TEMP, "MCU_Temps.InverterTemp:p95"]
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(f"name: {TURPAN}\ndbc: []\nchecks: []\n")
    assert [r.site for r in index_runs(root, plan=str(plan_file))] == ["Turpan"]
    with pytest.raises(InputError, match="did you mean 'Turpan hot drive'"):
        index_runs(root, plan="Turpan hot driv")


def test_metric_aggregates_and_missing_columns(root: Path) -> None:
    for text in (
        "BMS_Temps.MaxCellTemp:mean",
        "BMS_Temps.MaxCellTemp:p95",
        "BMS_Temps.MaxCellTemp:last",
    ):
        rows = index_runs(root, Metric.parse(text))
        values = [r.metrics[Metric.parse(text).label] for r in rows if r.status == "ok"]
        assert all(v is not None for v in values), text
    with pytest.raises(InputError, match=r"no signal MaxCellTmp .*did you mean BMS_Temps.MaxCel"):
        index_runs(root, Metric.parse("BMS_Temps.MaxCellTmp:max"))
    with pytest.raises(InputError) as known:
        index_runs(root, Metric.parse("BMS_Temps.X:max"))
    names = str(known.value).split("BMS_Temps has ")[1].split(", ")
    columns = pq.read_schema(root / "20251118-010000-heihe/signals/BMS_Temps.parquet").names
    assert names == sorted(set(columns) - {"timestamp"})
    assert "schema" not in names and "timestamp" not in names
    with pytest.raises(InputError, match=r"no run under .* has a signals/BMS_Nope\.parquet"):
        index_runs(root, Metric.parse("BMS_Nope.X:max"))


def test_json_output(root: Path) -> None:
    data = json.loads(
        as_json(
            index_runs(root, Metric.parse("BMS_Temps.MaxCellTemp")),
            Metric.parse("BMS_Temps.MaxCellTemp"),
        )
    )
    assert {d["status"] for d in data} == {"ok", "damaged"}
    assert data[1]["metric"]["name"] == "BMS_Temps.MaxCellTemp:max"  # max is the default aggregate


def test_bad_metric_and_root(tmp_path: Path) -> None:
    for text in (
        "MaxCellTemp:max",
        'BMS_Temps.x";drop table y;--:max',
        "BMS_Temps.MaxCellTemp:sum",
    ):
        with pytest.raises(InputError, match="--metric"):
            Metric.parse(text)
    with pytest.raises(InputError, match="no such directory"):
        index_runs(tmp_path / "nope")
    assert index_runs(tmp_path) == []


def test_terminal_table_and_plain_text(root: Path) -> None:
    import io

    from rich.console import Console

    metric = Metric.parse("BMS_Temps.MaxCellTemp:max")
    rows = index_runs(root, metric)
    screen = Console(file=io.StringIO(), force_terminal=True, width=220, color_system=None)
    print_runs(rows, metric, root, screen)
    text = screen.file.getvalue()
    assert "┃" in text and "DAMAGED" in text
    assert f"trend of {MAX_TEMP} [{HEIHE}] (oldest → newest): ▁▁" in text
    pipe = Console(file=io.StringIO(), force_terminal=False, width=220)
    print_runs(rows, metric, root, pipe)
    plain = pipe.file.getvalue()
    assert "┃" not in plain and "\x1b[" not in plain
    assert plain.splitlines()[0].split()[:3] == ["date", "verdict", "plan"]
    assert f"trend {MAX_TEMP} [{TURPAN}]: ▁" in plain


def test_a_summary_larger_than_duckdbs_json_object_limit(root: Path, tmp_path: Path) -> None:
    """DuckDB's read_json refuses objects over 16 MB by default; the index must not."""
    big = tmp_path / "reports"
    run = copy_run(Path(index_runs(root, plan=TURPAN)[0].path), big)
    summary = json.loads((run / "summary.json").read_text())
    windows = [[float(i), float(i) + 0.5] for i in range(900_000)]
    summary["checks"][0]["evidence"] = windows  # ~20 MB of evidence windows
    (run / "summary.json").write_text(json.dumps(summary))
    assert (run / "summary.json").stat().st_size > 16 * 2**20
    import duckdb

    with pytest.raises(duckdb.Error, match="maximum_object_size"):  # what a read_json index hit
        duckdb.sql(f"SELECT plan FROM read_json('{run / 'summary.json'}')").fetchall()
    [row] = index_runs(big, Metric.parse(MAX_TEMP))
    assert row.status == "ok" and row.verdict == summary["verdict"] == "fail"
    assert row.checks == len(summary["checks"]) and row.failed == 1
    assert row.metrics[MAX_TEMP] > 55


def test_index_of_many_runs_matches_reading_each_summary(root: Path, tmp_path: Path) -> None:
    """The one-query index against the slow way (read_summary per run), on 300 runs."""
    many = tmp_path / "reports"
    sources = [Path(r.path) for r in index_runs(root) if r.status == "ok"]
    rng = np.random.default_rng(3)
    for index in range(300):
        run = many / f"campaign-{index % 3}" / f"run-{index:04d}"
        shutil.copytree(sources[index % len(sources)], run)
        summary = json.loads((run / "summary.json").read_text())
        summary["verdict"] = str(rng.choice(["pass", "marginal", "fail", "aborted"]))
        for check in summary["checks"]:
            check["verdict"] = str(rng.choice(["pass", "fail", "inconclusive"]))
        summary["frames"] = int(rng.integers(0, 10**9))
        (run / "summary.json").write_text(json.dumps(summary))
    (many / "campaign-0" / "run-0003" / "summary.json").write_text("{")
    rows = index_runs(many)
    assert len(rows) == 300
    for row in rows:
        if row.name == "run-0003":
            assert row.status == "damaged" and "damaged summary" in row.reason
            continue
        slow = read_summary(Path(row.path) / "summary.json")
        assert (row.plan, row.site, row.verdict, row.frames) == (
            slow.plan, slow.site, slow.verdict, slow.frames
        )  # fmt: skip
        assert row.checks == len(slow.checks)
        assert row.failed == sum(c.verdict == "fail" for c in slow.checks)
        assert row.duration_s == pytest.approx(slow.time_span[1] - slow.time_span[0])


def test_cli_repeated_metric_plan_and_unknown_signal(root: Path) -> None:
    import subprocess
    import sys

    def bench(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bench.cli", "runs", str(root), *args],
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    result = bench("--metric", MAX_TEMP, "--metric", "MCU_Temps.InverterTemp:mean",
                   "--plan", HEIHE, "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [d["plan"] for d in data] == [HEIHE, HEIHE]
    assert [m["name"] for m in data[0]["metrics"]] == [MAX_TEMP, "MCU_Temps.InverterTemp:mean"]
    assert all(m["value"] is not None for d in data for m in d["metrics"])
    unknown = bench("--metric", "BMS_Temps.MaxCellTmp:max")
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1
    assert "MaxCellTmp" in unknown.stderr and "Traceback" not in unknown.stderr


def test_a_summary_that_is_not_text_is_damaged_not_a_crash(root: Path, tmp_path: Path) -> None:
    """DuckDB's read_text refuses invalid UTF-8 for the whole query: the others still index."""
    reports = tmp_path / "reports"
    for run in index_runs(root):
        if run.status == "ok":
            copy_run(Path(run.path), reports)
    garbage = reports / "20251119-010000-turpan" / "summary.json"
    garbage.write_bytes(b'{"plan": "\xff\xfe\x00 half a disk block')
    rows = {r.name: r for r in index_runs(reports, Metric.parse(MAX_TEMP))}
    assert rows["20251119-010000-turpan"].status == "damaged"
    assert "damaged summary" in rows["20251119-010000-turpan"].reason
    assert [rows[n].status for n in ("20251118-010000-heihe", "20251120-010000-heihe")] == [
        "ok",
        "ok",
    ]
    assert rows["20251118-010000-heihe"].metrics[MAX_TEMP] is not None
