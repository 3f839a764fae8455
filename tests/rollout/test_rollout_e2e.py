"""Rollouts end to end: real server processes under load, a real scheduler, short steps.

Two ``watchkeeper serve`` replicas and a ``watchkeeper scheduler`` share one temporary
``WATCHKEEPER_HOME`` (SQLite). While a client thread sends single-row requests to both replicas
(recording the status and ``X-Model-Version`` of every answer), deployments are started with the
CLI and driven by the scheduler alone. Each scenario has a model of its own, registered as:
v1 a good LogisticRegression (production), v2 another good one, and for ``guarded`` also v3 that
raises on ~10% of inputs, v4 that takes 100 ms a call (30 ms hid in a loaded machine's p99
noise), v5 that always answers one class.
Steps last 1 s and 100 candidate requests; the scheduler looks every 0.5 s (a look reads the
step's logbook rows; every 0.2 s it took as much CPU as a server and starved the servers).
About 90 s on two cores.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

from tests.processes import (
    ROOT,
    Cluster,
    Load,
    event_at,
    holder_pid,
    running,
    training_data,
    wait_for,
)
from tests.rollout.candidates import Flaky, Slow
from watchkeeper.config import Settings
from watchkeeper.registry import Registry
from watchkeeper.serving.routing import bucket

pytestmark = pytest.mark.slow

MODELS = ("ladder", "guarded", "switch", "split", "failover", "abtest")
SCHEDULER = ["--interval", "0.5", "--lease-ttl", "2", "--no-monitors", "--log-level", "info"]
LEASE_TTL = 2.0
STEP = ["--step-time", "1s", "--step-requests", "100"]  # the shortest reliable steps


def _register(registry: Registry, X: pd.DataFrame, y: pd.Series) -> None:
    first = LogisticRegression().fit(X, y)
    second = LogisticRegression(C=0.05).fit(X, y)
    for name in MODELS:
        registry.register(name, first, input_example=X, reference_data=X, stage="production")
        registry.register(name, second, input_example=X, reference_data=X)
    limit = float(X["f0"].quantile(0.9))
    registry.register("guarded", Flaky(first, limit), input_example=X)  # v3
    registry.register("guarded", Slow(first, 0.1), input_example=X, reference_data=X)  # v4
    constant = DummyClassifier(strategy="constant", constant=1).fit(X, y)
    registry.register("guarded", constant, input_example=X, reference_data=X)  # v5


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    home = tmp_path_factory.mktemp("rollout-e2e")
    settings = Settings(home=home, user="tester")
    X, y = training_data()
    env = {**os.environ, "WATCHKEEPER_HOME": str(home), "WATCHKEEPER_USER": "tester",
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    env.pop("WATCHKEEPER_DATABASE_URL", None)
    with Registry(settings) as registry:
        _register(registry, X, y)
        rows = X.sample(1000, random_state=1).to_dict("records")
        with running(home, env, registry, rows, replicas=2, schedulers=1,
                     scheduler_args=SCHEDULER, models=len(MODELS)) as cluster:  # fmt: skip
            yield cluster


# --- a. a good candidate goes all the way ------------------------------------------------------


def test_good_candidate_goes_shadow_canary_production_with_no_failed_request(
    cluster: Cluster,
) -> None:
    with Load(cluster.urls, cluster.rows, "ladder") as load:
        cluster.cli("deploy", "shadow", "ladder", "2", "--then", "canary", "--steps",
                    "10,50,100", *STEP)  # fmt: skip
        done = cluster.settled("ladder")
        time.sleep(1.0)
    events = cluster.events("ladder")
    assert done.state == "promoted", events[-1]["reason"]
    assert cluster.production("ladder") == 2
    assert load.failed() == []
    # shadow, then every canary step, each judged by every guard, by the controller alone
    assert [(e["mode"], e["share"], e["state"]) for e in events] == [
        ("shadow", 1.0, "running"), ("canary", 0.1, "running"), ("canary", 0.5, "running"),
        ("canary", 1.0, "running"), ("canary", 1.0, "promoted"),
    ]  # fmt: skip
    assert {e["actor"] for e in events[1:]} == {"controller"}
    for event in events[1:]:
        judged = {c["name"]: c["status"] for c in event["details"]["checks"]}
        assert judged.pop("performance", "waiting") == "waiting"  # no labels came back
        assert set(judged.values()) == {"ok"}, event
    canary_start = event_at(events[1])
    during = load.between(canary_start, event_at(events[-1]))
    assert {"1", "2"} <= {a.version for a in during}  # the candidate answered a share
    assert {a.version for a in load.between(event_at(events[-1]) + 1.0)} == {"2"}


# --- b. bad candidates are rolled back at the first step ----------------------------------------


@pytest.mark.parametrize(
    ("version", "guard"),
    [(3, "error_rate"), (4, "latency_p99_ratio"), (5, "prediction_distance")],
    ids=["errors-on-10pct", "100ms-slower", "one-class-only"],
)
def test_a_bad_candidate_is_rolled_back_at_the_first_step(
    cluster: Cluster, version: int, guard: str
) -> None:
    with Load(cluster.urls, cluster.rows, "guarded", seed=version) as load:
        cluster.cli("deploy", "canary", "guarded", str(version), "--steps", "10,50,100", *STEP)
        done = cluster.settled("guarded")
        time.sleep(1.5)
    assert done.state == "rolled_back", done.reason
    assert (done.step, done.share, done.candidate) == (0, 0.0, version)
    assert done.updated_by == "controller"
    assert done.reason.startswith("guard failed: ")
    assert guard in done.reason
    event = cluster.events("guarded")[-1]
    assert {c["name"]: c["status"] for c in event["details"]["checks"]}[guard] == "fail"
    assert cluster.production("guarded") == 1
    # within a second of the rollback, the candidate answers nothing on either replica
    after = load.between(event_at(event) + 1.0)
    assert len({a.replica for a in after}) == 2
    assert {a.version for a in after} == {"1"}
    assert [a for a in after if a.status != 200] == []
    if version != 3:  # only the flaky candidate fails requests
        assert load.failed() == []


# --- c. blue-green ------------------------------------------------------------------------------


def test_blue_green_switch_and_switch_back_with_no_failed_request(cluster: Cluster) -> None:
    with Load(cluster.urls, cluster.rows, "switch") as load:
        cluster.cli("deploy", "bluegreen", "switch", "2", "--keep", "10m")
        wait_for(lambda: all(_loaded(url, "switch", 2) for url in cluster.urls), 10,
                 "both replicas to load and warm version 2")  # fmt: skip
        assert {a.version for a in load.between(time.time() - 0.5)} == {"1"}  # only loaded
        switched = _timed(lambda: cluster.cli("deploy", "promote", "switch"))
        time.sleep(2.0)
        back = _timed(lambda: cluster.cli("models", "rollback", "switch"))
        time.sleep(2.0)
    assert load.failed() == []
    assert cluster.production("switch") == 1
    for replica in (0, 1):
        answers = [a for a in load.answers if a.replica == replica]
        # each replica follows within a second, and never flips back in between
        last_v1 = max(a.at for a in answers if a.at < back and a.version == "1")
        assert last_v1 - switched < 1.0
        assert {a.version for a in answers if last_v1 < a.at < back} == {"2"}
        last_v2 = max(a.at for a in answers if a.version == "2")
        assert last_v2 - back < 1.0
        assert {a.version for a in answers if a.at > last_v2} == {"1"}


def _loaded(url: str, model: str, version: int) -> bool:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return bool(re.search(rf'watchkeeper_model_info{{[^}}]*model="{model}"[^}}]*'
                          rf'version="{version}"[^}}]*}} 1\.0', text))  # fmt: skip


def _timed(action: Callable[[], object]) -> float:
    """When ``action`` returned (the change is committed), as ``time.time()``."""
    action()
    return time.time()


# --- d. realised share and sticky routing keys --------------------------------------------------


def test_canary_share_is_realised_and_routing_keys_stick(cluster: Cluster) -> None:
    keys = [f"user-{i}" for i in range(400)]
    cluster.cli("deploy", "canary", "split", "2", "--steps", "20,100", "--step-time", "10m")
    with (
        Load(cluster.urls, cluster.rows, "split", seed=1) as free,
        Load(cluster.urls, cluster.rows, "split", keys=keys) as keyed,
    ):
        wait_for(lambda: {a.replica for a in free.answers if a.version == "2"} == {0, 1}, 10,
                 "both replicas to route to the canary")  # fmt: skip
        start = time.time()
        wait_for(lambda: len(free.between(start)) >= 1500 and len(keyed.between(start)) >= 1500,
                 60, "1500 answers of each kind")  # fmt: skip
    assert cluster.deployment("split").state == "running"  # a good candidate is not rolled back
    cluster.cli("deploy", "abort", "split")
    assert free.failed() == keyed.failed() == []
    answers = free.between(start)
    share = sum(a.version == "2" for a in answers) / len(answers)
    assert abs(share - 0.2) < 4 * math.sqrt(0.2 * 0.8 / len(answers)), share
    seen: dict[str, set[str | None]] = {}
    for a in keyed.between(start):
        assert a.key is not None
        seen.setdefault(a.key, set()).add(a.version)
    assert all(len(versions) == 1 for versions in seen.values())  # one arm per key
    for key, (version,) in seen.items():  # the arm is the key's hash bucket, on both replicas
        assert (version == "2") == (bucket("split", key) < 0.2)
    keyed_share = sum(v == {"2"} for v in seen.values()) / len(seen)
    assert abs(keyed_share - 0.2) < 4 * math.sqrt(0.2 * 0.8 / len(seen)), keyed_share


# --- f. A/B test over feedback ------------------------------------------------------------------


def test_ab_test_reports_arm_means_an_always_valid_p_value_and_a_decision(
    cluster: Cluster,
) -> None:
    cluster.cli("deploy", "ab", "abtest", "2", "--share", "50", "--metric", "conversion")
    rng = random.Random(5)
    rates = {"1": 0.10, "2": 0.30}  # a true effect: the candidate converts more
    outcomes: dict[str, list[float]] = {"1": [], "2": []}
    feedback = []
    clients = [httpx.Client(base_url=url, timeout=10) for url in cluster.urls]
    try:
        wait_for(lambda: _predict(clients[0], "abtest", cluster.rows[0], "probe")[1] is not None
                 and all(_loaded(url, "abtest", 2) for url in cluster.urls), 10,
                 "the A/B split to be loaded")  # fmt: skip
        time.sleep(0.3)  # both replicas have applied the split
        for i in range(800):
            key = f"user-{i}"
            request_id, version = _predict(clients[i % 2], "abtest", cluster.rows[i], key)
            assert version in rates
            again = _predict(clients[(i + 1) % 2], "abtest", cluster.rows[i], key)
            assert again[1] == version  # sticky per user, whichever replica answers
            converted = float(rng.random() < rates[version])
            outcomes[version].append(converted)
            feedback.append({"request_id": request_id, "outcome": {"conversion": converted}})
        for chunk in range(0, len(feedback), 200):
            answer = clients[0].post("/v1/feedback", json=feedback[chunk : chunk + 200])
            assert answer.status_code < 300, answer.text
    finally:
        for client in clients:
            client.close()

    def analysed() -> dict[str, Any] | None:
        ab = json.loads(cluster.cli("deploy", "status", "abtest", "--json"))["ab"]
        complete = ab is not None and ab["control"]["n"] == len(outcomes["1"])
        return ab if complete and ab["treatment"]["n"] == len(outcomes["2"]) else None

    ab = wait_for(analysed, 15, "the logbook to hold every prediction and outcome")
    assert ab["control"]["mean"] == pytest.approx(np.mean(outcomes["1"]))
    assert ab["treatment"]["mean"] == pytest.approx(np.mean(outcomes["2"]))
    assert ab["difference"] == pytest.approx(np.mean(outcomes["2"]) - np.mean(outcomes["1"]))
    assert ab["ci_lower"] > 0
    assert ab["p_value"] < 0.05
    assert ab["decision"] == "treatment_better"
    assert "treatment_better" in cluster.cli("deploy", "status", "abtest")
    cluster.cli("deploy", "abort", "abtest")


def _predict(client: httpx.Client, model: str, row: dict[str, float], key: str
             ) -> tuple[str, str | None]:  # fmt: skip
    answer = client.post(f"/v1/models/{model}:predict", json={"instances": [row]},
                         headers={"x-routing-key": key})  # fmt: skip
    assert answer.status_code == 200, answer.text
    return answer.headers["x-request-id"], answer.headers.get("x-model-version")


# --- e. controller failover ---------------------------------------------------------------------


def test_another_scheduler_takes_over_mid_rollout_and_finishes_it(cluster: Cluster) -> None:
    first = cluster.lease_holder()
    assert first is not None
    second = cluster.start_scheduler()
    log = cluster.home / f"scheduler-{len(cluster.schedulers) - 1}.log"
    wait_for(lambda: "watchkeeper scheduler" in log.read_text(), 30, "a second scheduler")
    assert cluster.lease_holder() == first  # the standby waits
    with Load(cluster.urls, cluster.rows, "failover") as load:
        # the promise is the takeover: latency is not judged here (a loaded machine's p99 noise
        # once rolled this good candidate back); the 100ms-slower case judges it
        cluster.cli("deploy", "canary", "failover", "2", "--steps", "10,50,100", *STEP,
                    "--max-latency-ratio", "10")  # fmt: skip
        wait_for(lambda: cluster.deployment("failover").step == 1, 60, "the first step to pass")
        holder = cluster.lease_holder()
        assert holder is not None
        (leader,) = [p for p in cluster.schedulers if holder_pid(holder) == p.pid]
        leader.kill()
        killed = time.time()
        leader.wait()
        taken = wait_for(lambda: (h := cluster.lease_holder()) != holder and h, LEASE_TTL + 5,
                         "the standby scheduler to take the lease")  # fmt: skip
        took = time.time() - killed
        done = cluster.settled("failover")
        time.sleep(0.5)
    survivors = {p.pid for p in cluster.schedulers if p.poll() is None}
    assert second.pid in survivors
    assert holder_pid(taken) in survivors
    assert took < LEASE_TTL + 1.0
    assert done.state == "promoted", done.reason
    assert cluster.production("failover") == 2
    assert load.failed() == []
    events = cluster.events("failover")
    # resumed where the record said it was: no step repeated, none skipped
    assert [(e["step"], e["state"]) for e in events] == [
        (0, "running"), (1, "running"), (2, "running"), (2, "promoted")
    ]  # fmt: skip
    assert event_at(events[2]) > killed  # the last steps were taken by the new leader
