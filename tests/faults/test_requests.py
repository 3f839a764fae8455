"""Every submitted request gets an answer or an error, and a client error never carries internal
exception text.

Unit tests drive the micro-batcher directly (small Python functions as models, bounded waits so a
regression fails instead of hanging); the server tests run ``watchkeeper serve`` in its own
process group, serving Python models that fault on chosen inputs.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.processes import wait_for
from tests.security.conftest import Served, iris_registry
from tests.serving.conftest import start_server
from watchkeeper.config import Settings
from watchkeeper.errors import InvalidInput, PredictionFailed, PredictionTimeout
from watchkeeper.logbook import Logbook
from watchkeeper.registry import Registry
from watchkeeper.serving.app import ServeOptions
from watchkeeper.serving.batch import ValidatedBatch
from watchkeeper.serving.batcher import MAX_HUNG_CALLS, BatchingPolicy, MicroBatcher, Outputs
from watchkeeper.serving.live import LiveStats

BOUND = 30.0  # seconds any single wait may take before the test fails instead of hanging
SECRET = "internal detail /srv/secret.db"  # in a model's exception: never for the client

# Models the server process imports by reference (this module is importable from the repo root).
POISON, SHORT, HANG = 666.0, 555.0, 777.0


class Faulty:
    """Answers 2·x; a row with x == 666 raises, 555 answers one row short, 777 hangs. It passes
    warm-up (a mid-range row)."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        x = frame["x"].to_numpy(dtype=float)
        if (x == POISON).any():
            raise RuntimeError(SECRET)
        if (x == SHORT).any():
            return (x * 2)[:-1]
        if (x == HANG).any():
            time.sleep(120)  # the server's process group is killed at teardown
        return x * 2


class RowSums:
    """No signature: sums each row, whatever its width; slow enough that requests queue up."""

    def predict(self, data: Any) -> np.ndarray:
        time.sleep(0.2)
        sums: np.ndarray = np.asarray(data, dtype=float).sum(axis=1)
        return sums


