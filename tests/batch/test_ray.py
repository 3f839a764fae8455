"""The Ray engine on a local 2-CPU Ray gives exactly the local engine's output."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.batch.test_job import frame, world, write_parts  # noqa: F401 (world: a fixture)
from watchkeeper.batch.job import BatchSpec, run_batch

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("ray") is None,
        reason="Ray is not installed (pip install 'watchkeeper[ray]'; the dev extra has it)",
    ),
]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A 2-CPU Ray on this machine that never reaches past localhost.

    Usage stats off; the node bound to the loopback address; and Ray's own dashboard process,
    which probes cloud-metadata addresses even with usage stats off, sent to a closed local
    proxy port while Ray starts (the test's input and output are local files).
    """
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_USAGE_STATS_ENABLED", "0")
        env.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # read when ray is imported
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env.setenv(name, "http://127.0.0.1:9")
        for name in ("NO_PROXY", "no_proxy", "RAY_ADDRESS"):
            env.delenv(name, raising=False)
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)  # fmt: skip
    try:
        yield
    finally:
        ray.shutdown()


def test_ray_output_rejects_and_order_match_the_local_engine(world, local_ray) -> None:  # noqa: F811
    settings, model, tmp = world
    data = frame(24_000, seed=11)
    data.loc[[5, 9_001, 23_999], "b"] = np.nan  # rejects in the first and the last task
    write_parts(tmp / "in", data, parts=3, row_group=2_000)
    results = {}
    for engine in ("local", "ray"):
        spec = BatchSpec(model="m", input=str(tmp / "in"), output=str(tmp / f"{engine}.parquet"),
                         engine=engine, workers=2, chunk_rows=1_500, id_column="customer",
                         passthrough=("region",))  # fmt: skip
        results[engine] = run_batch(settings, spec).run
    local = pd.read_parquet(tmp / "local.parquet").drop(columns="scored_at")
    ray_out = pd.read_parquet(tmp / "ray.parquet").drop(columns="scored_at")
    assert len(ray_out) == 23_997
    pd.testing.assert_frame_equal(ray_out, local)  # same rows, same order, same values
    assert list(ray_out["customer"]) == [c for c in data["customer"] if c not in
                                         {"c000005", "c009001", "c023999"}]  # fmt: skip
    pd.testing.assert_frame_equal(pd.read_parquet(tmp / "ray.rejects.parquet"),
                                  pd.read_parquet(tmp / "local.rejects.parquet"))  # fmt: skip
    assert list(pd.read_parquet(tmp / "ray.rejects.parquet")["row"]) == [5, 1_001, 7_999]
    run = results["ray"]
    assert (run.engine, run.status) == ("ray", "succeeded")
    assert (run.rows_in, run.rows_out, run.rows_rejected) == (24_000, 23_997, 3)
    assert not Path(str(tmp / "ray.parquet") + ".staging").exists()
