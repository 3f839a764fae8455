"""Comparing one feature of a window with the reference: counting, choosing, thresholding."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from watchkeeper.monitoring._columns import float_values, non_null
from watchkeeper.monitoring.drift.binning import (
    BinnedColumn,
    count_categories,
    count_numeric,
    label_codes,
    numeric_codes,
)
from watchkeeper.monitoring.drift.calibration import FEW_VALUES, Calibration, calibrate_counts
from watchkeeper.monitoring.drift.choose import DriftPolicy, feature_kind, tested_as
from watchkeeper.monitoring.drift.methods import METHODS, FeatureKind, run_binned, run_exact
from watchkeeper.monitoring.drift.result import DriftResult, IntArray
from watchkeeper.monitoring.profile import FeatureProfile, NumericProfile

Tails = tuple[tuple[float, float], tuple[float, float]]
NO_TAILS: Tails = ((0.0, 0.0), (0.0, 0.0))


@dataclass(frozen=True, kw_only=True)
class FeatureDrift:
    """The drift verdict on one feature.

    ``result`` is ``None`` when the feature could not be tested (``note`` says why: missing
    from the window, or no non-null values on one side); such a feature is not drifted by
    distribution, and its null rate is a data-quality finding. ``threshold_source`` is
    ``"calibrated"``, ``"chi2"`` (few values: from the chi-square law), ``"default"``
    (fixed), ``"policy"`` or ``"alpha"`` (p-value tests); ``adjusted_p_value`` is the p-value
    after the correction across features. ``reference_moves`` says the reference itself moves
    (its adjacent rows differ more than shuffled ones): the threshold was then calibrated on
    adjacent rows, and ``note`` says so.
    """

    name: str
    kind: FeatureKind
    result: DriftResult | None
    threshold_source: str | None = None
    adjusted_p_value: float | None = None
    null_rate_reference: float = 0.0
    null_rate_current: float = 0.0
    calibration: Calibration | None = None
    note: str | None = None

    @property
    def drifted(self) -> bool:
        return self.result is not None and self.result.drifted

    @property
    def reference_moves(self) -> bool:
        return self.calibration is not None and self.calibration.moves

    def to_dict(self) -> dict[str, Any]:
        cal = self.calibration
        return {
            "name": self.name,
            "kind": self.kind,
            "drifted": self.drifted,
            "result": None if self.result is None else self.result.to_dict(),
            "threshold_source": self.threshold_source,
            "adjusted_p_value": self.adjusted_p_value,
            "null_rate_reference": self.null_rate_reference,
            "null_rate_current": self.null_rate_current,
            "calibration": None if cal is None else dataclasses.asdict(cal),
            "reference_moves": self.reference_moves,
            "note": self.note,
        }


@dataclass(frozen=True, kw_only=True)
class Sides:
    """One feature counted on both sides, with what calibration and exact tests need."""

    reference: BinnedColumn
    current: BinnedColumn
    codes: IntArray | None = None  # bin of each non-null reference row
    raw: tuple[Any, Any] | None = None  # (reference, current) values, for exact KS


def count_sides(
    profile: FeatureProfile, reference: Any, current: Any, *, with_codes: bool = False
) -> Sides:
    """Count both sides on the profile's bins, the reference from its rows when given;
    ``with_codes`` also keeps each reference row's bin (for contiguous calibration chunks)."""
    if reference is None:
        return Sides(reference=profile_side(profile), current=_count(profile, current))
    cur = _count(profile, current)
    if isinstance(profile, NumericProfile):
        column = float_values(reference)
        present = non_null(column)
        codes = numeric_codes(present, profile.edges) if with_codes else None
        ref = dataclasses.replace(
            count_numeric(present, profile.edges), nulls=column.size - present.size
        )
        return Sides(reference=ref, current=cur, codes=codes, raw=(present, current))
    if not with_codes:
        return Sides(reference=_count(profile, reference), current=cur)
    categories = list(profile.frequencies)
    codes = label_codes(reference, categories)
    seen = codes[codes >= 0]
    counts = np.bincount(seen, minlength=len(categories) + 1).astype(np.int64)
    ref = BinnedColumn(counts, int(codes.size - seen.size))
    return Sides(reference=ref, current=cur, codes=seen)


