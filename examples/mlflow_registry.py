"""A small MLflow model registry to try ``watchkeeper models import-mlflow`` on.

Trains two iris classifiers, logs each with MLflow (signature, accuracy, the parameter C) into
the tracking store ``./mlflow.db`` (model files under ``./mlflow-artifacts``), registers both as
the MLflow model ``iris``, describes it and points the alias ``champion`` at version 1. Needs
MLflow (``pip install 'watchkeeper[mlflow]'``); nothing is downloaded.

    python examples/mlflow_registry.py
    watchkeeper models import-mlflow --tracking-uri sqlite:///mlflow.db
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import mlflow.sklearn
from mlflow import MlflowClient
from mlflow.models import infer_signature
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

TRACKING_URI = "sqlite:///mlflow.db"
NAME = "iris"


def main() -> None:
    mlflow.set_tracking_uri(TRACKING_URI)
    client = MlflowClient()
    if client.get_experiment_by_name("iris-training") is None:
        artifacts = Path("mlflow-artifacts").resolve().as_uri()
        client.create_experiment("iris-training", artifact_location=artifacts)
    mlflow.set_experiment("iris-training")
    X, y = load_iris(return_X_y=True, as_frame=True)
    versions = []
    for c in (0.1, 1.0):
        model = LogisticRegression(C=c, max_iter=1000).fit(X, y)
        with mlflow.start_run():
            mlflow.log_param("C", c)
            mlflow.log_metric("accuracy", model.score(X, y))
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=infer_signature(X, model.predict(X)),
                registered_model_name=NAME,
                pip_requirements=["scikit-learn"],  # skip MLflow's slow requirement inference
            )
        versions.append(str(info.registered_model_version))
    client.update_registered_model(NAME, description="Iris species from petal and sepal sizes")
    client.set_registered_model_alias(NAME, "champion", versions[0])
    print(f"MLflow model {NAME!r}: versions {', '.join(versions)}, champion -> {versions[0]}")


if __name__ == "__main__":
    main()
