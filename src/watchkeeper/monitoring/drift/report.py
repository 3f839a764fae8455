"""Drift of a whole window: per-feature verdicts, the correction across them, the drift share.

Two entries: :func:`detect_drift` takes the reference and current rows (pandas DataFrames,
dicts of arrays or pyarrow Tables); :func:`detect_drift_binned` takes only a stored profile and
the window's counts (:func:`count_window`, which can be summed over record batches), so a
window of any size is read once and never held in memory. Both count every feature on the
profile's bins (one vectorised pass per feature); with reference rows at hand, distance
thresholds are calibrated on them (:mod:`~watchkeeper.monitoring.drift.calibration`) and
Kolmogorov–Smirnov runs on the raw values; with only a profile, thresholds are the fixed
defaults.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring._columns import frame_columns
from watchkeeper.monitoring.drift._features import (
    FeatureDrift,
    Sides,
    compare,
    count_sides,
    profile_side,
)
from watchkeeper.monitoring.drift.binning import BinnedColumn, count_categories, count_numeric
from watchkeeper.monitoring.drift.choose import DriftPolicy, feature_kind
from watchkeeper.monitoring.drift.correction import adjust_p_values
from watchkeeper.monitoring.profile import (
    DatasetProfile,
    FeatureProfile,
    NumericProfile,
    profile_frame,
)

__all__ = ["DriftReport", "FeatureDrift", "count_window", "detect_drift", "detect_drift_binned"]

Frame = Any  # a pandas DataFrame, a mapping of column name -> 1-D values, a pyarrow Table

_DEFAULT_POLICY = DriftPolicy()


@dataclass(frozen=True, kw_only=True)
class DriftReport:
    """Per-feature verdicts and the dataset's drift share.

    ``drift_share`` is the share of tested features that drifted, each weighted by its
    importance when importances were given (unlisted features weigh 0); ``dataset_drift`` is
    ``drift_share >= policy.share``. ``reference_moves`` names the features whose reference
    itself moves (checked when the reference rows are at hand; see
    :mod:`~watchkeeper.monitoring.drift.calibration`).
    """

    features: tuple[FeatureDrift, ...]
    drift_share: float
    dataset_drift: bool
    policy: DriftPolicy

    @property
    def drifted(self) -> list[str]:
        """Names of the drifted features, in profile order."""
        return [f.name for f in self.features if f.drifted]

    @property
    def reference_moves(self) -> list[str]:
        """Names of the features whose reference moves, in profile order."""
        return [f.name for f in self.features if f.reference_moves]

    def __getitem__(self, name: str) -> FeatureDrift:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (``json.dumps(..., allow_nan=False)`` accepts it)."""
        return {
            "drift_share": self.drift_share,
            "dataset_drift": self.dataset_drift,
            "drifted": self.drifted,
            "reference_moves": self.reference_moves,
            "features": [f.to_dict() for f in self.features],
            "policy": self.policy.to_dict(),
        }


def detect_drift(
    reference: Frame,
    current: Frame,
    *,
    policy: DriftPolicy = _DEFAULT_POLICY,
    profile: DatasetProfile | None = None,
    importance: Mapping[str, float] | None = None,
) -> DriftReport:
    """Compare every feature of ``current`` with ``reference``.

    The features are the profile's (``profile_frame(reference, bins=policy.bins)`` when none is
    given); a feature missing from ``current`` is reported untested.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = {"x": rng.normal(size=5000), "c": rng.choice(["a", "b"], size=5000)}
    >>> cur = {"x": rng.normal(0.5, 1, size=2000), "c": rng.choice(["a", "b"], size=2000)}
    >>> report = detect_drift(ref, cur)
    >>> report.drifted, report.drift_share, report["x"].result.method
    (['x'], 0.5, 'wasserstein')
    """
    profile = profile or profile_frame(reference, bins=policy.bins)
    ref_columns, cur_columns = frame_columns(reference), frame_columns(current)
    features = []
    for name, feature in profile.features.items():
        if name not in cur_columns:
            features.append(_missing(name, feature))
            continue
        sides = count_sides(
            feature,
            ref_columns.get(name),
            cur_columns[name],
            with_codes=policy.contiguous is not False,
        )
        features.append(compare(name, feature, sides, policy))
    return _report(features, policy, importance)


