"""One real ``watchkeeper serve`` process for the wire tests with the peers' own clients.

It serves ``iris`` (four float columns; integer labels and probabilities), ``cities`` (a
scikit-learn Pipeline one-hot encoding a string column, answering text labels) and ``faulty``
(raises on ``x == 666``), with ``iris`` answering MLflow's ``/invocations``. The process runs in
its own process group, killed whole when the module's tests end. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder

from tests.faults.test_requests import Faulty
from tests.processes import ROOT, free_port, wait_for
from tests.security.conftest import kill_group
from watchkeeper.config import Settings
from watchkeeper.registry import Registry

CITIES = ["paris", "rome", "zürich"]


@dataclass
class Wire:
    url: str
    port: int
    iris_X: pd.DataFrame
    iris: LogisticRegression
    cities_X: pd.DataFrame
    cities: Pipeline
    log: Path

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.port}"


def _iris() -> tuple[pd.DataFrame, LogisticRegression]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in X.columns]
    return X, LogisticRegression(max_iter=1000).fit(X, y)


def _cities() -> tuple[pd.DataFrame, Pipeline]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"city": rng.choice(CITIES, 300), "x": rng.normal(size=300)})
    y = np.where((X["city"] == "rome") | (X["x"] > 0.5), "yes", "no")
    encode = ColumnTransformer([("city", OneHotEncoder(), ["city"])], remainder="passthrough")
    return X, make_pipeline(encode, LogisticRegression()).fit(X, y)


@contextmanager
def wire_server(home: Path, args: Sequence[str] = ()) -> Iterator[Wire]:
    """The server, ready, serving the three models from a registry in ``home``; ``args`` are
    more ``watchkeeper serve`` options."""
    iris_X, iris = _iris()
    cities_X, cities = _cities()
    frame = pd.DataFrame({"x": np.linspace(0.0, 10.0, 11), "y": np.linspace(0.0, 1.0, 11)})
    with Registry(Settings(home=home, user="tester")) as registry:
        registry.register("iris", iris, input_example=iris_X, stage="production")
        registry.register("cities", cities, input_example=cities_X, stage="production")
        registry.register("faulty", Faulty(), flavor="python", input_example=frame,
                          stage="production")  # fmt: skip
    port = free_port()
    log = home / "serve.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "watchkeeper", "serve", "--port", str(port), "--model", "iris",
             "--without-scheduler", "--log-level", "warning", *args],
            env={**os.environ, "WATCHKEEPER_HOME": str(home)}, cwd=ROOT, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert proc.poll() is None, log.read_text(errors="replace")
            try:
                answer = httpx.get(f"{url}/readyz", timeout=1)
            except httpx.TransportError:
                return False
            return answer.status_code == 200 and len(answer.json()["models"]) == 3

        wait_for(ready, 60, f"{url} to serve three models")
        yield Wire(url, port, iris_X, iris, cities_X, cities, log)
    finally:
        kill_group(proc)
