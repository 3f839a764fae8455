"""Reference profiles: what a model's training data (and its predictions on it) looked like.

A profile is computed once, when a model version is registered, and stored beside it as JSON.
Monitoring later compares live windows with it in one cheap pass: numeric features are binned
on the reference's quantile edges with :func:`bin_counts`, categorical ones are counted against
the reference's categories with :func:`category_counts`; data-quality checks compare null rates
and ranges.

Conventions that every caller relies on:

* **Nulls** are ``None``, NaN, ``pd.NA`` and ``NaT``. They are counted in ``null_count`` and left
  out of every distribution. Infinities are values, not nulls.
* **Bins** (``NumericProfile.edges`` / ``counts``): edges ``e[0] < e[1] < ... < e[k]`` are the
  quantiles of the non-null values at levels ``0, 1/bins, ..., 1`` (``np.quantile``, linear
  method; where infinities or overflow make it NaN, the nearest order statistic), ties
  removed. Bin ``i`` holds ``e[i] <= v < e[i+1]``; the last bin is closed on both
  sides. When ties removed edges and the maximum is shared by several values, the last edge
  is repeated, so the maximum has a bin ``[e[k], e[k]]`` of its own (a 5-valued integer
  column gets 5 bins, one per value). When new data is binned, values below ``e[0]`` fall
  into the first bin and values above ``e[k]`` into the last. So every non-null value lands
  in exactly one bin, and ``bin_counts(training_values, profile.edges) == profile.counts``.
  A constant column has the edges ``(c, c)`` and one bin; an all-null column has no edges and
  no bins.
* **Labels**: categorical values are compared as strings: ``str(value)``, except that bytes are
  decoded as UTF-8 and integral floats are written as integers (``3.0`` becomes ``"3"``), so a
  column read as float only because it has missing values keeps its labels.
* **Booleans** are categorical, labelled ``"False"`` and ``"True"`` (whether they come as numpy,
  pandas or Arrow booleans, or as objects). Counting a window against boolean categories takes
  the numbers 0 and 1 as ``"False"`` and ``"True"``: serving passes bool features on as 0/1, and
  older logbook segments stored them so.
* **JSON**: ``to_dict`` output contains only str, int, float, list, dict and None, and passes
  ``json.dumps(..., allow_nan=False)``. Non-finite floats are written as the strings ``"NaN"``,
  ``"Infinity"`` and ``"-Infinity"``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import numpy.typing as npt

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring._columns import (
    AnyArray,
    FloatArray,
    Kind,
    arrow_labels,
    boolean_labels,
    check_positive,
    count_labels,
    float_values,
    frame_columns,
    non_null,
    read_column,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = [
    "FORMAT_VERSION",
    "QUANTILE_LEVELS",
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

FORMAT_VERSION = 1
"""Version of the ``to_dict`` layout; ``from_dict`` refuses any other."""

QUANTILE_LEVELS: dict[str, float] = {
    "p01": 0.01,
    "p05": 0.05,
    "p25": 0.25,
    "p50": 0.50,
    "p75": 0.75,
    "p95": 0.95,
    "p99": 0.99,
}

_NONFINITE_NAMES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}

IntArray: TypeAlias = npt.NDArray[np.int64]
Frame: TypeAlias = "pd.DataFrame | Mapping[str, npt.ArrayLike] | pa.Table"


# ----------------------------------------------------------------------------- profiles


@dataclass(frozen=True, kw_only=True)
class NumericProfile:
    """Distribution of one numeric column. ``std`` is the population one (``np.std``, ddof=0).

    When ``count`` is 0, ``min``, ``max``, ``mean``, ``std`` and the quantiles are NaN and
    there are no edges or counts.
    """

    count: int
    null_count: int
    min: float
    max: float
    mean: float
    std: float
    edges: tuple[float, ...]
    counts: tuple[int, ...]
    quantiles: dict[str, float]

    def __post_init__(self) -> None:
        if len(self.edges) == 1 or len(self.counts) != max(len(self.edges) - 1, 0):
            raise InvalidInput(
                f"a numeric profile needs len(counts) == len(edges) - 1, got "
                f"{len(self.edges)} edges and {len(self.counts)} counts"
            )
        if sum(self.counts) != self.count:
            raise InvalidInput(f"bin counts sum to {sum(self.counts)}, not count={self.count}")

    @property
    def null_rate(self) -> float:
        total = self.count + self.null_count
        return self.null_count / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "numeric",
            "count": self.count,
            "null_count": self.null_count,
            "min": _encode_float(self.min),
            "max": _encode_float(self.max),
            "mean": _encode_float(self.mean),
            "std": _encode_float(self.std),
            "edges": [_encode_float(e) for e in self.edges],
            "counts": list(self.counts),
            "quantiles": {k: _encode_float(v) for k, v in self.quantiles.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericProfile:
        with _Malformed("numeric profile"):
            return cls(
                count=int(data["count"]),
                null_count=int(data["null_count"]),
                min=_decode_float(data["min"]),
                max=_decode_float(data["max"]),
                mean=_decode_float(data["mean"]),
                std=_decode_float(data["std"]),
                edges=tuple(_decode_float(e) for e in data["edges"]),
                counts=tuple(int(c) for c in data["counts"]),
                quantiles={str(k): _decode_float(v) for k, v in data["quantiles"].items()},
            )


@dataclass(frozen=True, kw_only=True)
class CategoricalProfile:
    """Distribution of one categorical column.

    ``frequencies`` holds the most frequent labels (most frequent first, ties by label),
    ``other_count`` the non-null values outside them, ``distinct`` the exact number of distinct
    non-null labels.
    """

    count: int
    null_count: int
    frequencies: dict[str, int]
    other_count: int
    distinct: int

    def __post_init__(self) -> None:
        if sum(self.frequencies.values()) + self.other_count != self.count:
            raise InvalidInput("category frequencies plus other_count must add up to count")
        if self.distinct < len(self.frequencies):
            raise InvalidInput("distinct cannot be smaller than the number of frequencies")

    @property
    def null_rate(self) -> float:
        total = self.count + self.null_count
        return self.null_count / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "categorical",
            "count": self.count,
            "null_count": self.null_count,
            "frequencies": dict(self.frequencies),
            "other_count": self.other_count,
            "distinct": self.distinct,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalProfile:
        with _Malformed("categorical profile"):
            return cls(
                count=int(data["count"]),
                null_count=int(data["null_count"]),
                frequencies={str(k): int(v) for k, v in data["frequencies"].items()},
                other_count=int(data["other_count"]),
                distinct=int(data["distinct"]),
            )


FeatureProfile: TypeAlias = NumericProfile | CategoricalProfile


@dataclass(frozen=True, kw_only=True)
class DatasetProfile:
    """Profiles of every feature of a data set, and optionally of the model's predictions."""

    row_count: int
    features: dict[str, FeatureProfile]
    predictions: FeatureProfile | None = None
    format_version: int = FORMAT_VERSION

    def with_predictions(self, predictions: FeatureProfile | None) -> DatasetProfile:
        """A copy whose predictions profile is ``predictions`` (see :func:`profile_values`)."""
        return dataclasses.replace(self, predictions=predictions)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; :meth:`from_dict` reads it back.

        >>> import json
        >>> ref = profile_frame({"x": [1.0, float("inf")], "c": ["a", None]}, bins=1)
        >>> text = json.dumps(ref.to_dict(), allow_nan=False)
        >>> DatasetProfile.from_dict(json.loads(text)).features["x"].max
        inf
        """
        return {
            "format_version": self.format_version,
            "row_count": self.row_count,
            "features": {name: prof.to_dict() for name, prof in self.features.items()},
            "predictions": None if self.predictions is None else self.predictions.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetProfile:
        with _Malformed("dataset profile"):
            version = int(data["format_version"])
            if version != FORMAT_VERSION:
                raise InvalidInput(
                    f"profile format_version {version} is not supported "
                    f"(this watchkeeper reads version {FORMAT_VERSION})"
                )
            predictions = data["predictions"]
            return cls(
                row_count=int(data["row_count"]),
                features={str(k): _feature_from_dict(v) for k, v in data["features"].items()},
                predictions=None if predictions is None else _feature_from_dict(predictions),
                format_version=version,
            )


def _feature_from_dict(data: Mapping[str, Any]) -> FeatureProfile:
    kind = data["kind"]
    if kind == "numeric":
        return NumericProfile.from_dict(data)
    if kind == "categorical":
        return CategoricalProfile.from_dict(data)
    raise InvalidInput(f"unknown feature profile kind {kind!r}")


class _Malformed:
    """Turn the KeyError/TypeError/ValueError of a bad dict into InvalidInput."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, _: object
    ) -> None:
        if exc is not None and isinstance(exc, KeyError | TypeError | ValueError | AttributeError):
            raise InvalidInput(f"malformed {self.what}: {exc!r}") from exc


