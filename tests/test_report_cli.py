"""The report, compare and runs commands: thin, exit codes of DESIGN.md, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import cli

from .runfixtures import cached_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_run(tmp_path_factory.mktemp("cli"))


def test_report_writes_and_prints_the_page(run: Path) -> None:
    result = CliRunner().invoke(cli, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(run / "report.html")
    assert (run / "report.html").stat().st_size > 1_000_000


def test_report_on_something_that_is_not_a_run(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert "summary.json missing" in result.output
    (tmp_path / "summary.json").write_text("{not json")
    result = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "damaged summary" in result.output


def test_compare_and_runs(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp.html"
    args = ["compare", str(run), str(run), "--signal", "BMS_Temps.MaxCellTemp", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert out.is_file()
    result = CliRunner().invoke(cli, ["compare", str(run), "--align", "nope", "--out", str(out)])
    assert result.exit_code == 2 and "no step 'nope'" in result.output

    result = CliRunner().invoke(
        cli, ["runs", str(run.parent), "--json", "--metric", "BMS_Temps.MaxCellTemp:max"]
    )
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert row["verdict"] == "marginal" and row["metric"]["value"] > 0
    result = CliRunner().invoke(cli, ["runs", str(run.parent)])
    assert result.exit_code == 0
    assert "marginal" in result.output and "Heihe cold soak and start" in result.output
    result = CliRunner().invoke(cli, ["runs", str(run.parent), "--metric", "bad"])
    assert result.exit_code == 2


def test_unwritable_output_is_one_line(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "missing-dir" / "cmp.html"
    result = CliRunner().invoke(cli, ["compare", str(run), "--out", str(out)])
    assert result.exit_code == 3
    assert "cannot write the page" in result.output and "Traceback" not in result.output
