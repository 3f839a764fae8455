"""Prometheus series that dashboards can use (issue 18, item 4), on a real ``watchkeeper serve``.

A server answers a canary beside production, a shadow, a pinned version that cannot load and a
client's mistake, with monitor results and an open alert in its registry. Its ``/metrics`` is
then held against every expression of the shipped alert rules and Grafana dashboard (parsed by
``tests/promql.py``): each metric they select, each label they match, group or join by, and
each label an annotation or legend prints must be there. A second server checks that series
labelled by version exist only for versions loaded, and go when a version is unloaded.
Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.processes import ROOT, free_port, wait_for
from tests.promql import parse
from tests.security.conftest import iris_registry, kill_group
from watchkeeper.monitoring.results import CheckResult
from watchkeeper.registry.monitoring import MonitoringStore

DEPLOY = ROOT / "deploy"
BOUND = 60.0
ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
CANARY = {"mode": "canary", "version": 2, "plan": {"steps": [0.5, 1.0]}, "reason": "test"}


class WontWarm:
    """A model whose every prediction raises: its warm-up fails, so it never loads."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        raise RuntimeError("broken on purpose")


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def samples(url: str) -> list[Sample]:
    text = httpx.get(f"{url}/metrics", timeout=BOUND).text
    return [Sample(s.name, dict(s.labels), s.value)
            for family in text_string_to_metric_families(text)
            for s in family.samples]  # fmt: skip


def exported(found: list[Sample]) -> dict[str, set[str]]:
    """Every sample name in ``/metrics``, with the label names its series carry."""
    out: dict[str, set[str]] = {}
    for s in found:
        out.setdefault(s.name, set()).update(s.labels)
    return out


def roles(found: list[Sample]) -> set[tuple[str, str, str, float]]:
    """``watchkeeper_model_info`` as (model, version, role, value)."""
    return {(s.labels["model"], s.labels["version"], s.labels["role"], s.value)
            for s in found if s.name == "watchkeeper_model_info"}  # fmt: skip


def versions_labelled(found: list[Sample], model: str) -> set[str]:
    return {s.labels["version"] for s in found if s.name.startswith("watchkeeper_")
            and s.labels.get("model") == model and s.labels.get("version")}  # fmt: skip


def predict(client: httpx.Client, model: str) -> httpx.Response:
    return client.post(f"/v1/models/{model}:predict", json={"instances": [ROW]})


def start_deployment(client: httpx.Client, model: str, body: dict[str, object]) -> None:
    started = client.post(f"/api/v1/deployments/{model}", json=body)
    assert started.status_code == 201, started.text


# --- a busy server -------------------------------------------------------------------------


def _busy_home(home: Path) -> None:
    """``iris``: v1 production, v2 (the canary), v3 that cannot load; ``twin``: v1 production,
    v2 (the shadow); one failing drift result with its alert."""
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in X.columns]
    registry = iris_registry(home, versions=2)
    registry.register("iris", WontWarm(), flavor="python", input_example=X)
    for c in (1.0, 0.1):
        registry.register("twin", LogisticRegression(max_iter=500, C=c).fit(X, y),
                          input_example=X)  # fmt: skip
    registry.promote("twin", 1, "production")
    t = datetime.now(UTC) - timedelta(hours=1)
    drift = CheckResult(model="iris", version=1, window_start=t, window_end=t + timedelta(hours=1),
                        check="drift", feature="petal_width", statistic="wasserstein", value=0.4,
                        threshold=0.1, status="fail")  # fmt: skip
    store = MonitoringStore(registry.engine)
    store.record([drift])
    store.apply_alerts([drift])
    registry.close()


def _traffic(client: httpx.Client) -> None:
    """Both versions of iris answer (KServe V1 and v2), twin's shadow is copied to, a pinned
    version fails to load, and a client asks for a model that is not there."""
    start_deployment(client, "iris", CANARY)
    start_deployment(client, "twin", {**CANARY, "mode": "shadow"})
    wait_for(lambda: {("iris", "2", "candidate", 1.0), ("twin", "2", "candidate", 1.0)}
             <= roles(samples(str(client.base_url))), BOUND, "both candidates to load")  # fmt: skip
    answered: set[str] = set()
    v2 = {"inputs": [{"name": k, "shape": [1], "datatype": "FP64", "data": [v]}
                     for k, v in ROW.items()]}  # fmt: skip
    for _ in range(200):
        for r in (predict(client, "iris"), client.post("/v2/models/iris/infer", json=v2)):
            assert r.status_code == 200, r.text
            answered.add(r.headers["x-model-version"])
        if answered == {"1", "2"}:
            break
    assert answered == {"1", "2"}
    for _ in range(5):
        assert predict(client, "twin").status_code == 200
    assert predict(client, "iris@3").status_code >= 400
    assert predict(client, "nope").status_code == 404

    def copied() -> bool:
        return any(s.name == "watchkeeper_shadow_requests_total"
                   for s in samples(str(client.base_url)))  # fmt: skip

    wait_for(copied, BOUND, "the shadow copies to be counted")


