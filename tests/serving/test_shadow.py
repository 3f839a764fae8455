"""Shadow copies: scored together off the response path, bounded, and the same request as
production's (its input problems are counted once)."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from tests.serving.conftest import start_server
from watchkeeper.config import Settings
from watchkeeper.errors import InvalidInput
from watchkeeper.logbook import Logbook
from watchkeeper.registry import Registry
from watchkeeper.rollout.controller import Rollouts
from watchkeeper.serving.app import ServeOptions
from watchkeeper.serving.batch import ParsedBatch, ValidatedBatch
from watchkeeper.serving.batcher import MicroBatcher
from watchkeeper.serving.live import LiveStats
from watchkeeper.serving.shadow import Copy, ShadowCopier, ShadowPolicy
from watchkeeper.serving.table import Deployed


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


# --- ShadowCopier on its own: real model, batcher, live statistics and logbook -------------


@pytest.fixture
def shadow_of_iris(tmp_path, iris_data):
    X, y = iris_data
    with Registry(Settings(home=tmp_path / "home")) as registry:
        registry.register("iris", LogisticRegression(max_iter=1000).fit(X, y), input_example=X)
        version = registry.get("iris@1")
        model = registry.load_version(version)
    calls: list[int] = []

    def predict(data, want_proba):  # the model's own call, counted
        calls.append(len(data))
        return model.predict(data), model.predict_proba(data) if want_proba else None

    deployed = Deployed(version=version, model=model, validator=None,
                        batcher=MicroBatcher(predict, name="iris"))  # fmt: skip
    return deployed, X, calls


def _copier(policy: ShadowPolicy, logbook=None):
    counted: Counter[str] = Counter()
    live = LiveStats(replica="r")
    copier = ShadowCopier(policy, validate=lambda d, p: pytest.fail("validated again"),
                          count=lambda d, outcome, n: counted.update({outcome: n}),
                          live=live, logbook=logbook)  # fmt: skip
    return copier, counted, live


def _copy(deployed: Deployed, row: np.ndarray, i: int) -> Copy:
    parsed = ParsedBatch(rows=[row.tolist()])
    validated = ValidatedBatch(data=row.reshape(1, -1), n_rows=1)
    return Copy(deployed, parsed, validated, f"req-{i}", None, datetime.now(UTC))


def _live(live: LiveStats, kind: str) -> list[int]:
    return next(list(c.counts) for c in live.drain() if c.kind == kind)


def test_copies_are_scored_together_and_logged_each_under_its_request(
    shadow_of_iris, tmp_path
) -> None:
    deployed, X, calls = shadow_of_iris
    book = Logbook(str(tmp_path / "logbook"))
    copier, counted, live = _copier(ShadowPolicy(linger=0.05, max_rows=64), book)
    rows = X.to_numpy()[::3]  # 50 rows of every class

    async def run() -> None:
        assert all(copier.offer(_copy(deployed, row, i)) for i, row in enumerate(rows))
        await copier.drain()

    asyncio.run(run())
    book.close()
    assert calls == [50]  # one call of the model for the 50 copies
    assert counted == {"ok": 50}
    assert _live(live, "requests") == [50, 50, 0, 0]
    now = datetime.now(UTC)
    logged = book.read("iris", now - timedelta(minutes=5), now + timedelta(minutes=1),
                       role="shadow").to_pandas().set_index("request_id")  # fmt: skip
    ids = [f"req-{i}" for i in range(len(rows))]
    expected = deployed.model.predict(rows)
    assert logged.loc[ids, "prediction"].astype(float).tolist() == expected.astype(float).tolist()
    assert len(set(expected)) == 3


def test_a_full_queue_drops_and_counts_copies(shadow_of_iris) -> None:
    deployed, X, calls = shadow_of_iris
    copier, counted, live = _copier(ShadowPolicy(linger=0.01, max_queued=5))
    rows = X.to_numpy()[:8]

    async def run() -> list[bool]:
        taken = [copier.offer(_copy(deployed, row, i)) for i, row in enumerate(rows)]
        await copier.drain()
        return taken

    assert asyncio.run(run()) == [True] * 5 + [False] * 3
    assert counted == {"ok": 5, "dropped": 3}
    assert _live(live, "shadow_dropped") == [3]


def test_copies_of_a_shadow_unloaded_meanwhile_are_dropped_not_failed(shadow_of_iris) -> None:
    deployed, X, calls = shadow_of_iris
    copier, counted, live = _copier(ShadowPolicy(linger=0.05))

    async def run() -> None:
        for i, row in enumerate(X.to_numpy()[:4]):
            copier.offer(_copy(deployed, row, i))
        await deployed.batcher.close()  # the deployment ended while the copies waited
        await copier.drain()

    asyncio.run(run())
    assert calls == []
    assert counted == {"dropped": 4}


def test_multi_row_copies_get_their_own_rows_and_probabilities(shadow_of_iris, tmp_path) -> None:
    """Copies of 1, 2 and 3 rows, some asking for probabilities, in one call: each is logged
    with its own rows' answers, and probabilities only where its request asked for them."""
    deployed, X, calls = shadow_of_iris
    book = Logbook(str(tmp_path / "logbook"))
    copier, counted, _ = _copier(ShadowPolicy(linger=0.05), book)
    data = X.to_numpy()[::10]  # 15 rows of every class
    sizes, asks = [1, 2, 3, 1, 3, 2, 3], [False, True, False, True, True, False, True]
    copies, start = [], 0
    for i, (n, ask) in enumerate(zip(sizes, asks, strict=True)):
        rows = data[start : start + n]
        parsed = ParsedBatch(rows=rows.tolist(), return_probabilities=ask)
        copies.append(Copy(deployed, parsed, ValidatedBatch(data=rows, n_rows=n), f"req-{i}",
                           None, datetime.now(UTC)))  # fmt: skip
        start += n

    async def run() -> None:
        for c in copies:
            copier.offer(c)
        await copier.drain()

    asyncio.run(run())
    book.close()
    assert calls == [15]
    assert counted == {"ok": 7}
    now = datetime.now(UTC)
    logged = book.read("iris", now - timedelta(minutes=5), now + timedelta(minutes=1),
                       role="shadow").to_pandas()  # fmt: skip
    proba = deployed.model.predict_proba(data)
    start = 0
    for i, (n, ask) in enumerate(zip(sizes, asks, strict=True)):
        mine = logged[logged["request_id"] == f"req-{i}"].sort_values("row")
        expected = deployed.model.predict(data[start : start + n]).astype(float).tolist()
        assert mine["prediction"].astype(float).tolist() == expected
        if ask:  # stored as float32
            logged_proba = np.stack(mine["probabilities"].to_list())
            np.testing.assert_allclose(logged_proba, proba[start : start + n], rtol=1e-6)
        else:
            assert mine["probabilities"].isna().all()
        start += n


