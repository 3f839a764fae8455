"""Hot reload under faults: the watcher survives, a stale registry view is reported, pinned
versions load once and stay bounded, and ``name@latest`` follows registrations.

In-process tests drive a ``ModelTable`` over a real registry wrapped to fail on demand; server
tests run ``watchkeeper serve`` in its own process group (killed as a group at teardown).
Traffic goes to 127.0.0.1 only; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.processes import TIME_SCALE, wait_for
from tests.security.conftest import Served, iris_registry
from watchkeeper.config import Settings
from watchkeeper.errors import StoreUnavailable
from watchkeeper.logbook import Logbook
from watchkeeper.registry import Registry
from watchkeeper.registry.live import LiveStatsStore
from watchkeeper.serving.live import LiveStats, Publisher
from watchkeeper.serving.metrics import ServingMetrics
from watchkeeper.serving.pins import PinPolicy
from watchkeeper.serving.readiness import StaleView
from watchkeeper.serving.table import ModelTable

BOUND = 30.0  # seconds any single wait may take before the test fails instead of hanging
ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
SERVE = ("--without-scheduler", "--no-logbook")


class Faulty:
    """A registry whose revisions read fails while ``failures`` > 0 (each failure uses one)."""

    def __init__(self, registry: Registry, error: Callable[[], Exception]) -> None:
        self._registry = registry
        self.error = error
        self.failures = 0
        self.reads = 0

    def revisions(self) -> dict[str, int]:
        self.reads += 1
        if self.failures > 0:
            self.failures -= 1
            raise self.error()
        return self._registry.revisions()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._registry, name)


async def until(predicate: Callable[[], Any], what: str, timeout: float = BOUND) -> Any:
    deadline = time.monotonic() + timeout * TIME_SCALE
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def metric(text: str, pattern: str) -> float:
    found = re.findall(rf"^{pattern} ([0-9.e+-]+)$", text, re.MULTILINE)
    return sum(float(v) for v in found)


def failures_of(metrics: ServingMetrics, task: str) -> float:
    text = metrics.render().decode()
    return metric(text, rf'watchkeeper_background_task_failures_total{{task="{task}"}}')


def test_the_watcher_survives_an_unexpected_exception_counts_it_and_still_follows(
    tmp_path: Path,
) -> None:
    """Promise: an unexpected exception in the reload watcher's registry read is logged,
    counted in /metrics and retried; a promotion and a rollback made after it still reach the
    replica, which stays ready."""
    registry = iris_registry(tmp_path / "home", versions=2)
    faulty = Faulty(registry, lambda: RuntimeError("injected: not a WatchkeeperError"))
    metrics = ServingMetrics()
    table = ModelTable(faulty, metrics=metrics, poll_interval=0.02)  # type: ignore[arg-type]

    async def run() -> None:
        await table.start()
        try:
            assert table.get("iris").number == "1"
            faulty.failures, reads = 1, faulty.reads
            await until(lambda: faulty.reads > reads + 1, "a read after the failure")
            await asyncio.to_thread(registry.promote, "iris", 2, "production")
            await until(lambda: table.get("iris").number == "2", "the promotion")
            v2 = table.get("iris")
            await asyncio.to_thread(registry.rollback, "iris")
            await until(lambda: table.get("iris").number == "1", "the rollback")
            assert failures_of(metrics, "reload_watcher") == 1
            assert await table.resolve("iris@2") is v2  # retired moments ago: no second load
            loads = r'watchkeeper_model_loads_total{model="iris",role="[a-z]+"}'
            assert metric(metrics.render().decode(), loads) == 2  # v1 was revived, not reloaded
            assert table.readiness()["ready"], table.readiness()
        finally:
            await table.stop()

    try:
        asyncio.run(run())
    finally:
        registry.close()


@pytest.mark.parametrize("stale_view", ["degraded", "unready"])
def test_a_stale_registry_view_is_reported_with_the_reason_until_reads_work(
    tmp_path: Path, stale_view: StaleView
) -> None:
    """Promise: while the registry cannot be read for longer than the staleness bound, the
    replica says so with the reason and keeps answering from what it loaded: degraded but
    ready by default (a database outage every replica sees must not empty the load balancer),
    not ready with ``--stale-view unready``; the failures are counted; once reads work again
    it is plainly ready by itself."""
    registry = iris_registry(tmp_path / "home")
    faulty = Faulty(registry, lambda: StoreUnavailable("injected: the database is away"))
    metrics = ServingMetrics()
    table = ModelTable(faulty, metrics=metrics, poll_interval=0.02,  # type: ignore[arg-type]
                       stale_view=stale_view)  # fmt: skip

    async def run() -> None:
        await table.start()
        try:
            state = table.readiness()
            assert state["status"] == "ready", state
            # the bound is max(5 s, 20 polls) by default: shortened here, once started (a
            # loaded machine may take longer than the short bound to load the first version)
            table.stale_after = 0.5
            faulty.failures = 10**9
            expected = "degraded" if stale_view == "degraded" else "not_ready"
            state = await until(lambda: (s := table.readiness())["status"] == expected and s,
                                f"the replica to turn {expected}")  # fmt: skip
            assert "registry view is stale" in state["reason"], state
            assert state["ready"] is (stale_view == "degraded")
            assert table.get("iris").number == "1"  # still serving what is loaded
            assert failures_of(metrics, "reload_watcher") >= 1
            faulty.failures = 0
            await until(lambda: table.readiness()["status"] == "ready", "plainly ready again")
        finally:
            await table.stop()

    try:
        asyncio.run(run())
    finally:
        registry.close()


def test_pinned_loads_are_single_flight_bounded_and_every_evicted_batcher_is_closed(
    tmp_path: Path,
) -> None:
    """Promise: 16 concurrent first asks for ``iris@2`` cost one load and get one loaded
    version; at most ``max_versions`` pinned versions stay loaded (least recently used goes),
    none stays idle past ``idle_seconds``, and every evicted version's batcher is closed."""
    registry = iris_registry(tmp_path / "home", versions=4)
    metrics = ServingMetrics()
    table = ModelTable(registry, metrics=metrics, poll_interval=0.02, retire_grace=0.05,
                       pins=PinPolicy(max_versions=2, idle_seconds=1.0))  # fmt: skip

    def loads() -> float:
        text = metrics.render().decode()
        return metric(text, r'watchkeeper_model_loads_total{model="iris",role="pinned"}')

    async def run() -> None:
        await table.start()
        try:
            first = await asyncio.gather(*[table.resolve("iris@2") for _ in range(16)])
            assert {id(d) for d in first} == {id(first[0])}
            assert loads() == 1
            v3 = await table.resolve("iris@3")
            await table.resolve("iris@2")  # v2 is now the most recently used
            await table.resolve("iris@4")  # over the bound: v3 goes
            assert sorted(table.pinned.keys()) == [("iris", 2), ("iris", 4)]
            await until(lambda: v3.batcher.closed, "the evicted batcher to close")
            assert await table.resolve("iris@1") is table.get("iris")  # production: not pinned
            kept = table.pinned.values()
            await until(lambda: len(table.pinned) == 0, "idle versions to be unloaded")
            await until(lambda: all(d.batcher.closed for d in kept), "idle batchers to close")
            assert loads() == 3
        finally:
            await table.stop()

    try:
        asyncio.run(run())
    finally:
        registry.close()


