"""The dashboard over a real socket: login, pages and their data, what each role may do."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import httpx
import pytest

from tests.ui.conftest import Site, serving
from tests.ui.seed import CANARY, DRIFTED, HISTORY, seed
from watchkeeper._vendor import plotly_js
from watchkeeper.config import Settings
from watchkeeper.registry.monitoring import MonitoringStore
from watchkeeper.ui import create_app

PAGES = ["/ui", f"/ui/models/{HISTORY}", f"/ui/models/{CANARY}",
         f"/ui/models/{DRIFTED}/features/petal_length", "/ui/alerts", "/ui/alerts?closed=1",
         "/ui/audit", f"/ui/audit?model={HISTORY}"]  # fmt: skip
ACTION_FORM = re.compile(r'<form method="post" action="/ui/actions/')


CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


def _csrf(client: httpx.Client, page: str = "/ui") -> str:
    """The CSRF value of this client's session, as its pages carry it."""
    found = CSRF.search(client.get(page).text)
    assert found is not None
    return found.group(1)


def test_without_a_session_pages_ask_for_login_and_data_is_refused(site: Site) -> None:
    with site.client() as anonymous:
        page = anonymous.get("/ui/models/iris?range=7d")
        data = anonymous.get("/ui/data/overview")
        login = anonymous.get("/ui/login?next=//evil.example/")
    assert page.status_code == 303
    assert page.headers["location"] == "/ui/login?next=/ui/models/iris%3Frange%3D7d"
    assert data.status_code == 401
    assert login.status_code == 200
    assert 'name="next" value="/ui"' in login.text  # no open redirect


def test_login_sets_a_strict_http_only_cookie_and_logout_clears_it(site: Site) -> None:
    with site.client() as client:
        _login_and_out(site, client)


def _login_and_out(site: Site, client: httpx.Client) -> None:
    bad = client.post("/ui/login", data={"token": "wk_forged", "next": "/ui/alerts"})
    assert bad.status_code == 401
    assert "unknown or revoked token" in bad.text
    good = client.post("/ui/login", data={"token": site.tokens["reader"], "next": "/ui/alerts"})
    assert good.status_code == 303
    assert good.headers["location"] == "/ui/alerts"
    cookie = good.headers["set-cookie"].lower()
    assert cookie.startswith("wk_session=")
    for part in ("httponly", "samesite=strict", "path=/"):
        assert part in cookie
    assert client.get("/ui/alerts").status_code == 200
    out = client.post("/ui/logout", data={"csrf": _csrf(client)})
    assert out.status_code == 303
    assert (
        'wk_session=""' in out.headers["set-cookie"]
        or "max-age=0" in out.headers["set-cookie"].lower()
    )
    client.cookies.clear()
    assert client.get("/ui/alerts").status_code == 303


@pytest.mark.parametrize("path", PAGES)
def test_a_reader_sees_every_page_without_action_buttons(site: Site, path: str) -> None:
    with site.client("reader") as reader:
        page = reader.get(path)
        assert page.status_code == 200, page.text
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
        assert not ACTION_FORM.search(page.text)
        assert "reader-bot · reader" in page.text
        source = re.search(r'data-source="([^"]*)"', page.text)
        assert source is not None
        data = reader.get(source.group(1), params={"range": "6h"})
        assert data.status_code == 200
        body = data.json()
        assert set(body) == {"range", "bucket_seconds", "refresh", "fragments", "figures"}
        assert not any(ACTION_FORM.search(html) for html in body["fragments"].values())


def test_a_deployer_sees_the_buttons(site: Site) -> None:
    with site.client("deployer") as deployer:
        page = deployer.get(f"/ui/models/{CANARY}").text
        assert f"/ui/actions/models/{CANARY}/promote" in page
        assert f"/ui/actions/deployments/{CANARY}/abort" in page
        # its first production version has nothing to roll back to: no button for it
        assert f"/ui/actions/models/{CANARY}/rollback" not in page
        history = deployer.get(f"/ui/models/{HISTORY}").text
        assert f"/ui/actions/models/{HISTORY}/rollback" in history
        assert "Roll back production to v1" in history
        assert 'data-confirm="' in page
        assert f'name="csrf" value="{_csrf(deployer)}"' in page
        with site.client("deployer") as again:  # the same token, another session: another value
            assert _csrf(again) != _csrf(deployer)


def test_overview_marks_the_drifting_model_in_the_alert_colour(site: Site) -> None:
    with site.client("reader") as reader:
        rows = reader.get("/ui/data/overview").json()["fragments"]["overview-rows"]
    row = re.search(rf'<tr class="row-(\w+)" data-model="{DRIFTED}">(.*?)</tr>', rows, re.S)
    assert row is not None
    assert row.group(1) == "fail"
    assert re.search(r'class="cell s-fail" data-key="drift"[^>]*><span class="dot"></span>75% '
                     "drifted", row.group(2))  # fmt: skip
    calm = re.search(rf'<tr class="row-(\w+)" data-model="{HISTORY}">', rows)
    assert calm is not None
    assert calm.group(1) == "ok"


def test_the_overview_spans_the_chosen_range(site: Site) -> None:
    with site.client("reader") as reader:
        page = reader.get("/ui").text
        assert '<a href="?range=15m" data-range="15m" class="on">' in page  # live by default
        default = reader.get("/ui/data/overview").json()
        wider = reader.get("/ui/data/overview", params={"range": "6h"}).json()
    assert default["range"] == "15m"
    assert "requests in the last 15 min" in default["fragments"]["overview-rows"]
    assert wider["range"] == "6h"
    assert "requests in the last 6 h" in wider["fragments"]["overview-rows"]


