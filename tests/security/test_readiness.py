"""One unloadable version must not take replicas out of service (issue 16, item 4).

Readiness means the production versions are served. A deployment's candidate that cannot be
loaded or warmed (a package whose files no longer match their sha256, a model that raises on its
warm-up prediction) never makes a replica unready: the replica reports it in ``/readyz`` and to
the registry, and the rollout controller rolls the deployment back with the reason. A
production version that cannot be loaded, with nothing else answering for the model, does make
the replica unready, with the reason. Real ``watchkeeper serve`` processes; traffic only to
127.0.0.1.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.processes import wait_for
from tests.rollout.candidates import Unwarmable
from tests.security.conftest import Served, iris_registry
from watchkeeper.registry import Registry
from watchkeeper.registry.deployments import Deployment
from watchkeeper.rollout.controller import Rollouts

pytestmark = pytest.mark.slow  # a server process per test, about 10 s each

ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def corrupt(registry: Registry, ref: str) -> tuple[Path, bytes]:
    """Change one byte of the version's model file, so its sha256 no longer matches the
    registry's record; returns the file and its original bytes."""
    version = registry.get(ref)
    package = registry.artifacts.local_path(version.artifact_uri, version.manifest_digest)
    (model_file,) = package.glob("model.*")
    original = model_file.read_bytes()
    model_file.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
    return model_file, original


def unwarmable(registry: Registry) -> int:
    """A new version of iris whose warm-up prediction raises (registration never calls it)."""
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in X.columns]
    inner = LogisticRegression(max_iter=500).fit(X, y)
    return registry.register("iris", Unwarmable(inner), input_example=X).version


class Watch:
    """From a thread, until stopped: ``/readyz`` and one production request, in turn."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ready: list[int] = []
        self.predictions: list[tuple[int, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watch:
        self._thread.start()
        wait_for(lambda: len(self.predictions) >= 10, 30, "the requests to start")
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self._stop.is_set():
                self.ready.append(client.get("/readyz").status_code)
                r = client.post("/v1/models/iris:predict", json={"instances": [ROW]})
                self.predictions.append((r.status_code, r.headers.get("x-model-version")))


def readyz(served: Served) -> httpx.Response:
    return httpx.get(f"{served.url}/readyz", timeout=5)


def settled(registry: Registry) -> Deployment:
    def done() -> Deployment | None:
        d = registry.deployments.get("iris")
        return d if d is not None and not d.active else None

    found: Deployment = wait_for(done, 60, "the deployment of iris to end")
    return found


def candidate_problems(served: Served) -> list[dict[str, Any]]:
    return [p for p in readyz(served).json()["problems"] if p["role"] == "candidate"]


def broken_candidate(registry: Registry, how: str) -> tuple[int, str]:
    """A version of iris that cannot be served, and the words its load failure contains."""
    if how == "corrupt-file":
        corrupt(registry, "iris@2")
        return 2, "failed verification"
    return unwarmable(registry), "warm-up prediction failed"


@pytest.mark.parametrize(
    ("mode", "broken"),
    [("canary", "corrupt-file"), ("shadow", "warm-up-raises"), ("bluegreen", "corrupt-file"),
     ("ab", "warm-up-raises")],
)  # fmt: skip
def test_a_candidate_that_cannot_load_is_rolled_back_and_replicas_stay_ready(
    serve: Callable[..., Served], tmp_path: Path, mode: str, broken: str
) -> None:
    """A shadow, canary, blue-green or A/B candidate that cannot be loaded (or warmed) never
    makes the replica unready and fails no production request; the embedded controller rolls
    its deployment back, naming the replica's load failure, and the history keeps the
    replica's report."""
    home = tmp_path / "home"
    with iris_registry(home, versions=2) as registry:
        number, cause = broken_candidate(registry, broken)
        served = serve("--scheduler-interval", "0.2", home=home, scheduler=True)
        wait_for(lambda: readyz(served).status_code == 200, 60, "the replica to be ready")
        with Watch(served.url) as watch:
            Rollouts(registry, actor="tester").start("iris", mode, number)
            done = settled(registry)
            wait_for(lambda: not candidate_problems(served), 30,
                     "the replica to drop the rolled-back candidate")  # fmt: skip
        assert done.state == "rolled_back", done.reason
        assert done.updated_by == "controller"
        assert f"{mode} candidate v{number} failed to load on " in done.reason
        assert cause in done.reason
        assert set(watch.ready) == {200}
        assert {status for status, _ in watch.predictions} == {200}
        assert {version for _, version in watch.predictions} == {"1"}
        history = registry.deployments.events("iris")
        (report,) = [e for e in history if e.state == "load_failed"]
        assert report.actor.startswith("replica ")
        assert report.revision == history[-1].revision  # about the deployment as started
        metrics = httpx.get(f"{served.url}/metrics", timeout=5).text
        assert 'watchkeeper_model_load_failures_total{model="iris",role="candidate"}' in metrics


