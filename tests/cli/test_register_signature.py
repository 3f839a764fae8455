"""A model registered the usual CLI way is served validated; one without a signature is flagged
and its failures never leak exception text. CLI in-process, server as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from typer.testing import CliRunner

from tests.processes import ROOT, free_port, wait_ready
from watchkeeper.cli.main import app

TIMEOUT = 30.0


def as_floats(frame: pd.DataFrame) -> np.ndarray:
    """A python-flavor model that converts its input itself (and raises on text)."""
    return frame.to_numpy(dtype=np.float64).sum(axis=1)


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y


@pytest.fixture
def files(tmp_path: Path, cancer: tuple[pd.DataFrame, pd.Series]) -> Path:
    """lr.joblib (fitted on the DataFrame), train.parquet (features and target), raw.joblib."""
    X, y = cancer
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    joblib.dump(model, tmp_path / "lr.joblib")
    X.assign(target=y).to_parquet(tmp_path / "train.parquet")
    joblib.dump(as_floats, tmp_path / "raw.joblib")
    return tmp_path


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WATCHKEEPER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("WATCHKEEPER_DATABASE_URL", raising=False)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Starts ``watchkeeper serve`` on the test's home when asked; kills its process group."""
    started: list[subprocess.Popen[bytes]] = []
    log = tmp_path / "serve.log"

    def start(models: int) -> str:
        port = free_port()
        env = {**os.environ, "WATCHKEEPER_HOME": str(tmp_path / "home")}
        env.pop("WATCHKEEPER_DATABASE_URL", None)
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "watchkeeper", "serve", "--port", str(port),
                 "--without-scheduler", "--log-level", "warning", "--poll-interval", "0.05"],
                env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc, log, models)
        return url

    try:
        yield start, log
    finally:
        for proc in started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def test_register_says_what_the_signature_is(cli, files: Path) -> None:
    """``models register`` prints the signature it found, or that there is none (and so does
    ``models show``); an input example of an unknown kind is a one-line error."""
    found = cli("models", "register", "cancer", str(files / "lr.joblib"),
                "--reference", str(files / "train.parquet"))  # fmt: skip
    assert found.exit_code == 0, found.output
    assert "signature: 30 input column(s)" in found.output
    none = cli("models", "register", "raw", str(files / "raw.joblib"))
    assert none.exit_code == 0, none.output
    assert "signature: NONE: requests are passed to the model unvalidated" in none.output
    shown = cli("models", "show", "raw@1")
    assert "NONE: requests are passed" in shown.output
    assert "none (unvalidated)" in cli("models", "show", "raw").output
    assert "mean radius (float)" in cli("models", "show", "cancer@1").output
    (files / "example.txt").write_text("x\n1\n")
    bad = cli("models", "register", "cancer", str(files / "lr.joblib"),
              "--input-example", str(files / "example.txt"))  # fmt: skip
    assert bad.exit_code == 1
    assert bad.output.strip().splitlines() == [
        "error: input example '" + str(files / "example.txt") + "': expected a .csv, "
        ".parquet, .json file, not .txt"
    ]


def test_cli_registered_model_refuses_bad_requests_with_4xx(
    cli, files: Path, server, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    """The issue's path: ``models register cancer lr.joblib --reference train.parquet``, served:
    a missing column or a string in a numeric column is a 4xx naming the field (not scikit-
    learn's 500); a good row is answered as the model would."""
    assert cli("models", "register", "cancer", str(files / "lr.joblib"),
               "--reference", str(files / "train.parquet")).exit_code == 0  # fmt: skip
    assert cli("models", "promote", "cancer", "1", "--to", "production").exit_code == 0
    start, _ = server
    url = start(models=1)
    X, _ = cancer
    row = X.iloc[0].to_dict()
    good = httpx.post(f"{url}/v1/models/cancer:predict", json={"instances": [row]},
                      timeout=TIMEOUT)  # fmt: skip
    assert good.status_code == 200, good.text
    model = joblib.load(files / "lr.joblib")
    assert good.json()["predictions"] == model.predict(X.head(1)).tolist()
    missing = {k: v for k, v in row.items() if k != "mean radius"}
    text = {**row, "mean radius": "big"}
    for body in (missing, text):
        for path, payload in (("/v1/models/cancer:predict", {"instances": [body]}),
                              ("/invocations", {"dataframe_records": [body]})):  # fmt: skip
            answer = httpx.post(f"{url}{path}", json=payload, timeout=TIMEOUT)
            assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text)
            assert "mean radius" in answer.text
            assert "X has" not in answer.text  # scikit-learn's own message


def test_unsigned_model_is_logged_and_its_failures_say_nothing_internal(
    cli, files: Path, server
) -> None:
    """A version without a signature: the server warns when it loads it; an input the model
    cannot convert is the server's 500, and the body carries no exception text."""
    assert cli("models", "register", "raw", str(files / "raw.joblib"),
               "--stage", "production").exit_code == 0  # fmt: skip
    start, log = server
    url = start(models=1)
    bad = {"instances": [{"a": "zebra", "b": 1.0}]}
    answer = httpx.post(f"{url}/v1/models/raw:predict", json=bad, timeout=TIMEOUT)
    assert answer.status_code == 500, answer.text
    assert "could not convert" not in answer.text
    assert "ValueError" not in answer.text
    assert "zebra" not in answer.text
    fine = httpx.post(f"{url}/v1/models/raw:predict",
                      json={"instances": [{"a": 1.5, "b": 1.0}]}, timeout=TIMEOUT)  # fmt: skip
    assert fine.status_code == 200, fine.text
    assert "raw@1 has no signature" in log.read_text()
    assert "could not convert" in log.read_text()  # the exception is for the operator
