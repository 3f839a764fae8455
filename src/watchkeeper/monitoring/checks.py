"""Turning drift, quality and performance reports into stored ``CheckResult`` rows.

Pure functions: the runner decides what to compute and where it goes; these only say how a
report reads as results (one per feature and statistic, plus dataset-level ones).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import pyarrow as pa

from watchkeeper.models.signature import Signature
from watchkeeper.monitoring.drift import DriftPolicy, DriftReport, detect_drift
from watchkeeper.monitoring.drift.report import FeatureDrift
from watchkeeper.monitoring.estimation import BAND_Z, Baseline, PerformanceEstimate
from watchkeeper.monitoring.performance import PerformanceReport
from watchkeeper.monitoring.profile import DatasetProfile, profile_frame
from watchkeeper.monitoring.quality import QualityPolicy, QualityReport, check_quality
from watchkeeper.monitoring.results import CheckResult, Status


@dataclass(frozen=True)
class Window:
    """Which model, version and time span results belong to."""

    model: str
    version: int | None
    start: datetime
    end: datetime

    def result(self, check: str, feature: str, statistic: str, value: float | None,
               threshold: float | None, status: Status) -> CheckResult:  # fmt: skip
        return CheckResult(
            model=self.model, version=self.version, window_start=self.start,
            window_end=self.end, check=check, feature=feature, statistic=statistic,
            value=value, threshold=threshold, status=status,
        )  # fmt: skip


def drift_results(
    window: Window, report: DriftReport, *, check: str = "drift"
) -> list[CheckResult]:
    out = [_feature_result(window, check, f) for f in report.features]
    out.append(window.result(check, "", "drift_share", report.drift_share, report.policy.share,
                             "fail" if report.dataset_drift else "ok"))  # fmt: skip
    return out


def _feature_result(window: Window, check: str, feature: FeatureDrift) -> CheckResult:
    result = feature.result
    if result is None:
        return window.result(check, feature.name, "untested", None, None, "skipped")
    status: Status = "fail" if feature.drifted else "ok"
    if result.p_value is not None:  # a test: the value is the corrected p-value
        p = feature.adjusted_p_value if feature.adjusted_p_value is not None else result.p_value
        return window.result(check, feature.name, f"{result.method}_p_value", p,
                             result.threshold, status)  # fmt: skip
    return window.result(check, feature.name, result.method, result.statistic,
                         result.threshold, status)  # fmt: skip


def quality_results(window: Window, report: QualityReport) -> list[CheckResult]:
    return [
        window.result(
            "quality",
            finding.column or "",
            finding.check,
            finding.value,
            finding.threshold,
            finding.status,
        )  # fmt: skip
        for finding in report.findings
    ]


def performance_results(
    window: Window, report: PerformanceReport, registered: Mapping[str, float], *,
    tolerance: float = 0.0,
) -> list[CheckResult]:  # fmt: skip
    """One result per metric; it fails when the window is worse than the registered value
    beyond ``tolerance`` even at the favourable end of its confidence interval."""
    worse = {c.name: c for c in report.compare_to(registered, tolerance=tolerance)}
    out = []
    for name, metric in report.metrics.items():
        comparison = worse.get(name)
        status: Status = "fail" if comparison is not None and comparison.worse else "ok"
        out.append(window.result("performance", "", name, metric.value,
                                 registered.get(name), status))  # fmt: skip
    out.append(window.result("performance", "", "labelled_rows", float(report.n), None, "ok"))
    return out


def estimate_results(
    window: Window, estimate: PerformanceEstimate, baselines: Mapping[str, Baseline] | None,
    *, tolerance: float = 0.0, z: float = BAND_Z,
) -> list[CheckResult]:  # fmt: skip
    """One ``estimated`` result per metric. With baselines (a labelled reference), the
    threshold is the reference value less ``z`` chance standard deviations at the window's size
    and ``tolerance`` (more, for a loss), and the result fails beyond it; without, no threshold."""
    out = []
    for name, metric in estimate.metrics.items():
        base = (baselines or {}).get(name)
        if base is None:
            out.append(window.result("estimated", "", name, metric.estimated, None, "ok"))
            continue
        limit = base.threshold(estimate.n, tolerance=tolerance, z=z)
        worse = base.worse(metric.estimated, estimate.n, tolerance=tolerance, z=z)
        out.append(window.result("estimated", "", name, metric.estimated, limit,
                                 "fail" if worse else "ok"))  # fmt: skip
    return out


@dataclass(frozen=True)
class Comparison:
    """Everything ``monitor compare`` finds between two datasets."""

    drift: DriftReport
    quality: QualityReport | None
    results: tuple[CheckResult, ...]
    profile: DatasetProfile  # of the reference, for reports that draw its distributions

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "fail"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "drift": self.drift.to_dict(),
            "quality": self.quality.to_dict() if self.quality is not None else None,
            "results": [r.to_dict() for r in self.results],
        }


def compare(
    reference: pd.DataFrame | pa.Table, current: pd.DataFrame | pa.Table, *, window: Window,
    signature: Signature | None = None, profile: DatasetProfile | None = None,
    drift: DriftPolicy | None = None, quality: QualityPolicy | None = None,
) -> Comparison:  # fmt: skip
    """Drift and (with a signature) data quality of ``current`` against ``reference``, each a
    pandas DataFrame or a pyarrow Table (as read, without a conversion: the same results)."""
    names = reference.column_names if isinstance(reference, pa.Table) else reference.columns
    columns = signature.names if signature is not None else list(names)
    reference = reference.select(columns) if isinstance(reference, pa.Table) else reference[columns]
    profile = profile or profile_frame(reference)
    report = detect_drift(reference, _reindex(current, columns),
                          policy=drift or DriftPolicy(), profile=profile)  # fmt: skip
    results = drift_results(window, report)
    quality_report = None
    if signature is not None:
        quality_report = check_quality(
            current, signature, profile, policy=quality or QualityPolicy()
        )
        results += quality_results(window, quality_report)
    return Comparison(report, quality_report, tuple(results), profile)


def _reindex(frame: pd.DataFrame | pa.Table, columns: list[str]) -> Any:
    """``columns`` of ``frame``, all nulls where it has none (``DataFrame.reindex``)."""
    if not isinstance(frame, pa.Table):
        return frame.reindex(columns=columns)
    present = set(frame.column_names)
    return {
        name: frame.column(name) if name in present else pa.nulls(frame.num_rows)
        for name in columns
    }
