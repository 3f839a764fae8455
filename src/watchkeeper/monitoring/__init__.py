"""Pure statistics over numpy: reference profiles, drift, data quality, performance."""

from watchkeeper.monitoring.profile import (
    CategoricalProfile,
    DatasetProfile,
    FeatureProfile,
    NumericProfile,
    bin_counts,
    category_counts,
    profile_categorical,
    profile_frame,
    profile_numeric,
    profile_values,
)

__all__ = [
    "CategoricalProfile",
    "DatasetProfile",
    "FeatureProfile",
    "NumericProfile",
    "bin_counts",
    "category_counts",
    "profile_categorical",
    "profile_frame",
    "profile_numeric",
    "profile_values",
]
