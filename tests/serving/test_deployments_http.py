"""A deployment reaches a real server: canary split, A/B stickiness, shadow copies, the API."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from tests.processes import TIME_SCALE
from tests.serving.conftest import start_server
from watchkeeper.config import Settings
from watchkeeper.logbook import Logbook, LogbookConfig
from watchkeeper.registry import Registry
from watchkeeper.registry.deployments import Deployment
from watchkeeper.rollout.controller import Rollouts
from watchkeeper.serving.app import ServeOptions
from watchkeeper.serving.shadow import ShadowPolicy


class Flaky:
    """Fails on small petals (it passes warm-up, on a mid-range row): a shadow must never
    hurt production with it."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        if (frame["petal_width"] < 0.5).any():
            raise RuntimeError("broken candidate")
        return np.zeros(len(frame), dtype=int)


class Sluggish:
    """Takes 50 ms a row (20 rows a second at most): a shadow that falls behind requests
    sent concurrently, however slow the machine running the test."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        time.sleep(0.05 * len(frame))
        return np.zeros(len(frame), dtype=int)


@dataclass
class World:
    url: str
    http: httpx.Client
    registry: Registry
    settings: Settings
    rows: list[list[float]]
    X: pd.DataFrame


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, iris_data) -> Iterator[World]:
    X, y = iris_data
    settings = Settings(home=tmp_path_factory.mktemp("deploy-home"), user="tester")
    registry = Registry(settings)
    registry.register("iris", LogisticRegression(max_iter=1000).fit(X, y), input_example=X,
                      reference_data=X, stage="production")  # fmt: skip
    registry.register("iris", LogisticRegression(C=0.1, max_iter=1000).fit(X, y),
                      input_example=X, reference_data=X)  # fmt: skip
    registry.register("iris", Flaky(), flavor="python", input_example=X)
    registry.register("iris", Sluggish(), flavor="python", input_example=X)  # v4
    options = ServeOptions(poll_interval=0.05, live_stats_interval=0.1,
                           logbook=LogbookConfig(flush_interval=0.1),
                           shadow=ShadowPolicy(linger=0.2, max_rows=8, max_queued=16))  # fmt: skip
    url, server, thread = start_server(settings, options)
    with httpx.Client(base_url=url, timeout=30) as http:
        yield World(url, http, registry, settings, X.head(1).to_numpy().tolist(), X)
    server.should_exit = True
    thread.join(timeout=30)
    registry.close()


def _predict(w: World, key: str | None = None) -> httpx.Response:
    headers = {"x-routing-key": key} if key else {}
    return w.http.post("/v1/models/iris:predict", json={"instances": w.rows}, headers=headers)


def _wait_for(w: World, condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout * TIME_SCALE
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    shadow = [x for x in w.http.get("/metrics").text.splitlines() if "shadow" in x]
    raise AssertionError(f"the server did not follow the deployment in time: {shadow}")


def _api(w: World, method: str, path: str, **kwargs) -> httpx.Response:
    return w.http.request(method, f"/api/v1/deployments{path}", **kwargs)


def test_an_ab_split_is_sticky_per_key_and_near_its_share(world: World) -> None:
    w = world
    body = {"mode": "ab", "version": 2, "plan": {"ab_share": 0.5}, "reason": "test"}
    started = _api(w, "POST", "/iris", json=body)
    assert started.status_code == 201, started.text
    _wait_for(w, lambda: any(_predict(w, f"probe-{i}").headers["x-model-version"] == "2"
                             for i in range(20)))  # fmt: skip
    versions = {f"user-{i}": _predict(w, f"user-{i}").headers["x-model-version"]
                for i in range(400)}  # fmt: skip
    share = Counter(versions.values())["2"] / 400
    assert abs(share - 0.5) < 4 * (0.25 / 400) ** 0.5  # binomial, 4 sigma
    again = {k: _predict(w, k).headers["x-model-version"] for k in list(versions)[:50]}
    assert again == {k: versions[k] for k in again}  # one user, one arm
    status = _api(w, "GET", "/iris").json()
    assert status["deployment"]["mode"] == "ab"
    assert status["deployment"]["plan"]["ab_share"] == 0.5
    aborted = _api(w, "POST", "/iris/abort", json={"reason": "done"})
    assert aborted.status_code == 200
    assert aborted.json()["state"] == "aborted"
    _wait_for(w, lambda: all(_predict(w, f"user-{i}").headers["x-model-version"] == "1"
                             for i in range(30)))  # fmt: skip


def test_a_failing_shadow_never_reaches_the_client(world: World) -> None:
    w = world
    d = _shadowing(w, 3, "error")
    answers = [_predict(w) for _ in range(100)]
    assert {r.status_code for r in answers} == {200}
    assert {r.headers["x-model-version"] for r in answers} == {"1"}
    errors = _copies(3, "error")
    _wait_for(w, lambda: _metric(w, errors) >= 100)  # copies are scored in batches, a moment later
    _stop(w, d)


def test_a_good_shadow_is_logged_beside_production(world: World) -> None:
    w = world
    d = _shadowing(w, 2, "ok")
    calls = lambda: _metric(w, "watchkeeper_batch_size_rows_count")  # noqa: E731
    copied = lambda: _metric(w, _copies(2, "ok"))  # noqa: E731
    _settle(copied)  # the copies of the requests above are scored
    before_calls, before_copies = calls(), copied()
    rows = w.X.iloc[::4]  # every class
    ids = [w.http.post("/v1/models/iris:predict", json={"instances": [row]})
           .headers["x-request-id"] for row in rows.to_numpy().tolist()]  # fmt: skip
    _wait_for(w, lambda: copied() >= before_copies + len(ids))
    # copies are scored together: far fewer model calls than a second one per request
    assert calls() - before_calls < 1.5 * len(ids)
    book = Logbook(w.settings.resolved_logbook_url)

    def logged() -> pd.DataFrame:
        now = datetime.now(UTC)
        return book.read("iris", now - timedelta(minutes=5), now + timedelta(minutes=1),
                         role="shadow").to_pandas()  # fmt: skip

    _wait_for(w, lambda: set(ids) <= set(logged()["request_id"]), 30)  # flushed every 0.1 s
    shadow = logged()
    assert set(shadow["version"]) == {2}
    # each copy is logged under its own request with the shadow's own answer for its row
    answered = shadow.set_index("request_id").loc[ids, "prediction"].astype(float).tolist()
    expected = w.registry.load("iris@2").predict(rows)
    assert len(set(expected)) == 3
    assert answered == expected.astype(float).tolist()
    _stop(w, d)


def test_copies_a_busy_shadow_cannot_take_are_dropped_counted_and_reported(world: World) -> None:
    w = world
    d = _shadowing(w, 4, "ok")
    with ThreadPoolExecutor(8) as pool:  # 8 at a time: far beyond the shadow's 20 rows/s
        answers = list(pool.map(lambda _: _predict(w), range(300)))
    assert {(r.status_code, r.headers["x-model-version"]) for r in answers} == {(200, "1")}
    count = int(_metric(w, _copies(4, "dropped")))  # counted as the requests were answered
    assert count > 0
    rollouts = Rollouts(w.registry)  # what `deploy status` and the dashboard show
    _wait_for(w, lambda: rollouts.status("iris").shadow_dropped == count)
    assert rollouts.status("iris").to_dict()["shadow_dropped"] == count
    _stop(w, d)


def test_bad_deployment_requests_get_field_level_errors(world: World) -> None:
    w = world
    bad_plan = _api(w, "POST", "/iris", json={"mode": "canary", "version": 2,
                                             "plan": {"steps": [0.5, 0.2]}})  # fmt: skip
    assert bad_plan.status_code == 400
    assert bad_plan.json()["error"]["details"][0]["field"] == "plan.steps"
    no_version = _api(w, "POST", "/iris", json={"mode": "canary"})
    assert no_version.status_code == 400
    assert no_version.json()["error"]["details"] == [{"field": "version", "problem": "required"}]
    bad_mode = _api(w, "POST", "/iris", json={"mode": "yolo", "version": 2})
    assert bad_mode.status_code == 400
    assert _api(w, "POST", "/ghost", json={"mode": "canary", "version": 2}).status_code == 404
    first = _api(w, "POST", "/iris", json={"mode": "canary", "version": 2})
    assert first.status_code == 201
    second = _api(w, "POST", "/iris", json={"mode": "canary", "version": 2})
    assert second.status_code == 409
    assert _api(w, "POST", "/iris/abort", json={}).status_code == 200
    assert _api(w, "POST", "/iris/abort", json={}).status_code == 409  # nothing left to abort
    untyped = _api(w, "POST", "/iris/abort")  # a body that is not declared JSON: refused
    assert untyped.status_code == 415
    assert untyped.json()["error"]["details"] == [
        {"field": "content-type", "problem": "must be application/json"}
    ]
    history = _api(w, "GET", "/iris/history").json()
    assert [e["state"] for e in history[:2]] == ["aborted", "running"]


def _metric(w: World, prefix: str) -> float:
    """The sum of the series in /metrics whose line starts with ``prefix`` (a name, or a name
    and its first labels)."""
    text = w.http.get("/metrics").text
    return sum(float(x.split()[-1]) for x in text.splitlines()
               if x.startswith(prefix) and x[len(prefix)] in "{ ,}")  # fmt: skip


def _copies(version: int, outcome: str) -> str:
    """The series of shadow copies of ``version`` that ended with ``outcome``."""
    return (
        f'watchkeeper_shadow_requests_total{{model="iris",outcome="{outcome}",version="{version}"'
    )


def _settle(value: Callable[[], float], quiet: float = 1.0, timeout: float = 30.0) -> None:
    """Until ``value`` has not moved for ``quiet`` seconds (work in flight has ended)."""
    deadline = time.monotonic() + timeout
    last, since = value(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = value()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
    raise AssertionError(f"still moving after {timeout:g} s")


def _shadowing(w: World, version: int, outcome: str) -> Deployment:
    """Start a shadow of ``version`` and wait until the server has made a copy for it that
    ended with ``outcome``."""
    d = w.registry.deployments.start("iris", "shadow", version, share=1.0, config={}, actor="t",
                                     reason=f"shadow v{version}")  # fmt: skip
    _wait_for(w, lambda: _predict(w).status_code == 200
              and _metric(w, _copies(version, outcome)) > 0)  # fmt: skip
    return d


def _stop(w: World, d: Deployment) -> None:
    w.registry.deployments.update("iris", d.revision, actor="t", reason="stop", state="aborted")