def _encode_float(value: float) -> float | str:
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _decode_float(value: object) -> float:
    if isinstance(value, str):
        if value not in _NONFINITE_NAMES:
            raise ValueError(f"{value!r} is not a number")
        return _NONFINITE_NAMES[value]
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"{value!r} is not a number")
    return float(value)


# ----------------------------------------------------------------------------- numeric


def profile_numeric(values: npt.ArrayLike, *, bins: int = 100) -> NumericProfile:
    """Profile a numeric column: one sort, one ``np.quantile``, one ``searchsorted``.

    >>> p = profile_numeric([1.0, 2.0, None, 4.0], bins=2)
    >>> p.count, p.null_count, p.min, p.max
    (3, 1, 1.0, 4.0)
    >>> p.edges, p.counts
    ((1.0, 2.0, 4.0), (1, 2))
    >>> profile_numeric([7, 7, 7]).edges
    (7.0, 7.0)
    >>> p = profile_numeric([0] * 50 + [1] * 50 + [2] * 100)  # the tied maximum: own bin
    >>> p.edges, p.counts
    ((0.0, 0.75, 1.0, 1.5, 2.0, 2.0), (50, 0, 50, 0, 100))
    """
    check_positive("bins", bins)
    column = float_values(values)
    present = non_null(column)
    null_count = int(column.size - present.size)
    if present.size == 0:
        return _empty_numeric(null_count)
    ordered = np.sort(present)
    levels = np.concatenate([np.linspace(0.0, 1.0, bins + 1), list(QUANTILE_LEVELS.values())])
    marks = _sorted_quantiles(ordered, levels)
    edges = _tied_maximum(_dedupe_edges(marks[: bins + 1]), ordered, bins)
    with np.errstate(invalid="ignore", over="ignore"):
        mean, std = float(np.mean(present)), float(np.std(present))
    return NumericProfile(
        count=int(present.size),
        null_count=null_count,
        min=float(ordered[0]),
        max=float(ordered[-1]),
        mean=mean,
        std=std,
        edges=tuple(edges.tolist()),
        counts=tuple(_sorted_bin_counts(ordered, edges).tolist()),
        quantiles=dict(zip(QUANTILE_LEVELS, marks[bins + 1 :].tolist(), strict=True)),
    )


