"""A reference against the current data, whole or in successive chunks, in one call.

What ``watchkeeper monitor compare`` runs, and the same in a notebook: the reference is profiled
once and its signature inferred once (so every chunk also gets the data-quality checks), then
each chunk of the current data is compared with it exactly as a single comparison of that
chunk alone would be (:func:`watchkeeper.monitoring.checks.compare`). Chunks are consecutive
runs of ``chunk_size`` rows, ``chunks`` nearly equal parts, or the periods of a time column
(``chunk_by="COLUMN:PERIOD"``); with none of them, the whole current data is one chunk.

>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> reference = pd.DataFrame({"x": rng.normal(size=20_000)})
>>> current = pd.DataFrame({"x": np.r_[rng.normal(size=4000), rng.normal(0.5, 1, 2000)]})
>>> found = compare(reference, current, chunk_size=2000)
>>> [chunk.drifted for chunk in found.chunks]
[[], [], ['x']]
>>> found.summary()[["chunk", "rows", "drift_share", "status"]].to_dict("list")
{'chunk': ['rows 0-1999', 'rows 2000-3999', 'rows 4000-5999'], 'rows': [2000, 2000, 2000], \
'drift_share': [0.0, 0.0, 1.0], 'status': ['ok', 'ok', 'fail']}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from watchkeeper.config import parse_duration
from watchkeeper.errors import InvalidInput
from watchkeeper.models.signature import Signature, infer_signature
from watchkeeper.monitoring.checks import Comparison, Window
from watchkeeper.monitoring.checks import compare as compare_one
from watchkeeper.monitoring.drift import METHODS, DriftPolicy, Method, feature_kind
from watchkeeper.monitoring.profile import DatasetProfile, profile_frame
from watchkeeper.monitoring.quality import QualityPolicy
from watchkeeper.monitoring.results import CheckResult, Status

__all__ = ["CALENDAR", "Chunk", "ChunkedComparison", "compare", "drift_policy"]

CALENDAR = {"day": "D", "week": "W-SUN", "month": "M", "quarter": "Q", "year": "Y"}
"""Calendar periods ``chunk_by`` accepts besides durations (weeks run Monday to Sunday)."""

_RANK = {"ok": 0, "skipped": 0, "warn": 1, "fail": 2}
_SUMMARY_COLUMNS = ("chunk", "rows", "start", "end", "drift_share", "drifted", "quality", "status")
_FRAME_COLUMNS = ("chunk", "index", "rows", "start", "end", "check", "feature", "statistic",
                  "value", "threshold", "status")  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Chunk:
    """One chunk of the current data and what its comparison with the reference found.

    ``start``/``stop`` are its first and one-past-last row positions for row chunks, ``None``
    for time periods (whose rows need not be contiguous); ``window`` carries the period's
    times (for row chunks, both are the time of the call); ``positions`` selects its rows of
    the current data (``current.iloc[chunk.positions]``)."""

    index: int
    label: str
    rows: int
    start: int | None
    stop: int | None
    window: Window
    comparison: Comparison
    positions: slice | npt.NDArray[np.intp] = field(repr=False, compare=False)

    @property
    def drifted(self) -> list[str]:
        return self.comparison.drift.drifted

    @property
    def status(self) -> Status:
        """The worst status of the chunk's results."""
        worst: Status = "ok"
        for result in self.comparison.results:
            if _RANK[result.status] > _RANK[worst]:
                worst = result.status
        return worst

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "chunk": self.label,
            "rows": self.rows,
            "start_row": self.start,
            "stop_row": self.stop,
            "window_start": self.window.start.isoformat(),
            "window_end": self.window.end.isoformat(),
            "status": self.status,
            **self.comparison.to_dict(),
        }