def test_the_live_stats_publisher_survives_failures_counts_them_and_sends_the_totals(
    tmp_path: Path,
) -> None:
    """Promise: a publication of live statistics that fails unexpectedly is logged, counted
    and retried with backoff; the thread carries on and the totals arrive in the end."""
    stats = LiveStats(replica="r")
    stats.observe_request("iris", 1, 0.01, 200)
    written: list[int] = []
    failed: list[str] = []
    attempts = iter([RuntimeError("injected"), RuntimeError("injected")])

    def write(items: list[Any]) -> int:
        error = next(attempts, None)
        if error is not None:
            raise error
        written.append(len(items))
        return len(items)

    publisher = Publisher(stats, write, interval=0.01, on_failure=failed.append)
    publisher.start()
    try:
        wait_for(lambda: written, BOUND, "the totals to be published")
        assert failed == ["live_stats", "live_stats"]
        assert publisher.problem() is None
    finally:
        publisher.close()


def _pinned_loads(served: Served) -> float:
    text = httpx.get(f"{served.url}/metrics", timeout=5).text
    return metric(text, r'watchkeeper_model_loads_total{model="iris",role="pinned"}')


def test_sixteen_concurrent_first_requests_to_a_pinned_version_load_it_once(
    tmp_path: Path, serve
) -> None:
    """Promise (a running server): sixteen concurrent first requests to ``iris@2`` all get
    version 2 from one load; with ``--max-pinned-versions 2`` a third pinned version unloads
    the least recently used one."""
    iris_registry(tmp_path / "home", versions=4).close()
    served = serve(*SERVE, "--max-pinned-versions", "2", home=tmp_path / "home")
    wait_for(lambda: httpx.get(f"{served.url}/readyz").status_code == 200, BOUND, "ready")
    barrier = threading.Barrier(16)
    answers: list[tuple[int, str]] = []

    def ask() -> None:
        with httpx.Client(base_url=served.url, timeout=BOUND) as client:
            barrier.wait()
            r = client.post("/v1/models/iris@2:predict", json=ROW)
            answers.append((r.status_code, r.json().get("model_version", r.text)))

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(BOUND)
    assert answers == [(200, "2")] * 16
    assert _pinned_loads(served) == 1
    for version in (3, 4):
        r = httpx.post(f"{served.url}/v1/models/iris@{version}:predict", json=ROW, timeout=BOUND)
        assert (r.status_code, r.json()["model_version"]) == (200, str(version))
    info = httpx.get(f"{served.url}/metrics").text
    pinned = re.findall(r'^watchkeeper_model_info{[^}]*role="pinned"[^}]*} 1.0$', info, re.M)
    assert len(pinned) == 2, pinned
    assert not any('version="2"' in line for line in pinned), pinned  # the least recently used
    assert _pinned_loads(served) == 3