def detect_drift_binned(
    profile: DatasetProfile,
    current: Mapping[str, BinnedColumn],
    *,
    policy: DriftPolicy = _DEFAULT_POLICY,
    importance: Mapping[str, float] | None = None,
) -> DriftReport:
    """Compare a window's counts (:func:`count_window`) with a profile; fixed thresholds.

    >>> ref = profile_frame({"x": list(range(1000))}, bins=10)
    >>> window = count_window(ref, {"x": [v + 500.0 for v in range(1000)]})
    >>> detect_drift_binned(ref, window).drifted
    ['x']
    """
    features = []
    for name, feature in profile.features.items():
        if name not in current:
            features.append(_missing(name, feature))
            continue
        reference = profile_side(feature)
        if current[name].counts.shape != reference.counts.shape:
            raise InvalidInput(f"feature {name!r}: the counts do not match the profile's bins")
        sides = Sides(reference=reference, current=current[name])
        features.append(compare(name, feature, sides, policy))
    return _report(features, policy, importance)


def count_window(profile: DatasetProfile, window: Frame) -> dict[str, BinnedColumn]:
    """Count a window (or one record batch of it) on the profile's bins; add the results of
    several batches with ``+``. Features missing from the window are left out.

    The window is a pandas DataFrame, a mapping of columns, or a pyarrow Table or RecordBatch:
    handing over the Arrow data as read spares the conversion to pandas, and the counts are
    the same.

    >>> ref = profile_frame({"c": ["a", "b", "b"]})
    >>> count_window(ref, {"c": ["b", "z", None]})["c"].counts.tolist()
    [1, 0, 1]
    """
    columns = frame_columns(window)
    return {
        name: _count(feature, columns[name])
        for name, feature in profile.features.items()
        if name in columns
    }


def _count(feature: FeatureProfile, values: npt.ArrayLike) -> BinnedColumn:
    if isinstance(feature, NumericProfile):
        return count_numeric(values, feature.edges)
    return count_categories(values, list(feature.frequencies))


def _missing(name: str, feature: FeatureProfile) -> FeatureDrift:
    kind = feature_kind(feature)
    return FeatureDrift(
        name=name,
        kind=kind,
        result=None,
        null_rate_reference=feature.null_rate,
        note="missing from the current window: not tested",
    )


def _report(
    features: list[FeatureDrift], policy: DriftPolicy, importance: Mapping[str, float] | None
) -> DriftReport:
    features = _corrected(features, policy)
    weights = _weights(features, importance)
    total = sum(weights.values())
    drifted = sum(w for name, w in weights.items() if _by_name(features, name).drifted)
    share = drifted / total if total > 0 else 0.0
    return DriftReport(
        features=tuple(features),
        drift_share=share,
        dataset_drift=total > 0 and share >= policy.share,
        policy=policy,
    )


def _corrected(features: list[FeatureDrift], policy: DriftPolicy) -> list[FeatureDrift]:
    tested = {
        i: f.result
        for i, f in enumerate(features)
        if f.result is not None and f.result.p_value is not None
    }
    p_values = [result.p_value for result in tested.values() if result.p_value is not None]
    adjusted = adjust_p_values(p_values, policy.correction)
    out = list(features)
    for (i, result), p in zip(tested.items(), adjusted.tolist(), strict=True):
        decided = dataclasses.replace(result, drifted=bool(p < result.threshold))
        out[i] = dataclasses.replace(features[i], result=decided, adjusted_p_value=p)
    return out


def _weights(
    features: list[FeatureDrift], importance: Mapping[str, float] | None
) -> dict[str, float]:
    names = [f.name for f in features if f.result is not None]
    if importance is None:
        return dict.fromkeys(names, 1.0)
    for name, weight in importance.items():
        if not (math.isfinite(weight) and weight >= 0):
            raise InvalidInput(f"importance of {name!r} must be finite and >= 0, got {weight!r}")
    return {name: float(importance.get(name, 0.0)) for name in names}


def _by_name(features: list[FeatureDrift], name: str) -> FeatureDrift:
    return next(f for f in features if f.name == name)
