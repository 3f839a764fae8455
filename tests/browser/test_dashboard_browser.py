"""The dashboard in headless Chromium against a real server with seeded data: every page loads
with no console error and draws its charts, the overview shows the drifting model in the alert
colour, a deployer rolls back from the model page (the registry and the served model follow), a
reader sees no action button, and forged POSTs are refused. A screenshot of every page is saved
in the test's output folder.

Needs the ``playwright`` package and Debian's ``/usr/bin/chromium`` (no browser download).
Without them the test is skipped with the reason, unless ``WATCHKEEPER_REQUIRE_BROWSER=1``
(set in CI), which turns that into a failure.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serving.conftest import start_server
from tests.ui.seed import CANARY, DRIFTED, HISTORY, seed
from watchkeeper.config import Settings
from watchkeeper.logbook import LogbookConfig
from watchkeeper.registry import Registry
from watchkeeper.registry.tokens import TokenStore
from watchkeeper.serving.app import ServeOptions

CHROMIUM = Path(os.environ.get("WATCHKEEPER_CHROMIUM", "/usr/bin/chromium"))
REQUIRE = os.environ.get("WATCHKEEPER_REQUIRE_BROWSER") == "1"
ALERT_RED = "rgb(198, 40, 40)"  # #c62828, watchkeeper.ui.status.COLOURS["fail"]

pytestmark = pytest.mark.browser

PAGES = {
    "overview": "/ui",
    "model": f"/ui/models/{HISTORY}",
    "model-canary": f"/ui/models/{CANARY}",
    "model-drifted": f"/ui/models/{DRIFTED}?range=7d",
    "feature": f"/ui/models/{DRIFTED}/features/petal_length",
    "alerts": "/ui/alerts",
    "audit": "/ui/audit",
}


def _problem() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


class Run:
    """A server, its registry, tokens, one browser, and what the pages said."""

    def __init__(self, url: str, registry: Registry, tokens: dict[str, str], browser: Any,
                 shots: Path) -> None:  # fmt: skip
        self.url, self.registry, self.tokens = url, registry, tokens
        self.browser, self.shots = browser, shots
        self.console: list[tuple[str, str, str]] = []
        self.page_errors: list[str] = []
        self.failed: list[str] = []
        self.foreign: list[str] = []

    def context(self, role: str) -> Any:
        """A browser context logged in as ``role`` through the login form."""
        context = self.browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        self.watch(page)
        page.goto(self.url + "/ui")
        assert "/ui/login" in page.url  # tokens exist: the dashboard asks for one
        page.fill("input[name=token]", self.tokens[role])
        page.click("button[type=submit]")
        page.wait_for_url(self.url + "/ui")
        page.close()
        return context

    def watch(self, page: Any) -> None:
        page.on("console", lambda m: self.console.append((page.url, m.type, m.text)))
        page.on("pageerror", lambda e: self.page_errors.append(f"{page.url}: {e}"))
        page.on("requestfailed", lambda r: self.failed.append(r.url))
        page.on("request", lambda r: None if r.url.startswith(self.url) or r.url.startswith(
            "data:") else self.foreign.append(r.url))  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    problem = _problem()
    if problem is not None:
        if REQUIRE:
            pytest.fail(f"WATCHKEEPER_REQUIRE_BROWSER=1 but {problem}")
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    settings = Settings(home=tmp_path_factory.mktemp("dashboard-home"), user="owner")
    registry = seed(settings).registry
    store = TokenStore(registry.engine)
    tokens = {role: store.create(f"{role}-bot", role, actor="owner")[1]
              for role in ("reader", "deployer")}  # fmt: skip
    options = ServeOptions(poll_interval=0.05, live_stats_interval=0.2,
                           logbook=LogbookConfig(flush_interval=0.2))  # fmt: skip
    url, server, thread = start_server(settings, options)
    shots = tmp_path_factory.mktemp("dashboard-screenshots")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=str(CHROMIUM),
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            try:
                yield Run(url, registry, tokens, browser, shots)
            finally:
                browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        registry.close()


_PLOTS = """() => Array.from(document.querySelectorAll('.plot')).map(el => ({
  id: el.id,
  drawn: el.classList.contains('js-plotly-plot'),
  traces: (el.data || []).length,
  points: (el.data || []).reduce((n, t) => n + ((t.x || []).length), 0),
  marks: el.querySelectorAll('g.trace.bars g.point path, g.trace.scatter path.js-line').length,
}))"""


def _open(run: Run, context: Any, name: str, path: str) -> tuple[Any, list[dict[str, Any]]]:
    page = context.new_page()
    run.watch(page)
    page.goto(run.url + path, wait_until="load")
    plots = page.evaluate("document.querySelectorAll('.plot').length")
    if plots:
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot').length === {plots}")
    page.screenshot(path=str(run.shots / f"{name}.png"), full_page=True)
    return page, page.evaluate(_PLOTS)


@pytest.fixture(scope="module")
def deployer(run: Run) -> Iterator[Any]:
    context = run.context("deployer")
    yield context
    context.close()


@pytest.fixture(scope="module")
def visited(run: Run, deployer: Any) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for name, path in PAGES.items():
        page, plots = _open(run, deployer, name, path)
        out[name] = plots
        page.close()
    return out


def test_every_page_loads_without_console_errors(run: Run, visited: dict) -> None:
    assert set(visited) == set(PAGES)
    assert [c for c in run.console if c[1] in ("error", "warning")] == []
    assert run.page_errors == []
    assert run.failed == []
    assert run.foreign == []  # plotly.js and everything else come from this server
    assert {f"{n}.png" for n in PAGES} <= {p.name for p in run.shots.iterdir()}


def test_every_chart_is_drawn_with_data(visited: dict) -> None:
    assert [len(visited[n]) for n in ("model", "model-canary", "feature")] == [6, 6, 3]
    for name, plots in visited.items():
        for plot in plots:
            assert plot["drawn"], (name, plot)
            assert plot["traces"] > 0, (name, plot)
            assert plot["points"] > 0, (name, plot)
            assert plot["marks"] > 0, (name, plot)


def test_the_overview_shows_the_drifting_model_in_the_alert_colour(run: Run, deployer) -> None:
    page, _ = _open(run, deployer, "overview", "/ui")
    dot = f"tr[data-model='{DRIFTED}'] td[data-key='drift'] .dot"
    assert page.eval_on_selector(dot, "e => getComputedStyle(e).backgroundColor") == ALERT_RED
    assert "75% drifted" in page.inner_text(f"tr[data-model='{DRIFTED}'] td[data-key='drift']")
    calm = f"tr[data-model='{HISTORY}'] td[data-key='drift'] .dot"
    assert page.eval_on_selector(calm, "e => getComputedStyle(e).backgroundColor") != ALERT_RED
    traffic = f"tr[data-model='{HISTORY}'] td[data-key='traffic']"
    assert "last 15 min" in page.eval_on_selector(traffic, "e => e.title")
    with page.expect_response(lambda r: "/ui/data/overview" in r.url and "range=6h" in r.url):
        page.click("a[data-range='6h']")  # traffic and errors over six hours, no reload
    page.wait_for_function(f"document.querySelector(\"{traffic}\").title.includes('last 6 h')")
    page.close()


def test_the_range_selector_redraws_without_a_reload(run: Run, deployer) -> None:
    page, _ = _open(run, deployer, "model", f"/ui/models/{HISTORY}")
    page.evaluate("window.__sameDocument = true")
    title = "#chart-traffic .gtitle"
    assert "5 min" in (page.text_content(title) or "")
    with page.expect_response(lambda r: "/ui/data/models/" in r.url and "range=7d" in r.url):
        page.click("a[data-range='7d']")
    page.wait_for_function(f"document.querySelector('{title}').textContent.includes('1 h')")
    assert page.evaluate("window.__sameDocument") is True
    assert page.url.endswith("?range=7d")
    page.close()


def test_a_deployer_rolls_back_from_the_model_page(run: Run, deployer) -> None:
    assert run.registry.get(f"{HISTORY}@production").version == 2
    page, _ = _open(run, deployer, "model", f"/ui/models/{HISTORY}")
    button = "form[action$='/rollback'] button"
    page.once("dialog", lambda d: d.dismiss())  # asked first; saying no changes nothing
    page.click(button)
    page.wait_for_timeout(300)
    assert run.registry.get(f"{HISTORY}@production").version == 2
    assert page.url.startswith(run.url + f"/ui/models/{HISTORY}")
    questions: list[str] = []

    def accept(dialog: Any) -> None:
        questions.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.click(button)
    page.wait_for_selector("#result")
    assert "production is now v1" in page.inner_text("#result")
    assert "Roll iris back from v2 to v1" in questions[0]
    page.screenshot(path=str(run.shots / "action-result.png"), full_page=True)
    assert run.registry.get(f"{HISTORY}@production").version == 1
    assert run.registry.history(HISTORY, limit=1)[0].actor == "deployer-bot"
    row = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
    deadline = time.monotonic() + 10
    answered = None
    while time.monotonic() < deadline:  # servers follow the registry within a poll
        answer = httpx.post(f"{run.url}/v1/models/{HISTORY}:predict", json={"instances": [row]})
        answered = answer.json()["model_version"]
        if answered == "1":
            break
        time.sleep(0.1)
    assert answered == "1"
    page.click("#back")
    page.wait_for_selector("#versions")
    assert "v1" in page.inner_text("h1")
    page.close()


def test_a_reader_sees_no_action_buttons(run: Run) -> None:
    context = run.context("reader")
    try:
        for name in ("model", "model-canary", "alerts"):
            page, _ = _open(run, context, f"reader-{name}", PAGES[name])
            assert page.locator("form.action").count() == 0
            assert page.locator("button", has_text="Roll back").count() == 0
            assert "reader-bot · reader" in page.inner_text("header")
            page.close()
        refused = context.request.post(f"{run.url}/ui/actions/models/{HISTORY}/rollback",
                                       form={"csrf": "0" * 64})  # fmt: skip
        assert refused.status == 403
    finally:
        context.close()


def test_forged_posts_are_refused(run: Run, deployer) -> None:
    before = run.registry.get(f"{CANARY}@production").version
    path = f"{run.url}/ui/actions/deployments/{CANARY}/abort"
    no_csrf = deployer.request.post(path, form={"reason": "forged"})
    assert no_csrf.status == 403
    anonymous = deployer.browser.new_context()
    try:
        assert anonymous.request.post(path, form={"csrf": "0" * 64}).status == 401
    finally:
        anonymous.close()
    deployment = run.registry.deployments.get(CANARY)
    assert deployment is not None
    assert deployment.active
    assert run.registry.get(f"{CANARY}@production").version == before


def test_no_page_logged_an_error_all_along(run: Run) -> None:
    assert [c for c in run.console if c[1] == "error"] == []
    assert run.page_errors == []
    assert run.foreign == []
