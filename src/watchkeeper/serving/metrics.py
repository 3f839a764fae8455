"""Prometheus metrics of one server process (one registry per app, never the global one).

Names follow Prometheus' rules: one ``watchkeeper_`` prefix, base units (seconds, bytes),
``_total`` on counters (no ``_created`` series), an HTTP status in the label ``code``, and no
unbounded labels (no request ids). A ``version`` label exists only for versions loaded in the
routing table (pinned ones included): every series of a version is removed when the table
unloads it, so the series grow with the versions served, not with the versions ever served.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from watchkeeper.errors import WatchkeeperError
from watchkeeper.logbook import LogbookStats
from watchkeeper.monitoring.results import CheckResult
from watchkeeper.registry.monitoring import Alert, MonitoringStore

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)


class _CostCollector(Collector):
    """Estimated compute cost: this process's CPU seconds times a price per CPU-hour."""

    def __init__(self, price_per_cpu_hour: float) -> None:
        self.price = price_per_cpu_hour

    def collect(self) -> Iterator[Metric]:
        cpu = time.process_time()
        family = CounterMetricFamily(
            "watchkeeper_estimated_cost_dollars",
            "Estimated compute cost of this process (CPU seconds x price per CPU-hour).",
        )
        family.add_metric([], cpu / 3600.0 * self.price)
        yield family


class _LogbookCollector(Collector):
    """Rows written and buffered, read from the logbook's own counters at scrape time."""

    def __init__(self, stats: Callable[[], LogbookStats]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        now = self.stats()
        written = CounterMetricFamily(
            "watchkeeper_logbook_rows_written", "Prediction rows written to the logbook."
        )
        written.add_metric([], now.written_rows)
        yield written
        sampled = CounterMetricFamily(
            "watchkeeper_logbook_sampled_out_rows", "Rows not logged because of sampling."
        )
        sampled.add_metric([], now.sampled_out_rows)
        yield sampled
        buffered = GaugeMetricFamily(
            "watchkeeper_logbook_buffered_rows", "Rows waiting to be written."
        )
        buffered.add_metric([], now.buffered_rows)
        yield buffered


class _MonitorCollector(Collector):
    """The latest value of every monitor check, and open alerts, read from the database at
    scrape time (cached for ``ttl`` seconds so a busy Prometheus does not load the database)."""

    def __init__(self, store: MonitoringStore, *, ttl: float = 15.0) -> None:
        self.store = store
        self.ttl = ttl
        self._cached: tuple[float, list[CheckResult], list[Alert]] | None = None

    def collect(self) -> Iterator[Metric]:
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] > self.ttl:
            try:
                self._cached = (now, self.store.latest(), self.store.alerts())
            except WatchkeeperError:  # the database is away: export nothing rather than fail
                return
        _, results, alerts = self._cached
        value = GaugeMetricFamily(
            "watchkeeper_monitor_value",
            "Latest value of each monitor statistic (drift score, null ratio, performance...).",
            labels=["model", "check", "feature", "statistic"],
        )
        failing = GaugeMetricFamily(
            "watchkeeper_monitor_failing", "1 when the latest result of a check failed.",
            labels=["model", "check", "feature", "statistic"],
        )  # fmt: skip
        for r in results:
            labels = [r.model, r.check, r.feature, r.statistic]
            if r.value is not None:
                value.add_metric(labels, r.value)
            failing.add_metric(labels, 1.0 if r.status == "fail" else 0.0)
        open_alerts = GaugeMetricFamily(
            "watchkeeper_alerts_open", "Open alerts.", labels=["model", "check"]
        )
        counts: dict[tuple[str, str], int] = {}
        for a in alerts:
            counts[(a.model, a.check)] = counts.get((a.model, a.check), 0) + 1
        for (model, check), n in counts.items():
            open_alerts.add_metric([model, check], n)
        yield from (value, failing, open_alerts)


class _Discarded:
    """Stands in for the series of a version no longer loaded: what it is told is dropped
    (a request that finished as its version was unloaded must not bring the series back)."""

    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass


_DISCARDED = _Discarded()