def bin_counts(values: npt.ArrayLike, edges: Sequence[float] | npt.ArrayLike) -> IntArray:
    """Count the non-null ``values`` per bin of ``edges`` (module docstring: *Bins*).

    Values outside the edges go to the first or last bin, so the counts sum to the number of
    non-null values. With no edges (an all-null reference) there are no bins: the result is
    empty.

    >>> bin_counts([0.5, 1.0, 1.5, 2.0, 9.0, None], [1.0, 2.0, 3.0]).tolist()
    [3, 2]
    """
    cuts = np.asarray(edges, dtype=np.float64)
    _check_edges(cuts)
    if cuts.size == 0:
        return np.zeros(0, dtype=np.int64)
    present = non_null(float_values(values))
    slots = np.searchsorted(cuts[1:-1], present, side="right")
    return np.bincount(slots, minlength=cuts.size - 1).astype(np.int64, copy=False)


def _empty_numeric(null_count: int) -> NumericProfile:
    return NumericProfile(
        count=0,
        null_count=null_count,
        min=math.nan,
        max=math.nan,
        mean=math.nan,
        std=math.nan,
        edges=(),
        counts=(),
        quantiles=dict.fromkeys(QUANTILE_LEVELS, math.nan),
    )


def _sorted_quantiles(ordered: FloatArray, levels: FloatArray) -> FloatArray:
    """``np.quantile`` of sorted, non-null data, repaired where it breaks: when infinities make
    it NaN (inf - inf) or huge values overflow the interpolation, the nearest order statistic
    is used instead. Finite, ordinary data is untouched."""
    with np.errstate(invalid="ignore", over="ignore"):
        marks = np.quantile(ordered, levels)
    position = levels * (ordered.size - 1)
    lower = ordered[np.floor(position).astype(np.intp)]
    upper = ordered[np.ceil(position).astype(np.intp)]
    overflowed = ~np.isfinite(marks) & np.isfinite(lower) & np.isfinite(upper)
    broken = np.isnan(marks) | overflowed
    if broken.any():
        marks[broken] = ordered[np.rint(position[broken]).astype(np.intp)]
    return marks


