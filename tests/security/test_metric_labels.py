"""Clients cannot create Prometheus series (issue 16, item 5).

Before: an unknown model name in the URL or a junk JSON key each added series to ``/metrics``
(80 requests made 760). A model name this server does not serve is labelled ``<unknown>``, an
unknown version of a served model too, and a field the signature lacks ``<other>``: the number
of series does not grow with the number of distinct junk names. Real ``watchkeeper serve``
process; traffic only to 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from tests.security.conftest import Served, iris_registry

ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def series(client: httpx.Client) -> set[str]:
    """The series of the serving metrics (name and labels, without the value)."""
    text = client.get("/metrics").text
    lines = (line for line in text.splitlines() if line.startswith("watchkeeper_"))
    return {line.rsplit(" ", 1)[0] for line in lines}


def junk(client: httpx.Client, i: int) -> None:
    """One request of each kind that used to add series, with names never seen before."""
    answers = [
        client.post(f"/v1/models/nope{i}:predict", json={"instances": [ROW]}),
        client.post(f"/v1/models/iris@{900 + i}:predict", json={"instances": [ROW]}),
        client.post(f"/v2/models/nope{i}/infer", json={"inputs": []}),
        client.post(f"/v2/models/iris/versions/{900 + i}/infer", json={"inputs": []}),
        client.post("/v1/models/iris:predict", json={"instances": [{**ROW, f"junk{i}": 1}]}),
        client.post("/v1/models/iris:predict", json={"inputs": {f"col{i}": [1]}}),
        client.post("/invocations", json={"dataframe_records": [{f"k{i}": 1}]}),
    ]
    # /invocations answers a schema error as MLflow does: 400 INVALID_PARAMETER_VALUE
    assert [a.status_code for a in answers] == [404, 404, 404, 404, 422, 422, 400]


def test_junk_names_do_not_create_series(serve: Callable[..., Served], tmp_path: Path) -> None:
    """Ten rounds of junk names and eighty more leave the same series in ``/metrics``; the
    refusals are still counted, under ``model="<unknown>"`` and ``field="<other>"``."""
    home = tmp_path / "home"
    iris_registry(home).close()
    served = serve(home=home)
    with httpx.Client(base_url=served.url, timeout=30) as client:
        for i in range(10):
            junk(client, i)
        after_ten = series(client)
        for i in range(10, 90):
            junk(client, i)
        after_ninety = series(client)
    assert after_ninety == after_ten
    assert not [s for s in after_ninety if "nope" in s or "junk" in s or "col1" in s]
    requests = [s for s in after_ninety if s.startswith("watchkeeper_requests_total")]
    assert any('model="<unknown>"' in s and 'code="404"' in s for s in requests), requests
    problems = [s for s in after_ninety if s.startswith("watchkeeper_input_problems_total")]
    assert any('field="<other>"' in s and "unknown_column" in s for s in problems), problems
