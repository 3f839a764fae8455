"""bench/peers/run.py without the peers: its --help, wrk's report read, and the table's ratios
and verdicts on figures written out here (nothing is installed, served or measured)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy
import pytest
import sklearn

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "peers" / "run.py"

WRK_REPORT = """\
Running 10s test @ http://127.0.0.1:5000/invocations
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    80.11ms   12.40ms 210.00ms   90.00%
    Req/Sec   200.00     20.00   250.00     70.00%
  Latency Distribution
     50%   77.42ms
     75%   85.00ms
     90%   95.00ms
     99%    1.33s
  3500 requests in 10.00s, 600.00KB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 4
Requests/sec:    350.12
Transfer/sec:     60.00KB
"""


@pytest.fixture(scope="module")
def run() -> ModuleType:
    saved = list(sys.path)
    try:
        spec = importlib.util.spec_from_file_location("peers_run", SCRIPT)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path[:] = saved


def test_help_names_the_options() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=True
    ).stdout
    for option in ("--duration", "--warmup", "--models", "--venv", "--fresh", "--doc"):
        assert option in out


def test_wrk_report_is_read(run: ModuleType) -> None:
    cell = run.parse_wrk(WRK_REPORT)
    assert (cell.rps, cell.p50, cell.p99, cell.errors) == (350.12, 77.42, 1330.0, 9)
    assert run.to_ms("950.00us") == pytest.approx(0.95)
    with pytest.raises(ValueError, match="Requests/sec"):
        run.parse_wrk("no report")


def test_table_ratios_and_verdicts(run: ModuleType) -> None:
    def result(rps: float, p99: float) -> object:
        return run.Result(c32=run.Cell(rps, 1.0, p99), c1=run.Cell(100.0, 0.5, 1.0), rss_mb=100.0)

    results = {
        (run.FLOOR, "-"): result(20000, 4.0),
        (run.WK_INVOCATIONS, "lr"): result(10000, 8.0),
        (run.MLFLOW, "lr"): result(400, 200.0),
        (run.BENTOML, "lr"): result(2500, 6.0),
    }
    text = run.table(results, {"lr": 0.05})
    lines = text.splitlines()
    assert len(lines) == 2 + len(results)
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    wk, mlflow, bento = lines[3], lines[4], lines[5]
    assert "| 0.500 |" in wk
    assert "LogisticRegression (0.050 ms)" in wk
    assert "25.00x (goal >= 20x: held)" in mlflow
    assert "| lower (8.0 vs 200.0 ms) |" in mlflow
    assert "4.00x (goal >= 5x: missed)" in bento
    assert "NOT lower (8.0 vs 6.0 ms)" in bento
    assert [line.split(":")[0] for line in run.goals(results)] == [
        "- LogisticRegression, watchkeeper / MLflow `mlflow models serve`",
        "- LogisticRegression, watchkeeper / BentoML, adaptive batching",
    ]


def test_the_peer_venv_pins_this_environments_sklearn_and_numpy(run: ModuleType) -> None:
    wanted = sys.modules["peer_env"].requirements()
    assert f"scikit-learn=={sklearn.__version__}" in wanted
    assert f"numpy=={numpy.__version__}" in wanted
    assert any(r.startswith("mlflow") for r in wanted)
    assert "bentoml>=1.4,<1.5" in wanted
