"""Issue 19, items 3 and 4 end to end through a real ``watchkeeper serve``: bool features sent
as JSON booleans reach the logbook and a clean window shows no drift in ``monitor run``; string
labels sent to ``/v1/feedback`` score, and the realised accuracy is scikit-learn's on the same
rows."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from typer.testing import CliRunner

from tests.processes import free_port, start_server, stop, wait_for, wait_ready
from watchkeeper.cli.main import app
from watchkeeper.config import Settings
from watchkeeper.logbook import Logbook
from watchkeeper.registry import Registry

CLASSES = np.array(["churned", "stayed"])


def _data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"tenure": rng.normal(size=n), "member": rng.random(n) < 0.4})
    score = frame["tenure"] + 1.5 * frame["member"] + rng.normal(scale=0.8, size=n)
    return frame, CLASSES[(score > 0.3).astype(int)]


def test_bool_features_and_string_labels_through_a_real_server(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    reference, target = _data(5000, seed=0)
    model = LogisticRegression().fit(reference, target)
    with Registry(Settings(home=home, user="tester")) as registry:
        registry.register("churn", model, input_example=reference, reference_data=reference,
                          stage="production")  # fmt: skip
    current, truth = _data(2000, seed=1)  # clean traffic: the reference's distribution
    records = current.to_dict(orient="records")  # member: Python bools -> JSON true/false
    port = free_port()
    proc = start_server(home, port, {**os.environ, "WATCHKEEPER_HOME": str(home)})
    url = f"http://127.0.0.1:{port}"
    served: list[str] = []
    try:
        wait_ready(url, proc, home / f"serve-{port}.log", 1)
        with httpx.Client(base_url=url, timeout=30) as client:
            feedback = []
            for start in range(0, len(records), 500):
                answer = client.post("/v1/models/churn:predict",
                                     json={"instances": records[start : start + 500]})  # fmt: skip
                assert answer.status_code == 200, answer.text
                body = answer.json()
                served += body["predictions"]
                feedback += [{"request_id": body["request_id"], "row": j, "label": str(label)}
                             for j, label in enumerate(truth[start : start + 500])]  # fmt: skip
            answer = client.post("/v1/feedback", json=feedback)
            assert answer.status_code < 300, answer.text
            refused = client.post("/v1/feedback", json={"request_id": "x", "label": ["stayed"]})
            assert refused.status_code == 422, refused.text
            assert "label" in refused.text
        book = Logbook(str(home / "logbook"))
        wait_for(lambda: book.read_feedback().num_rows == len(records), 30, "the feedback")
    finally:
        stop(proc)
    assert served == model.predict(current).tolist()
    result = CliRunner().invoke(app, ["monitor", "run", "churn", "--window", "1h", "--json"],
                                env={"WATCHKEEPER_HOME": str(home)})  # fmt: skip
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    found = {(r["check"], r["feature"], r["statistic"]): r for r in run["results"]}
    assert run["rows"] == len(records)
    # item 3: the bool feature is counted on the profile's own categories, so clean traffic
    # shows no drift (it showed JS = 1.0 and unseen_category = 1.0 before)
    member = [r for r in run["results"] if r["check"] == "drift" and r["feature"] == "member"]
    assert member
    assert [r["status"] for r in member] == ["ok"], member
    assert found[("quality", "member", "unseen_category")]["value"] == 0.0
    # item 4: string labels join and score; accuracy is scikit-learn's on the same rows
    assert found[("performance", "", "label_coverage")]["value"] == 1.0
    expected = accuracy_score(truth, served)
    assert found[("performance", "", "accuracy")]["value"] == pytest.approx(expected, abs=1e-12)
    assert run["labelled_rows"] == len(records)
