"""Training entrypoints the retraining tests run in a subprocess (imported by module path)."""

from __future__ import annotations

import time

import numpy as np
from sklearn.linear_model import LogisticRegression

from watchkeeper.retraining.context import TrainingContext


def fit(ctx: TrainingContext):
    model = LogisticRegression(C=float(ctx.params.get("C", 1.0))).fit(ctx.X, ctx.y.astype(int))
    print(f"trained on {len(ctx.data)} rows")  # noqa: T201 - kept with the run
    return model, {"train_rows": len(ctx.data)}


def fit_corrupted(ctx: TrainingContext):
    labels = np.random.default_rng(0).permutation(ctx.y.astype(int).to_numpy())
    return LogisticRegression().fit(ctx.X, labels)


def crash(ctx: TrainingContext):
    raise RuntimeError("the feature store is down")


def hang(ctx: TrainingContext):
    time.sleep(60)


def fit_two_features(ctx: TrainingContext):
    return LogisticRegression().fit(ctx.X[ctx.features[:2]], ctx.y.astype(int))
