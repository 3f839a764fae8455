"""Every prediction the server makes lands in the logbook; feedback comes back and joins."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from tests.serving.conftest import Live, start_server
from watchkeeper.config import Settings
from watchkeeper.logbook import Logbook, LogbookConfig
from watchkeeper.registry import Registry
from watchkeeper.serving.app import ServeOptions


def _window() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(hours=1), now + timedelta(hours=1)


def _read_until(book: Logbook, model: str, predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    table = book.read(model, *_window())
    while not predicate(table) and time.monotonic() < deadline:
        time.sleep(0.1)
        table = book.read(model, *_window())
    return table


def test_predictions_are_logged_with_inputs_and_versions(live: Live) -> None:
    rows = live.X.iloc[10:13]
    ids = []
    for ref in ("iris", "iris@2"):
        r = live.client.post(
            f"/v1/models/{ref}:predict",
            json={"instances": rows.to_dict(orient="records")},
            headers={"X-Routing-Key": "customer-7"},
        )
        assert r.status_code == 200
        ids.append(r.json()["request_id"])
    book = Logbook(live.settings.resolved_logbook_url)
    table = _read_until(book, "iris", lambda t: set(ids) <= set(t.column("request_id").to_pylist()))
    mine = table.filter(np.isin(table.column("request_id").to_numpy(zero_copy_only=False), ids))
    frame = mine.to_pandas().sort_values(["version", "row"])
    assert frame["version"].tolist() == [1, 1, 1, 2, 2, 2]
    assert set(frame["role"]) == {"primary"}
    assert set(frame["routing_key"]) == {"customer-7"}
    assert frame["row"].tolist() == [0, 1, 2, 0, 1, 2]
    np.testing.assert_allclose(frame["feature_petal_length"].to_numpy()[:3], rows["petal_length"])
    assert frame["prediction"].tolist()[:3] == live.model.predict(rows).tolist()


def test_feedback_joins_predictions(live: Live) -> None:
    rows = live.X.iloc[20:22]
    r = live.client.post("/v1/models/iris:predict", json={"instances": rows.to_numpy().tolist()})
    request_id = r.json()["request_id"]
    feedback = [
        {"request_id": request_id, "row": 0, "label": 1},
        {"request_id": request_id, "row": 1, "label": 0, "outcome": {"revenue": 12.5}},
        {"request_id": request_id, "row": 1, "label": 2},  # a correction: the latest wins
        {"request_id": "never-seen", "row": 0, "label": 1},
    ]
    for item in feedback:
        assert live.client.post("/v1/feedback", json=item).json() == {"accepted": 1}
    book = Logbook(live.settings.resolved_logbook_url)
    deadline = time.monotonic() + 10
    joined = None
    while time.monotonic() < deadline:
        table = book.join_feedback("iris", *_window()).to_pandas()
        joined = table[table["request_id"] == request_id]
        if len(joined) == 2 and joined["label"].notna().all():
            break
        time.sleep(0.1)
    assert joined is not None
    assert joined.sort_values("row")["label"].tolist() == [1, 2]
    assert (joined["label_delay_s"] >= 0).all()
    assert book.unmatched_feedback("iris", *_window()) >= 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"row": 0, "label": 1}, "request_id"),
        ({"request_id": "r", "row": -1, "label": 1}, "row"),
        ({"request_id": "r", "outcome": {"x": "high"}}, "outcome"),
        ({"request_id": "r", "label": 1, "timestamp": "yesterday"}, "timestamp"),
        ({"request_id": "r", "label": 1, "colour": "red"}, "colour"),
    ],
)
def test_bad_feedback_is_refused_with_the_field(live: Live, body, field) -> None:
    r = live.client.post("/v1/feedback", json=[body])
    assert r.status_code == 422
    assert [d["field"] for d in r.json()["error"]["details"]] == [field]


def test_full_buffer_drops_and_counts(tmp_path, iris_data) -> None:
    from sklearn.linear_model import LogisticRegression

    X, y = iris_data
    settings = Settings(home=tmp_path, user="tester")
    with Registry(settings) as registry:
        registry.register(
            "iris", LogisticRegression(max_iter=500).fit(X, y), input_example=X, stage="production"
        )
    tiny = LogbookConfig(max_buffer_rows=3, flush_interval=60, flush_rows=1000)
    url, server, thread = start_server(settings, ServeOptions(logbook=tiny))
    try:
        import httpx

        with httpx.Client(base_url=url) as client:
            for _ in range(5):
                r = client.post(
                    "/v1/models/iris:predict", json={"instances": X.head(2).to_numpy().tolist()}
                )
                assert r.status_code == 200  # logging trouble never fails a prediction
            metrics = client.get("/metrics").text
        dropped = [
            line
            for line in metrics.splitlines()
            if line.startswith("watchkeeper_logbook_dropped_total")
        ]
        assert dropped
        assert float(dropped[0].split()[-1]) == 8.0
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_monitor_results_and_alerts_are_exported(tmp_path, iris_data) -> None:
    import httpx
    from sklearn.linear_model import LogisticRegression

    from watchkeeper.monitoring.results import CheckResult
    from watchkeeper.registry.monitoring import MonitoringStore

    X, y = iris_data
    settings = Settings(home=tmp_path, user="tester")
    t = datetime(2026, 11, 26, 9, tzinfo=UTC)
    with Registry(settings) as registry:
        registry.register("iris", LogisticRegression(max_iter=500).fit(X, y), input_example=X,
                          stage="production")  # fmt: skip
        store = MonitoringStore(registry.engine)
        result = CheckResult(model="iris", version=1, window_start=t,
                             window_end=t + timedelta(hours=1), check="drift",
                             feature="petal_width", statistic="wasserstein", value=0.42,
                             threshold=0.1, status="fail")  # fmt: skip
        store.record([result])
        store.apply_alerts([result])
    url, server, thread = start_server(settings, ServeOptions(logbook=None))
    try:
        text = httpx.get(f"{url}/metrics").text
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    labels = 'check="drift",feature="petal_width",model="iris",statistic="wasserstein"'
    assert f"watchkeeper_monitor_value{{{labels}}} 0.42" in text
    assert f"watchkeeper_monitor_failing{{{labels}}} 1.0" in text
    assert 'watchkeeper_alerts_open{check="drift",model="iris"} 1.0' in text