def test_a_replica_reports_an_unloadable_candidate_and_leaves_the_decision_to_the_controller(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    """Without a controller running, a canary whose candidate cannot load stays recorded as
    running (serving never changes a deployment by itself); the replica stays ready, answers
    with production, and shows the candidate's problem with its role and reason in /readyz.
    The controller's next look rolls it back with that reason, and the problem goes away."""
    home = tmp_path / "home"
    with iris_registry(home, versions=2) as registry:
        corrupt(registry, "iris@2")
        served = serve("--without-scheduler", home=home)
        wait_for(lambda: readyz(served).status_code == 200, 60, "the replica to be ready")
        rollouts = Rollouts(registry, actor="tester")
        rollouts.start("iris", "canary", 2)
        (problem,) = wait_for(lambda: candidate_problems(served), 30, "the candidate's problem")
        assert problem["model"] == "iris"
        assert problem["version"] == 2
        assert problem["reason"].startswith("candidate version 2 failed to load: ")
        assert "failed verification" in problem["reason"]
        answer = readyz(served)
        assert answer.status_code == 200
        assert answer.json()["ready"] is True
        assert answer.json()["models"] == {"iris": "1"}
        r = httpx.post(f"{served.url}/v1/models/iris:predict", json={"instances": [ROW]})
        assert (r.status_code, r.headers["x-model-version"]) == (200, "1")
        started = registry.deployments.get("iris")
        assert started is not None
        wait_for(lambda: registry.deployments.load_failures("iris", started.revision), 30,
                 "the replica's report")  # fmt: skip
        assert registry.deployments.get("iris") == started  # still running, unchanged
        (done,) = rollouts.tick()
        assert done.state == "rolled_back"
        assert done.reason.startswith("canary candidate v2 failed to load on ")
        wait_for(lambda: not readyz(served).json()["problems"], 30, "the problem to clear")


def test_a_production_version_that_cannot_load_makes_the_replica_unready_with_the_reason(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    """A replica that cannot load a model's production version, with nothing else answering
    for it, is not ready: /readyz, /ping and /v2/health/ready answer 503 and /readyz says why,
    while /healthz (liveness) stays 200. The load is tried again, and once the files are whole
    again the replica becomes ready by itself."""
    home = tmp_path / "home"
    with iris_registry(home, versions=1) as registry:
        model_file, original = corrupt(registry, "iris@1")
        served = serve("--without-scheduler", home=home)
        answer = wait_for(lambda: (r := readyz(served)).status_code == 503 and r, 60,
                          "the replica to say it is not ready")  # fmt: skip
        body = answer.json()
        assert body["ready"] is False
        assert "model 'iris' is not served: production version 1 failed to load" in body["reason"]
        assert "failed verification" in body["reason"]
        assert [(p["role"], p["version"]) for p in body["problems"]] == [("production", 1)]
        for path in ("/ping", "/v2/health/ready"):
            assert httpx.get(f"{served.url}{path}", timeout=5).status_code == 503, path
        assert httpx.get(f"{served.url}/healthz", timeout=5).status_code == 200
        model_file.write_bytes(original)
        wait_for(lambda: readyz(served).status_code == 200, 90, "the retried load to succeed")
        for path in ("/ping", "/v2/health/ready"):
            assert httpx.get(f"{served.url}{path}", timeout=5).status_code == 200, path
        assert readyz(served).json()["problems"] == []
