"""Tiny or large requests must not exhaust the server (issue 16, item 5).

Every client-controlled size is bounded before it is allocated, and large bodies are parsed off
the event loop: each bomb below gets a quick 4xx (413 for size, 400/422 with field details for
shape), the server's memory does not balloon, and normal requests sent at the same time keep
being answered. Real ``watchkeeper serve`` processes; traffic only to 127.0.0.1.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.processes import wait_for
from tests.security.conftest import Served, iris_registry
from watchkeeper.logbook import Logbook

ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
VALUES = list(ROW.values())
MIB = 1024 * 1024
MAX_GROWTH_MB = 200  # a shape bomb used to take 2 GB; a refused bomb must cost far less


def rss_mb(pid: int) -> float:
    """The resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


@contextmanager
def normal_traffic(url: str) -> Iterator[list[int]]:
    """One-row predictions in a loop, on their own connection, while the block runs; yields
    their statuses. On leaving, waits until one more is answered (the server still answers)."""
    statuses: list[int] = []
    stop = threading.Event()

    def loop() -> None:
        with httpx.Client(timeout=60) as client:
            while not stop.is_set():
                answer = client.post(f"{url}/v1/models/iris:predict", json={"instances": [ROW]})
                statuses.append(answer.status_code)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    wait_for(lambda: statuses, 30, "a first normal answer")
    try:
        yield statuses
        seen = len(statuses)
        wait_for(lambda: len(statuses) > seen, 30, "a normal answer after the bombs")
    finally:
        stop.set()
        thread.join(60)
    assert set(statuses) == {200}, f"normal requests failed: {sorted(set(statuses))}"


def error_of(answer: httpx.Response) -> dict[str, Any]:
    """``message`` and ``details`` of an error, in whichever shape its protocol answers
    (management API: ``{"error": {...}}``; KServe V1 and v2: ``{"error": "<message>"}``; MLflow:
    ``{"error_code", "message"}``)."""
    body: dict[str, Any] = answer.json()
    if isinstance(body.get("error"), dict):
        return body["error"]  # type: ignore[no-any-return]
    return {"message": body.get("message", body.get("error")), "details": body["details"]}


def start_iris(serve: Callable[..., Served], tmp_path: Path, *args: str) -> Served:
    home = tmp_path / "home"
    iris_registry(home).close()
    served = serve(*args, home=home)
    ok = httpx.post(f"{served.url}/v1/models/iris:predict", json={"instances": [ROW]})
    assert ok.status_code == 200, ok.text
    return served


def post(served: Served, path: str, body: bytes, content_type: str = "application/json") -> Any:
    return httpx.post(
        served.url + path, content=body, headers={"content-type": content_type}, timeout=120
    )


