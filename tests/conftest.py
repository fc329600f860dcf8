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


# -- suite time ----------------------------------------------------------------------------------
# `make test` runs `pytest -n auto` with `--dist worksteal` (pyproject).

#: Tests of tens of seconds each (whole site plans in lockstep, the oracle): scheduled first, so
#: the workers finish together instead of one of them running these at the end alone.
LONG_FIRST = (
    "tests/test_site_plans.py::",
    "tests/test_regen_case.py::",
    "tests/oracle/test_oracle.py::",
)


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: not item.nodeid.startswith(LONG_FIRST))  # stable: order kept
