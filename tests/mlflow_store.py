"""A real MLflow tracking store (SQLite + local artifacts) with a registered model, made by
MLflow itself, for the import tests."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


@contextmanager
def quiet() -> Iterator[None]:
    """MLflow warns about itself (deprecations in its store); the tests turn warnings into
    errors, so MLflow runs with them off."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@dataclass
class Store:
    """``iris`` versions 1 (C=0.5) and 2 (C=2.0, in MLflow's Production stage), alias
    ``champion`` on version 1, a description and tags on the model and on version 2."""

    root: Path
    X: pd.DataFrame
    y: pd.Series
    run_ids: dict[int, str] = field(default_factory=dict)
    accuracy: dict[int, float] = field(default_factory=dict)
    predictions: dict[int, np.ndarray] = field(default_factory=dict)  # MLflow pyfunc's

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    def client(self) -> Any:
        with quiet():
            from mlflow import MlflowClient

            return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def log_version(self, c: float) -> int:
        """Train, log and register one more ``iris`` version; returns its MLflow number."""
        with quiet():
            import mlflow
            import mlflow.pyfunc
            import mlflow.sklearn
            from mlflow.models import infer_signature

            previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
            mlflow.set_tracking_uri(self.uri)
            mlflow.set_registry_uri(self.uri)
            try:
                experiment = mlflow.set_experiment("iris")
                model = LogisticRegression(C=c, max_iter=1000).fit(self.X, self.y)
                with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
                    mlflow.log_param("C", c)
                    mlflow.log_metric("accuracy", model.score(self.X, self.y))
                    info = mlflow.sklearn.log_model(
                        model,
                        name="model",
                        signature=infer_signature(self.X, model.predict(self.X)),
                        registered_model_name="iris",
                        pip_requirements=["scikit-learn"],
                    )
                loaded = mlflow.pyfunc.load_model(info.model_uri)
                version = int(info.registered_model_version)
                self.predictions[version] = np.asarray(loaded.predict(self.X))
            finally:
                mlflow.set_tracking_uri(previous[0])
                mlflow.set_registry_uri(previous[1])
        self.run_ids[version] = run.info.run_id
        self.accuracy[version] = model.score(self.X, self.y)
        return version

    def copy(self, root: Path) -> Store:
        """The same store in another folder (the database; artifacts stay where they are)."""
        root.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.root / "mlflow.db", root / "mlflow.db")
        return Store(root, self.X, self.y, dict(self.run_ids), dict(self.accuracy),
                     dict(self.predictions))  # fmt: skip


def make_store(root: Path) -> Store:
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in X.columns]
    store = Store(root, X, y)
    client = store.client()
    with quiet():
        client.create_experiment("iris", artifact_location=(root / "artifacts").as_uri())
    store.log_version(0.5)
    store.log_version(2.0)
    with quiet():
        client.set_registered_model_alias("iris", "champion", "1")
        client.update_registered_model("iris", description="iris classifier from MLflow")
        client.set_registered_model_tag("iris", "team", "risk")
        client.update_model_version("iris", "2", description="stronger regularisation off")
        client.set_model_version_tag("iris", "2", "reviewed", "yes")
        client.transition_model_version_stage("iris", "2", "Production")
    return store
