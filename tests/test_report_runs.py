"""bench runs: the DuckDB index of run directories, metric trends, damaged runs."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bench.errors import InputError
from bench.report.runs import Metric, as_json, index_runs, print_runs, sparkline, table_rows

from .runfixtures import cached_run


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


def test_metric_trend(root: Path) -> None:
    metric = Metric.parse("BMS_Temps.MaxCellTemp:max")
    rows = [r for r in index_runs(root, metric) if r.status == "ok"]
    expected = [
        pq.read_table(Path(r.path) / "signals/BMS_Temps.parquet")
        .column("MaxCellTemp")
        .to_numpy()
        .max()
        for r in rows
    ]
    assert [r.metric for r in rows] == pytest.approx(expected)
    assert rows[1].metric > 55 > rows[0].metric
    assert sparkline([r.metric for r in rows]) == "▁█▁"
    header, body = table_rows(rows, metric)
    assert header[-2] == "BMS_Temps.MaxCellTemp:max"
    assert body[1][-2].startswith(f"{rows[1].metric:.6g} (+")


def test_metric_aggregates_and_missing_columns(root: Path) -> None:
    for text in (
        "BMS_Temps.MaxCellTemp:mean",
        "BMS_Temps.MaxCellTemp:p95",
        "BMS_Temps.MaxCellTemp:last",
    ):
        values = [r.metric for r in index_runs(root, Metric.parse(text)) if r.status == "ok"]
        assert all(v is not None for v in values), text
    rows = [r for r in index_runs(root, Metric.parse("BMS_Temps.Nope:max")) if r.status == "ok"]
    assert all(r.metric is None and "no column Nope" in r.metric_note for r in rows)


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
    assert "┃" in text and "DAMAGED" in text and "▁█▁" in text
    pipe = Console(file=io.StringIO(), force_terminal=False, width=220)
    print_runs(rows, metric, root, pipe)
    plain = pipe.file.getvalue()
    assert "┃" not in plain and "\x1b[" not in plain
    assert plain.splitlines()[0].split()[:3] == ["date", "verdict", "plan"]
    assert "trend BMS_Temps.MaxCellTemp:max: ▁█▁" in plain