@dataclass(frozen=True, kw_only=True)
class ChunkedComparison:
    """Every chunk's comparison, with the reference profile, signature and policy they share."""

    chunks: tuple[Chunk, ...]
    reference_rows: int
    chunking: str
    profile: DatasetProfile
    signature: Signature
    policy: DriftPolicy

    @property
    def results(self) -> list[CheckResult]:
        return [r for chunk in self.chunks for r in chunk.comparison.results]

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "fail"]

    def summary(self) -> pd.DataFrame:
        """One row per chunk: rows, drift share, drifted features, data quality, status."""
        rows = [
            (c.label, c.rows, c.window.start, c.window.end, c.comparison.drift.drift_share,
             ", ".join(c.drifted), c.comparison.quality.status if c.comparison.quality else None,
             c.status)
            for c in self.chunks
        ]  # fmt: skip
        return pd.DataFrame(rows, columns=list(_SUMMARY_COLUMNS))

    def to_frame(self) -> pd.DataFrame:
        """One row per chunk and result (check, feature, statistic, value, threshold, status),
        the long form to filter and plot over chunks."""
        rows = [
            (c.label, c.index, c.rows, c.window.start, c.window.end, r.check, r.feature,
             r.statistic, r.value, r.threshold, r.status)
            for c in self.chunks
            for r in c.comparison.results
        ]  # fmt: skip
        return pd.DataFrame(rows, columns=list(_FRAME_COLUMNS))

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference_rows": self.reference_rows,
            "current_rows": sum(c.rows for c in self.chunks),
            "chunking": self.chunking,
            "chunks": [c.to_dict() for c in self.chunks],
        }


def compare(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    chunk_size: int | None = None,
    chunks: int | None = None,
    chunk_by: str | None = None,
    policy: DriftPolicy | None = None,
    method: str | Iterable[str] | Mapping[str, str] | None = None,
    threshold: float | Mapping[str, float] | None = None,
    fit: str | None = None,
    signature: Signature | None = None,
    quality: QualityPolicy | None = None,
    name: str = "current",
) -> ChunkedComparison:
    """Drift and data quality of ``current`` (whole, or in chunks) against ``reference``.

    * ``chunk_size`` rows per chunk (the last may be shorter), or ``chunks`` nearly equal
      parts, or ``chunk_by="COLUMN:PERIOD"``: the rows of each period of the time column
      ``COLUMN``, in time order; ``PERIOD`` is a duration (``6h``, ``1d``, ``2w``: spans counted
      from 1970-01-01 UTC) or a calendar ``day``, ``week``, ``month``, ``quarter``, ``year``.
      The time column is not a feature. At most one of the three; none: one chunk.
    * ``policy`` decides drift (:class:`~watchkeeper.monitoring.drift.DriftPolicy`);
      ``method``, ``threshold`` and ``fit`` amend it (:func:`drift_policy`).
    * ``signature`` defaults to the one inferred from the reference, so the data-quality
      checks (missing and extra columns, types, null rate, range, unseen categories) run too;
      ``quality`` sets their thresholds. ``name`` labels the results.
    """
    spec = _chunk_by(chunk_by) if chunk_by is not None else None
    if spec is not None and spec[0] in reference.columns:
        reference = reference.drop(columns=[spec[0]])
    parts = list(_parts(current, chunk_size, chunks, spec, name))
    signature = signature or infer_signature(reference)
    if missing := [n for n in signature.names if n not in reference.columns]:
        raise InvalidInput(f"the reference has no column {', '.join(map(repr, missing))} of "
                           "the signature (a chunk_by column is not a feature)")  # fmt: skip
    base = policy or DriftPolicy()
    profile = profile_frame(reference[signature.names], bins=base.bins)
    policy = drift_policy(profile, base, method=method, threshold=threshold, fit=fit)
    found = []
    for index, (label, rows, window, (start, stop)) in enumerate(parts):
        part = current.iloc[rows] if isinstance(rows, slice) else current.take(rows)
        if spec is not None:
            part = part.drop(columns=[spec[0]])
        outcome = compare_one(reference, part, window=window, signature=signature,
                              profile=profile, drift=policy, quality=quality)  # fmt: skip
        found.append(Chunk(index=index, label=label, rows=len(part), start=start, stop=stop,
                           window=window, comparison=outcome, positions=rows))  # fmt: skip
    return ChunkedComparison(
        chunks=tuple(found), reference_rows=len(reference), profile=profile,
        chunking=_describe(chunk_size, chunks, chunk_by), signature=signature, policy=policy,
    )  # fmt: skip


