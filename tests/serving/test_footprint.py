"""Lean at rest: what a serving process and an idle scheduler import.

Each check runs in a fresh interpreter (``sys.modules`` of this test process holds everything
the suite ever imported) and lists the modules loaded once the app is built, or once the
scheduler has run a round with nothing to do. The job code (monitor runs with their HTML
reports, the model-based drift estimators and scikit-learn behind them, retraining runs) is
imported when a job of that kind runs, not at start. (A batch schedule's spec, and with it
``watchkeeper.batch.job``, is read at every round: it costs nothing the logbook has not already
imported.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from watchkeeper.config import Settings
from watchkeeper.registry import Registry

JOB_CODE = (
    "watchkeeper.watch.runner",  # a monitor run (and monitoring.html: jinja2)
    "watchkeeper.monitoring.checks",  # model-based estimators: sklearn.isotonic, ensembles
    "watchkeeper.retraining.runner",
)
SCHEDULER_AT_REST = (*JOB_CODE, "sklearn", "jinja2")

SERVER = """
import json, sys
from watchkeeper.config import Settings
from watchkeeper.server import create_app
create_app(Settings(home=sys.argv[1]))
print(json.dumps(sorted(sys.modules)))
"""

SCHEDULER = """
import json, sys
from watchkeeper.config import Settings
from watchkeeper.scheduler import Scheduler, SchedulerOptions
loop = Scheduler(Settings(home=sys.argv[1]), SchedulerOptions(jobs_in_thread=False))
assert loop.run_once(), "the round did not run: the lease was not taken"
print(json.dumps(sorted(sys.modules)))
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("footprint") / "home"
    X = np.random.default_rng(0).normal(size=(200, 4))
    with Registry(Settings(home=home)) as registry:
        registry.register("lr", LogisticRegression().fit(X, X[:, 0] > 0), input_example=X[:50],
                          stage="production")  # fmt: skip
    return home


def imported(script: str, home: Path) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_")}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script), str(home)], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_serving_app_imports_no_job_code(home: Path) -> None:
    modules = imported(SERVER, home)
    assert "watchkeeper.serving.app" in modules  # the probe saw the app being built
    assert not {m for m in JOB_CODE if m in modules}
    assert "watchkeeper.scheduler" not in modules  # the scheduler runs in its own process


def test_an_idle_scheduler_round_imports_no_job_code(home: Path) -> None:
    modules = imported(SCHEDULER, home)
    assert "watchkeeper.scheduler" in modules
    assert "watchkeeper.rollout.controller" in modules  # the round ran its rollout tick
    assert not {m for m in SCHEDULER_AT_REST if m in modules}
