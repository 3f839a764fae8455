"""The multi-replica proof: three servers on one PostgreSQL database, schedulers beside them.

Three ``watchkeeper serve`` processes on their own ports share one PostgreSQL schema (the
registry, deployments, live statistics, leases) and one directory of artifacts and logbook
segments; two ``watchkeeper scheduler`` processes compete for the controller's lease. A client
thread sends single-row requests to the three replicas in turn and records every answer. The
tests run in order: a canary rollout through a scheduler failover, a rollback, then one server
stopped under load (the last test: it leaves two replicas).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sklearn.linear_model import LogisticRegression
from sqlalchemy import select

from tests.conftest import fresh_schema
from tests.processes import (
    ROOT,
    TIME_SCALE,
    Cluster,
    Load,
    event_at,
    holder_pid,
    running,
    training_data,
    wait_for,
)
from watchkeeper.config import Settings
from watchkeeper.logbook import Logbook
from watchkeeper.registry import Registry
from watchkeeper.registry.schema import LiveStatsRow

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

MODELS = ("scaled", "steady")
REPLICAS = 3
LEASE_TTL = 2.0
SCHEDULER = ["--interval", "0.5", "--lease-ttl", str(LEASE_TTL), "--no-monitors",
             "--log-level", "info"]  # fmt: skip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    home = tmp_path_factory.mktemp("replicas")
    shared = home / "shared"  # artifacts and logbook: one directory for every process
    with fresh_schema() as database_url:
        env = {**os.environ, "WATCHKEEPER_HOME": str(home), "WATCHKEEPER_USER": "tester",
               "WATCHKEEPER_DATABASE_URL": database_url, "PYTHONPATH": str(ROOT),
               "WATCHKEEPER_ARTIFACT_URL": str(shared / "artifacts"),
               "WATCHKEEPER_LOGBOOK_URL": str(shared / "logbook")}  # fmt: skip
        settings = Settings(home=home, database_url=database_url, user="tester",
                            artifact_url=env["WATCHKEEPER_ARTIFACT_URL"],
                            logbook_url=env["WATCHKEEPER_LOGBOOK_URL"])  # fmt: skip
        X, y = training_data()
        with Registry(settings) as registry:
            for name in MODELS:
                registry.register(name, LogisticRegression().fit(X, y), input_example=X,
                                  reference_data=X, stage="production")  # fmt: skip
            registry.register("scaled", LogisticRegression(C=0.05).fit(X, y), input_example=X,
                              reference_data=X)  # fmt: skip
            rows = X.sample(1000, random_state=1).to_dict("records")
            with running(home, env, registry, rows, replicas=REPLICAS, schedulers=2,
                         scheduler_args=SCHEDULER, models=len(MODELS)) as cluster:  # fmt: skip
                yield cluster


def test_a_canary_advances_on_all_three_replicas_through_a_scheduler_failover(
    cluster: Cluster,
) -> None:
    with Load(cluster.urls, cluster.rows, "scaled") as load:
        cluster.cli("deploy", "canary", "scaled", "2", "--steps", "10,50,100",
                    "--step-time", "2s", "--step-requests", "100")  # fmt: skip
        wait_for(lambda: cluster.deployment("scaled").step == 1, 60, "the first step to pass")
        holder = cluster.lease_holder()
        assert holder is not None
        (leader,) = [p for p in cluster.schedulers if holder_pid(holder) == p.pid]
        leader.send_signal(signal.SIGKILL)  # no goodbye: the lease must expire
        killed = time.time()
        leader.wait()
        taken = wait_for(lambda: (h := cluster.lease_holder()) != holder and h, LEASE_TTL + 5,
                         "the standby scheduler to take the lease")  # fmt: skip
        took_over = time.time() - killed
        done = wait_for(lambda: (d := cluster.deployment("scaled")).state != "running" and d,
                        60, "the rollout to finish")  # fmt: skip
        time.sleep(1.0)
    assert done.state == "promoted", done.reason
    assert cluster.production("scaled") == 2
    assert took_over < LEASE_TTL + 1.0
    assert holder_pid(taken) in {p.pid for p in cluster.schedulers if p.poll() is None}
    assert load.failed() == []
    events = cluster.events("scaled")
    # resumed where the record said it was: no step repeated, none skipped
    assert [(e["step"], e["share"], e["state"]) for e in events] == [
        (0, 0.1, "running"), (1, 0.5, "running"), (2, 1.0, "running"), (2, 1.0, "promoted")
    ]  # fmt: skip
    assert event_at(events[2]) > killed  # the last steps were taken by the new leader
    # half a second after each step began, every replica answers with its share
    for event, following in zip(events, events[1:], strict=False):
        for replica in range(REPLICAS):
            window = load.between(event_at(event) + 0.5, event_at(following))
            seen = Counter(a.version for a in window if a.replica == replica)
            if event["share"] < 1.0:
                assert min(seen["1"], seen["2"]) > 0, (event, replica, seen)
            else:
                assert set(seen) == {"2"}, (event, replica, seen)
    after = load.between(event_at(events[-1]) + 0.5)
    assert {a.replica for a in after} == set(range(REPLICAS))
    assert {a.version for a in after} == {"2"}


def test_a_rollback_reaches_all_three_replicas_within_a_second(cluster: Cluster) -> None:
    assert cluster.production("scaled") == 2
    with Load(cluster.urls, cluster.rows, "scaled", seed=1) as load:
        time.sleep(1.0)
        cluster.cli("models", "rollback", "scaled", "--reason", "replica proof")
        back = time.time()  # the change is committed when the command returns
        time.sleep(2.0)
    assert load.failed() == []
    assert cluster.production("scaled") == 1
    for replica in range(REPLICAS):
        answers = [a for a in load.answers if a.replica == replica]
        last_v2 = max(a.at for a in answers if a.version == "2")
        # a second on a quiet machine (bench/rollout.py, bench/scale.py measure ~0.2 s)
        assert last_v2 - back < 1.0 * TIME_SCALE, (replica, last_v2 - back)
        later = {a.version for a in answers if a.at > last_v2}
        assert later == {"1"}, (replica, later)


def test_a_server_stopped_under_load_loses_no_logged_prediction(cluster: Cluster) -> None:
    """SIGTERM (what Kubernetes and systemd send) drains the replica: it answers what it
    accepted, writes its logbook buffer and its live totals, then exits. The monitors then see
    every replica's traffic: the logbook's rows and the live request counts of all three."""
    start_at = datetime.now(UTC) - timedelta(seconds=1)
    victim = cluster.servers[-1]
    with Load(cluster.urls, cluster.rows, "steady", seed=2) as load:
        wait_for(lambda: sum(a.replica == REPLICAS - 1 for a in load.answers) >= 300, 60,
                 "300 answers from the last replica")  # fmt: skip
        victim.send_signal(signal.SIGTERM)
        stopped = time.time()
        assert victim.wait(timeout=30) == 0
        time.sleep(1.0)  # the survivors go on answering
    failed = load.failed()
    assert [a for a in failed if a.replica != REPLICAS - 1] == []  # zero on the survivors
    assert all(a.at >= stopped for a in failed)  # the stopped one refused only after SIGTERM
    answered = [a for a in load.answers if a.status == 200]
    by_replica = Counter(a.replica for a in answered)
    assert sorted(by_replica) == list(range(REPLICAS))
    ids = {a.request_id for a in answered}
    assert len(ids) == len(answered)
    end = datetime.now(UTC) + timedelta(seconds=1)

    def logged() -> set[str]:
        table = Logbook(cluster.env["WATCHKEEPER_LOGBOOK_URL"]).read(
            "steady", start_at, end, columns=["request_id"]
        )
        return set(table.column("request_id").to_pylist())

    wait_for(lambda: ids <= logged(), 10, "the survivors to flush their logbook buffers")
    assert logged() == ids  # every answered request exactly once, none invented

    report = json.loads(cluster.cli("monitor", "run", "steady", "--window", "15m", "--json"))
    assert report["rows"] == len(answered)
    operational = {r["statistic"]: r["value"] for r in report["results"]
                   if r["check"] == "operational"}  # fmt: skip
    assert operational["requests"] == len(answered)
    with cluster.registry.engine.connect() as conn:
        replicas = conn.execute(
            select(LiveStatsRow.replica).where(LiveStatsRow.model_name == "steady").distinct()
        ).all()
    assert len(replicas) == REPLICAS
