from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DBC_DIR = ROOT / "dbc"
PLAN_DIR = ROOT / "test_plans"


@pytest.fixture(scope="session")
def dbcs():
    from bench.dbc import DbcSet

    return DbcSet.load()
