"""Each page as a ``View``: its template, context, live fragments and figures.

A page is rendered whole once; then its script polls the page's data URL, which answers the
same fragments (rendered by the same partial templates) and figures, so there is one way to
draw everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from watchkeeper.errors import NotFound
from watchkeeper.registry.entities import ModelVersion
from watchkeeper.ui import feature_view, model_view, overview
from watchkeeper.ui.charts import Figure
from watchkeeper.ui.sources import Sources
from watchkeeper.ui.timerange import TimeRange

AUDIT_LIMIT = 200


@dataclass
class View:
    title: str
    template: str
    source: str  # the data URL the page polls (without the query)
    context: dict[str, Any]
    fragments: dict[str, str]  # element id -> partial template
    figures: dict[str, Figure] = field(default_factory=dict)
    refresh_seconds: int = 15
    has_range: bool = False


def _refresh(tr: TimeRange) -> int:
    return 10 if tr.bucket_seconds <= 300 else 60


def overview_page(sources: Sources, tr: TimeRange) -> View:
    rows = overview.load(sources, tr)
    attention = [r.model for r in rows if r.state == "fail"]
    return View("Overview", "overview.html", "/ui/data/overview",
                {"rows": rows, "attention": attention, "span": tr.label},
                {"overview-rows": "_overview_rows.html", "attention": "_attention.html"},
                refresh_seconds=10, has_range=True)  # fmt: skip


def model_page(sources: Sources, name: str, tr: TimeRange) -> View:
    registry, monitoring = sources.registry, sources.monitoring
    model = registry.get_model(name)
    versions = registry.list_versions(name)
    status = sources.cache.get(("status", name), 3.0, lambda: sources.rollouts().status(name))
    production = _production(versions)
    profile = sources.profile(production) if production is not None else None
    names = list(profile.features) if profile is not None else []
    latest = monitoring.latest(name)
    label = [monitoring.series(name, check="performance", statistic=s, newest=1)
             for s in ("label_coverage", "label_lag_p50_s")]  # fmt: skip
    ttl = 5.0 if tr.bucket_seconds <= 300 else 30.0
    figures = sources.cache.get(("charts", name, tr.name, tr.end), ttl,
                                lambda: model_view.model_charts(sources, name, tr))  # fmt: skip
    context = {
        "model": model,
        "versions": model_view.version_rows(versions),
        "panel": model_view.deployment_panel(status),
        "candidates": [v.version for v in versions
                       if v.stage != "production" and v.stage != "archived"],
        "features": model_view.feature_rows(names, latest),
        "label_note": model_view.label_note(*(s[-1] if s else None for s in label)),
        "alerts": monitoring.alerts(name),
        "rollback_to": registry.rollback_target(name),
    }  # fmt: skip
    fragments = {"versions": "_versions.html", "deployment": "_deployment.html",
                 "features": "_features.html", "label-note": "_label_note.html",
                 "model-alerts": "_model_alerts.html"}  # fmt: skip
    return View(f"Model {name}", "model.html", f"/ui/data/models/{name}", context, fragments,
                figures, refresh_seconds=_refresh(tr), has_range=True)  # fmt: skip


def feature_page(sources: Sources, name: str, feature: str, tr: TimeRange) -> View:
    versions = sources.registry.list_versions(name)
    version = _production(versions) or (versions[-1] if versions else None)
    profile = sources.profile(version) if version is not None else None
    reference = profile.features.get(feature) if profile is not None else None
    known = set(profile.features) if profile is not None else set()
    if (
        reference is None
        and feature not in known
        and not sources.monitoring.series(name, check="drift", feature=feature, newest=1)
    ):
        raise NotFound(f"model '{name}' has no feature '{feature}'")
    figures = feature_view.feature_charts(sources, name, feature, tr, reference,
                                          version.version if version else None)  # fmt: skip
    context = {
        "model": name,
        "feature": feature,
        "version": version.version if version else None,
        "summary": feature_view.summary(reference) if reference is not None else None,
        "others": sorted(known - {feature}),
    }
    return View(f"{name} · {feature}", "feature.html",
                f"/ui/data/models/{name}/features/{feature}", context, {}, figures,
                refresh_seconds=_refresh(tr), has_range=True)  # fmt: skip


def alerts_page(sources: Sources, *, closed: bool) -> View:
    alerts = sources.monitoring.alerts(open_only=not closed)[:500]
    return View("Alerts", "alerts.html", "/ui/data/alerts", {"alerts": alerts, "closed": closed},
                {"alerts": "_alerts.html"})  # fmt: skip


def audit_page(sources: Sources, *, model: str | None) -> View:
    events = sources.registry.history(model or None, limit=AUDIT_LIMIT)
    models = [m.name for m in sources.registry.list_models()]
    return View("Audit history", "audit.html", "/ui/data/audit",
                {"events": events, "model": model or "", "models": models,
                 "limit": AUDIT_LIMIT}, {"audit": "_audit.html"})  # fmt: skip


def _production(versions: list[ModelVersion]) -> ModelVersion | None:
    return next((v for v in versions if v.stage == "production"), None)
