"""The case plan ``regen-cut-short-by-abort.yaml`` (../shared/cases/plans), run once and judged two
ways in one test (a whole plan run is the cost; xdist would run it once per worker for two tests).

At -30 °C the BMS allows 0 A of charge current, and the virtual MCU used to regenerate -75 A into
the pack anyway, up to a 4.31 V cell and a BMS shutdown; the abort then cut the regen check's
violation short and it was PASS with observed -75 A against min -10 A (issue 10). Now the MCU limits
regen torque by the BMS charge limits, and a cut-short violation is never a pass.
"""

from __future__ import annotations

import json

from bench.liveview import NullStream
from bench.plan import load_plan
from bench.run import RunOptions, run_plan
from tests.test_checks_cut_short import CASE, CHECK, assert_promises


def test_the_regen_case_no_longer_overcharges_the_pack_and_never_passes_falsely(tmp_path):
    options = RunOptions(out_dir=tmp_path / "run", stream=NullStream(), handle_signals=False)
    result = run_plan(load_plan(CASE), options)
    summary = result.summary

    # 1. no false pass (issue 10): every pass/marginal keeps its promise; a violation the abort
    #    cut short is never a pass; summary.json is strict JSON
    assert_promises(summary)
    checks = {c.name: c for c in summary.checks}
    regen = checks[CHECK]
    assert not (regen.verdict == "pass" and (regen.margin or 0) < 0)
    if summary.verdict == "aborted":  # a vehicle that regenerates again: cut short
        assert regen.verdict != "pass", regen.message
    json.loads((result.run_dir / "summary.json").read_text())  # no NaN

    # 2. the virtual MCU limits regen by the BMS charge limit: no charge current at all
    assert regen.verdict == "pass", regen.message
    assert regen.observed >= -1.0  # not merely less than 10 A
    assert checks["No BMS fault"].verdict == "pass"
    assert checks["Max cell voltage during regen"].verdict == "pass"
    # (its "MCU reports a BMS-limit derate" check is inconclusive: the discharge limit already
    # binds while accelerating, so DerateReason is BMS_LIMIT before regen starts; the regen
    # reason itself is tested in tests/test_virtual_limits.py)
    assert summary.aborted is None
