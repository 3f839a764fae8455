"""The deployment examples parse, and every metric they query is one the server exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from watchkeeper.registry.monitoring import MonitoringStore
from watchkeeper.serving.metrics import ServingMetrics

ROOT = Path(__file__).resolve().parents[1] / "deploy"


def _exported() -> set[str]:
    from prometheus_client import generate_latest

    metrics = ServingMetrics()
    metrics.requests.labels("m", "1", "kserve", "200").inc()
    metrics.duration.labels("m", "kserve").observe(0.01)
    metrics.shadow.labels("m", "2", "ok").inc()
    metrics.load_failures.labels("m", "candidate").inc()
    metrics.logbook_dropped.inc()

    class _NoResults(MonitoringStore):
        def __init__(self) -> None:
            pass

        def latest(self, model=None):  # type: ignore[no-untyped-def]
            return []

        def alerts(self, model=None, *, open_only=True):  # type: ignore[no-untyped-def]
            return []

    metrics.watch_monitors(_NoResults())
    text = generate_latest(metrics.registry).decode()
    names = set()
    for family in text_string_to_metric_families(text):
        names.update(sample.name for sample in family.samples)
        names.add(family.name)
    names.update(re.findall(r"^# TYPE (\w+)", text, flags=re.M))
    return names


def _queried(text: str) -> set[str]:
    return set(re.findall(r"\b(watchkeeper_[a-z_]+)", text))


def test_examples_parse_and_query_exported_metrics() -> None:
    manifests = list(yaml.safe_load_all((ROOT / "kubernetes" / "watchkeeper.yaml").read_text()))
    assert {m["kind"] for m in manifests} == {"ConfigMap", "Deployment", "Service"}
    rules = yaml.safe_load((ROOT / "prometheus" / "alerts.yml").read_text())
    assert rules["groups"][0]["rules"]
    dashboard = json.loads((ROOT / "grafana" / "watchkeeper.json").read_text())
    assert dashboard["panels"]
    exported = _exported()
    for path in (ROOT / "prometheus" / "alerts.yml", ROOT / "grafana" / "watchkeeper.json"):
        unknown = _queried(path.read_text()) - exported
        assert not unknown, f"{path.name} queries metrics the server does not export: {unknown}"


def test_kubernetes_probes_readiness_on_production_and_liveness_on_the_process() -> None:
    """Readiness is /readyz (production versions served: a broken candidate never takes a
    replica out of the Service); liveness and start-up are /healthz, so a production version
    that cannot load leaves pods unready, not restarting in a loop."""
    manifests = yaml.safe_load_all((ROOT / "kubernetes" / "watchkeeper.yaml").read_text())
    (serve,) = [m for m in manifests if m["metadata"]["name"] == "watchkeeper-serve"]
    (container,) = serve["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"


def test_kubernetes_server_arguments_are_options_serve_knows() -> None:
    """Every option the manifest passes to ``watchkeeper serve`` exists (a typo would crash
    every pod at start), and the replicas name the hosts they answer to."""
    import typer.main

    from watchkeeper.cli.main import app

    command = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    known = {name for p in command.params for name in (*p.opts, *p.secondary_opts)}
    manifests = yaml.safe_load_all((ROOT / "kubernetes" / "watchkeeper.yaml").read_text())
    (serve,) = [m for m in manifests if m["metadata"]["name"] == "watchkeeper-serve"]
    (container,) = serve["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[0] == "serve"
    assert {a for a in args if a.startswith("--")} <= known
    assert "--allowed-host" in args