def tensor(name: str, shape: Any, data: Any, datatype: str = "FP64") -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def test_v2_shape_bombs_are_refused_before_anything_is_allocated(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    """A declared shape is checked before data is laid out by it: too many rows is a 413, a
    shape that is negative, huge, of three dimensions or does not match its data is a 400 naming
    the input's shape or data; memory stays flat and normal requests keep being answered."""
    served = start_iris(serve, tmp_path)
    before = rss_mb(served.proc.pid)
    infer = "/v2/models/iris/infer"
    bombs = [
        (tensor("x", [30_000_000, 0], []), 413, "x.shape", "too_many_rows"),
        (tensor("x", [10**9, 4], VALUES), 413, "x.shape", "too_many_rows"),
        (tensor("x", [10_000, 2**30], VALUES), 413, "x.shape", "too_large"),
        (tensor("x", [1, 2**40], VALUES), 400, "x.shape", "bad_shape"),
        (tensor("x", [-1, 4], VALUES), 400, "x.shape", "bad_shape"),
        (tensor("x", [1, 1, 2**20], VALUES), 400, "x.shape", "bad_shape"),
        (tensor("x", [5_000, 0], []), 400, "x.shape", "bad_shape"),
        (tensor("x", [10_000, 4], VALUES), 400, "x.data", "shape_mismatch"),
        (tensor("sepal_length", [10_000], [1.0]), 400, "sepal_length.data", "shape_mismatch"),
    ]
    with normal_traffic(served.url):
        for bomb, status, field, problem in bombs:
            answer = post(served, infer, orjson.dumps({"inputs": [bomb]}))
            assert answer.status_code == status, (bomb["shape"], answer.text)
            details = error_of(answer)["details"]
            assert {"field": field, "problem": problem} in details, (bomb["shape"], details)
    assert rss_mb(served.proc.pid) - before < MAX_GROWTH_MB


def test_bodies_with_millions_of_rows_are_refused_before_they_are_parsed(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    """JSON (every layout of every protocol) and CSV bodies just under the body limit that hold
    millions of rows are a 413 naming the row limit, without being parsed whole on the event
    loop; a body of ``--max-rows`` + 1 valid rows is a 413 too, and ``--max-rows`` rows pass."""
    served = start_iris(serve, tmp_path)
    before = rss_mb(served.proc.pid)
    one_value_rows = 2_500_000  # "[1]," each: just under the 10 MiB body limit
    iris_rows = 10 * MIB // (len(orjson.dumps(VALUES)) + 1) - 10
    columns = dict.fromkeys(ROW, [1.0] * (10 * MIB // 4 // 5 - 10))
    csv = ("a,b\n" + "1,2\n" * (10 * MIB // 4 - 10)).encode()
    bombs = [
        ("/v1/models/iris:predict", {"instances": [[1]] * one_value_rows}),
        ("/v1/models/iris:predict", {"instances": [VALUES] * iris_rows}),
        ("/v1/models/iris:predict", {"inputs": columns}),
        ("/invocations", {"dataframe_split": {"columns": list(ROW), "data": [VALUES] * iris_rows}}),
        ("/invocations", {"dataframe_records": [{"a": 1}] * (10 * MIB // 9)}),
        ("/invocations", {"instances": [1] * (10 * MIB // 2 - 100)}),
        ("/v2/models/iris/infer", {"inputs": [tensor("x", [5, 4], [1.0] * (10 * MIB // 4 - 100))]}),
    ]
    with normal_traffic(served.url):
        for path, bomb in bombs:
            body = orjson.dumps(bomb)
            assert len(body) <= 10 * MIB, (path, len(body))
            answer = post(served, path, body)
            assert answer.status_code == 413, (path, answer.text[:300])
            assert "at most 10000 rows" in error_of(answer)["message"]
        answer = post(served, "/invocations", csv, "text/csv")
        assert answer.status_code == 413, answer.text[:300]
        assert "at most 10000 rows" in error_of(answer)["message"]
        over = post(served, "/v1/models/iris:predict", orjson.dumps({"instances": [ROW] * 10_001}))
        assert over.status_code == 413, over.text[:300]
        assert "10001 rows" in error_of(over)["message"]
    assert rss_mb(served.proc.pid) - before < MAX_GROWTH_MB
    full = post(served, "/v1/models/iris:predict", orjson.dumps({"instances": [ROW] * 10_000}))
    assert full.status_code == 200
    assert len(full.json()["predictions"]) == 10_000


def test_text_with_commas_is_not_mistaken_for_rows(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    """The count before parsing leaves out separators inside strings: a request whose text
    holds far more commas (and, in CSV, newlines) than the row limit allows is parsed, and gets
    the answer its content deserves, not a 413."""
    served = start_iris(serve, tmp_path, "--max-rows", "10")
    junk = "," * 100_000 + '\\"' + "\\\\" + "\n" * 10
    answer = post(
        served, "/v1/models/iris:predict", orjson.dumps({"instances": [{**ROW, junk: 1}]})
    )
    assert answer.status_code == 422, answer.text[:300]
    assert error_of(answer)["details"][0]["problem"] == "unknown_column"
    cells = '"' + "1,\n" * 1000 + '"'
    csv = ",".join(ROW) + "\n" + ",".join([cells] + ["1"] * 3) + "\n"
    answer = post(served, "/invocations", csv.encode(), "text/csv")
    assert answer.status_code == 400, answer.text[:300]  # MLflow: INVALID_PARAMETER_VALUE
    assert error_of(answer)["details"][0]["field"] == "sepal_length"


def test_feedback_body_and_outcome_names_are_bounded(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    """``/v1/feedback`` refuses a body over ``--max-body-mb`` (413, by its Content-Length or
    while it streams), an outcome name that is not a short identifier (422 naming the field),
    and outcome names beyond ``--max-outcome-names`` (400 naming the limit); what is refused is
    not written, what is accepted is."""
    served = start_iris(
        serve, tmp_path, "--max-body-mb", "1", "--max-outcome-names", "8",
        "--log-flush-interval", "0.2",
    )  # fmt: skip
    url = served.url + "/v1/feedback"
    before = rss_mb(served.proc.pid)
    with normal_traffic(served.url):
        big = orjson.dumps([{"request_id": "r", "label": 1}] * (2 * MIB // 30))
        answer = post(served, "/v1/feedback", big)
        assert answer.status_code == 413, answer.text[:300]
        assert "1048576-byte limit" in error_of(answer)["message"]
        streamed = httpx.post(url, content=iter([big[:MIB], big[MIB:]]), timeout=60)
        assert streamed.status_code == 413, streamed.text[:300]
        flood = {"request_id": "r", "outcome": {f"n{i}": 1.0 for i in range(8_000)}}
        answer = httpx.post(url, json=[flood], timeout=60)
        assert answer.status_code == 400, answer.text[:300]
        error = error_of(answer)
        assert "at most 8 distinct outcome names" in error["message"]
        assert error["details"][0]["problem"] == "too_many_outcome_names"
        bad = httpx.post(url, json=[{"request_id": "r", "outcome": {"a b": 1.0}}])
        assert bad.status_code == 422, bad.text
        assert error_of(bad)["details"][0]["field"] == "outcome.a b"
        for i in range(8):  # one new name per request, up to the bound
            ok = httpx.post(url, json=[{"request_id": f"r{i}", "outcome": {f"kept{i}": 1.0}}])
            assert ok.status_code == 200, ok.text
        refused = httpx.post(url, json=[{"request_id": "r9", "label": 1, "outcome": {"x": 1.0}}])
        assert refused.status_code == 400, refused.text
        again = httpx.post(url, json=[{"request_id": "r10", "outcome": {"kept0": 2.0}}])
        assert again.status_code == 200, again.text
    assert rss_mb(served.proc.pid) - before < MAX_GROWTH_MB
    book = Logbook(str(served.home / "logbook"))

    def written() -> Any:
        table = book.read_feedback()
        return table if table.num_rows == 9 else None

    table = wait_for(written, 30, "the accepted feedback to be written")
    outcomes = {c for c in table.column_names if c.startswith("outcome_")}
    assert outcomes == {f"outcome_kept{i}" for i in range(8)}
    assert "r9" not in table["request_id"].to_pylist()


def test_echoed_values_are_clipped_in_every_error(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    """A client's 5 MB value is never echoed whole: every error body (KServe V1, MLflow, v2,
    feedback, management API) stays small and says how long the value was."""
    served = start_iris(serve, tmp_path)
    huge = "v" * (5 * MIB)
    cases = [
        ("/v1/models/iris:predict", {"instances": [{**ROW, huge: 1}]}),
        ("/invocations", {"dataframe_records": [{**ROW, huge: 1}]}),
        ("/invocations", {huge: 1}),
        ("/v2/models/iris/infer", {"inputs": [tensor("x", [1, 4], VALUES, huge)]}),
        ("/v2/models/iris/infer", {"inputs": [tensor(huge, [1], [1.0])]}),
        ("/v1/feedback", [{"request_id": "r", "label": 1, huge: 1}]),
    ]
    with normal_traffic(served.url):
        for path, payload in cases:
            answer = post(served, path, orjson.dumps(payload))
            assert 400 <= answer.status_code < 500, (path, answer.text[:300])
            assert len(answer.content) < 5_000, (path, len(answer.content))
            assert " chars)" in answer.text, (path, answer.text[:300])  # how long it was
        stage = {"stage": "v" * 500_000}  # under the API's 1 MiB body limit
        answer = post(served, "/api/v1/models/iris/versions/1/stage", orjson.dumps(stage))
        assert 400 <= answer.status_code < 500, answer.text[:300]
        assert len(answer.content) < 5_000


def test_management_api_bodies_are_bounded(serve: Callable[..., Served], tmp_path: Path) -> None:
    """``/api/v1/...`` bodies over ``--max-api-body-mb`` (1 MiB by default) are refused with a
    413 before they are read whole (by Content-Length, or while a chunked body streams), for
    the registry and the deployment routes alike; nothing changes."""
    served = start_iris(serve, tmp_path)
    before = rss_mb(served.proc.pid)
    body = orjson.dumps({"stage": "staging", "reason": "r" * (2 * MIB)})
    paths = [
        "/api/v1/models/iris/versions/1/stage",
        "/api/v1/models/iris/rollback",
        "/api/v1/deployments/iris",
    ]
    with normal_traffic(served.url):
        for path in paths:
            answer = post(served, path, body)
            assert answer.status_code == 413, (path, answer.text[:300])
            assert "1048576-byte limit" in error_of(answer)["message"]
            chunked = httpx.post(
                served.url + path, content=iter([body[:MIB], body[MIB:]]),
                headers={"content-type": "application/json"}, timeout=60,
            )  # fmt: skip
            assert chunked.status_code == 413, (path, chunked.text[:300])
    assert rss_mb(served.proc.pid) - before < MAX_GROWTH_MB
    version = httpx.get(f"{served.url}/api/v1/models/iris/versions/1").json()
    assert version["stage"] == "production"
