"""junit.xml: one testcase per check, failures with observed vs limit and the first window."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench.report.junit import write_junit
from bench.summary import read_summary

from .runfixtures import EVIL, cached_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("junit")
    return {
        "turpan": cached_run(root / "turpan", scenario="turpan"),
        "abort": cached_run(root / "abort", abort=True),
        "empty": cached_run(root / "empty", zero_frames=True),
        "evil": cached_run(root / "evil", evil=True),
    }


def _junit(run: Path) -> ET.Element:
    path = write_junit(read_summary(run / "summary.json"), run / "junit.xml")
    return ET.parse(path).getroot()


def test_one_testcase_per_check_classname_plan(runs: dict[str, Path]) -> None:
    root = _junit(runs["turpan"])
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == 10
    assert {c.get("classname") for c in cases} == {"Turpan hot drive"}
    suite = root.find("testsuite")
    assert suite is not None and suite.get("failures") == "1" and suite.get("errors") == "0"


def test_failure_names_observed_limit_and_first_window(runs: dict[str, Path]) -> None:
    root = _junit(runs["turpan"])
    case = next(c for c in root.iter("testcase") if c.get("name") == "Max cell temperature")
    failure = case.find("failure")
    assert failure is not None
    message = failure.get("message", "")
    assert "observed 55.7" in message and '"max": 55' in message
    # seconds since the log's first frame, like the report's axes, not 1.76371e+09
    match = re.search(
        r"first evidence window \[(\d+\.\d+) s, (\d+\.\d+) s\] after log start", message
    )
    assert match and 50 < float(match.group(1)) < 53
    assert "e+09" not in message
    marginal = next(c for c in root.iter("testcase") if c.get("name") == "Inverter temperature")
    assert marginal.find("failure") is None
    assert (marginal.findtext("system-out") or "").startswith("MARGINAL:")


def test_inconclusive_is_not_green(runs: dict[str, Path]) -> None:
    root = _junit(runs["empty"])
    failures = [c.find("failure") for c in root.iter("testcase")]
    assert all(f is not None and f.get("type") == "inconclusive" for f in failures)


def test_an_aborted_run_has_an_error_testcase(runs: dict[str, Path]) -> None:
    root = _junit(runs["abort"])
    case = next(c for c in root.iter("testcase") if c.get("name") == "run aborted")
    error = case.find("error")
    assert error is not None and error.get("type") == "aborted"
    message = error.get("message", "")
    assert "No BMS fault" in message
    # the abort came 50 s after the run started; the first frame came a few ms after that
    assert re.search(r"at (49\.99\d|50\.00\d) s after log start", message)
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "11" and suite.get("errors") == "1"


def test_hostile_names_stay_well_formed(runs: dict[str, Path]) -> None:
    root = _junit(runs["evil"])
    assert EVIL in [c.get("name") for c in root.iter("testcase")]
    assert "<script>" not in (runs["evil"] / "junit.xml").read_text()