def test_latest_and_aliases_follow_the_registry_on_a_running_server(tmp_path: Path, serve) -> None:
    """Promise (issue 17, item 4): registering a version moves ``iris@latest`` on a running
    server within a bound, and moving an alias moves ``iris@<alias>``."""
    registry = iris_registry(tmp_path / "home", versions=1)
    registry.set_alias("iris", 1, "champion")
    served = serve(*SERVE, home=tmp_path / "home")

    def answered(ref: str) -> str:
        r = httpx.post(f"{served.url}/v1/models/{ref}:predict", json=ROW, timeout=BOUND)
        assert r.status_code == 200, r.text
        return str(r.json()["model_version"])

    try:
        assert answered("iris@latest") == "1"
        assert answered("iris@champion") == "1"
        X, y = load_iris(return_X_y=True, as_frame=True)
        X.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in X.columns]
        model = LogisticRegression(max_iter=500, C=0.3).fit(X, y)
        registry.register("iris", model, input_example=X)
        wait_for(lambda: answered("iris@latest") == "2", 10, "iris@latest to answer with v2")
        registry.set_alias("iris", 2, "champion")
        wait_for(lambda: answered("iris@champion") == "2", 10, "the alias to move")
        assert answered("iris") == "1"  # production is unchanged
    finally:
        registry.close()


@pytest.mark.postgres
def test_the_database_away_leaves_the_replica_serving_degraded_and_everything_resumes(
    tmp_path: Path, serve, relayed_postgres
) -> None:
    """Promise (a running server): with the metadata database unreachable beyond the staleness
    bound (max(5 s, 20 polls)), predictions keep coming from the loaded version and are written
    to the logbook, /readyz answers 200 ``degraded`` naming the stale registry view, the
    watcher's failures are counted; when the database returns, /readyz is plainly ready, the
    live totals of the requests answered meanwhile reach the database (nothing lost) and a
    promotion made after the return reaches the replica."""
    url, relay = relayed_postgres
    home = tmp_path / "home"
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = ["a", "b", "c", "d"]
    settings = Settings(home=home, database_url=url, user="tester")
    with Registry(settings) as registry:
        for c in (1.0, 0.01):
            model = LogisticRegression(C=c, max_iter=300).fit(X, y)
            registry.register("iris", model, input_example=X)
        registry.promote("iris", 1, "production")
    served = serve("--without-scheduler", "--live-stats-interval", "0.2",
                   "--log-flush-interval", "0.2", home=home,
                   env={"WATCHKEEPER_DATABASE_URL": url})  # fmt: skip
    wait_for(lambda: httpx.get(f"{served.url}/readyz").status_code == 200, BOUND, "ready")
    relay.close()
    try:
        answer = wait_for(
            lambda: (
                (r := httpx.get(f"{served.url}/readyz", timeout=5)).json()["status"] == "degraded"
                and r
            ),
            BOUND,
            "/readyz degraded",
        )
        assert answer.status_code == 200
        assert "registry view is stale" in answer.json()["reason"], answer.json()
        for _ in range(5):
            r = httpx.post(f"{served.url}/v1/models/iris:predict", json=ROW, timeout=BOUND)
            assert (r.status_code, r.json()["model_version"]) == (200, "1")
        text = httpx.get(f"{served.url}/metrics", timeout=5).text
        assert metric(text, r'watchkeeper_background_task_failures_total{task="reload_watcher"}')
        logbook = Logbook(settings.resolved_logbook_url)
        wait_for(lambda: _logged(logbook) >= 5, BOUND, "the outage's requests in the logbook")
    finally:
        relay.open()
    wait_for(lambda: httpx.get(f"{served.url}/readyz", timeout=5).json()["status"] == "ready",
             60, "/readyz to recover")  # fmt: skip
    with Registry(settings) as registry:
        live = LiveStatsStore(registry.engine)
        wait_for(lambda: _live_requests(live) >= 5, 60, "the outage's live totals to arrive")
        registry.promote("iris", 2, "production")
    wait_for(lambda: httpx.post(f"{served.url}/v1/models/iris:predict", json=ROW,
                                timeout=BOUND).json()["model_version"] == "2",
             BOUND, "the promotion to reach the replica")  # fmt: skip


def _logged(logbook: Logbook) -> int:
    now = datetime.now(UTC)
    return logbook.read("iris", now - timedelta(hours=1), now + timedelta(hours=1)).num_rows


def _live_requests(live: LiveStatsStore) -> int:
    now = datetime.now(UTC)
    merged = live.merged("iris", now - timedelta(hours=1), now + timedelta(hours=1))
    return int(merged.get((1, "requests"), [0])[0])