class Narrow:
    """A canary reading one column where production reads four: its requests may be plain
    values, one per row (which a four-input model refuses)."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return frame["c"].to_numpy(dtype=float) * 10


# ---- the batcher, directly ------------------------------------------------------------------


def _rows(data: Any) -> ValidatedBatch:
    return ValidatedBatch(data=data, n_rows=len(data), findings={})


def _run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, BOUND))


def _sums(data: Any, want_proba: bool) -> Outputs:
    return np.asarray(data, dtype=float).sum(axis=1), None


def test_mixed_widths_in_one_batch_are_all_answered() -> None:
    """Promise: no request waits without bound — three concurrent submissions of widths 3/3/4
    (the reproduced hang) are all answered, each with its own rows."""
    seen: list[tuple[int, ...]] = []

    def model(data: Any, want_proba: bool) -> Outputs:
        seen.append(np.shape(data))
        return _sums(data, want_proba)

    async def scenario() -> list[Outputs]:
        batcher = MicroBatcher(model)
        parts = [np.ones((2, 3)), np.full((1, 3), 2.0), np.full((3, 4), 3.0)]
        answers = await asyncio.gather(*(batcher.submit(_rows(p)) for p in parts))
        await batcher.close()
        return answers

    answers = _run(scenario())
    assert [a[0].tolist() for a in answers] == [[3.0, 3.0], [6.0], [12.0, 12.0, 12.0]]
    assert sorted(seen) == [(3, 3), (3, 4)]  # widths 3 share a call; width 4 has its own


def test_frames_with_columns_in_another_order_are_never_joined() -> None:
    """Promise: requests of different layouts are answered, each as it was sent — a frame with
    its columns in another order is never concatenated into a misaligned batch."""

    def model(data: Any, want_proba: bool) -> Outputs:
        assert isinstance(data, pd.DataFrame)
        return (data["a"] - data["b"]).to_numpy(), None

    async def scenario() -> list[Outputs]:
        batcher = MicroBatcher(model)
        ab = pd.DataFrame({"a": [10.0], "b": [1.0]})
        ba = pd.DataFrame({"b": [2.0, 3.0], "a": [20.0, 30.0]})
        other = pd.DataFrame({"a": [5.0], "b": [5.0], "c": [1.0]})
        return list(await asyncio.gather(*(batcher.submit(_rows(f)) for f in (ab, ba, other))))

    answers = _run(scenario())
    assert [a[0].tolist() for a in answers] == [[9.0], [18.0, 27.0], [0.0]]


def test_a_model_that_raises_fails_every_request_of_its_call() -> None:
    """Promise: a model that raises gives every request of its batch an error (its exception is
    kept as the cause, for the log), and the next call is made as usual."""
    calls = 0

    def model(data: Any, want_proba: bool) -> Outputs:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError(SECRET)
        return _sums(data, want_proba)

    async def scenario() -> tuple[list[Any], Outputs]:
        batcher = MicroBatcher(model)
        first = await asyncio.gather(
            *(batcher.submit(_rows(np.ones((1, 2)))) for _ in range(3)), return_exceptions=True
        )
        return first, await batcher.submit(_rows(np.ones((1, 2))))

    first, later = _run(scenario())
    assert all(isinstance(e, PredictionFailed) for e in first)
    assert all(isinstance(e.__cause__, RuntimeError) for e in first)
    assert SECRET not in " ".join(e.message for e in first)
    assert later[0].tolist() == [2.0]


def test_a_model_answering_the_wrong_number_of_rows_is_an_error() -> None:
    """Promise: a model that returns the wrong number of rows fails its call's requests with an
    error — never a hang, never rows handed to the wrong request."""

    def short(data: Any, want_proba: bool) -> Outputs:
        return np.zeros(len(data) - 1), None

    def long_proba(data: Any, want_proba: bool) -> Outputs:
        return np.zeros(len(data)), np.zeros((len(data) + 1, 2))

    async def scenario(model: Callable[[Any, bool], Outputs], proba: bool) -> list[Any]:
        batcher = MicroBatcher(model)
        return list(
            await asyncio.gather(
                *(batcher.submit(_rows(np.ones((2, 2))), want_proba=proba) for _ in range(3)),
                return_exceptions=True,
            )
        )

    for model, proba in ((short, False), (long_proba, True)):
        errors = _run(scenario(model, proba))
        assert all(isinstance(e, PredictionFailed) for e in errors), errors
        assert re.search(r"returned \d+ (predictions|probability rows) for \d+ rows",
                         errors[0].message)  # fmt: skip


def test_a_hung_model_times_out_and_later_calls_still_run() -> None:
    """Promise: a model that hangs past its timeout gives its requests a 504 error
    (``PredictionTimeout``), the hung call is counted, and later requests are answered on a
    fresh thread while the hung one is still stuck."""
    release = threading.Event()
    faults: list[str] = []

    def model(data: Any, want_proba: bool) -> Outputs:
        if (np.asarray(data) < 0).any():
            release.wait(BOUND)
        return _sums(data, want_proba)

    async def scenario() -> tuple[list[Any], Outputs, int]:
        policy = BatchingPolicy(timeout=5.0, model_timeouts=(("m", 0.2),))
        batcher = MicroBatcher(model, policy=policy, on_fault=faults.append, name="m")
        hung = await asyncio.gather(
            *(batcher.submit(_rows(np.full((1, 2), -1.0))) for _ in range(2)),
            return_exceptions=True,
        )
        later = await batcher.submit(_rows(np.ones((1, 2))))
        stuck = batcher.hung
        release.set()
        while batcher.hung:  # the abandoned thread returns and is counted back
            await asyncio.sleep(0.01)
        await batcher.close()
        return hung, later, stuck

    try:
        hung, later, stuck = _run(scenario())
    finally:
        release.set()
    assert all(isinstance(e, PredictionTimeout) for e in hung), hung
    assert hung[0].http_status == 504
    assert "0.2 s" in hung[0].message
    assert later[0].tolist() == [2.0]
    assert stuck == 1
    assert faults == ["timeout", "returned"]


def test_hung_calls_are_bounded_per_version() -> None:
    """Promise: threads abandoned to hung calls are bounded; past the bound, requests get a 504
    at once instead of starting more threads, until a hung call returns."""
    release = threading.Event()
    started = 0

    def model(data: Any, want_proba: bool) -> Outputs:
        nonlocal started
        started += 1
        release.wait(BOUND)
        return _sums(data, want_proba)

    async def scenario() -> list[Any]:
        batcher = MicroBatcher(model, policy=BatchingPolicy(timeout=0.05))
        out = []
        for _ in range(MAX_HUNG_CALLS + 2):
            try:
                await batcher.submit(_rows(np.ones((1, 2))))
            except PredictionTimeout as exc:
                out.append(exc)
        return out

    try:
        errors = _run(scenario())
    finally:
        release.set()
    assert len(errors) == MAX_HUNG_CALLS + 2
    assert started == MAX_HUNG_CALLS
    assert "still running" in errors[-1].message


def test_the_drain_task_survives_an_unexpected_exception() -> None:
    """Promise: the batcher's background task is supervised — an unexpected exception fails the
    requests it held (never strands them), is reported as a crash, and the batcher keeps
    answering."""
    faults: list[str] = []
    broken = True

    def on_batch(rows: int, queued: int) -> None:
        if broken:
            raise KeyError("metrics went away")

    async def scenario() -> tuple[list[Any], Outputs]:
        nonlocal broken
        batcher = MicroBatcher(_sums, on_batch=on_batch, on_fault=faults.append)
        first = await asyncio.gather(
            *(batcher.submit(_rows(np.ones((1, 2)))) for _ in range(2)), return_exceptions=True
        )
        broken = False
        later = await batcher.submit(_rows(np.ones((1, 3))))
        await batcher.close()
        return first, later

    first, later = _run(scenario())
    assert all(isinstance(e, PredictionFailed) for e in first)
    assert faults == ["crash"]
    assert later[0].tolist() == [3.0]


def test_prediction_timeouts_must_be_positive() -> None:
    """Promise: a timeout that would never let a call run is refused at start-up."""
    with pytest.raises(InvalidInput, match="must be > 0"):
        BatchingPolicy(timeout=0)
    with pytest.raises(InvalidInput, match="of churn must be > 0"):
        BatchingPolicy(model_timeouts=(("churn", -1.0),))


# ---- a real server --------------------------------------------------------------------------


@pytest.fixture
def faulty_home(tmp_path: Path) -> Path:
    """A registry serving ``faulty`` (signature x, y), ``sums`` (no signature) and ``iris`` with
    a one-column version 2 beside production."""
    home = tmp_path / "home"
    registry = iris_registry(home)
    frame = pd.DataFrame({"x": np.linspace(0.0, 10.0, 11), "y": np.linspace(0.0, 1.0, 11)})
    registry.register("faulty", Faulty(), flavor="python", input_example=frame,
                      stage="production")  # fmt: skip
    registry.register("sums", RowSums(), flavor="python", stage="production")
    narrow = pd.DataFrame({"c": np.linspace(0.0, 10.0, 11)})
    registry.register("iris", Narrow(), flavor="python", input_example=narrow)
    registry.close()
    return home


def _post(served: Served, model: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{served.url}/v1/models/{model}:predict", json=body, timeout=BOUND)


def _metric(url: str, pattern: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=BOUND).text
    found = re.search(rf"^{pattern} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_a_failing_model_answers_500_with_a_request_id_and_no_internal_text(
    serve: Callable[..., Served], faulty_home: Path
) -> None:
    """Promise: client errors never carry internal exception text — a model that raises, or
    answers the wrong number of rows, gives a 500 naming the request id; the server log carries
    the exception with that request id."""
    served = serve("--without-scheduler", "--only", "faulty", home=faulty_home)
    raised = _post(served, "faulty", {"instances": [{"x": POISON, "y": 0.5}]})
    short = _post(served, "faulty", {"instances": [{"x": SHORT, "y": 0.5}, {"x": 1, "y": 0.5}]})
    for r in (raised, short):
        assert r.status_code == 500, r.text
        request_id = r.headers["x-request-id"]
        error = r.json()  # KServe V1's shape: {"error": "<message>"}, and watchkeeper's code
        assert error["code"] == "prediction_failed"
        assert error["error"] == (
            f"the model failed on this request; see the server log, request id {request_id}"
        )
        assert SECRET not in r.text
        assert "RuntimeError" not in r.text
    wait_for(lambda: SECRET in served.output() and "returned 1 predictions for 2 rows"
             in served.output(), BOUND, "the exceptions in the server log")  # fmt: skip
    log = served.output()
    for r in (raised, short):
        assert f"request id {r.headers['x-request-id']}" in log
    ok = _post(served, "faulty", {"instances": [{"x": 2, "y": 0.5}]})
    assert ok.status_code == 200
    assert ok.json()["predictions"] == [4.0]


def test_a_hung_model_answers_504_counted_and_the_server_keeps_answering(
    serve: Callable[..., Served], faulty_home: Path
) -> None:
    """Promise: a model that hangs past its (per-model) timeout answers 504, the request and the
    hung call are counted in /metrics, and other requests are answered meanwhile."""
    served = serve("--without-scheduler", "--only", "faulty", "--predict-timeout", "60",
                   "--predict-timeout-for", "faulty=1", home=faulty_home)  # fmt: skip
    with ThreadPoolExecutor(max_workers=2) as pool:
        hung = pool.submit(_post, served, "faulty", {"instances": [{"x": HANG, "y": 0.5}]})
        r = hung.result(timeout=BOUND)
    assert r.status_code == 504, r.text
    assert r.json()["code"] == "prediction_timeout"
    after = _post(served, "faulty", {"instances": [{"x": 3, "y": 0.5}]})
    assert after.status_code == 200
    assert after.json()["predictions"] == [6.0]
    assert _metric(served.url, r'watchkeeper_prediction_timeouts_total\{model="faulty"\}') == 1
    assert _metric(served.url, r'watchkeeper_hung_model_calls\{model="faulty"\}') == 1
    assert _metric(served.url, r'watchkeeper_requests_total\{code="504",model="faulty",'
                   r'protocol="kserve_v1",version="1"\}') == 1  # fmt: skip


def test_requests_of_mixed_widths_to_a_model_without_signature_are_all_answered(
    serve: Callable[..., Served], faulty_home: Path
) -> None:
    """Promise: no request waits without bound — concurrent requests of widths 3/3/4 to a model
    without a signature (the reproduced hang) all get their own answers."""
    served = serve("--without-scheduler", "--only", "sums", home=faulty_home)
    widths = [3, 3, 4] * 4
    with ThreadPoolExecutor(max_workers=len(widths)) as pool:
        futures = [pool.submit(_post, served, "sums", {"instances": [[float(w)] * w]})
                   for w in widths]  # fmt: skip
        answers = [f.result(timeout=BOUND) for f in futures]
    assert [r.status_code for r in answers] == [200] * len(widths), [r.text for r in answers]
    assert [r.json()["predictions"] for r in answers] == [[float(w * w)] for w in widths]


def test_a_canary_request_is_read_with_the_canary_signature(
    serve: Callable[..., Served], faulty_home: Path
) -> None:
    """Promise: a request is parsed and validated with the signature of the version that answers
    it — a one-input canary taking all traffic reads plain values as rows, as its signature
    says, though the four-input production version would refuse them."""
    registry = Registry(Settings(home=faulty_home, user="tester"))
    registry.deployments.start("iris", "canary", 2, share=1.0, config={}, actor="t",
                               reason="canary with another signature")  # fmt: skip
    registry.close()
    served = serve("--without-scheduler", "--only", "iris", home=faulty_home)
    r = _post(served, "iris", {"instances": [1.0, 2.0]})
    assert r.status_code == 200, r.text
    assert r.json()["model_version"] == "2"
    assert r.json()["predictions"] == [10.0, 20.0]


def test_a_failing_live_statistics_or_logbook_never_fails_an_answered_prediction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Promise: a failure in live statistics or the logbook after a successful prediction does
    not turn it into an error — the prediction is answered, the failure logged and counted as a
    dropped record (a server in this process, so the failures can be injected)."""

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError(SECRET)

    monkeypatch.setattr(LiveStats, "observe_batch", broken)
    monkeypatch.setattr(Logbook, "log_predictions", broken)
    settings = Settings(home=tmp_path / "home", user="tester")
    iris_registry(settings.home).close()
    url, server, thread = start_server(settings, ServeOptions(poll_interval=0.05))
    try:
        row = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
        r = httpx.post(f"{url}/v1/models/iris:predict", json={"instances": [row]}, timeout=BOUND)
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == [0]
        for sink in ("live", "logbook"):
            pattern = rf'watchkeeper_prediction_records_dropped_total\{{sink="{sink}"\}}'
            assert _metric(url, pattern) == 1
    finally:
        server.should_exit = True
        thread.join(timeout=BOUND)