def test_copies_of_different_layouts_are_scored_apart(tmp_path, iris_data) -> None:
    """A model without a signature gets what clients sent: arrays and frames, or frames of
    other columns, are never concatenated into one call."""
    X, y = iris_data
    with Registry(Settings(home=tmp_path / "home")) as registry:
        registry.register("iris", LogisticRegression(max_iter=1000).fit(X.to_numpy(), y))
        version = registry.get("iris@1")
        model = registry.load_version(version)
    sizes: list[int] = []

    def predict(data, want_proba):
        sizes.append(len(data))
        return model.predict(np.asarray(data, dtype=float)), None

    deployed = Deployed(version=version, model=model, validator=None,
                        batcher=MicroBatcher(predict, name="iris"))  # fmt: skip
    copier, counted, _ = _copier(ShadowPolicy(linger=0.05))
    frame = X.iloc[:2].reset_index(drop=True)
    batches = [X.to_numpy()[:1], frame, X.to_numpy()[5:7], frame[list(reversed(frame.columns))]]

    async def run() -> None:
        for i, data in enumerate(batches):
            parsed = ParsedBatch(rows=np.asarray(data).tolist())
            copier.offer(Copy(deployed, parsed, ValidatedBatch(data=data, n_rows=len(data)),
                              f"req-{i}", None, datetime.now(UTC)))  # fmt: skip
        await copier.drain()

    asyncio.run(run())
    assert sorted(sizes) == [2, 2, 3]  # the two arrays together, each frame layout alone
    assert counted == {"ok": 4}


def test_a_shadow_answering_the_wrong_number_of_rows_is_counted_as_failing(
    shadow_of_iris,
) -> None:
    deployed, X, _ = shadow_of_iris
    broken = Deployed(version=deployed.version, model=deployed.model, validator=None,
                      batcher=MicroBatcher(lambda data, p: (np.zeros(1), None)))  # fmt: skip
    copier, counted, live = _copier(ShadowPolicy(linger=0.01))

    async def run() -> None:
        for i, row in enumerate(X.to_numpy()[:3]):
            copier.offer(_copy(broken, row, i))
        await copier.drain()

    asyncio.run(run())
    assert counted == {"error": 3}
    assert _live(live, "requests") == [3, 0, 0, 3]


def test_a_full_call_does_not_wait_for_the_linger(shadow_of_iris) -> None:
    deployed, X, calls = shadow_of_iris
    copier, counted, _ = _copier(ShadowPolicy(linger=60.0, max_rows=4))

    async def run() -> None:
        for i, row in enumerate(X.to_numpy()[:4]):
            copier.offer(_copy(deployed, row, i))
        await asyncio.wait_for(copier.drain(), timeout=10)  # not the 60 s linger

    asyncio.run(run())
    assert calls == [4]
    assert counted == {"ok": 4}


@pytest.mark.parametrize("bad", [{"linger": -0.1}, {"max_rows": 0}, {"max_queued": 0}])
def test_an_impossible_policy_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(InvalidInput, match="must be"):
        ShadowPolicy(**bad)  # type: ignore[arg-type]


def test_a_failing_shadow_drain_counts_its_copies_and_carries_on(shadow_of_iris) -> None:
    """Promise (issue 17, item 2): an unexpected failure in a shadow's draining task (here the
    live statistics raising once) is counted through ``on_failure``, the copies it held are
    counted as errors, and later copies are still scored: the copier never stops silently."""
    deployed, X, _ = shadow_of_iris

    class Flaky(LiveStats):
        fail = 1

        def observe_request(self, *args, **kwargs) -> None:
            if self.fail:
                self.fail -= 1
                raise RuntimeError("injected")
            super().observe_request(*args, **kwargs)

    counted: Counter[str] = Counter()
    failures: list[str] = []
    copier = ShadowCopier(ShadowPolicy(linger=0.01), validate=lambda d, p: pytest.fail("again"),
                          count=lambda d, outcome, n: counted.update({outcome: n}),
                          live=Flaky(replica="r"), logbook=None,
                          on_failure=failures.append)  # fmt: skip
    rows = X.to_numpy()

    async def run() -> None:
        for i in range(3):
            copier.offer(_copy(deployed, rows[i], i))
        await copier.drain()
        for i in range(3, 5):
            copier.offer(_copy(deployed, rows[i], i))
        await copier.drain()

    asyncio.run(asyncio.wait_for(run(), 30))
    assert failures == ["shadow_copier"]
    assert counted == {"error": 3, "ok": 2}
