"""Which test judges which feature: the automatic rule and the per-feature policy."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from watchkeeper.errors import InvalidInput
from watchkeeper.models.signature import ColumnSpec
from watchkeeper.monitoring.drift.calibration import FEW_VALUES, CalibrationSettings
from watchkeeper.monitoring.drift.correction import CORRECTIONS, Correction
from watchkeeper.monitoring.drift.methods import METHODS, FeatureKind, method_info
from watchkeeper.monitoring.profile import CategoricalProfile, NumericProfile

__all__ = ["FEW_VALUES", "SMALL_SAMPLE", "DriftPolicy", "default_method", "feature_kind"]

SMALL_SAMPLE = 1000
"""Below this many non-null values in either sample, p-value tests decide."""

KindSource = ColumnSpec | NumericProfile | CategoricalProfile | str


def feature_kind(spec_or_kind: KindSource) -> FeatureKind:
    """``"numeric"`` or ``"categorical"`` from a column spec, a profile or a name.

    Signature types ``float``/``int`` are numeric, ``string``/``bool`` categorical.

    >>> feature_kind("int"), feature_kind("bool")
    ('numeric', 'categorical')
    """
    if isinstance(spec_or_kind, NumericProfile):
        return "numeric"
    if isinstance(spec_or_kind, CategoricalProfile):
        return "categorical"
    name = spec_or_kind.dtype if isinstance(spec_or_kind, ColumnSpec) else spec_or_kind
    if name in ("numeric", "float", "int"):
        return "numeric"
    if name in ("categorical", "string", "bool"):
        return "categorical"
    raise InvalidInput(f"no drift test for features of type {name!r}")


def default_method(
    spec_or_kind: KindSource, n_reference: int, n_current: int, *, values: int | None = None
) -> str:
    """The test used when the policy names none. The rule:

    1. If either sample has fewer than ``SMALL_SAMPLE`` (1000) non-null values, a p-value
       test: chi-square for categorical features and for numeric ones with at most
       ``FEW_VALUES`` (10) ``values`` (non-empty reference bins), Kolmogorov–Smirnov for other
       numeric ones. At these sizes a test has modest power, its error rate is known exactly,
       and a distance's own noise would be too large to calibrate a useful threshold.
    2. Otherwise an effect size, judged against what chance could do at these sizes. For a
       few-valued feature (at most ``FEW_VALUES`` values, categorical or numeric: the
       profile's bins then hold one value each) the Jensen–Shannon distance, whose threshold
       follows from the chi-square law of its square (no fit: see
       :mod:`~watchkeeper.monitoring.drift.calibration`). Otherwise the Wasserstein distance
       over the reference's std for numeric features, the Jensen–Shannon distance for
       categorical ones, with a threshold calibrated on the reference. With many rows every
       p-value test rejects trivial differences (the large-sample problem); a distance asks
       "how much has it moved", its threshold "more than chance could at this size?", and
       its floor "enough to matter?".

    The rule looks only at the kind, the two sizes and the number of reference values, which
    are known from the counts: nothing is re-read to choose.

    >>> default_method("float", 500, 100_000), default_method("float", 100_000, 1_000_000)
    ('ks', 'wasserstein')
    >>> default_method("string", 5_000, 2_000)
    'jensenshannon'
    >>> default_method("int", 50_000, 5_000, values=5), default_method("int", 500, 500, values=5)
    ('jensenshannon', 'chisquare')
    """
    kind = feature_kind(spec_or_kind)
    few = values is not None and values <= FEW_VALUES
    if min(n_reference, n_current) < SMALL_SAMPLE:
        return "ks" if kind == "numeric" and not few else "chisquare"
    return "wasserstein" if kind == "numeric" and not few else "jensenshannon"


def tested_as(method: str, kind: FeatureKind, values: int | None) -> FeatureKind:
    """The kind a test treats a feature as: a few-valued numeric feature's bins are categories
    to a categorical test.

    >>> tested_as("chisquare", "numeric", 3), tested_as("chisquare", "numeric", None)
    ('categorical', 'numeric')
    """
    few = values is not None and values <= FEW_VALUES
    if kind == "numeric" and few and method in METHODS and "numeric" not in METHODS[method].kinds:
        return "categorical"
    return kind


@dataclass(frozen=True, kw_only=True)
class DriftPolicy:
    """How drift is decided, with per-feature overrides.

    * ``method``: feature name → method (see ``METHODS``); others get :func:`default_method`.
    * ``threshold``: feature name → fixed threshold (distances) or alpha (p-value tests),
      which replaces calibration for that feature.
    * ``correction``: across the features judged by p-values: ``"bonferroni"``, ``"bh"`` or
      ``None``; ``alpha`` the level it controls.
    * ``sigmas``, ``chunks``, ``chunk_size``, ``seed``, ``contiguous``, ``fit``: the
      calibration (:mod:`~watchkeeper.monitoring.drift.calibration`); ``floor`` overrides each
      method's floor for calibrated thresholds. ``contiguous=None`` (the default) checks
      whether the reference moves (its rows in order differ more than shuffled) and then
      calibrates on adjacent rows; ``True`` always does, ``False`` never checks.
    * ``bins``: quantile bins of the profile computed when none is given; ``psi_bins``: groups
      PSI merges them into.
    * ``share``: the dataset drifts when at least this (weighted) share of features drifts.

    >>> DriftPolicy(method={"age": "ks"}, correction="bh").method_for("age", "numeric", 10, 10)
    'ks'
    """

    method: Mapping[str, str] = field(default_factory=dict)
    threshold: Mapping[str, float] = field(default_factory=dict)
    correction: Correction = "bonferroni"
    alpha: float = 0.05
    sigmas: float = 3.0
    chunks: int = 50
    chunk_size: int | None = None
    seed: int = 0
    contiguous: bool | None = None
    fit: Literal["lognormal", "chi2", "normal"] = "lognormal"
    floor: float | None = None
    bins: int = 100
    psi_bins: int = 10
    share: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", dict(self.method))
        object.__setattr__(self, "threshold", dict(self.threshold))
        for name, method in self.method.items():
            if method not in METHODS:
                raise InvalidInput(f"feature {name!r}: unknown drift method {method!r}")
        if self.correction not in CORRECTIONS:
            raise InvalidInput(f"unknown correction {self.correction!r}")
        if not 0 < self.alpha < 1 or not 0 < self.share <= 1:
            raise InvalidInput("alpha must be in (0, 1) and share in (0, 1]")
        if self.sigmas < 0 or self.chunks < 2 or self.bins < 1 or self.psi_bins < 1:
            raise InvalidInput("sigmas must be >= 0, chunks >= 2, bins and psi_bins >= 1")
        if any(not (math.isfinite(t) and t >= 0) for t in self.threshold.values()):
            raise InvalidInput("thresholds must be finite and non-negative")

    def method_for(
        self,
        name: str,
        kind: FeatureKind,
        n_reference: int,
        n_current: int,
        *,
        values: int | None = None,
    ) -> str:
        """The method for one feature: the override if any (checked to fit), else the rule.
        A numeric feature with few ``values`` also takes the categorical tests (on its bins)."""
        chosen = self.method.get(name) or default_method(
            kind, n_reference, n_current, values=values
        )
        method_info(chosen, tested_as(chosen, kind, values))
        return chosen

    def calibration(self) -> CalibrationSettings:
        """The calibration settings this policy describes."""
        return CalibrationSettings(
            chunks=self.chunks,
            chunk_size=self.chunk_size,
            sigmas=self.sigmas,
            floor=self.floor,
            seed=self.seed,
            contiguous=self.contiguous,
            fit=self.fit,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": dict(self.method),
            "threshold": dict(self.threshold),
            "correction": self.correction,
            "alpha": self.alpha,
            "sigmas": self.sigmas,
            "chunks": self.chunks,
            "chunk_size": self.chunk_size,
            "seed": self.seed,
            "contiguous": self.contiguous,
            "fit": self.fit,
            "floor": self.floor,
            "bins": self.bins,
            "psi_bins": self.psi_bins,
            "share": self.share,
        }
