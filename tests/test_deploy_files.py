"""The deployment examples parse. Whether every metric and label they query is one a serving
server exports is checked against a real server in ``tests/serving/test_metrics_series.py``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.promql import parse

ROOT = Path(__file__).resolve().parents[1] / "deploy"


def test_examples_parse_and_every_query_is_promql() -> None:
    """The manifests, rules and dashboard load, and every alert expression and panel query is
    well-formed PromQL (balanced, known functions, valid matchers and label lists)."""
    manifests = list(yaml.safe_load_all((ROOT / "kubernetes" / "watchkeeper.yaml").read_text()))
    assert {m["kind"] for m in manifests} == {"ConfigMap", "Deployment", "Service"}
    rules = yaml.safe_load((ROOT / "prometheus" / "alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads((ROOT / "grafana" / "watchkeeper.json").read_text())
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 15
    for expr in exprs:
        assert {m for m in parse(expr).metrics if not m.startswith("watchkeeper_")} == set(), expr


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("sum by (model) (rate(watchkeeper_requests_total[5m])", "unclosed"),
        ("sum by (model) rate(watchkeeper_requests_total[5m]))", "unbalanced"),
        ("rats(watchkeeper_requests_total[5m])", "unknown function 'rats'"),
        ("watchkeeper_requests_total{code=5}", "bad matcher"),
        ('watchkeeper_requests_total{code="500" model="m"}', "not separated by commas"),
        ("rate(watchkeeper_requests_total[5 minutes])", "bad range"),
        ("rate(watchkeeper_requests_total[5m]) by (model)", "outside an aggregation"),
    ],
)
def test_a_malformed_query_is_refused(expr: str, problem: str) -> None:
    """The PromQL check is not vacuous: each of these typos is refused with its reason."""
    with pytest.raises(ValueError, match=problem):
        parse(expr)


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

    group = typer.main.get_command(app)
    command = group.get_command(typer.Context(group), "serve")  # type: ignore[attr-defined]
    known = {name for p in command.params for name in (*p.opts, *p.secondary_opts)}
    manifests = yaml.safe_load_all((ROOT / "kubernetes" / "watchkeeper.yaml").read_text())
    (serve,) = [m for m in manifests if m["metadata"]["name"] == "watchkeeper-serve"]
    (container,) = serve["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[0] == "serve"
    assert {a for a in args if a.startswith("--")} <= known
    assert "--allowed-host" in args
