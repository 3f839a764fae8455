"""Data drift: statistical tests (exact and binned), their automatic choice, calibrated
thresholds, multiple-testing corrections and per-window reports (numpy/scipy), and a
multivariate domain classifier (scikit-learn, imported only when it runs)."""

from watchkeeper.monitoring.drift.binning import (
    BinnedColumn,
    count_categories,
    count_numeric,
    label_codes,
    numeric_codes,
)
from watchkeeper.monitoring.drift.calibration import (
    Calibration,
    CalibrationSettings,
    calibrate,
    calibrate_counts,
)
from watchkeeper.monitoring.drift.chisquare import chisquare, chisquare_binned
from watchkeeper.monitoring.drift.choose import DriftPolicy, default_method, feature_kind
from watchkeeper.monitoring.drift.correction import (
    adjust_p_values,
    benjamini_hochberg,
    bonferroni,
)
from watchkeeper.monitoring.drift.jensenshannon import jensenshannon, jensenshannon_binned
from watchkeeper.monitoring.drift.ks import ks, ks_binned, ks_binned_tolerance
from watchkeeper.monitoring.drift.methods import METHODS, Method
from watchkeeper.monitoring.drift.multivariate import MultivariateDrift, domain_classifier_drift
from watchkeeper.monitoring.drift.psi import psi, psi_binned, psi_categorical
from watchkeeper.monitoring.drift.report import (
    DriftReport,
    FeatureDrift,
    count_window,
    detect_drift,
    detect_drift_binned,
)
from watchkeeper.monitoring.drift.result import DriftResult
from watchkeeper.monitoring.drift.wasserstein import wasserstein, wasserstein_binned

__all__ = [
    "BinnedColumn",
    "Calibration",
    "CalibrationSettings",
    "DriftPolicy",
    "DriftReport",
    "DriftResult",
    "FeatureDrift",
    "METHODS",
    "Method",
    "MultivariateDrift",
    "adjust_p_values",
    "benjamini_hochberg",
    "bonferroni",
    "calibrate",
    "calibrate_counts",
    "chisquare",
    "chisquare_binned",
    "count_categories",
    "count_numeric",
    "count_window",
    "default_method",
    "detect_drift",
    "detect_drift_binned",
    "domain_classifier_drift",
    "feature_kind",
    "jensenshannon",
    "jensenshannon_binned",
    "ks",
    "ks_binned",
    "ks_binned_tolerance",
    "label_codes",
    "numeric_codes",
    "psi",
    "psi_binned",
    "psi_categorical",
    "wasserstein",
    "wasserstein_binned",
]