class ServingMetrics:
    """The metrics of one server. Metrics labelled by version take ``model, version`` as their
    first two labels; their series are made through :meth:`child` and removed by
    :meth:`version_unloaded`."""

    def __init__(self, *, price_per_cpu_hour: float = 0.05) -> None:
        # Process-wide in prometheus_client: no ``_created`` series next to counters and
        # histograms (dashboards never use them; they doubled the series of every counter).
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "watchkeeper_requests",
            "Prediction requests answered, by HTTP status code ('' version: none was picked).",
            ["model", "version", "protocol", "code"],
            registry=r,
        )
        self.duration = Histogram(
            "watchkeeper_request_duration_seconds",
            "Time to answer a prediction request, by the version that answered.",
            ["model", "version", "protocol"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_rows = Histogram(
            "watchkeeper_batch_size_rows",
            "Rows per model call after micro-batching.",
            ["model", "version"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "watchkeeper_queue_depth",
            "Requests waiting for a model call.",
            ["model", "version"],
            registry=r,
        )
        self.rows = Counter(
            "watchkeeper_rows_predicted", "Rows predicted.", ["model", "version"], registry=r
        )
        self.model_info = Gauge(
            "watchkeeper_model_info",
            "Versions loaded here, one series each (always 1) labelled with the role it plays "
            "now: production, candidate, standby or pinned.",
            ["model", "version", "flavor", "role"],
            registry=r,
        )
        self.input_problems = Counter(
            "watchkeeper_input_problems",
            "Input problems found by validation, per field.",
            ["model", "field", "problem"],
            registry=r,
        )
        self.load_failures = Counter(
            "watchkeeper_model_load_failures",
            "Versions that failed to load or warm up, by role (production, candidate, standby).",
            ["model", "role"],
            registry=r,
        )
        self.reloads = Counter(
            "watchkeeper_model_reloads",
            "Versions swapped in by hot reload.",
            ["model"],
            registry=r,
        )
        self.loads = Counter(
            "watchkeeper_model_loads",
            "Versions loaded here (files verified, model deserialised, warmed), by role "
            "(production, candidate, standby, pinned); concurrent asks share one load.",
            ["model", "role"],
            registry=r,
        )
        self.logbook_dropped = Counter(
            "watchkeeper_logbook_dropped",
            "Prediction rows dropped because the buffer was full.",
            registry=r,
        )
        self.logbook_flush_failures = Counter(
            "watchkeeper_logbook_flush_failures",
            "Logbook flushes that failed (retried).",
            registry=r,
        )
        self.shadow = Counter(
            "watchkeeper_shadow_requests",
            "Copies of requests sent to a shadow version, by outcome (ok, error, dropped).",
            ["model", "version", "outcome"],
            registry=r,
        )
        self.task_failures = Counter(
            "watchkeeper_background_task_failures",
            "Failed rounds of a background task (reload watcher, live stats, shadow copier, "
            "batcher...), each logged; the task carries on, retrying with backoff.",
            ["task"],
            registry=r,
        )
        self.prediction_timeouts = Counter(
            "watchkeeper_prediction_timeouts",
            "Model calls that did not answer within the prediction timeout (answered 504).",
            ["model"],
            registry=r,
        )
        self.hung_model_calls = Gauge(
            "watchkeeper_hung_model_calls",
            "Model calls past their timeout still running on an abandoned thread.",
            ["model"],
            registry=r,
        )
        self.records_dropped = Counter(
            "watchkeeper_prediction_records_dropped",
            "Answered predictions whose live statistics or logbook record failed (logged).",
            ["sink"],
            registry=r,
        )
        ProcessCollector(registry=r)
        r.register(_CostCollector(price_per_cpu_hour))
        versioned = (self.requests, self.duration, self.batch_rows, self.queue_depth, self.rows,
                     self.shadow)  # fmt: skip
        self._versioned = {id(metric) for metric in versioned}
        self._children: dict[tuple[Any, ...], Any] = {}
        self._series: dict[tuple[str, str], list[tuple[Any, tuple[str, ...]]]] = {}
        self._loaded: dict[tuple[str, str], int] = {}  # (model, version) -> loads held
        self._roles: dict[tuple[str, str], tuple[str, str]] = {}  # -> (flavor, role)

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once (each lookup takes a lock). For a
        metric labelled by version, a version not loaded gets a stand-in that drops what it is
        told; an empty version (none was picked) is always counted."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            if id(metric) in self._versioned and labels[1]:
                version = (labels[0], labels[1])
                if version not in self._loaded:
                    return _DISCARDED
                self._series.setdefault(version, []).append((metric, labels))
            child = self._children[key] = metric.labels(*labels)
        return child

    def version_loaded(self, model: str, version: str, flavor: str, role: str) -> None:
        """The table loaded ``model`` ``version`` (in ``role``): its series may exist."""
        key = (model, version)
        self._loaded[key] = self._loaded.get(key, 0) + 1
        self.version_role(model, version, flavor, role)

    def version_role(self, model: str, version: str, flavor: str, role: str) -> None:
        """A loaded version now plays ``role``: its one ``model_info`` series says so."""
        key = (model, version)
        if key not in self._loaded or self._roles.get(key) == (flavor, role):
            return
        self._remove_info(key)
        self._roles[key] = (flavor, role)
        self.model_info.labels(model, version, flavor, role).set(1)

    def version_retired(self, model: str, version: str) -> None:
        """The version plays no role any more (it is unloaded once its last requests are
        answered): its ``model_info`` series goes now."""
        if self._loaded.get((model, version), 0) <= 1:
            self._remove_info((model, version))

    def version_unloaded(self, model: str, version: str) -> None:
        """The table let the version go: once no load of it is held, every series labelled
        with it is removed."""
        key = (model, version)
        held = self._loaded.get(key, 0) - 1
        if held > 0:
            self._loaded[key] = held
            return
        self._loaded.pop(key, None)
        self._remove_info(key)
        for metric, labels in self._series.pop(key, []):
            self._children.pop((id(metric), *labels), None)
            with suppress(KeyError):  # older prometheus-client versions raise on a missing one
                metric.remove(*labels)

    def _remove_info(self, key: tuple[str, str]) -> None:
        old = self._roles.pop(key, None)
        if old is not None:
            with suppress(KeyError):
                self.model_info.remove(*key, *old)

    def task_failed(self, task: str) -> None:
        """Count one failure of background task ``task`` (a fixed name, never user input)."""
        self.task_failures.labels(task).inc()

    def batcher_faults(self, model: str) -> Callable[[str], None]:
        """The hook a model's micro-batcher reports its faults to (``serving/batcher.py``):
        a crash of its drain task, a call past its timeout, a hung call that came back."""
        failures = self.task_failures.labels("batcher")
        timeouts = self.prediction_timeouts.labels(model)
        hung = self.hung_model_calls.labels(model)

        def count(fault: str) -> None:
            if fault == "crash":
                failures.inc()
            elif fault == "timeout":
                timeouts.inc()
                hung.inc()
            elif fault == "returned":
                hung.dec()

        return count

    def watch_logbook(self, stats: Callable[[], LogbookStats]) -> None:
        self.registry.register(_LogbookCollector(stats))

    def watch_monitors(self, store: MonitoringStore) -> None:
        self.registry.register(_MonitorCollector(store))

    def render(self) -> bytes:
        return generate_latest(self.registry)