def _dedupe_edges(marks: FloatArray) -> FloatArray:
    edges = np.unique(marks)
    return np.repeat(edges, 2) if edges.size == 1 else edges


def _tied_maximum(edges: FloatArray, ordered: FloatArray, bins: int) -> FloatArray:
    """Give a maximum shared by several values a bin of its own (the last edge repeated), when
    ties merged edges: few-valued data then has one bin per value, not its top two merged."""
    if bins + 1 > edges.size > 1 and edges[-1] > edges[-2] and ordered[-2] == ordered[-1]:
        return np.append(edges, edges[-1])
    return edges


def _sorted_bin_counts(ordered: FloatArray, edges: FloatArray) -> IntArray:
    """Counts per bin of sorted data: the same convention as :func:`bin_counts`."""
    below = np.searchsorted(ordered, edges[1:-1], side="left")
    bounds = np.concatenate([[0], below, [ordered.size]])
    return np.diff(bounds).astype(np.int64, copy=False)


def _check_edges(cuts: FloatArray) -> None:
    if cuts.ndim != 1 or cuts.size == 1:
        raise InvalidInput(f"edges must be empty or hold at least 2 values, got shape {cuts.shape}")
    if np.isnan(cuts).any() or (cuts[1:] < cuts[:-1]).any():
        raise InvalidInput("edges must be sorted and free of NaN")


# ----------------------------------------------------------------------------- categorical


def profile_categorical(values: npt.ArrayLike, *, max_categories: int = 100) -> CategoricalProfile:
    """Profile a categorical column: label frequencies, top ``max_categories`` kept.

    >>> p = profile_categorical(["b", "a", "b", None, "c"], max_categories=2)
    >>> p.frequencies, p.other_count, p.distinct, p.null_count
    ({'b': 2, 'a': 1}, 1, 3, 1)
    """
    check_positive("max_categories", max_categories)
    labels, null_count = count_labels(values)
    ranked = sorted(labels.items(), key=lambda item: (-item[1], item[0]))
    top = dict(ranked[:max_categories])
    count = sum(labels.values())
    return CategoricalProfile(
        count=count,
        null_count=null_count,
        frequencies=top,
        other_count=count - sum(top.values()),
        distinct=len(labels),
    )


def category_counts(values: npt.ArrayLike, categories: Iterable[str]) -> tuple[IntArray, int]:
    """Count non-null ``values`` per known category, and those outside ``categories``.

    Labels are made as in the profile (module docstring: *Labels*). "Unseen" means not among
    ``categories``: reference values that were folded into ``other_count`` count here too.
    When the categories are booleans' (``"False"``/``"True"``), the numbers 0 and 1 count as
    them.

    >>> counts, unseen = category_counts([1, 2, 2, 5, None], ["1", "2", "3"])
    >>> counts.tolist(), unseen
    ([1, 2, 0], 1)
    """
    known = list(categories)
    if len(set(known)) != len(known):
        raise InvalidInput("categories must not repeat")
    labels = boolean_labels(count_labels(values)[0], known)
    counts = np.array([labels.get(name, 0) for name in known], dtype=np.int64)
    return counts, sum(labels.values()) - int(counts.sum())


