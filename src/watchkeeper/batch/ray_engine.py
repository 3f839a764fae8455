"""The Ray engine: the same tasks as the local engine, on Ray actors that load the model once.

On this machine it starts a local Ray with ``workers`` CPUs (bound to localhost, usage reporting
off); given ``--ray-address`` (or ``RAY_ADDRESS``) it joins that cluster, so the same command
scales out. The driver only plans (Parquet footers) and commits; each actor reads its own task
from the input URL and writes its parts and ``_DONE`` marker to the staging URL, so on a
cluster the input, the output and the registry must be reachable from every node (object-store
URLs, PostgreSQL). A SQL output stages under the working folder: on a cluster, run from a
shared one.

Why actors and not a Ray Data pipeline (``read_parquet`` -> ``map_batches(Scorer)`` ->
``write_parquet``), measured by ``bench/batch.py`` (10 M rows x 20 features, 2 workers on this
2-core machine, the same ``score_chunk`` in both; the pipeline without rejects, logbook or
commit, so a lower bound for it):

==========================  ======================  =====================
                            actors (this module)    Ray Data pipeline
==========================  ======================  =====================
LogisticRegression          28.3 s, 1.9 GB          27.5 s, 3.8 GB
RandomForest, 100 trees     397 s, 1.8 GB *         300 s, 4.0 GB *
==========================  ======================  =====================

(peak summed PSS of every process, object store included; * both while the test suite ran on
the same two cores, so their times say little; re-run ``bench/batch.py --runs ray,ray-data``).
Rows through the object store double the memory and bought no speed where the machine was
quiet: the pipeline copies every block from a read task to an actor and on
to a write task, where an actor here streams its task from the file to its parts. And every
property the tests check would have to be rebuilt around the pipeline: input order needs
``preserve_order``, rejects a second output, ``--resume`` a mapping from blocks back to
finished input tasks, the commit a barrier after ``write_parquet``. Ray Data 2.60 also hung
with one CPU per scoring actor on a 2-CPU Ray (its read tasks starved) and failed to read a
list of local Parquet files without aiohttp installed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from watchkeeper.batch.tasks import JobContext, Task, TaskResult, Worker
from watchkeeper.errors import MissingDependency

# A Ray started here stays on this machine: no usage report, the node on the loopback address.
LOCAL_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


class _Actor:
    def __init__(self, context: JobContext) -> None:
        self.worker = Worker(context)

    def run(self, task: Task) -> TaskResult:
        return self.worker.run(task)


def run_ray(
    context: JobContext, tasks: list[Task], workers: int, *, address: str | None = None
) -> Iterator[TaskResult]:
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        for name, value in LOCAL_ENV.items():  # before Ray is imported: it reads them then
            os.environ.setdefault(name, value)
    try:
        import ray
        from ray.util import ActorPool
    except ImportError as exc:
        raise MissingDependency("the ray engine needs Ray: pip install 'watchkeeper[ray]'") from exc
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else workers,
                 include_dashboard=False, log_to_driver=False,
                 configure_logging=False)  # fmt: skip
    try:
        actor: Any = ray.remote(num_cpus=1)(_Actor)
        actors = [actor.remote(context) for _ in range(max(1, min(workers, len(tasks))))]
        pool = ActorPool(actors)
        yield from pool.map_unordered(lambda a, t: a.run.remote(t), tasks)
    finally:
        if started:
            ray.shutdown()
