"""The HTML report opened in headless Chromium: no errors, no requests, charts drawn.

Needs the ``playwright`` package and Debian's ``/usr/bin/chromium`` (no browser download).
Without them the test is skipped with the reason, unless ``WATCHKEEPER_REQUIRE_BROWSER=1``
(set in CI), which turns that into a failure.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest

from tests.monitoring.test_html import sample_report

CHROMIUM = Path(os.environ.get("WATCHKEEPER_CHROMIUM", "/usr/bin/chromium"))
REQUIRE = os.environ.get("WATCHKEEPER_REQUIRE_BROWSER") == "1"

pytestmark = pytest.mark.browser


def _problem() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def page_events(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    problem = _problem()
    if problem is not None:
        if REQUIRE:
            pytest.fail(f"WATCHKEEPER_REQUIRE_BROWSER=1 but {problem}")
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    report = tmp_path_factory.mktemp("report") / "report.html"
    report.write_text(sample_report(), encoding="utf-8")
    events: dict[str, Any] = {"console": [], "page_errors": [], "failed": [], "requests": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page()
            page.on("console", lambda m: events["console"].append((m.type, m.text)))
            page.on("pageerror", lambda e: events["page_errors"].append(str(e)))
            page.on("requestfailed", lambda r: events["failed"].append(r.url))
            page.on("request", lambda r: events["requests"].append(r.url))
            page.goto(report.as_uri(), wait_until="load")
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length > 0")
            events["plots"] = page.evaluate(_COUNT_MARKS)
            page.click("#results th:nth-child(2)")  # sorting by a column must not throw
            events["first_check"] = page.inner_text("#results tbody tr:first-child td:nth-child(2)")
        finally:
            browser.close()
    events["expected_plots"] = sample_report().count('class="plot"')
    return events


_COUNT_MARKS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(p => ({
  id: p.id,
  bars: p.querySelectorAll('svg g.trace.bars g.point path').length,
  lines: p.querySelectorAll('svg g.trace.scatter path.js-line').length,
}))"""


def test_no_console_errors_and_no_network(page_events: dict[str, Any]) -> None:
    errors = [text for kind, text in page_events["console"] if kind == "error"]
    assert errors == []
    assert page_events["page_errors"] == []
    assert page_events["failed"] == []
    assert [u for u in page_events["requests"] if not u.startswith("file://")] == []


def test_every_chart_is_drawn(page_events: dict[str, Any]) -> None:
    plots = page_events["plots"]
    assert len(plots) == page_events["expected_plots"] >= 2
    for plot in plots:
        assert plot["bars"] + plot["lines"] > 0, plot
    assert sum(p["bars"] > 0 for p in plots) == 3  # income, <script>, plan
    assert sum(p["lines"] > 0 for p in plots) >= 3  # drift, metrics, labels


def test_table_sorts_on_click(page_events: dict[str, Any]) -> None:
    assert page_events["first_check"] == "drift"
