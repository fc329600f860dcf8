"""bench compare: verdict matrix, metric deltas, overlays aligned on a step, bad input."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

from bench.errors import InputError
from bench.report.compare import build_compare, write_compare

from .runfixtures import EVIL, cached_run

SPEC = re.compile(r'<script type="application/json" data-plot="([^"]+)">(.*?)</script>', re.S)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compare")
    return {
        "heihe": cached_run(root / "heihe"),
        "turpan": cached_run(root / "turpan", scenario="turpan"),
        "abort": cached_run(root / "abort", abort=True),
        "evil": cached_run(root / "evil", evil=True),
    }


def _rows(page: str, table: str) -> list[str]:
    body = page.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)


def test_matrix_puts_changed_checks_first(runs: dict[str, Path], tmp_path: Path) -> None:
    out = write_compare([runs["heihe"], runs["turpan"]], tmp_path / "c.html")
    page = out.read_text()
    assert page.count("plotly.js v") == 1
    names = re.findall(r'<tr data-check="([^"]+)"', page)
    # Heihe passes both, Turpan fails the cell temperature and is marginal on the inverter
    assert names[:2] == ["Max cell temperature", "Inverter temperature"]
    first = _rows(page, "matrix")[1]
    assert "v-pass" in first and "v-fail" in first and "(changed)" in first
    assert len(names) == 10


def test_deltas_against_the_first_run(runs: dict[str, Path]) -> None:
    page = build_compare([runs["heihe"], runs["turpan"]])
    row = next(r for r in _rows(page, "deltas") if "Max cell temperature" in r)
    heihe = json.loads((runs["heihe"] / "summary.json").read_text())
    turpan = json.loads((runs["turpan"] / "summary.json").read_text())
    a = next(c for c in heihe["checks"] if c["name"] == "Max cell temperature")["observed"]
    b = next(c for c in turpan["checks"] if c["name"] == "Max cell temperature")["observed"]
    assert f"Δ +{b - a:.3g}" in row
    assert "delta-up" in row  # the margin to 55 °C shrank: shown red


def test_overlay_aligns_runs_on_a_step(runs: dict[str, Path]) -> None:
    page = build_compare(
        [runs["heihe"], runs["turpan"]], signals=["BMS_Status.HvState"], align="drive"
    )
    specs = {t: json.loads(b) for t, b in SPEC.findall(page)}
    assert list(specs) == ["plot-signal-1"]
    traces = specs["plot-signal-1"]["data"]
    assert [t["name"] for t in traces] == [runs["heihe"].name, runs["turpan"].name]
    x = np.frombuffer(base64.b64decode(traces[0]["x"]["bdata"]), dtype=traces[0]["x"]["dtype"])
    # the drive step starts 35 s into the log: x = 0 there, the log starts at -35 s
    assert x.min() == pytest.approx(-35.0, abs=0.2)
    assert "READY" in specs["plot-signal-1"]["layout"]["yaxis"]["ticktext"]


def test_default_signals_are_those_of_checks_that_did_not_pass(runs: dict[str, Path]) -> None:
    page = build_compare([runs["heihe"], runs["turpan"]])
    shown = re.findall(r'<span class="name mono">([^<]+)</span>', page)
    assert "BMS_Temps.MaxCellTemp" in shown and "MCU_Temps.InverterTemp" in shown
    assert "MCU_Status.MotorSpeed" not in shown  # passed everywhere


def test_missing_signal_and_missing_check(runs: dict[str, Path]) -> None:
    page = build_compare([runs["heihe"], runs["evil"]], signals=["BMS_Temps.NoSuchSignal"])
    assert "None of the runs has data for this signal." in page
    # the evil run renamed a check: each run shows "—" for the other's name, escaped
    assert EVIL not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'title="not in this run">—</td>' in page


def test_bad_input(runs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no step 'cruise' to align on"):
        build_compare([runs["heihe"]], align="cruise")
    with pytest.raises(InputError, match=r"expected Message\.Signal"):
        build_compare([runs["heihe"]], signals=["MaxCellTemp"])
    with pytest.raises(InputError, match=r"summary\.json missing"):
        build_compare([runs["heihe"], tmp_path])
