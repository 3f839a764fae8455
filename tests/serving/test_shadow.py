"""A shadow copy of a request is the same request: its input problems are counted once."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest
from sklearn.linear_model import LogisticRegression

from tests.serving.conftest import start_server
from watchkeeper.config import Settings
from watchkeeper.registry import Registry
from watchkeeper.rollout.controller import Rollouts
from watchkeeper.serving.app import ServeOptions


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, iris_data) -> Iterator[tuple]:
    X, y = iris_data
    settings = Settings(home=tmp_path_factory.mktemp("shadow-home"), user="tester")
    registry = Registry(settings)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    registry.register("iris", model, input_example=X, stage="production")
    registry.register("iris", model, input_example=X)  # v2: production's signature
    registry.register("iris", model, input_example=X.head(20))  # v3: narrower ranges
    url, server, thread = start_server(settings, ServeOptions(poll_interval=0.05, logbook=None))
    with httpx.Client(base_url=url, timeout=30) as http:
        yield http, Rollouts(registry), X
    server.should_exit = True
    thread.join(timeout=30)
    registry.close()


def _metric(http: httpx.Client, pattern: str) -> float:
    found = re.findall(rf"^{pattern} ([0-9.e+]+)$", http.get("/metrics").text, re.MULTILINE)
    return sum(float(v) for v in found)


@pytest.mark.parametrize("candidate", [2, 3], ids=["same-signature", "other-signature"])
def test_a_shadowed_request_counts_its_input_problems_once(served, candidate: int) -> None:
    """Regression: the shadow validated every copy again and counted its problems under the
    same model, so in shadow mode ``watchkeeper_input_problems_total`` doubled."""
    http, rollouts, X = served
    rollouts.start("iris", "shadow", candidate)
    try:
        shadowed = rf'watchkeeper_shadow_requests_total{{[^}}]*version="{candidate}"[^}}]*}}'
        out_of_range = r'watchkeeper_input_problems_total{field="sepal_length",[^}]*}'
        deadline = time.monotonic() + 10
        while _metric(http, shadowed) == 0:  # the server follows the deployment
            assert time.monotonic() < deadline, "no shadow copy was made"
            row = X.iloc[[0]].to_dict("records")
            http.post("/v1/models/iris:predict", json={"instances": row})
            time.sleep(0.05)
        before, copies = _metric(http, out_of_range), _metric(http, shadowed)
        row = {**X.iloc[0].to_dict(), "sepal_length": 99.0}  # above every training value
        answer = http.post("/v1/models/iris:predict", json={"instances": [row]})
        assert answer.status_code == 200
        while _metric(http, shadowed) == copies:
            assert time.monotonic() < deadline, "the shadow never took its copy"
            time.sleep(0.02)
        assert _metric(http, out_of_range) - before == 1
    finally:
        rollouts.abort("iris")
