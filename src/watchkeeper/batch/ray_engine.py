"""The Ray engine: the same tasks on Ray actors, each loading the model once.

On this machine it starts a local Ray with ``workers`` CPUs; given ``--ray-address`` (or
``RAY_ADDRESS``) it joins that cluster, so the same command scales out. Workers read their own
tasks from the input and write to the staging folder, so the input and output must be reachable
from every node (an object store URL on a cluster).
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