def drift_policy(
    profile: DatasetProfile,
    base: DriftPolicy | None = None,
    *,
    method: str | Iterable[str] | Mapping[str, str] | None = None,
    threshold: float | Mapping[str, float] | None = None,
    fit: str | None = None,
) -> DriftPolicy:
    """``base`` with per-feature methods and thresholds added, and ``fit`` set.

    ``method`` is a mapping of feature names to methods, or one or more bare method names,
    each applied to the features of the kinds it tests (``"ks"`` to the numeric ones,
    ``"psi"`` to all); ``threshold`` a mapping, or one value for every feature. A per-feature
    setting (the base's or the mapping's) wins over a bare one. Naming a feature the profile
    lacks, a bare method that fits no feature, or two bare methods for the same kind of
    feature is an error; a named method that does not suit its feature is refused when the
    feature is tested.

    >>> profile = profile_frame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]})
    >>> policy = drift_policy(profile, DriftPolicy(method={"x": "psi"}), method=["ks", "chisquare"],
    ...                       threshold=0.01, fit="chi2")
    >>> policy.method, policy.threshold, policy.fit
    ({'x': 'psi', 'c': 'chisquare'}, {'x': 0.01, 'c': 0.01}, 'chi2')
    """
    policy = base or DriftPolicy()
    kinds = {name: feature_kind(feature) for name, feature in profile.features.items()}
    named_methods = dict(method) if isinstance(method, Mapping) else {}
    bare_methods = [] if method is None or isinstance(method, Mapping) else method
    methods = {**_bare_methods(bare_methods, kinds), **policy.method, **named_methods}
    named_thresholds: dict[str, float] = {}
    bare_thresholds: dict[str, float] = {}
    if isinstance(threshold, Mapping):
        named_thresholds = dict(threshold)
    elif threshold is not None:
        bare_thresholds = dict.fromkeys(kinds, float(threshold))
    thresholds = {**bare_thresholds, **policy.threshold, **named_thresholds}
    for what, given in (("method", methods), ("threshold", thresholds)):
        if unknown := sorted(set(given) - set(kinds)):
            raise InvalidInput(
                f"{what} names features the reference lacks: "
                f"{', '.join(unknown)} (features: {', '.join(kinds)})"
            )
    policy = dataclasses.replace(
        policy,
        method=methods,
        threshold=thresholds,
        fit=fit if fit is not None else policy.fit,  # type: ignore[arg-type]  # checked next
    )
    policy.calibration()  # refuses an unknown fit
    return policy


def _bare_methods(names: str | Iterable[str], kinds: Mapping[str, str]) -> dict[str, str]:
    """Feature -> method for bare method names, each applied to the features it fits."""
    out: dict[str, str] = {}
    for name in [names] if isinstance(names, str) else list(names):
        fits = [feature for feature, kind in kinds.items() if kind in _method(name).kinds]
        if not fits:
            kinds_text = " and ".join(_method(name).kinds)
            raise InvalidInput(f"drift method {name!r} applies to {kinds_text} features: none here")
        if clash := sorted({out[f] for f in fits if f in out}):
            raise InvalidInput(
                f"drift methods {clash[0]!r} and {name!r} both apply to the same "
                "features: name the features of one (FEATURE=METHOD)"
            )
        out |= dict.fromkeys(fits, name)
    return out


def _method(name: str) -> Method:
    info = METHODS.get(name)
    if info is None:
        raise InvalidInput(f"unknown drift method {name!r} (known: {', '.join(METHODS)})")
    return info


# ----------------------------------------------------------------------------- chunks

Part = tuple[str, slice | npt.NDArray[np.intp], Window, tuple[int | None, int | None]]