@contextmanager
def serving(home: Path, *args: str) -> Iterator[str]:
    """A ready ``watchkeeper serve`` on ``home`` (its own process group, killed on exit)."""
    port = free_port()
    env = {**os.environ, "WATCHKEEPER_HOME": str(home)}
    log = home / f"serve-{port}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "watchkeeper", "serve", "--port", str(port),
             "--log-level", "warning", "--poll-interval", "0.05", "--without-scheduler", *args],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(ready, BOUND, "the server to be ready")
        yield url
    finally:
        kill_group(proc)


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Sample]]:
    """``/metrics`` of a server after ``_traffic``."""
    home = tmp_path_factory.mktemp("busy")
    _busy_home(home)
    with serving(home) as url:
        with httpx.Client(base_url=url, timeout=BOUND) as client:
            _traffic(client)
        yield samples(url)


# --- the shipped queries -------------------------------------------------------------------


def queries() -> list[tuple[str, str, set[str]]]:
    """(where, expression, labels it prints) for every alert rule, dashboard target and PromQL
    example of the README and docs/."""
    out = []
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            printed = set(re.findall(r"\$labels\.(\w+)", json.dumps(rule.get("annotations"))))
            out.append((f"alert {rule['alert']}", rule["expr"], printed))
    dashboard = json.loads((DEPLOY / "grafana" / "watchkeeper.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            printed = set(re.findall(r"{{\s*(\w+)\s*}}", target.get("legendFormat", "")))
            out.append((f"panel {panel['title']!r} {target['refId']}", target["expr"], printed))
    for doc in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))):
        for i, block in enumerate(re.findall(r"```promql\n(.*?)```", doc.read_text(), re.S)):
            out.append((f"{doc.name} example {i + 1}", block, set()))
    return out


def problems_of(expr: str, printed: set[str], have: dict[str, set[str]]) -> list[str]:
    """What ``expr`` needs that ``have`` (sample names -> label names) lacks."""
    query = parse(expr)
    found = [f"metric {m} is not exported" for m in sorted(query.metrics - set(have))]
    for s in query.selectors:
        found += [f"{s.metric} has no label {label}" for label in s.labels
                  if label not in have.get(s.metric, set())]  # fmt: skip
    for g in query.groupings:
        over = [have.get(m, set()) for m in g.over]
        for label in g.labels:
            ok = any if g.clause.startswith("group_") else all
            if not over or not ok(label in labels for labels in over):
                found.append(f"{g.clause} ({label}): not a label of {', '.join(g.over)}")
    outputs = query.output_labels(have)
    found += [f"prints {label}, which the result does not carry"
              for label in sorted(printed - outputs)]  # fmt: skip
    return found


def test_every_alert_rule_and_dashboard_query_selects_series_the_server_exports(
    busy: list[Sample],
) -> None:
    """Every metric, label matcher, ``by``/``on``/``group_left`` label and printed label of the
    shipped alert rules and Grafana dashboard, and of the documented PromQL examples, exists in
    ``/metrics`` of a server that served a canary, a shadow and a failed load (a renamed metric
    or label breaks this test, not a dashboard in production)."""
    have = exported(busy)
    found = queries()
    assert len(found) >= 18
    problems = [f"{where}: {p}" for where, expr, printed in found
                for p in problems_of(expr, printed, have)]  # fmt: skip
    assert not problems, "\n".join(problems)


def test_the_checker_catches_a_renamed_metric_or_label(busy: list[Sample]) -> None:
    """The check above is not vacuous: the old names (``status``, a latency histogram without
    ``version``, a counter without ``_total``) are each reported."""
    have = exported(busy)
    assert problems_of('sum(rate(watchkeeper_requests_total{status=~"5.."}[5m]))', set(), have)
    assert problems_of("sum(watchkeeper_estimated_cost_dollars)", set(), have)
    old = {**have, "watchkeeper_request_duration_seconds_bucket": {"model", "protocol", "le"}}
    expr = "histogram_quantile(0.99, sum by (model, version, le) (rate({}[5m])))"
    assert problems_of(expr.format("watchkeeper_request_duration_seconds_bucket"), set(), old)
    assert problems_of("sum by (model) (watchkeeper_alerts_open)", {"check"}, have)