# ----------------------------------------------------------------------------- choosing


def profile_values(
    values: npt.ArrayLike,
    *,
    bins: int = 100,
    max_categories: int = 100,
    label_limit: int = 20,
) -> FeatureProfile:
    """Profile predictions (or any column), choosing the kind from the values.

    The rule: floats are scores → numeric; booleans, strings, pandas categories and other
    objects are labels → categorical; integers are class labels → categorical when they take
    at most ``label_limit`` distinct values, else numeric (counts, ranks). Object arrays that
    hold only numbers and nulls count as floats or integers.

    >>> type(profile_values([0.2, 0.9, 0.4])).__name__
    'NumericProfile'
    >>> profile_values([0, 1, 1, 2]).frequencies
    {'1': 2, '0': 1, '2': 1}
    """
    if isinstance(label_limit, bool) or not isinstance(label_limit, int) or label_limit < 0:
        raise InvalidInput(f"label_limit must be a non-negative integer, got {label_limit!r}")
    column, kind = read_column(values)
    if _choose_kind(column, kind, label_limit=label_limit) == "numeric":
        return profile_numeric(column, bins=bins)
    return profile_categorical(column, max_categories=max_categories)


def profile_frame(
    frame: Frame,
    *,
    categorical: Iterable[str] | None = None,
    bins: int = 100,
    max_categories: int = 100,
) -> DatasetProfile:
    """Profile every column of a pandas DataFrame, a dict of equally long columns or a pyarrow
    Table.

    Numeric columns (not bool, nullable ones included) get a :class:`NumericProfile`; bool,
    string, object and category columns a :class:`CategoricalProfile`; names in
    ``categorical`` are profiled as categories whatever their dtype (integer codes, say).
    Object columns holding only numbers and nulls count as numeric. Datetime, timedelta and
    complex columns are refused unless listed in ``categorical``. Add the predictions with
    ``.with_predictions(profile_values(predictions))``.

    >>> ref = profile_frame({"age": [31, 45, None], "plan": ["a", "b", "a"]})
    >>> ref.row_count, type(ref.features["age"]).__name__, ref.features["plan"].frequencies
    (3, 'NumericProfile', {'a': 2, 'b': 1})
    """
    check_positive("bins", bins)
    check_positive("max_categories", max_categories)
    columns = frame_columns(frame, unique=True)
    forced = set(categorical or ())
    if missing := sorted(forced - set(columns)):
        raise InvalidInput(f"categorical names unknown columns: {', '.join(missing)}")
    row_count = _row_count(frame, columns)
    features = {
        name: _profile_feature(values, name in forced, bins=bins, max_categories=max_categories)
        for name, values in columns.items()
    }
    return DatasetProfile(row_count=row_count, features=features)


def _choose_kind(column: AnyArray, kind: Kind, *, label_limit: int | None) -> str:
    """``label_limit=None`` (features): integers are numeric. Otherwise (predictions) integers
    with at most ``label_limit`` distinct values are categorical."""
    if kind in ("bool", "label"):
        return "categorical"
    if kind == "float" or label_limit is None:
        return "numeric"
    distinct = np.unique(non_null(column.astype(np.float64, copy=False))).size
    return "categorical" if distinct <= label_limit else "numeric"


def _profile_feature(
    values: npt.ArrayLike, forced: bool, *, bins: int, max_categories: int
) -> FeatureProfile:
    if forced or arrow_labels(values):  # Arrow labels are counted as they are, not as objects
        return profile_categorical(values, max_categories=max_categories)
    column, kind = read_column(values)
    if _choose_kind(column, kind, label_limit=None) == "numeric":
        return profile_numeric(column, bins=bins)
    return profile_categorical(column, max_categories=max_categories)


def _row_count(frame: Frame, columns: Mapping[str, Any]) -> int:
    if not isinstance(frame, Mapping):
        return len(frame)
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise InvalidInput(f"columns differ in length: {lengths}")
    return next(iter(lengths.values()), 0)
