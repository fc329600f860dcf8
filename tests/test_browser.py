"""report.html and a compare page in a real headless Chromium: plots drawn, no JS error, no network.

Needs Debian's ``chromium`` (``apt-get install chromium``) and Playwright for Python
(``pip install playwright``), driving the system browser: ``playwright install`` is never needed.
Set ``BENCH_CHROMIUM`` to use another Chromium binary. Skipped, saying why, where either is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bench.report.compare import write_compare
from bench.report.html import write_report
from bench.summary import read_summary

from .runfixtures import EVIL, cached_run

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str | None:
    candidates = [os.environ.get("BENCH_CHROMIUM"), "/usr/bin/chromium"]
    candidates += [shutil.which(n) for n in ("chromium", "chromium-browser")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python is not installed (pip install playwright)"
)
CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium found (apt-get install chromium, or set BENCH_CHROMIUM)",
)


@dataclass
class Watch:
    """What a page did besides rendering: errors, dialogs, requests that left file://."""

    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    network: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("browser")
    built = {
        "turpan": cached_run(root / "turpan", scenario="turpan"),
        "evil": cached_run(root / "evil", evil=True),
    }
    for run in built.values():
        write_report(run)
    return built


def _open(browser: Any, path: Path) -> tuple[Any, Watch]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    watch = Watch()
    page.on("pageerror", lambda exc: watch.errors.append(f"pageerror: {exc}"))
    page.on(
        "console",
        lambda msg: watch.errors.append(f"console: {msg.text}") if msg.type == "error" else None,
    )

    def dialog(d: Any) -> None:
        watch.dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", dialog)

    def route(r: Any) -> None:
        # anything but the file itself is a failure of "opens with no network": record, refuse
        if r.request.url.startswith(("file:", "data:", "blob:", "about:")):
            r.continue_()
        else:
            watch.network.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-plots-rendered]", timeout=30_000)
    return page, watch


def _expected_plots(run: Path) -> int:
    """The timeline and a plot per check with something to draw (not bus, not a passing counter)."""
    summary = read_summary(run / "summary.json")
    return 1 + len([c for c in summary.checks if c.kind != "bus" and c.kind != "counter"])


def _assert_clean(watch: Watch) -> None:
    assert watch.errors == []
    assert watch.dialogs == []
    assert watch.network == []


@pytest.fixture(scope="module")
def report_page(browser: Any, runs: dict[str, Path]) -> Iterator[tuple[Any, Watch]]:
    """One loaded report shared by the tests below (loading 5 MB of page is the slow part)."""
    page, watch = _open(browser, runs["turpan"] / "report.html")
    yield page, watch
    page.close()


def test_report_renders_every_plot(report_page: tuple[Any, Watch], runs: dict[str, Path]) -> None:
    page, watch = report_page
    run = runs["turpan"]
    expected = _expected_plots(run)
    assert page.get_attribute("body", "data-plots-rendered") == str(expected)
    plots = page.locator(".js-plotly-plot")
    assert plots.count() == expected
    for i in range(expected):
        # each plot drew its SVG with at least one trace or bar in it
        assert plots.nth(i).locator("svg.main-svg").count() >= 1
        assert plots.nth(i).locator("g.trace").count() >= 1
    assert page.locator("#plot-check-1 g.trace path.js-line").count() >= 1
    # hover and a drag-zoom run plotly's interactive code under the page's CSP (no eval)
    page.locator("#plot-check-1").scroll_into_view_if_needed()
    box = page.locator("#plot-check-1 .nsewdrag").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    # "x unified" hover draws one box (a .legend) in the hover layer
    page.wait_for_selector("#plot-check-1 .hoverlayer .legend", timeout=5_000)
    before = page.evaluate("document.getElementById('plot-check-1').layout.xaxis.range.slice()")
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5, steps=5)
    page.mouse.up()
    after = page.evaluate("document.getElementById('plot-check-1').layout.xaxis.range.slice()")
    assert after[1] - after[0] < (before[1] - before[0]) * 0.5
    _assert_clean(watch)


def test_checks_table_sorts_and_links(report_page: tuple[Any, Watch]) -> None:
    page, watch = report_page
    names = page.locator("#checks tbody tr td:nth-child(2) a")
    before = names.all_inner_texts()
    page.click("#checks thead th:nth-child(2) button")
    ascending = names.all_inner_texts()
    assert ascending == sorted(before, key=str.lower)
    assert page.get_attribute("#checks thead th:nth-child(2)", "aria-sort") == "ascending"
    page.click("#checks thead th:nth-child(2) button")
    assert names.all_inner_texts() == sorted(before, key=str.lower, reverse=True)
    # numeric sort: margins ascending, the missing ones ("—") last
    page.click("#checks thead th:nth-child(6) button")
    keys = page.locator("#checks tbody tr td:nth-child(6)").evaluate_all(
        "cells => cells.map(c => parseFloat(c.dataset.sort))"
    )
    finite = [k for k in keys if k is not None and k != float("inf")]
    assert finite == sorted(finite)
    # verdict sort brings the worst back on top
    page.click("#checks thead th:nth-child(1) button")
    assert page.locator("#checks tbody tr").first.get_attribute("class") == "row-fail"
    page.locator("#checks tbody tr td:nth-child(2) a").first.click()
    assert page.evaluate("location.hash").startswith("#check-")
    _assert_clean(watch)


def test_hostile_names_are_text(browser: Any, runs: dict[str, Path]) -> None:
    run = runs["evil"]
    page, watch = _open(browser, run / "report.html")
    assert page.get_attribute("body", "data-plots-rendered") == str(_expected_plots(run))
    cell = page.locator(f'#checks tbody tr[data-check="{EVIL}"] td:nth-child(2) a')
    assert cell.inner_text() == EVIL
    assert page.locator("h3 .name", has_text=EVIL).count() == 1
    # plotly drew the DBC's hostile value label as text in the axis, not as an element
    assert page.locator("svg text", has_text="onerror=alert(3)").count() >= 1
    assert page.locator("img").count() == 0
    _assert_clean(watch)  # above all: no alert() dialog fired
    page.close()


def test_compare_page_renders(browser: Any, runs: dict[str, Path], tmp_path: Path) -> None:
    out = write_compare(
        [runs["turpan"], runs["evil"]],
        tmp_path / "compare.html",
        signals=["BMS_Temps.MaxCellTemp", "BMS_Status.HvState"],
        align="drive",
    )
    page, watch = _open(browser, out)
    assert page.locator(".js-plotly-plot").count() == 2
    assert page.locator(".js-plotly-plot").first.locator("g.trace").count() == 2  # one per run
    # Turpan is marginal on the inverter where the (Heihe) evil run passes: a changed row, on top
    assert page.locator("#matrix tbody tr").first.get_attribute("data-check") == (
        "Inverter temperature"
    )
    assert page.locator("#matrix tbody td", has_text=EVIL).count() == 1
    _assert_clean(watch)
    page.close()
