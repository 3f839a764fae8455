"""The registry in one minute, on the embedded default (SQLite + local files).

Trains two classifiers on scikit-learn's bundled breast-cancer data, registers both with their
metrics, lineage and a reference profile, promotes one then the other to production, rolls back,
and prints the registry. Run it again and it adds two more versions: nothing is overwritten.

    python examples/quickstart.py          # state goes to $WATCHKEEPER_HOME or ./.watchkeeper
"""

from __future__ import annotations

import subprocess
import sys

from rich.console import Console
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import watchkeeper

NAME = "breast-cancer"


def main() -> None:
    console = Console()
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X.columns = [c.replace(" ", "_") for c in X.columns]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
    settings = watchkeeper.Settings.load()  # WATCHKEEPER_* variables, else ./.watchkeeper
    train_file = settings.home / "data" / "breast-cancer-train.parquet"
    train_file.parent.mkdir(parents=True, exist_ok=True)
    X_train.to_parquet(train_file)

    candidates = {
        "logistic-regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
        "random-forest": RandomForestClassifier(n_estimators=100, random_state=0),
    }
    registry = watchkeeper.Registry(settings)
    versions = []
    for run_id, model in candidates.items():
        model.fit(X_train, y_train)
        scores = model.predict_proba(X_test)[:, 1]
        metrics = {
            "accuracy": accuracy_score(y_test, model.predict(X_test)),
            "roc_auc": roc_auc_score(y_test, scores),
        }
        version = registry.register(
            NAME,
            model,
            input_example=X_train,
            reference_data=train_file,
            metrics=metrics,
            run_id=run_id,
            tags={"dataset": "sklearn.breast_cancer"},
        )
        versions.append(version.version)
        console.print(
            f"registered [bold]{version.ref}[/] ({run_id}): "
            + ", ".join(f"{k}={v:.3f}" for k, v in metrics.items())
        )

    first, second = versions
    registry.promote(NAME, first, "production", reason="quickstart: first release")
    registry.promote(NAME, second, "production", reason="quickstart: new model")
    console.print(f"production is now version {registry.get(NAME + '@production').version}")
    back = registry.rollback(NAME, reason="quickstart: showing rollback")
    console.print(f"rolled back: production is version [bold]{back.version}[/] again")

    live = registry.load(f"{NAME}@production")
    sample = X_test.head(3)
    console.print(f"predictions of {NAME}@production on 3 rows: {live.predict(sample).tolist()}")
    registry.close()

    # The same registry through the CLI.
    for args in (["models", "show", NAME], ["models", "history", NAME, "--limit", "6"]):
        subprocess.run([sys.executable, "-m", "watchkeeper", *args], check=True)
    console.print(
        "next: [bold].venv/bin/watchkeeper models --help[/] "
        f"or [bold].venv/bin/watchkeeper models show {NAME}@production[/]"
    )


if __name__ == "__main__":
    main()