def profile_side(profile: FeatureProfile) -> BinnedColumn:
    """The reference's counts as the profile stores them, in the counting layout."""
    if isinstance(profile, NumericProfile):
        counts = np.pad(np.asarray(profile.counts, dtype=np.int64), 1)
        return BinnedColumn(counts, profile.null_count)
    counts = np.array([*profile.frequencies.values(), profile.other_count], dtype=np.int64)
    return BinnedColumn(counts, profile.null_count)


def _count(profile: FeatureProfile, values: Any) -> BinnedColumn:
    if isinstance(profile, NumericProfile):
        return count_numeric(values, profile.edges)
    return count_categories(values, list(profile.frequencies))


def compare(name: str, profile: FeatureProfile, sides: Sides, policy: DriftPolicy) -> FeatureDrift:
    """Test one counted feature (before any correction across features)."""
    kind = feature_kind(profile)
    ref, cur = sides.reference, sides.current
    base = FeatureDrift(
        name=name,
        kind=kind,
        result=None,
        null_rate_reference=_rate(ref),
        null_rate_current=_rate(cur),
    )
    if ref.total == 0 or cur.total == 0:
        side = "the reference" if ref.total == 0 else "the current window"
        note = f"no non-null values in {side}: not tested; see the data-quality null rate"
        return dataclasses.replace(base, note=note)
    values = int(np.count_nonzero(ref.counts))
    method = policy.method_for(name, kind, ref.total, cur.total, values=values)
    as_kind = tested_as(method, kind, values)
    statistic = functools.partial(_binned, method, as_kind, profile, policy.psi_bins)
    threshold, source, cal = _threshold(name, method, sides, policy, statistic, values)
    if method == "ks" and sides.raw is not None:
        result = run_exact("ks", kind, *sides.raw, threshold)
    else:
        tails = ((ref.below_excess, ref.above_excess), (cur.below_excess, cur.above_excess))
        result = statistic(ref.counts, cur.counts, threshold, tails)
    moves = _MOVES if cal is not None and cal.moves else None
    return dataclasses.replace(
        base, result=result, threshold_source=source, calibration=cal, note=moves
    )


def _binned(
    method: str,
    kind: FeatureKind,
    profile: FeatureProfile,
    psi_bins: int,
    reference: IntArray,
    current: IntArray,
    threshold: float = 0.0,
    tails: Tails = NO_TAILS,
) -> DriftResult:
    return run_binned(
        method,
        kind,
        reference,
        current,
        threshold,
        edges=profile.edges if isinstance(profile, NumericProfile) else (),
        std=profile.std if isinstance(profile, NumericProfile) else 1.0,
        tails=tails,
        psi_bins=psi_bins,
    )


_MOVES = (
    "the reference itself moves (its adjacent rows differ more than shuffled ones): "
    "threshold calibrated on adjacent rows"
)


def _threshold(
    name: str, method: str, sides: Sides, policy: DriftPolicy, statistic: Any, values: int
) -> tuple[float, str, Calibration | None]:
    if name in policy.threshold:
        return policy.threshold[name], "policy", None
    info = METHODS[method]
    if info.p_value:
        return policy.alpha, "alpha", None
    cal = calibrate_counts(
        sides.reference.counts,
        lambda r, c: statistic(r, c).statistic,
        method=method,
        n_current=sides.current.total,
        settings=policy.calibration(),
        codes=sides.codes,
        values=values if values <= FEW_VALUES else None,
    )
    return cal.threshold, cal.source, cal


def _rate(column: BinnedColumn) -> float:
    rows = column.total + column.nulls
    return column.nulls / rows if rows else 0.0