def test_unknown_model_and_feature_are_404(site: Site) -> None:
    with site.client("reader") as reader:
        assert reader.get("/ui/models/nope").status_code == 404
        assert reader.get(f"/ui/models/{HISTORY}/features/nope").status_code == 404
        assert reader.get("/ui/data/models/nope").status_code == 404
        assert reader.get("/ui/models/iris?range=1y").status_code == 400


def test_forged_and_unauthorised_actions_are_refused(site: Site) -> None:
    path = f"/ui/actions/models/{HISTORY}/rollback"
    before = site.seeded.registry.get(f"{HISTORY}@production").version
    with site.client() as anonymous:
        assert anonymous.post(path, data={"csrf": "x"}).status_code == 401
    with site.client("deployer") as deployer, site.client("reader") as reader:
        assert deployer.post(path, data={}).status_code == 403
        assert deployer.post(path, data={"csrf": _csrf(reader)}).status_code == 403
        foreign = deployer.post(path, data={"csrf": _csrf(deployer)},
                                headers={"origin": "https://evil.example"})  # fmt: skip
        assert foreign.status_code == 403
        assert deployer.post(path, json={"csrf": _csrf(deployer)}).status_code == 403
        refused = reader.post(path, data={"csrf": _csrf(reader)})
        assert refused.status_code == 403
        assert "needs deployer" in refused.text
    assert site.seeded.registry.get(f"{HISTORY}@production").version == before


def test_a_deployer_moves_a_rollout_on_and_aborts_it(site: Site) -> None:
    base = f"/ui/actions/deployments/{CANARY}"
    with site.client("deployer") as deployer:
        csrf = _csrf(deployer)
        step = deployer.post(f"{base}/promote", data={"csrf": csrf, "back": f"/ui/models/{CANARY}"})
        assert step.status_code == 200, step.text
        assert "canary of v2 at 5%" in step.text
        assert 'href="/ui/models/fraud"' in step.text
        assert deployer.post(f"{base}/abort", data={"csrf": csrf}).status_code == 200
        again = deployer.post(f"{base}/abort", data={"csrf": csrf})
        assert again.status_code == 409
        assert "no deployment in progress" in again.text
        started = deployer.post(f"{base}/start", data={"csrf": csrf, "mode": "shadow",
                                                       "version": "2"})  # fmt: skip
        assert started.status_code == 200
        assert "shadow of v2 started" in started.text
    deployment = site.seeded.registry.deployments.get(CANARY)
    assert deployment is not None
    assert deployment.mode == "shadow"
    assert deployment.updated_by == "deployer-bot"
    actors = {e.actor for e in site.seeded.registry.history(CANARY, limit=3)}
    assert actors == {"deployer-bot"}


def test_a_deployer_acknowledges_an_alert(site: Site) -> None:
    store = MonitoringStore(site.seeded.registry.engine)
    alert = store.alerts(DRIFTED)[0]
    with site.client("deployer") as deployer:
        form = {"csrf": _csrf(deployer), "back": "/ui/alerts"}
        done = deployer.post(f"/ui/actions/alerts/{alert.id}/acknowledge", data=form)
        assert done.status_code == 200
        assert "acknowledged by deployer-bot" in done.text
        missing = deployer.post("/ui/actions/alerts/999999/acknowledge",
                                data={"csrf": _csrf(deployer)})  # fmt: skip
        assert missing.status_code == 404
    assert next(a for a in store.alerts(DRIFTED) if a.id == alert.id).acknowledged_by == (
        "deployer-bot"
    )


def test_plotly_comes_from_the_shipped_bundle(site: Site) -> None:
    expected = plotly_js()
    raw = httpx.get(f"{site.url}/ui/static/plotly.min.js", headers={"accept-encoding": "gzip"})
    assert raw.status_code == 200
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.content == expected  # httpx decodes the gzip
    assert len(gzip.compress(expected)) < len(expected) / 2
    again = httpx.get(f"{site.url}/ui/static/plotly.min.js",
                      headers={"if-none-match": raw.headers["etag"]})  # fmt: skip
    assert again.status_code == 304
    assert httpx.get(f"{site.url}/ui/static/secrets.txt").status_code == 404


def test_the_dashboard_alone_with_no_tokens_is_the_local_operator(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, user="alice")
    registry = seed(settings).registry
    try:
        with serving(create_app(settings)) as url:
            home = httpx.get(url + "/")
            assert home.status_code == 307
            assert home.headers["location"] == "/ui"
            assert httpx.get(url + "/ui/login").headers["location"] == "/ui"
            with httpx.Client(base_url=url) as browser:
                page = browser.get(f"/ui/models/{HISTORY}")
                assert "local · admin" in page.text
                csrf = CSRF.search(page.text)
                assert csrf is not None
                with httpx.Client(base_url=url) as other:  # another browser: another value
                    assert _csrf(other, f"/ui/models/{HISTORY}") != csrf.group(1)
                    forged = other.post(f"/ui/actions/models/{HISTORY}/rollback",
                                        data={"csrf": csrf.group(1)})  # fmt: skip
                    assert forged.status_code == 403
                done = browser.post(f"/ui/actions/models/{HISTORY}/rollback",
                                    data={"csrf": csrf.group(1)},
                                    headers={"origin": url})  # fmt: skip
            assert done.status_code == 200
            assert "production is now v1" in done.text
        assert registry.history(HISTORY, limit=1)[0].actor == "alice"
    finally:
        registry.close()