def test_canary_and_production_latency_are_separate_series(busy: list[Sample]) -> None:
    """The latency histogram is labelled by the version that answered: canary and production
    each have their own, matching their request counts; the status label is ``code``; no
    ``_created`` series; ``model_info`` is one series per loaded version, in its current role."""

    def total(name: str, version: str) -> float:
        return sum(s.value for s in busy if s.name == name and s.labels.get("model") == "iris"
                   and s.labels.get("version") == version)  # fmt: skip

    for version in ("1", "2"):
        answered = total("watchkeeper_request_duration_seconds_count", version)
        assert answered > 0
        assert answered == total("watchkeeper_requests_total", version)
    requests = [s for s in busy if s.name == "watchkeeper_requests_total"]
    assert all("code" in s.labels and "status" not in s.labels for s in requests)
    assert {"200", "404"} <= {s.labels["code"] for s in requests}
    assert not [s.name for s in busy if s.name.endswith("_created")]
    assert roles(busy) == {("iris", "1", "production", 1.0), ("iris", "2", "candidate", 1.0),
                           ("twin", "1", "production", 1.0),
                           ("twin", "2", "candidate", 1.0)}  # fmt: skip
    assert versions_labelled(busy, "iris") == {"1", "2"}  # v3 never loaded: no series


# --- bounded: series of loaded versions only --------------------------------------------------


def test_version_series_exist_only_while_the_version_is_loaded(tmp_path: Path) -> None:
    """A version label exists only for versions the table holds (pinned ones included): a
    pinned version evicted by another, and a standby past its time, lose every series; roles
    follow a promotion (the canary becomes production, production a standby)."""
    home = tmp_path / "home"
    iris_registry(home, versions=4).close()
    with (
        serving(home, "--max-pinned-versions", "1") as url,
        httpx.Client(base_url=url, timeout=BOUND) as client,
    ):
        assert predict(client, "iris").headers["x-model-version"] == "1"
        assert predict(client, "iris@3").status_code == 200
        assert ("iris", "3", "pinned", 1.0) in roles(samples(url))
        assert "3" in versions_labelled(samples(url), "iris")
        assert predict(client, "iris@4").status_code == 200  # evicts v3
        wait_for(lambda: "3" not in versions_labelled(samples(url), "iris"), BOUND,
                 "every series of the evicted v3 to go")  # fmt: skip
        start_deployment(
            client, "iris", {**CANARY, "plan": {"steps": [0.5, 1.0], "keep_previous_seconds": 5}}
        )
        for _ in range(2):  # 50 % -> 100 % -> promoted, v1 kept 5 s as the standby
            assert client.post("/api/v1/deployments/iris/promote", json={}).status_code == 200
        promoted = {("iris", "2", "production", 1.0), ("iris", "1", "standby", 1.0)}
        wait_for(lambda: promoted <= roles(samples(url)), BOUND, "the roles to follow")
        assert not [r for r in roles(samples(url)) if r[2] == "candidate"]
        for _ in range(3):
            assert predict(client, "iris").headers["x-model-version"] == "2"
        wait_for(lambda: versions_labelled(samples(url), "iris") == {"2", "4"}, BOUND,
                 "the standby's series to go once its time is up")  # fmt: skip
        final = {("iris", "2", "production", 1.0), ("iris", "4", "pinned", 1.0)}
        assert roles(samples(url)) == final


def test_a_version_unloaded_keeps_no_series_even_when_a_late_request_reports() -> None:
    """``ServingMetrics`` directly: a request that finishes just after its version was unloaded
    does not bring the version's series back; a version loaded twice at once (a quick reload)
    keeps its series until both loads are let go; a request with no version is always counted."""
    from prometheus_client import generate_latest

    from watchkeeper.serving.metrics import ServingMetrics

    metrics = ServingMetrics()

    def text() -> str:
        return generate_latest(metrics.registry).decode()

    metrics.version_loaded("m", "1", "sklearn", "production")
    metrics.version_loaded("m", "1", "sklearn", "production")
    metrics.child(metrics.requests, "m", "1", "kserve_v1", "200").inc()
    metrics.version_role("m", "1", "sklearn", "standby")
    assert 'role="standby"' in text()
    assert 'role="production"' not in text()
    metrics.version_unloaded("m", "1")
    assert 'version="1"' in text()  # one load still held
    metrics.version_unloaded("m", "1")
    assert 'version="1"' not in text()
    metrics.child(metrics.requests, "m", "1", "kserve_v1", "200").inc()
    metrics.child(metrics.duration, "m", "1", "kserve_v1").observe(0.01)
    metrics.child(metrics.requests, "m", "", "kserve_v1", "503").inc()
    assert 'version="1"' not in text()
    assert (
        'watchkeeper_requests_total{code="503",model="m",protocol="kserve_v1",version=""}' in text()
    )
