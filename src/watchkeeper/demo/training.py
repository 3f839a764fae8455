"""The demo's retraining entrypoint (``watchkeeper.demo.training:train``)."""

from __future__ import annotations

from typing import Any

from watchkeeper.demo.models import churn_model
from watchkeeper.retraining.context import TrainingContext


def train(ctx: TrainingContext) -> Any:
    print(f"training on {len(ctx.data)} labelled rows from the logbook")  # noqa: T201
    return churn_model(ctx.X, ctx.y.astype(int)), {"training_rows": float(len(ctx.data))}
