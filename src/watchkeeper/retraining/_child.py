"""The training subprocess: import the user's function, call it, save what it returns.

Run as ``python -m watchkeeper.retraining._child JOB.json``; the parent enforces the timeout
and keeps this process's stdout and stderr with the run.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from watchkeeper.models import save_model
from watchkeeper.retraining.context import TrainingContext


def main(job_file: str) -> int:
    job: dict[str, Any] = json.loads(Path(job_file).read_text())
    module_name, _, attribute = job["entrypoint"].partition(":")
    function = getattr(importlib.import_module(module_name), attribute)
    data = pd.read_parquet(job["train"])
    output = Path(job["output"])
    context = TrainingContext(
        model=job["model"], data=data, features=list(job["features"]), label=job["label"],
        params=dict(job["params"]), reference_uri=job.get("reference_uri"),
        parent_version=job.get("parent_version"), output_dir=output,
        train_window=tuple(job["train_window"]),
    )  # fmt: skip
    returned = function(context)
    model, metrics = returned if isinstance(returned, tuple) else (returned, {})
    # the columns the model was fitted on, when it says (a model may use fewer than offered)
    names = [str(c) for c in getattr(model, "feature_names_in_", context.features)]
    save_model(model, output / "model", input_example=data[names].head(200))
    (output / "metrics.json").write_text(json.dumps({k: float(v) for k, v in metrics.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
