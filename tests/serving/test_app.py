"""Every protocol over a real socket, checked against the in-process model's own predictions."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serving.conftest import Live


def _rows(live: Live, n: int = 5):
    return live.X.head(n)


def test_kserve_v1_instances_records_lists_and_columns(live: Live) -> None:
    X = _rows(live)
    expected = live.model.predict(X).tolist()
    bodies = [
        {"instances": X.to_dict(orient="records")},
        {"instances": X.to_numpy().tolist()},
        {"inputs": X.to_dict(orient="list")},
    ]
    for body in bodies:
        r = live.client.post("/v1/models/iris:predict", json=body)
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["predictions"] == expected
        assert answer["model"] == "iris"
        assert answer["model_version"] == "1"
        assert r.headers["x-model-version"] == "1"
        assert answer["request_id"] == r.headers["x-request-id"]
        assert "probabilities" not in answer


def test_kserve_v1_probabilities_and_request_id_echo(live: Live) -> None:
    X = _rows(live, 3)
    r = live.client.post(
        "/v1/models/iris:predict",
        json={"instances": X.to_dict(orient="records"), "return_probabilities": True},
        headers={"X-Request-ID": "abc-123"},
    )
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["probabilities"], live.model.predict_proba(X), rtol=1e-12)
    assert r.headers["x-request-id"] == "abc-123"
    assert r.json()["request_id"] == "abc-123"


def test_pinned_version_answers(live: Live) -> None:
    X = _rows(live)
    r = live.client.post("/v1/models/iris@2:predict", json={"instances": X.to_numpy().tolist()})
    assert r.status_code == 200, r.text
    assert r.json()["model_version"] == "2"
    assert r.json()["predictions"] == live.registry.load("iris@2").predict(X).tolist()


def test_kserve_v1_model_listing(live: Live) -> None:
    assert live.client.get("/v1/models").json() == {"models": ["iris"]}
    assert live.client.get("/v1/models/iris").json()["version"] == "1"
    assert live.client.get("/v1/models/nope").status_code == 404


def test_mlflow_invocations_every_input_shape(live: Live) -> None:
    X = _rows(live)
    expected = live.model.predict(X).tolist()
    split = json.loads(X.to_json(orient="split"))
    bodies = [
        {"dataframe_split": {"columns": split["columns"], "data": split["data"]}},
        {"dataframe_records": X.to_dict(orient="records")},
        {"instances": X.to_dict(orient="records")},
        {"inputs": X.to_dict(orient="list")},
    ]
    for body in bodies:
        r = live.client.post("/invocations", json=body)
        assert r.status_code == 200, (body, r.text)
        assert r.json() == {"predictions": expected}
    csv = X.to_csv(index=False)
    r = live.client.post("/invocations", content=csv, headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": expected}


def test_mlflow_errors_like_mlflow(live: Live) -> None:
    X = _rows(live, 2)
    r = live.client.post("/invocations", content=b"x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    two = {"instances": X.to_numpy().tolist(), "inputs": X.to_dict(orient="list")}
    assert live.client.post("/invocations", json=two).status_code == 400
    assert live.client.post("/invocations", json={"data": [1]}).status_code == 400
    assert live.client.get("/ping").status_code == 200
    assert live.client.get("/health").status_code == 200
    assert live.client.get("/version").status_code == 200


def test_v2_named_tensors_and_one_2d_tensor(live: Live) -> None:
    X = _rows(live, 4)
    expected = live.model.predict(X).tolist()
    per_column = {
        "id": "req-9",
        "inputs": [
            {"name": c, "shape": [len(X)], "datatype": "FP64", "data": X[c].tolist()}
            for c in X.columns
        ],
    }
    r = live.client.post("/v2/models/iris/infer", json=per_column)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "req-9"
    assert body["model_name"] == "iris"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["predictions"]["data"] == expected
    assert outputs["predictions"]["shape"] == [len(X)]
    matrix = {
        "inputs": [
            {
                "name": "x",
                "shape": list(X.shape),
                "datatype": "FP32",
                "data": X.to_numpy().ravel().tolist(),
            }
        ]
    }
    r = live.client.post("/v2/models/iris/versions/1/infer", json=matrix)
    assert r.status_code == 200, r.text
    assert {o["name"]: o for o in r.json()["outputs"]}["predictions"]["data"] == expected


def test_v2_health_and_metadata(live: Live) -> None:
    assert live.client.get("/v2/health/live").json()["live"] is True
    ready = live.client.get("/v2/health/ready")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    assert "name" in live.client.get("/v2").json()
    meta = live.client.get("/v2/models/iris").json()
    assert meta["name"] == "iris"
    assert [i["name"] for i in meta["inputs"]] == list(live.X.columns)
    assert live.client.get("/v2/models/iris/ready").status_code == 200
    assert live.client.get("/v2/models/nope/ready").status_code == 404


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "code"),
    [
        ("/v1/models/iris:predict", {"content": b"{not json"}, 400, "malformed_request"),
        (
            "/v1/models/nope:predict",
            {"json": {"instances": [[1, 2, 3, 4]]}},
            404,
            "model_not_found",
        ),
        ("/v1/models/iris:predict", {"json": {"instances": []}}, 422, "schema_error"),
        (
            "/v1/models/iris:predict",
            {"json": {"instances": [{"sepal_length": 1, "sepal_width": 2, "petal_length": 3}]}},
            422,
            "schema_error",
        ),
        (
            "/v1/models/iris:predict",
            {"json": {"instances": [[1, 2, 3, 4]] * 10_001}},
            413,
            "payload_too_large",
        ),
        (
            "/v1/models/iris:predict",
            {"content": b" " * (11 * 1024 * 1024)},
            413,
            "payload_too_large",
        ),
        ("/v2/models/iris/infer", {"json": {"inputs": [{"name": "x"}]}}, 400, "malformed_request"),
    ],
)
def test_client_mistakes_get_their_4xx(live: Live, path, kwargs, status, code) -> None:
    r = live.client.post(path, **kwargs)
    assert r.status_code == status, r.text
    body = r.json()  # KServe V1 and v2: {"error": "<message>"}, with watchkeeper's code, details
    assert isinstance(body["error"], str)
    assert body["error"]
    assert body["code"] == code
    assert isinstance(body["details"], list)


def test_wrong_type_names_row_and_field(live: Live) -> None:
    rows = live.X.head(3).to_dict(orient="records")
    rows[2]["petal_width"] = "wide"
    r = live.client.post("/v1/models/iris:predict", json={"instances": rows})
    assert r.status_code == 422
    details = r.json()["details"]
    assert any(d["field"] == "petal_width" and d.get("row") == 2 for d in details), details
    metrics = live.client.get("/metrics").text
    assert 'watchkeeper_input_problems_total{field="petal_width"' in metrics


def test_metrics_follow_prometheus_naming(live: Live) -> None:
    live.client.post("/v1/models/iris:predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
    text = live.client.get("/metrics").text
    for name in (
        "watchkeeper_requests_total",
        "watchkeeper_request_duration_seconds_bucket",
        "watchkeeper_batch_size_rows_bucket",
        "watchkeeper_queue_depth",
        "watchkeeper_rows_predicted_total",
        "watchkeeper_model_info",
        "watchkeeper_estimated_cost_dollars_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ):
        assert name in text, name
    assert 'requests_total{code="200",model="iris",protocol="kserve_v1",version="1"}' in text
    assert "request_id" not in text


def test_health_readiness_and_openapi(live: Live) -> None:
    assert live.client.get("/healthz").json() == {"status": "ok"}
    ready = live.client.get("/readyz").json()
    assert ready["ready"] is True
    assert ready["models"] == {"iris": "1"}
    doc = live.client.get("/openapi.json").json()
    for path in ("/v1/models/{model}:predict", "/invocations", "/v2/models/{name}/infer"):
        assert path in doc["paths"]
    assert "/openapi.json" in live.client.get("/docs").text


def test_management_api(live: Live) -> None:
    models = live.client.get("/api/v1/models").json()
    assert models[0]["name"] == "iris"
    shown = live.client.get("/api/v1/models/iris").json()
    assert [v["version"] for v in shown["versions"]] == [1, 2]
    assert live.client.get("/api/v1/models/iris/versions/production").json()["version"] == 1
    r = live.client.post("/api/v1/models/iris/versions/1/stage", json={"stage": "nonsense"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_stage"
    r = live.client.put("/api/v1/models/iris/aliases/champion", json={"version": 1})
    assert r.status_code == 200
    assert r.json()["aliases"] == ["champion"]
    assert live.client.delete("/api/v1/models/iris/aliases/champion").status_code == 200
    history = live.client.get("/api/v1/models/iris/history").json()
    assert history[0]["action"] == "unalias"
    assert live.client.get("/api/v1/models/ghost").status_code == 404


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_keys = st.sampled_from(["instances", "inputs", "dataframe_split", "dataframe_records", "id"])


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.sampled_from(["/v1/models/iris:predict", "/invocations", "/v2/models/iris/infer"]),
    body=_json_values | st.dictionaries(_keys, _json_values, max_size=3),
)
def test_no_malformed_payload_gets_a_5xx(live: Live, path: str, body) -> None:
    r = live.client.post(path, json=body)
    assert r.status_code < 500, (body, r.text)


def test_live_statistics_reach_the_database(live: Live) -> None:
    from datetime import UTC, datetime, timedelta

    from watchkeeper.registry.live import LiveStatsStore

    rows = live.X.sample(40, random_state=1)
    for start in range(0, 40, 10):
        chunk = rows.iloc[start : start + 10]
        r = live.client.post(
            "/v1/models/iris:predict", json={"instances": chunk.to_numpy().tolist()}
        )
        assert r.status_code == 200
    store = LiveStatsStore(live.registry.engine)
    now = datetime.now(UTC)
    deadline = time.monotonic() + 10
    merged: dict = {}
    while time.monotonic() < deadline:
        merged = store.merged("iris", now - timedelta(hours=1), now + timedelta(hours=1), version=1)
        if merged.get((1, "feature:petal_length")) and sum(merged[(1, "rows")]) >= 40:
            break
        time.sleep(0.1)
    assert merged[(1, "requests")][0] >= 4
    assert sum(merged[(1, "feature:petal_length")]) == merged[(1, "rows")][0]
