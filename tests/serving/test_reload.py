"""Hot reload: promotions and rollbacks reach the server with no failed request."""

from __future__ import annotations

import threading
import time

import httpx
from sklearn.linear_model import LogisticRegression

from tests.serving.conftest import start_server
from watchkeeper.config import Settings
from watchkeeper.registry import Registry
from watchkeeper.serving.app import ServeOptions

SWITCHES = 20


def test_hot_swap_under_load_loses_nothing(tmp_path, iris_data) -> None:
    X, y = iris_data
    settings = Settings(home=tmp_path, user="tester")
    registry = Registry(settings)
    for c in (1.0, 0.1):
        registry.register("iris", LogisticRegression(C=c, max_iter=1000).fit(X, y), input_example=X)
    registry.promote("iris", 1, "production")
    timeline: list[tuple[float, int]] = [(time.monotonic(), 1)]
    url, server, thread = start_server(settings, ServeOptions(poll_interval=0.05))
    rows = X.head(2).to_numpy().tolist()
    answers: list[tuple[float, float, int, int]] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.is_set():
                sent = time.monotonic()
                r = http.post("/v1/models/iris:predict", json={"instances": rows})
                version = int(r.json()["model_version"]) if r.status_code == 200 else -1
                answers.append((sent, time.monotonic(), r.status_code, version))

    workers = [threading.Thread(target=client) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        for i in range(SWITCHES):
            time.sleep(0.15)
            if i % 2 == 0:
                version = registry.promote("iris", 2, "production").version
            else:
                version = registry.rollback("iris").version
            timeline.append((time.monotonic(), version))
        time.sleep(0.3)
    finally:
        stop.set()
        for w in workers:
            w.join()
        server.should_exit = True
        thread.join(timeout=30)
        registry.close()

    assert len(answers) > 100
    assert {status for _, _, status, _ in answers} == {200}
    assert {v for *_, v in answers} == {1, 2}
    for sent, received, _, version in answers:
        # the version answering was in production at some point while the request was
        # in flight, allowing for the propagation delay (polling every 50 ms)
        assert version in _live_between(timeline, sent - 1.0, received), (sent, version)


def _live_between(timeline: list[tuple[float, int]], start: float, end: float) -> set[int]:
    live = set()
    for i, (t, version) in enumerate(timeline):
        until = timeline[i + 1][0] if i + 1 < len(timeline) else float("inf")
        if t <= end and until >= start:
            live.add(version)
    return live


def test_rollback_reaches_the_server(tmp_path, iris_data) -> None:
    X, y = iris_data
    settings = Settings(home=tmp_path, user="tester")
    with Registry(settings) as registry:
        for c in (1.0, 0.1):
            registry.register(
                "iris", LogisticRegression(C=c, max_iter=1000).fit(X, y), input_example=X
            )
        registry.promote("iris", 1, "production")
        registry.promote("iris", 2, "production")
        url, server, thread = start_server(settings, ServeOptions(poll_interval=0.05))
        try:
            body = {"instances": X.head(1).to_numpy().tolist()}
            assert (
                httpx.post(f"{url}/v1/models/iris:predict", json=body).json()["model_version"]
                == "2"
            )
            registry.rollback("iris")
            deadline = time.monotonic() + 10
            version = "2"
            while version == "2" and time.monotonic() < deadline:
                version = httpx.post(f"{url}/v1/models/iris:predict", json=body).json()[
                    "model_version"
                ]
            assert version == "1"
        finally:
            server.should_exit = True
            thread.join(timeout=30)


def test_a_promoted_version_that_cannot_load_leaves_the_old_one_serving_and_ready(
    tmp_path, iris_data
) -> None:
    """A new production version whose files fail verification is not swapped in: the version
    before keeps answering, the server stays ready (production is served), and /readyz names
    the version that could not load, in its role. Once it loads (tried again by itself), it
    serves and the problem is gone."""
    X, y = iris_data
    settings = Settings(home=tmp_path, user="tester")
    with Registry(settings) as registry:
        for c in (1.0, 0.1):
            registry.register(
                "iris", LogisticRegression(C=c, max_iter=1000).fit(X, y), input_example=X
            )
        registry.promote("iris", 1, "production")
        v2 = registry.get("iris@2")
        package = registry.artifacts.local_path(v2.artifact_uri, v2.manifest_digest)
        (model_file,) = package.glob("model.*")
        original = model_file.read_bytes()
        model_file.write_bytes(original + b"\0")
        url, server, thread = start_server(settings, ServeOptions(poll_interval=0.05))
        try:
            registry.promote("iris", 2, "production")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not httpx.get(f"{url}/readyz").json()["problems"]:
                time.sleep(0.05)
            answer = httpx.get(f"{url}/readyz")
            assert answer.status_code == 200
            assert answer.json()["models"] == {"iris": "1"}
            (problem,) = answer.json()["problems"]
            assert (problem["role"], problem["version"]) == ("production", 2)
            assert "failed verification" in problem["reason"]
            body = {"instances": X.head(1).to_numpy().tolist()}
            r = httpx.post(f"{url}/v1/models/iris:predict", json=body)
            assert (r.status_code, r.json()["model_version"]) == (200, "1")
            model_file.write_bytes(original)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and httpx.get(f"{url}/readyz").json()["problems"]:
                time.sleep(0.05)
            assert httpx.get(f"{url}/readyz").json() == {
                "ready": True, "status": "ready", "models": {"iris": "2"}, "problems": []
            }  # fmt: skip
        finally:
            server.should_exit = True
            thread.join(timeout=30)
