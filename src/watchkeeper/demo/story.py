"""The demo's script: train, serve, drift, alert, retrain, gate, roll out, catch a bad release.

Simulated days pass in seconds. A traffic thread sends customers to the real server over HTTP
and, a simulated day later, their true churn labels to ``/v1/feedback``. The server runs the
scheduler, which runs the declared monitor, the retraining trigger and the rollout controller —
the same machinery as in production; the script only watches the database and narrates.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import uvicorn
from rich.console import Console

from watchkeeper.config import Settings
from watchkeeper.demo.models import BrokenRelease, churn_model
from watchkeeper.demo.world import FEATURES, churn, customers
from watchkeeper.errors import WatchkeeperError
from watchkeeper.logbook import Logbook, LogbookConfig
from watchkeeper.registry import Registry
from watchkeeper.registry.monitoring import MonitoringStore
from watchkeeper.registry.retraining import RetrainStore
from watchkeeper.rollout.controller import Rollouts
from watchkeeper.rollout.plan import Plan
from watchkeeper.scheduler import Scheduler, SchedulerOptions
from watchkeeper.server import create_app
from watchkeeper.serving.app import ServeOptions
from watchkeeper.watch.runner import model_report

NAME = "churn"


@dataclass(frozen=True)
class Pace:
    day: float  # wall seconds per simulated day
    normal_days: int
    requests_per_second: float
    rows_per_request: int
    monitor_window: int  # seconds
    step_seconds: float
    step_requests: int
    deadline: float  # seconds for the whole story before giving up


FULL = Pace(day=5.0, normal_days=4, requests_per_second=25, rows_per_request=4,
            monitor_window=12, step_seconds=3.0, step_requests=40, deadline=170)  # fmt: skip
FAST = Pace(day=3.0, normal_days=3, requests_per_second=30, rows_per_request=4,
            monitor_window=9, step_seconds=2.0, step_requests=30, deadline=150)  # fmt: skip


@dataclass
class Outcome:
    """What happened, for the summary and for tests."""

    events: list[str] = field(default_factory=list)
    requests: int = 0
    failed: int = 0
    retrained_version: int | None = None
    bad_version: int | None = None
    bad_rolled_back: bool = False
    production: int | None = None
    report: Path | None = None
    seconds: float = 0.0
    url: str = ""


def demo_settings(home: Path, pace: Pace) -> Settings:
    window = pace.monitor_window
    return Settings(
        home=home,
        monitors={NAME: {
            "window": f"{window}s", "every": f"{max(window // 4, 1)}s",
            "checks": ["quality", "drift", "prediction_drift", "performance", "operational"],
        }},
        retraining={NAME: {
            "entrypoint": "watchkeeper.demo.training:train",
            "window": f"{int(pace.day * 3)}s", "evaluation_window": f"{int(pace.day * 1.5)}s",
            "cooldown": "1h", "timeout": "2m", "strategy": "shadow-canary",
            "triggers": [{"kind": "performance", "metric": "accuracy", "below": 0.62,
                          "windows": 2}],
            "rollout": {"steps": [0.05, 0.25, 1.0], "min_step_seconds": pace.step_seconds,
                        "min_step_requests": pace.step_requests},
        }},
    )  # fmt: skip


class JsonClient:
    """POSTs JSON over one keep-alive connection (the standard library's ``http.client``: the
    demo runs on a plain install, which has no HTTP client library)."""

    def __init__(self, url: str, *, timeout: float) -> None:
        where = urlsplit(url)
        self._conn = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port,
                                                timeout=timeout)  # fmt: skip

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None
             ) -> tuple[int, Message]:  # fmt: skip
        """The reply's status and headers; ``OSError`` or ``http.client.HTTPException`` when no
        reply came (the next call opens a new connection)."""
        data = json.dumps(body).encode()
        try:
            self._conn.request("POST", path, data,
                               {"content-type": "application/json", **(headers or {})})  # fmt: skip
            reply = self._conn.getresponse()
            reply.read()
        except (OSError, http.client.HTTPException):
            self._conn.close()
            raise
        return reply.status, reply.headers

    def close(self) -> None:
        self._conn.close()


class Traffic(threading.Thread):
    """Customers to the server; their labels one simulated day later."""

    def __init__(self, url: str, pace: Pace, outcome: Outcome) -> None:
        super().__init__(name="demo-traffic", daemon=True)
        self.url, self.pace, self.outcome = url, pace, outcome
        self.started = time.monotonic()
        self.stop = threading.Event()
        self.rng = np.random.default_rng(7)
        self.pending: deque[tuple[float, str, list[int]]] = deque()

    def day(self) -> float:
        return (time.monotonic() - self.started) / self.pace.day

    def run(self) -> None:
        gap = 1.0 / self.pace.requests_per_second
        client = JsonClient(self.url, timeout=30)
        try:
            while not self.stop.is_set():
                tick = time.monotonic()
                self._send(client)
                self._label(client)
                self.stop.wait(max(gap - (time.monotonic() - tick), 0))
        finally:
            client.close()

    def _send(self, client: JsonClient) -> None:
        drifted = self.day() >= self.pace.normal_days
        frame = customers(self.pace.rows_per_request, self.rng, data_drift=drifted)
        labels = churn(frame, self.rng, concept_drift=drifted)
        key = f"customer-{self.rng.integers(1_000_000)}"
        try:
            status, headers = client.post(f"/v1/models/{NAME}:predict",
                                          {"instances": frame.to_dict(orient="records")},
                                          headers={"x-routing-key": key})  # fmt: skip
        except (OSError, http.client.HTTPException):
            self.outcome.failed += 1
            return
        self.outcome.requests += 1
        if status != 200:
            self.outcome.failed += 1
            return
        due = time.monotonic() + self.pace.day  # the truth is known a day later
        self.pending.append((due, headers["x-request-id"], labels.tolist()))

    def _label(self, client: JsonClient) -> None:
        items = []
        while self.pending and self.pending[0][0] <= time.monotonic():
            _, request_id, labels = self.pending.popleft()
            items += [{"request_id": request_id, "row": i, "label": v}
                      for i, v in enumerate(labels)]  # fmt: skip
        if items:
            client.post("/v1/feedback", items)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_demo(home: Path, *, fast: bool = False, port: int | None = None,
             report: Path = Path("watchkeeper-demo-report.html"), keep_running: bool = False,
             console: Console | None = None) -> Outcome:  # fmt: skip
    pace = FAST if fast else FULL
    console = console or Console()
    quiet = logging.getLogger("watchkeeper")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # the narrator tells the story
    settings = demo_settings(home, pace)
    outcome = Outcome()
    began = time.monotonic()
    say = _narrator(console, outcome, began)
    with Registry(settings) as registry:
        say(f"[bold]1.[/] training a churn model on {5000:,} customers (scikit-learn pipeline)")
        version = _train_and_register(registry, home)
        say(f"   registered {NAME}@{version} with metrics, lineage and a reference profile; "
            "promoted to production")  # fmt: skip
    port = port or free_port()
    server, thread = _serve(settings, port)
    # the demo is one process: its scheduler is a thread here (`watchkeeper serve` runs it
    # as a child process, away from the serving path)
    scheduler = Scheduler(settings, SchedulerOptions(interval=0.5, lease_ttl=5.0))
    scheduler.start_thread()
    outcome.url = f"http://127.0.0.1:{port}"
    say(f"[bold]2.[/] serving at {outcome.url} with the scheduler (monitors, retraining, "
        f"rollouts); dashboard: {outcome.url}/ui")  # fmt: skip
    traffic = Traffic(outcome.url, pace, outcome)
    traffic.start()
    say(f"[bold]3.[/] traffic: {pace.requests_per_second:g} requests/s; labels arrive a "
        f"simulated day ({pace.day:g} s) late; {pace.normal_days} normal days, then the "
        "charges and support calls drift and the churn behaviour changes")  # fmt: skip
    try:
        with Registry(settings) as registry:
            _watch(registry, traffic, pace, outcome, say, began)
            _bad_release(registry, pace, outcome, say, began)
            outcome.production = registry.get(f"{NAME}@production").version
            page = model_report(registry, Logbook(settings.resolved_logbook_url), NAME,
                                window=timedelta(seconds=pace.monitor_window * 2),
                                since=timedelta(hours=1))  # fmt: skip
        report.write_text(page, encoding="utf-8")
        outcome.report = report
        say(f"[bold]7.[/] wrote {report} (self-contained HTML report)")
        if keep_running:
            console.print(f"still serving at {outcome.url} (dashboard {outcome.url}/ui); "
                          "Ctrl-C to stop")  # fmt: skip
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        traffic.stop.set()
        traffic.join(timeout=30)
        scheduler.shutdown()
        server.should_exit = True
        thread.join(timeout=60)
        outcome.seconds = time.monotonic() - began
        quiet.setLevel(level)
    return outcome


def _narrator(console: Console, outcome: Outcome, began: float) -> Callable[[str], None]:
    def say(text: str) -> None:
        outcome.events.append(text)
        console.print(f"[dim]{time.monotonic() - began:5.1f}s[/] {text}")

    return say


def _train_and_register(registry: Registry, home: Path) -> int:
    rng = np.random.default_rng(0)
    frame = customers(5000, rng)
    labels = churn(frame, rng)
    model = churn_model(frame.iloc[:4000], labels[:4000])
    accuracy = float((model.predict(frame.iloc[4000:]) == labels[4000:]).mean())
    data = home / "data"
    data.mkdir(parents=True, exist_ok=True)
    train_file = data / "churn-train.parquet"
    frame.iloc[:4000].assign(label=labels[:4000]).to_parquet(train_file, index=False)
    version = registry.register(
        NAME, model, input_example=frame[FEATURES], reference_data=frame[FEATURES].iloc[:4000],
        metrics={"accuracy": accuracy}, data_uri=str(train_file), run_id="demo-initial",
        description="churn model trained on the first weeks", stage="production",
    )  # fmt: skip
    return version.version


def _serve(settings: Settings, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    options = ServeOptions(poll_interval=0.1, live_stats_interval=0.5,
                           logbook=LogbookConfig(flush_interval=0.5))  # fmt: skip
    config = uvicorn.Config(create_app(settings, options), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="on")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="demo-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not server.started:
        time.sleep(0.05)
    if not server.started:
        raise WatchkeeperError("the demo server did not start")
    return server, thread


def _watch(registry: Registry, traffic: Traffic, pace: Pace, outcome: Outcome,
           say: Callable[[str], None], began: float) -> None:  # fmt: skip
    """Narrate alerts, the retraining run and the rollout until the new version serves."""
    monitoring, runs = MonitoringStore(registry.engine), RetrainStore(registry.engine)
    seen_alerts: set[tuple[str, str]] = set()
    seen_runs: set[tuple[int, str]] = set()
    seen_steps: set[tuple[str, str, int]] = set()
    drift_announced = False
    while True:
        if time.monotonic() - began > pace.deadline:
            raise WatchkeeperError("the demo ran out of time before the retrained model "
                                   "reached production")  # fmt: skip
        if not drift_announced and traffic.day() >= pace.normal_days:
            drift_announced = True
            say(f"[bold]4.[/] day {pace.normal_days}: the world changes")
        for alert in monitoring.alerts(NAME):
            key = (alert.check, alert.feature)
            if key not in seen_alerts and alert.check in ("drift", "performance"):
                seen_alerts.add(key)
                say(f"   [red]alert[/] {alert.message}")
        for run in runs.runs(NAME):
            if (run.id, run.status) not in seen_runs:
                seen_runs.add((run.id, run.status))
                if run.status == "running":
                    say(f"[bold]5.[/] retraining triggered ({run.trigger})")
                elif run.status == "failed":
                    say(f"   [red]retraining failed[/]: {run.error}")
                else:
                    gate = run.gate
                    low, high = gate.get("interval", [0.0, 0.0])
                    new = gate["candidate"].get("accuracy", 0)
                    old = gate["production"].get("accuracy", 0)
                    say(f"   gate {run.verdict}: accuracy {new:.3f} vs production {old:.3f} "
                        f"(gain interval [{low:+.3f}, {high:+.3f}]) — {run.outcome}")  # fmt: skip
                    outcome.retrained_version = run.candidate_version
        deployment = registry.deployments.get(NAME)
        if deployment is not None and deployment.candidate == outcome.retrained_version:
            step = (deployment.mode, deployment.state, deployment.step)
            if step not in seen_steps and deployment.state in ("running", "promoted"):
                seen_steps.add(step)
                share = ("a copy of every request" if deployment.mode == "shadow"
                         else f"{deployment.share:.0%} of traffic")  # fmt: skip
                say(f"[bold]6.[/] {deployment.mode} of v{deployment.candidate}: {share} "
                    f"({deployment.reason})")  # fmt: skip
            if deployment.state == "promoted":
                say(f"   [green]v{deployment.candidate} is production[/]")
                return
            if deployment.state in ("rolled_back", "aborted"):
                raise WatchkeeperError(f"the retrained model was stopped: {deployment.reason}")
        time.sleep(0.25)


def _bad_release(registry: Registry, pace: Pace, outcome: Outcome,
                 say: Callable[[str], None], began: float) -> None:  # fmt: skip
    """A release with a bug goes out as a canary; the guards must catch it."""
    rng = np.random.default_rng(1)
    sample = customers(2000, rng, data_drift=True)
    fitted = churn_model(sample, churn(sample, rng, concept_drift=True))
    bad = registry.register(NAME, BrokenRelease(fitted), flavor="python", input_example=sample,
                            description="release 2.1 with a new feature encoder")  # fmt: skip
    outcome.bad_version = bad.version
    plan = Plan(steps=(0.2, 1.0), min_step_seconds=pace.step_seconds * 3,
                min_step_requests=pace.step_requests * 4)  # fmt: skip
    Rollouts(registry, actor="release-pipeline").start(
        NAME, "canary", bad.version, plan=plan, reason="release 2.1"
    )
    say(f"   a new release (v{bad.version}) goes out as a canary at 20%...")
    while time.monotonic() - began < pace.deadline:
        deployment = registry.deployments.get(NAME)
        if deployment is not None and deployment.state == "rolled_back":
            outcome.bad_rolled_back = True
            say(f"   [green]rolled back automatically[/]: {deployment.reason[:160]}")
            return
        if deployment is not None and deployment.state == "promoted":
            raise WatchkeeperError("the broken release was promoted: the guards missed it")
        time.sleep(0.2)
    raise WatchkeeperError("the demo ran out of time before the broken release was stopped")