def _parts(
    current: pd.DataFrame,
    chunk_size: int | None,
    chunks: int | None,
    spec: tuple[str, str] | None,
    name: str,
) -> Iterator[Part]:
    given = [chunk_size is not None, chunks is not None, spec is not None]
    if sum(given) > 1:
        raise InvalidInput("give one of chunk_size, chunks and chunk_by, not several")
    n = len(current)
    if n == 0:
        raise InvalidInput("the current data has no rows")
    if spec is not None:
        yield from _periods(current, *spec, name)
        return
    if chunks is not None:
        if not 1 <= chunks <= n:
            raise InvalidInput(f"chunks must be between 1 and the {n} current rows, got {chunks}")
        bounds = np.linspace(0, n, chunks + 1).round().astype(int).tolist()
    else:
        size = n if chunk_size is None else chunk_size
        if size < 1:
            raise InvalidInput(f"chunk_size must be at least 1, got {size}")
        bounds = [*range(0, n, size), n]
    now = datetime.now(UTC)
    for start, stop in zip(bounds, bounds[1:], strict=False):
        label = "all rows" if (start, stop) == (0, n) else f"rows {start}-{stop - 1}"
        yield label, slice(start, stop), Window(name, None, now, now), (start, stop)


def _chunk_by(text: str) -> tuple[str, str]:
    column, sep, period = str(text).rpartition(":")
    if not sep or not column or not period:
        raise InvalidInput(
            f"chunk_by '{text}' must look like COLUMN:PERIOD (e.g. timestamp:1d, timestamp:month)"
        )
    if period in CALENDAR:
        return column, period
    try:
        seconds = parse_duration(period).total_seconds()
    except InvalidInput:
        seconds = 0
    if seconds <= 0:
        raise InvalidInput(
            f"chunk_by '{text}': '{period}' is not a period: use a duration "
            f"(6h, 1d, 2w) or {', '.join(CALENDAR)}"
        )
    return column, period


def _periods(current: pd.DataFrame, column: str, period: str, name: str) -> Iterator[Part]:
    if column not in current.columns:
        raise InvalidInput(f"chunk_by: the current data has no column {column!r}")
    times = _times(current[column], column)
    if missing := int(times.isna().sum()):
        raise InvalidInput(f"chunk_by: {missing} rows have no time in column {column!r}")
    if period in CALENDAR:
        starts = times.dt.to_period(CALENDAR[period]).dt.start_time
    else:
        starts = times.dt.floor(pd.Timedelta(parse_duration(period)))
    codes, keys = pd.factorize(starts, sort=True)
    order = np.argsort(codes, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(codes[order])) + 1)
    for key, rows in zip(keys, groups, strict=True):
        end = _period_end(key, period)
        window = Window(
            name,
            None,
            key.to_pydatetime().replace(tzinfo=UTC),
            end.to_pydatetime().replace(tzinfo=UTC),
        )
        yield _period_label(key, period), rows, window, (None, None)


def _times(values: pd.Series[Any], column: str) -> pd.Series[Any]:
    """The column as naive UTC times (a naive column is taken to be UTC)."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        raise InvalidInput(f"chunk_by: column {column!r} holds {values.dtype} values, not times")
    already = pd.api.types.is_datetime64_any_dtype(values)
    try:
        times = pd.to_datetime(values, utc=True, format=None if already else "ISO8601")
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInput(
            f"chunk_by: column {column!r} does not hold ISO-8601 times: "
            f"{str(exc).splitlines()[0].split('. ')[0]}"
        ) from exc
    return times.dt.tz_localize(None)


def _period_end(start: pd.Timestamp, period: str) -> pd.Timestamp:
    if period in CALENDAR:
        return (start.to_period(CALENDAR[period]) + 1).start_time
    return start + pd.Timedelta(parse_duration(period))


def _period_label(start: pd.Timestamp, period: str) -> str:
    if period in CALENDAR:
        return str(start.to_period(CALENDAR[period]))
    if start == start.normalize() and parse_duration(period).total_seconds() % 86400 == 0:
        return f"{start:%Y-%m-%d}"
    return f"{start:%Y-%m-%d %H:%M}"


def _describe(chunk_size: int | None, chunks: int | None, chunk_by: str | None) -> str:
    if chunk_size is not None:
        return f"chunk_size={chunk_size}"
    if chunks is not None:
        return f"chunks={chunks}"
    return f"chunk_by={chunk_by}" if chunk_by is not None else "whole"
