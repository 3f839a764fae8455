"""The routing table: which loaded version answers for each model, kept in step with the registry.

A watcher polls the registry's per-model ``revision`` counters (a cheap query) every
``poll_interval`` seconds. When one moves, the model's production version is resolved again;
a new version is loaded (every file's sha256 checked), warmed with one prediction, and only then
swapped in by replacing one dict entry — requests already holding the old entry finish on it,
and its worker thread is released once it is idle. A version that fails to load or warm leaves
the old one serving; the failure is logged, counted and shown by ``/readyz``.

The watcher is supervised: a round that fails (the database away, or a bug) is logged, counted
in ``watchkeeper_background_task_failures_total{task="reload_watcher"}`` and tried again with
backoff (up to ``WATCH_BACKOFF_MAX`` apart); a model whose sync fails is retried on its own
without holding the others back. A replica whose view of the registry is stale (no successful
read of the revisions for ``max(5 s, 20 x poll_interval)``, while not loading a version) is
degraded but answering (``readiness.py``); one whose watcher stopped is not ready.

Every version is loaded once however many ask for it at the same time (single-flight: the
watcher and any number of requests await the same load). Pinned versions (``name@3``,
``name@latest``, ``name@alias``) are kept in a bounded LRU (``pins.py``); refs other than a
version number are resolved again whenever the model's revision moves. A version that is
replaced, retired or evicted has its batcher closed once no request has picked it up for
``retire_grace`` seconds and its queue is empty.

Readiness means the production versions are served: the replica is ready once the table has
started and every model here whose production version it tried to load is answering (by that
version, or by the one before while the new one cannot load). A candidate, standby or pinned
version that cannot load never makes it unready; a failed production load is tried again
(1 s, 2 s, 4 s ... up to 30 s apart). A deployment's candidate that cannot load is reported to
the registry (a ``load_failed`` event at the deployment's revision) and the rollout controller
rolls the deployment back: the table itself never changes what the deployment says.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from watchkeeper.errors import (
    ModelNotFound,
    ModelNotReady,
    NotFound,
    WatchkeeperError,
)
from watchkeeper.models.validation import ValidationPolicy
from watchkeeper.registry import ModelRef, ModelVersion, Registry
from watchkeeper.registry.deployments import Deployment
from watchkeeper.registry.refs import canonical_ref
from watchkeeper.serving.batcher import BatchingPolicy, MicroBatcher
from watchkeeper.serving.deployed import Deployed, Problem, Route, TableState
from watchkeeper.serving.live import replica_id
from watchkeeper.serving.metrics import ServingMetrics
from watchkeeper.serving.pins import PinnedVersions, PinPolicy
from watchkeeper.serving.readiness import Readiness, StaleView, stale_reason
from watchkeeper.serving.validation import Validator
from watchkeeper.serving.warmup import predict_fn, warm

log = logging.getLogger("watchkeeper.serving")
__all__ = ["Deployed", "ModelTable", "Route"]  # Deployed, Route: from deployed.py
CpuObserver = Callable[[str, int, float], None]  # model, version, CPU seconds
RETRY_FIRST, RETRY_MAX = 1.0, 30.0  # seconds before a failed production load is tried again
WATCH_BACKOFF_MAX = 2.0  # seconds between watcher rounds at most, while they fail
STALE_MIN, STALE_POLLS = 5.0, 20  # the registry view is stale after max(5 s, 20 polls)
LOAD_ALLOWANCE = 300.0  # extra staleness tolerated while the watcher loads a version
Check = Callable[[], str | None]  # another task's health: None, or why the replica is not ready


class ModelTable:
    def __init__(
        self,
        registry: Registry,
        *,
        metrics: ServingMetrics,
        validation: ValidationPolicy = ValidationPolicy(),
        batching: BatchingPolicy = BatchingPolicy(),
        models: list[str] | None = None,
        poll_interval: float = 0.25,
        on_cpu: CpuObserver | None = None,
        replica: str | None = None,
        pins: PinPolicy | None = None,
        retire_grace: float = 5.0,
        stale_view: StaleView = "degraded",
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.validation = validation
        self.batching = batching
        self.only = set(models) if models else None
        self.poll_interval = poll_interval
        self.on_cpu = on_cpu
        self.replica = replica or replica_id()
        self.state = TableState()
        self.pinned: PinnedVersions[Deployed] = PinnedVersions(pins or PinPolicy())
        self.retire_grace = retire_grace
        self.stale_after = max(STALE_MIN, STALE_POLLS * poll_interval)
        self.stale_view = stale_view
        self.checks: list[Check] = []
        self._watcher: asyncio.Task[None] | None = None
        self._retiring: dict[asyncio.Task[None], Deployed] = {}
        self._read_at: float | None = None  # time.monotonic() of the last revisions read
        self._watcher_loads = 0  # loads the watcher is waiting for
        self.started = False

    # --- lookups on the request path (no I/O) ----------------------------------------------

    def get(self, name: str) -> Deployed:
        deployed = self.state.live.get(name)
        if deployed is not None:
            deployed.last_used = time.monotonic()
            return deployed
        if name in self.state.revisions:
            problem = self.state.problems.get((name, "production"))
            why = problem.text if problem is not None else "it has no production version"
            raise ModelNotReady(f"model '{name}' is not being served: {why}")
        raise ModelNotFound(f"no model named '{name}' is served here")

    async def resolve(self, text: str) -> Deployed:
        """``name`` or ``name@ref``: production by default; pinned refs are loaded on first use
        (once, however many ask at the same time) and kept while the LRU bound allows."""
        text = canonical_ref(text)  # MLflow's models:/NAME/VERSION and models:/NAME@ALIAS
        if "@" not in text:
            return self.get(text)
        ref = ModelRef.parse(text)
        if ref.kind == "stage" and ref.value == "production":
            return self.get(ref.name)
        if self.only is not None and ref.name not in self.only:
            raise ModelNotFound(f"no model named '{ref.name}' is served here")
        key = (ref.name, await self._number(ref))
        deployed = self.state.pool.get(key) or self.pinned.get(key)
        if deployed is None and (deployed := self._revive(key, "pinned")) is not None:
            self._retire(self.pinned.add(key, deployed))  # e.g. the production just replaced
        if deployed is None:
            deployed = await self._loaded(key, "pinned")
        deployed.last_used = time.monotonic()  # a retired version is not closed under it
        return deployed

    async def _number(self, ref: ModelRef) -> int:
        """The version a ref names now; a stage, alias or ``latest`` is cached until the
        model's revision moves (an answer read across a move is used, not cached)."""
        if ref.kind == "version":
            return int(ref.value)
        text = str(ref)
        number = self.state.ref_cache.get(text)
        if number is None:
            epoch = self.state.ref_epoch.get(ref.name, 0)
            number = (await asyncio.to_thread(self.registry.store.resolve, ref)).version
            if self.state.ref_epoch.get(ref.name, 0) == epoch:
                self.state.ref_cache[text] = number
        return number

    def _refs_moved(self, name: str) -> None:
        self.state.ref_epoch[name] = self.state.ref_epoch.get(name, 0) + 1
        prefix = f"{name}@"
        for text in [t for t in self.state.ref_cache if t.startswith(prefix)]:
            del self.state.ref_cache[text]

    def route(self, name: str) -> Route | None:
        return self.state.routes.get(name)

    def served(self) -> list[Deployed]:
        return list(self.state.live.values())

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await self.refresh()
        # Models and libraries are long-lived: keep the cyclic GC from walking them on every
        # full collection (seen as 50-150 ms stalls in p99 latency under load).
        gc.freeze()
        self.started = True
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        for task in [*self._retiring, *self.state.loading.values()]:
            task.cancel()
        closing = [*self.state.pool.values(), *self.pinned.values(), *self._retiring.values()]
        for deployed in {id(d): d for d in closing}.values():
            await deployed.batcher.close()

    async def _watch(self) -> None:
        failures = 0
        while True:
            await asyncio.sleep(min(self.poll_interval * 2.0 ** min(failures, 16),
                                    max(self.poll_interval, WATCH_BACKOFF_MAX)))  # fmt: skip
            try:
                self._retire(self.pinned.pop_idle())
                await self.refresh()
                failures = 0
            except WatchkeeperError as exc:  # database blip: keep serving what is loaded
                failures += 1
                self.metrics.task_failed("reload_watcher")
                log.warning("registry poll failed (%d in a row): %s", failures, exc.message)
            except Exception:  # a bug must not stop this replica following the registry
                failures += 1
                self.metrics.task_failed("reload_watcher")
                log.exception("registry poll failed (%d in a row); trying again", failures)

    async def refresh(self) -> None:
        revisions = await asyncio.to_thread(self.registry.revisions)
        self._read_at = time.monotonic()
        if self.only is not None:
            revisions = {k: v for k, v in revisions.items() if k in self.only}
        now, clock = datetime.now(UTC), time.monotonic()
        expired = {n for n, until in self.state.standby_until.items() if until <= now}
        expired |= {n for n, (due, _) in self.state.retry.items() if due <= clock}
        for name, revision in revisions.items():
            moved = self.state.revisions.get(name) != revision
            if moved:
                self._refs_moved(name)  # name@latest, name@alias: resolved again when asked
            if moved or name in expired:
                await self._sync_isolated(name)
                self.state.revisions[name] = revision
        for name in set(self.state.revisions) - set(revisions):
            self.state.revisions.pop(name)
            self._refs_moved(name)
            self._forget(name)
            self._retire(self.pinned.pop_model(name))

    async def _sync_isolated(self, name: str) -> None:
        """``_sync``, where a bug met with one model is logged, counted and retried with
        backoff for that model alone (a database error fails the whole round instead)."""
        try:
            await self._sync(name)
        except WatchkeeperError:
            raise
        except Exception:
            self.metrics.task_failed("reload_watcher")
            log.exception("could not follow the registry for model '%s'; trying again", name)
            self._retry_later(name)

    async def _sync(self, name: str) -> None:
        """Bring one model in line with the registry: production, the deployment's candidate
        and a standby (the previous production, kept warm for an instant rollback). Versions
        are loaded before anything is swapped; one already loaded is reused at once."""
        try:
            version = await asyncio.to_thread(self.registry.get, f"{name}@production")
        except NotFound:
            self.state.live.pop(name, None)
            self.state.routes.pop(name, None)
            self._forget(name)
            self._retire_unwanted(name, set())
            return
        deployment = await asyncio.to_thread(self.registry.deployments.get, name)
        primary = await self._ensure(version, "production")
        self.state.production[name] = version.version
        if primary is None:
            self._retry_later(name)
            return  # the problem is recorded; what is loaded keeps serving
        self.state.retry.pop(name, None)
        keep = {version.version}
        route = await self._candidate(name, deployment, primary, keep)
        await self._standby(name, deployment, keep)
        previous = self.state.live.get(name)
        self.state.live[name] = primary  # the swap: dict assignments, no await in between
        if route is None:
            self.state.routes.pop(name, None)
        else:
            self.state.routes[name] = route
        gc.freeze()  # see start()
        if previous is not primary:
            self.metrics.reloads.labels(name).inc()
            log.info("%s now serves version %s", name, version.version)
        self._retire_unwanted(name, keep)
        self._label_roles(name, primary, route)
        if deployment is not None and deployment.active and route is None:
            await self._report(deployment)  # only if its candidate could not be loaded

    async def _candidate(
        self, name: str, deployment: Deployment | None, primary: Deployed, keep: set[int]
    ) -> Route | None:
        """The route to the deployment's candidate, loaded; None without one (or on failure)."""
        if deployment is None or not deployment.active or deployment.candidate is None:
            self.state.problems.pop((name, "candidate"), None)
            return None
        candidate = await self._ensure_number(name, deployment.candidate, "candidate")
        if candidate is None or candidate is primary:
            return None
        keep.add(deployment.candidate)
        field_name = deployment.config.get("routing_field")
        same = candidate.model.signature == primary.model.signature
        return Route(deployment.mode, candidate, deployment.share, field_name, same)

    async def _standby(self, name: str, deployment: Deployment | None, keep: set[int]) -> None:
        """The previous production version, kept loaded until the deployment says so."""
        standby = deployment.standby if deployment is not None else None
        until = deployment.standby_until if deployment is not None else None
        if standby is None or until is None or until <= datetime.now(UTC):
            self.state.standby_until.pop(name, None)
            self.state.problems.pop((name, "standby"), None)
            return
        if await self._ensure_number(name, standby, "standby") is not None:
            keep.add(standby)
            self.state.standby_until[name] = until

    async def _report(self, deployment: Deployment) -> None:
        """Tell the registry (once per deployment revision) that the candidate cannot be
        loaded here; the rollout controller rolls the deployment back. A failed report raises,
        so the next poll syncs the model (and reports) again."""
        name, number = deployment.model, deployment.candidate
        problem = self.state.problems.get((name, "candidate"))
        if number is None or problem is None:
            return
        if self.state.reported.get(name) == (deployment.revision, number):
            return
        reason = (f"{deployment.mode} candidate v{number} failed to load on {self.replica}: "
                  f"{problem.error}")  # fmt: skip
        await asyncio.to_thread(self.registry.deployments.report_load_failure, name,
                                deployment.revision, candidate=number, replica=self.replica,
                                reason=reason)  # fmt: skip
        self.state.reported[name] = (deployment.revision, number)

    def _retry_later(self, name: str) -> None:
        """A production version that failed to load is tried again, less and less often."""
        _, delay = self.state.retry.get(name, (0.0, RETRY_FIRST / 2))
        delay = min(delay * 2, RETRY_MAX)
        self.state.retry[name] = (time.monotonic() + delay, delay)

    def _forget(self, name: str) -> None:
        """Nothing of ``name`` is wanted here any more: no problems, nothing to serve."""
        self.state.production.pop(name, None)
        self.state.retry.pop(name, None)
        self.state.reported.pop(name, None)
        for key in [k for k in self.state.problems if k[0] == name]:
            self.state.problems.pop(key)

    async def _ensure_number(self, name: str, number: int, role: str) -> Deployed | None:
        loaded = self.state.pool.get((name, number))
        if loaded is not None:
            self.state.problems.pop((name, role), None)
            return loaded
        try:
            version = await asyncio.to_thread(self.registry.get, f"{name}@{number}")
        except NotFound:
            self.state.problems[(name, role)] = Problem(name, role, number, "it does not exist")
            return None
        return await self._ensure(version, role)

    async def _ensure(self, version: ModelVersion, role: str) -> Deployed | None:
        """The loaded version, loading (verify + warm) it first if needed; None on failure.
        A pinned version it needs moves into the pool (no second load)."""
        key = (version.name, version.version)
        loaded = self.state.pool.get(key) or self._unpin(key, role) or self._revive(key, role)
        if loaded is None:
            self._watcher_loads += 1
            try:
                loaded = await self._loaded(key, role, version)
            except WatchkeeperError as exc:
                problem = Problem(version.name, role, version.version, exc.message)
                self.state.problems[(version.name, role)] = problem
                log.error("%s: %s", version.name, problem.text)
                return None
            finally:
                self._watcher_loads -= 1
            self._unpin(key, role)  # a pinned load it joined
        self.state.pool[key] = loaded
        self.state.problems.pop((version.name, role), None)
        return loaded

    def _unpin(self, key: tuple[str, int], role: str) -> Deployed | None:
        """A pinned version taking a role in the pool: kept loaded, relabelled."""
        pinned = self.pinned.pop(key)
        if pinned is not None:
            self._relabel(pinned, role)
        return pinned

    def _revive(self, key: tuple[str, int], role: str) -> Deployed | None:
        """A retired version wanted again before its batcher closed (a quick rollback): kept."""
        for task, old in self._retiring.items():
            if (old.name, old.version.version) == key and not old.batcher.closed:
                task.cancel()  # before close() marks it closed: it stays usable
                self._relabel(old, role)
                return old
        return None

    def _relabel(self, deployed: Deployed, role: str) -> None:
        self.metrics.version_role(deployed.name, deployed.number, deployed.model.flavor, role)
        deployed.role = role

    def _label_roles(self, name: str, primary: Deployed, route: Route | None) -> None:
        """After a sync, each loaded version of ``name`` is labelled with the role it plays now
        (a promoted candidate is production, the previous production a standby)."""
        candidate = route.candidate if route is not None else None
        for (model, _), deployed in self.state.pool.items():
            if model == name:
                role = ("production" if deployed is primary else
                        "candidate" if deployed is candidate else "standby")  # fmt: skip
                if deployed.role != role:
                    self._relabel(deployed, role)

    async def _loaded(self, key: tuple[str, int], role: str,
                      version: ModelVersion | None = None) -> Deployed:  # fmt: skip
        """Single-flight: the one load of ``key``, started now or joined if running. A pinned
        load pins what it loaded; the caller's cancellation never cancels the load."""
        task = self.state.loading.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._load_key(key, role, version))
            self.state.loading[key] = task
            task.add_done_callback(self._loading_done)
        return await asyncio.shield(task)

    def _loading_done(self, task: asyncio.Task[Deployed]) -> None:
        for key in [k for k, t in self.state.loading.items() if t is task]:
            del self.state.loading[key]
        if not task.cancelled():
            task.exception()  # retrieved here: its waiters may all have gone

    async def _load_key(self, key: tuple[str, int], role: str,
                        version: ModelVersion | None) -> Deployed:  # fmt: skip
        name, number = key
        try:
            if version is None:
                version = await asyncio.to_thread(self.registry.get, f"{name}@{number}")
            deployed = await self._load(version, role=role)
        except WatchkeeperError:
            self.metrics.load_failures.labels(name, role).inc()
            raise
        if role != "pinned":
            self.state.pool[key] = deployed  # the watcher's sync decides whether it stays
        elif key not in self.state.pool:
            self._retire(self.pinned.add(key, deployed))
        return deployed

    def _retire_unwanted(self, name: str, keep: set[int]) -> None:
        self._retire([self.state.pool.pop(k) for k in list(self.state.pool)
                      if k[0] == name and k[1] not in keep])  # fmt: skip

    def _retire(self, versions: list[Deployed]) -> None:
        """Unload versions no longer wanted: each batcher is closed once no request has picked
        the version for ``retire_grace`` seconds and what it queued is answered."""
        for old in versions:
            self.metrics.version_retired(old.name, old.number)
            task = asyncio.get_running_loop().create_task(self._close_when_idle(old))
            self._retiring[task] = old
            task.add_done_callback(self._retired)

    def _retired(self, task: asyncio.Task[None]) -> None:
        old = self._retiring.pop(task)
        if not task.cancelled():  # cancelled: revived, or the server stops
            self.metrics.version_unloaded(old.name, old.number)
        if not task.cancelled() and task.exception() is not None:
            self.metrics.task_failed("retire")
            log.error("%s: version %s could not be unloaded", old.name, old.number,
                      exc_info=task.exception())  # fmt: skip

    async def _close_when_idle(self, old: Deployed) -> None:
        while (idle := time.monotonic() - old.last_used) < self.retire_grace:
            await asyncio.sleep(self.retire_grace - idle)
        await old.batcher.close()  # requests already holding it finish first
        log.info("%s: version %s unloaded (%s)", old.name, old.number, old.role)

    async def _load(self, version: ModelVersion, *, role: str) -> Deployed:
        model = await asyncio.to_thread(self.registry.load_version, version)
        # the package's files were all just verified by load_version
        profile = await asyncio.to_thread(self.registry.profile_of, version, verify=False)
        signature = model.signature
        validator = Validator(signature, self.validation) if signature is not None else None
        if signature is None:
            log.warning("%s has no signature: requests reach it unvalidated", version.ref)
        await asyncio.to_thread(warm, model, validator)
        name, number = version.name, str(version.version)
        self.metrics.version_loaded(name, number, model.flavor, role)  # before its series
        batcher = MicroBatcher(
            predict_fn(model, self._cpu_observer(version)),
            policy=self.batching,
            on_batch=self._batch_observer(name, number),
            on_fault=self.metrics.batcher_faults(name),
            name=name,
        )
        self.metrics.loads.labels(name, role).inc()
        classes = model.classes
        return Deployed(
            version=version,
            model=model,
            validator=validator,
            batcher=batcher,
            profile=profile,
            class_names=[str(c) for c in classes.tolist()] if classes is not None else None,
            role=role,
            last_used=time.monotonic(),
        )

    def _cpu_observer(self, version: ModelVersion) -> Callable[[float], None] | None:
        on_cpu = self.on_cpu
        if on_cpu is None:
            return None
        return lambda seconds: on_cpu(version.name, version.version, seconds)

    def _batch_observer(self, name: str, number: str) -> Callable[[int, int], None]:
        rows = self.metrics.child(self.metrics.batch_rows, name, number)
        depth = self.metrics.child(self.metrics.queue_depth, name, number)

        def observe(n_rows: int, queued: int) -> None:
            rows.observe(n_rows)
            depth.set(queued)

        return observe

    def readiness(self) -> dict[str, Any]:
        """``ready`` when started and every model whose production version was tried here is
        answering; ``degraded`` (still ready) while the registry view is stale, unless
        ``stale_view`` is ``unready``; ``problems`` lists every version that could not be
        loaded, in any role; ``reason`` says what is wrong (see readiness.py)."""
        state = Readiness(
            models={d.name: d.number for d in self.state.live.values()},
            problems=[p.to_dict() for _, p in sorted(self.state.problems.items())],
        )
        if not self.started:
            state.blocking.append("the model table has not started")
        if self._watcher is not None and self._watcher.done():
            state.blocking.append("the registry watcher stopped")
        stale = stale_reason(self.view_age(), self._stale_bound())
        if stale is not None:
            (state.blocking if self.stale_view == "unready" else state.degraded).append(stale)
        state.blocking += [why for check in self.checks if (why := check()) is not None]
        for name, number in sorted(self.state.production.items()):
            if name not in self.state.live:
                problem = self.state.problems.get((name, "production"))
                why = problem.text if problem is not None else f"version {number} is not loaded"
                state.blocking.append(f"model '{name}' is not served: {why}")
        return state.to_dict()

    @property
    def ready(self) -> bool:
        return bool(self.readiness()["ready"])

    def view_age(self) -> float:
        """Seconds since the registry was last read successfully (0 before the start)."""
        if not self.started or self._read_at is None:
            return 0.0
        return time.monotonic() - self._read_at

    def _stale_bound(self) -> float:
        """A load in progress gets time: the watcher reads again once it is done."""
        return self.stale_after + (LOAD_ALLOWANCE if self._watcher_loads else 0.0)
