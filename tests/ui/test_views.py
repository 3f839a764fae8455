"""What each page shows, from the stores' objects: overview cells, versions, deployment panel,
features and the live distribution."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.ui.seed import CANARY, DRIFTED, HISTORY, seed
from watchkeeper.config import Settings
from watchkeeper.monitoring.profile import profile_categorical, profile_numeric
from watchkeeper.monitoring.results import CheckResult
from watchkeeper.registry.deployments import Deployment
from watchkeeper.registry.entities import ModelVersion
from watchkeeper.registry.monitoring import Alert
from watchkeeper.rollout.controller import Status
from watchkeeper.rollout.guards import Check
from watchkeeper.ui import overview
from watchkeeper.ui.feature_view import distribution_chart, live_counts, width
from watchkeeper.ui.model_view import deployment_panel, feature_rows, version_rows
from watchkeeper.ui.render import Renderer
from watchkeeper.ui.sources import Sources, TTLCache
from watchkeeper.ui.timerange import TimeRange

T = datetime(2026, 5, 1, 12, tzinfo=UTC)


def _result(
    statistic: str, value: float | None, status: str = "ok", *, check: str = "drift",
    feature: str = "", threshold: float | None = None, hour: int = 0,
) -> CheckResult:  # fmt: skip
    start = T + timedelta(hours=hour)
    return CheckResult(model="m", version=1, window_start=start,
                       window_end=start + timedelta(hours=1), check=check, feature=feature,
                       statistic=statistic, value=value, threshold=threshold,
                       status=status)  # type: ignore[arg-type]  # fmt: skip


def _deployment(**changes) -> Deployment:
    base = Deployment(model="m", revision=3, mode="canary", state="running", candidate=2,
                      baseline=1, share=0.05, step=1, config={"steps": [0.01, 0.05, 0.5, 1.0]},
                      reason="step 1 passed", standby=None, standby_until=None, started_at=T,
                      step_started_at=T, updated_at=T, updated_by="controller")  # fmt: skip
    return replace(base, **changes)


def test_deployment_cell_names_mode_step_and_share() -> None:
    assert overview.deployment_cell(None).text == "production only"
    cell = overview.deployment_cell(_deployment())
    assert (cell.text, cell.state) == ("canary v2 · step 2/4 · 5%", "ok")
    shadow = overview.deployment_cell(_deployment(mode="shadow", share=1.0))
    assert shadow.text == "shadow v2 · 100% copied"
    back = overview.deployment_cell(_deployment(state="rolled_back", reason="guard failed"))
    assert (back.text, back.state, back.title) == ("v2 rolled back", "warn", "guard failed")
    assert overview.deployment_cell(_deployment(state="promoted")).state == "none"


@pytest.mark.parametrize(("requests", "text", "state"), [
    ([1000, 1000, 0, 0], "0.0% errors", "ok"),
    ([1000, 980, 0, 20], "2.0% errors", "warn"),
    ([1000, 900, 0, 100], "10.0% errors", "fail"),
    ([0, 0, 0, 0], "–", "none"),
])  # fmt: skip
def test_error_rate_is_graded(requests: list[int], text: str, state: str) -> None:
    _traffic, errors = overview.traffic_cells(requests, 600, "10 min")
    assert (errors.text, errors.state) == (text, state)


def test_alerts_cell_is_red_until_acknowledged() -> None:
    alert = Alert(id=1, model="m", version=1, check="drift", feature="", statistic="drift_share",
                  status="open", value=0.7, threshold=0.5, message="drifted", opened_at=T,
                  updated_at=T, closed_at=None, acknowledged_by=None)  # fmt: skip
    assert overview.alerts_cell([]).state == "ok"
    assert (overview.alerts_cell([alert]).text, overview.alerts_cell([alert]).state) == (
        "1 open, 1 new", "fail")  # fmt: skip
    seen = replace(alert, acknowledged_by="ann")
    assert overview.alerts_cell([seen]).state == "warn"


def test_drift_and_performance_cells_take_the_results_status() -> None:
    drifted = overview.drift_cell(_result("drift_share", 0.75, "fail", threshold=0.5))
    assert (drifted.text, drifted.state) == ("75% drifted (limit 50%)", "fail")
    assert overview.drift_cell(None).state == "none"
    realised = [_result("labelled_rows", 300.0, check="performance", hour=2),
                _result("f1", 0.7, check="performance", hour=2),
                _result("accuracy", 0.8, "fail", check="performance", threshold=0.9, hour=2),
                _result("accuracy", 0.95, check="performance", threshold=0.9, hour=1)]  # fmt: skip
    cell = overview.performance_cell(realised, [])
    assert (cell.text, cell.state) == ("accuracy 0.8", "fail")  # newest, registered first
    guess = overview.performance_cell([], [_result("accuracy", 0.91, check="estimated")])
    assert (guess.text, guess.state) == ("accuracy ≈0.91", "none")
    assert overview.performance_cell([], []).text == "no labels"


def _version(v: int, stage: str, **extra) -> ModelVersion:
    fields = dict(name="m", version=v, stage=stage, flavor="sklearn", description="",
                  metrics={"auc": 0.912345}, tags={}, aliases=(), signature=None, run_id=None,
                  run_url=None, data_uri=None, data_hash=None, artifact_uri="x",
                  manifest_digest="d", has_profile=False, created_by="ann",
                  created_at=T)  # fmt: skip
    return ModelVersion(**(fields | extra))


def test_version_rows_newest_first_with_lineage_and_gate() -> None:
    rows = version_rows([
        _version(1, "archived", run_id="r1", run_url="javascript:alert(1)"),
        _version(2, "production", aliases=("champion",), data_uri="s3://b/train.parquet",
                 tags={"gate": "passed", "parent_version": "1", "gate_comparison": "+0.02",
                       "gate_report": '{"reasons": ["auc up"]}'}),
    ])  # fmt: skip
    assert [r.version for r in rows] == [2, 1]
    newest, oldest = rows
    assert newest.production
    assert newest.metrics == (("auc", "0.9123"),)
    assert [(link.label, link.text, link.href) for link in newest.lineage] == [
        ("data", "s3://b/train.parquet", None), ("parent", "v1", "#version-1")]  # fmt: skip
    assert (newest.gate, newest.gate_title) == ("passed", "gate passed; +0.02; auc up")
    assert oldest.lineage[0].href is None  # only http(s) links are followed


def test_versions_table_flags_a_version_without_signature() -> None:
    """A version registered without a signature is tagged on the model page; one with is not."""
    signed = {"columns": [{"name": "x", "dtype": "float"}]}
    rows = version_rows([_version(1, "archived"), _version(2, "production", signature=signed)])
    assert [(r.version, r.validated) for r in rows] == [(2, True), (1, False)]
    html = Renderer().render("_versions.html", versions=rows, model={"name": "m"}, can_act=False)
    assert html.count("no signature") == 1
    assert html.index("no signature") > html.index('id="version-1"')


def test_deployment_panel_shows_progress_and_guards() -> None:
    checks = (Check("error_rate", 0.002, 0.01, "ok", "2/1000"),
              Check("latency_p99_ratio", None, 1.5, "waiting", "few requests"))  # fmt: skip
    panel = deployment_panel(Status(_deployment(), checks, 42.0, 180))
    assert panel is not None
    assert [(s.share, s.state) for s in panel.steps] == [
        (0.01, "done"), (0.05, "current"), (0.5, "pending"), (1.0, "pending")]  # fmt: skip
    guards = [(g.name, g.value, g.threshold, g.state) for g in panel.guards]
    assert guards == [("error_rate", "0.002", "0.01", "ok"),
                      ("latency_p99_ratio", "–", "1.5", "none")]  # fmt: skip
    assert (panel.next_step, panel.candidate_requests) == ("42 s", 180)
    done = deployment_panel(Status(_deployment(state="promoted", step=3)))
    assert done is not None
    assert {s.state for s in done.steps} == {"done"}
    assert deployment_panel(Status(None)) is None


def test_a_shadow_panel_says_how_many_copies_were_dropped() -> None:
    shadow = _deployment(mode="shadow", share=1.0)
    busy = deployment_panel(Status(shadow, (), 10.0, 50, 7))
    calm = deployment_panel(Status(shadow, (), 10.0, 50, 0))
    assert busy is not None
    assert calm is not None
    render = lambda panel: Renderer().render("_deployment.html", panel=panel,  # noqa: E731
                                             can_act=False)  # fmt: skip
    assert "50 candidate requests this step" in render(busy)
    assert "7 copies dropped" in render(busy)
    assert "dropped" not in render(calm)


def test_feature_rows_put_drifted_features_first() -> None:
    latest = [_result("wasserstein", 0.01, feature="a", threshold=0.1),
              _result("wasserstein", 0.4, "fail", feature="b", threshold=0.1),
              _result("psi", 0.3, "fail", feature="a", threshold=0.2, hour=-1)]  # fmt: skip
    rows = feature_rows(["a", "b", "c"], latest)
    assert [(r.name, r.state, r.value) for r in rows] == [
        ("b", "fail", "0.4"), ("a", "ok", "0.01"), ("c", "none", "–")]  # fmt: skip


def test_live_histograms_line_up_with_the_reference_bins() -> None:
    numeric = profile_numeric([1.0, 2.0, 3.0, 4.0, 5.0], bins=4)
    assert width(numeric) == 4
    assert live_counts(numeric, [1, 2, 3, 4]) == [0, 1, 2, 3, 4, 0]
    assert live_counts(numeric, [0, 0, 0, 0]) is None
    categorical = profile_categorical(["a", "b", "b"])
    assert width(categorical) == 4  # a, b, unseen, nulls
    assert live_counts(categorical, [5, 3, 2, 9]) == [5, 3, 2]  # nulls left out
    chart = distribution_chart(categorical, [5, 3, 2, 9])
    assert [t["name"] for t in chart["data"]] == ["reference", "live (this range)"]
    assert chart["data"][1]["y"] == [0.5, 0.3, 0.2]


def test_ttl_cache_recomputes_after_its_time() -> None:
    now = [0.0]
    cache = TTLCache(clock=lambda: now[0])
    calls = []
    for t in (0.0, 1.0, 5.1):
        now[0] = t
        cache.get("k", 5.0, lambda at=t: calls.append(at) or len(calls))
    assert calls == [0.0, 5.1]


def test_overview_of_a_seeded_registry(tmp_path: Path) -> None:
    seeded = seed(Settings(home=tmp_path, user="ann"))
    try:
        rows = {r.model: r for r in overview.load(Sources(seeded.registry), now=seeded.now)}
        six_hours = TimeRange.parse("6h", now=seeded.now)
        wider = {r.model: r for r in overview.load(Sources(seeded.registry), six_hours)}
    finally:
        seeded.registry.close()
    assert set(rows) == {HISTORY, DRIFTED, CANARY}
    assert rows[DRIFTED].state == "fail"
    assert rows[DRIFTED].drift.state == "fail"
    assert rows[DRIFTED].alerts.state == "fail"
    assert rows[HISTORY].state == "ok"
    assert rows[HISTORY].production == 2
    assert rows[HISTORY].traffic.text == "2 req/s"  # 120 a minute over the last 15 minutes
    assert rows[HISTORY].traffic.title.startswith("1800 requests in the last 15 min")
    # the range selector: all 91 seeded minutes fall in the last 6 hours
    assert wider[HISTORY].traffic.title.startswith("10920 requests in the last 6 h")
    seconds = (six_hours.end - six_hours.start).total_seconds()
    assert wider[HISTORY].traffic.text == f"{10920 / seconds:.3g} req/s"
    assert rows[CANARY].deployment.text == "canary v2 · step 1/5 · 1%"
