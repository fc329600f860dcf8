"""campaign.html in a real browser (headless Chromium): no network, no script from log or plan
names, the matrix sorts. Skips as tests/test_browser.py does where Chromium or Playwright is absent.
"""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from rich.console import Console

from bench.campaign import run_campaign
from bench.campaign.progress import CampaignProgress
from tests.conftest import DBC_DIR
from tests.runfixtures import EVIL
from tests.test_browser import CHROMIUM, _open, browser  # noqa: F401 (the fixture)
from tests.test_evaluate import _plan_text, _restbus

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium found (apt-get install chromium)"
)
EVIL_FILE = "<img src=x onerror=alert(5)>.parquet"


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory, dbcs) -> Path:
    root = tmp_path_factory.mktemp("campaign-browser")
    logs = root / "logs"
    logs.mkdir()
    pq.write_table(_restbus(dbcs, duration=3.0), logs / "cool.parquet")
    pq.write_table(_restbus(dbcs, duration=3.0, hot=True), logs / "hot.parquet")
    (logs / EVIL_FILE).write_bytes(b"PAR1 not really")  # its error row quotes the file name
    plan = root / "plan.yaml"
    text = _plan_text(DBC_DIR).replace("name: Evaluate fixture", f"name: '{EVIL}'")
    plan.write_text(text.replace("{name: Max cell temperature,", f"{{name: '{EVIL}',"))
    outcome = run_campaign([logs], plan, out_dir=root / "out", jobs=1,
                           progress=CampaignProgress(3, Console(file=io.StringIO())))  # fmt: skip
    assert {r.verdict for r in outcome.results} == {"inconclusive", "fail", "error"}
    return outcome.out_dir / "campaign.html"


def test_campaign_page_in_a_browser(browser, campaign: Path) -> None:  # noqa: F811
    page, watch = _open(browser, campaign)
    try:
        assert watch.network == [] and watch.dialogs == [] and watch.errors == []
        assert EVIL in page.inner_text("#checks")  # shown as text, never run
        assert "onerror=alert(5)" in page.inner_text("#errors")
        assert page.locator("img").count() == 0
        logs = page.locator("#matrix tbody tr td:first-child")
        assert logs.all_inner_texts()[0] == "hot.parquet"  # worst first
        page.click("#matrix thead th:nth-child(1) button")  # sort by log name
        assert logs.all_inner_texts() == sorted(logs.all_inner_texts(), key=str.lower)
        assert page.locator("#matrix td.cell").count() == 3 * 8
        href = page.locator("#matrix a", has_text="hot.parquet").get_attribute("href")
        assert href == "hot.parquet/report.html" and (campaign.parent / href).is_file()
    finally:
        page.close()
