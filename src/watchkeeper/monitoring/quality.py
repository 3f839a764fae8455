"""Data quality of a window against the model's signature and the reference profile.

Each check gives a frozen :class:`QualityFinding` with its value, the reference value, the
threshold and a status: ``"ok"``, ``"warn"`` or ``"fail"``. Rates are shares of the window's
rows (null rate) or of its non-null values (out-of-range, unseen). Null rates are judged by
their *increase* over the reference's null rate (the profile's; 0 for a non-nullable column
without a profile), since drift tests drop nulls and would never see them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np

from watchkeeper.errors import InvalidInput
from watchkeeper.models.signature import ColumnSpec, Signature
from watchkeeper.monitoring._columns import (
    boolean_labels,
    count_labels,
    float_values,
    frame_columns,
)
from watchkeeper.monitoring.profile import CategoricalProfile, DatasetProfile, NumericProfile

if TYPE_CHECKING:
    from watchkeeper.monitoring.drift.binning import BinnedColumn

__all__ = ["QualityFinding", "QualityPolicy", "QualityReport", "check_quality"]

Status: TypeAlias = Literal["ok", "warn", "fail"]
_RANK = {"ok": 0, "warn": 1, "fail": 2}


@dataclass(frozen=True, kw_only=True)
class QualityPolicy:
    """Thresholds as ``(warn, fail)`` pairs: a value above the first warns, above the second
    fails. ``null_rate`` applies to the increase over the reference null rate."""

    null_rate: tuple[float, float] = (0.05, 0.2)
    out_of_range: tuple[float, float] = (0.01, 0.05)
    unseen: tuple[float, float] = (0.01, 0.05)
    min_rows: int = 1

    def __post_init__(self) -> None:
        for name in ("null_rate", "out_of_range", "unseen"):
            warn, fail = getattr(self, name)
            if not 0 <= warn <= fail:
                raise InvalidInput(f"{name}: need 0 <= warn <= fail, got {(warn, fail)}")


@dataclass(frozen=True, kw_only=True)
class QualityFinding:
    """One check of one column (``column`` is ``None`` for the row count)."""

    check: str
    column: str | None
    value: float
    reference: float | None
    threshold: float | None
    status: Status
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "column": self.column,
            "value": self.value,
            "reference": self.reference,
            "threshold": self.threshold,
            "status": self.status,
            "message": self.message,
        }


@dataclass(frozen=True, kw_only=True)
class QualityReport:
    """All findings of one window; ``status`` is the worst of them."""

    rows: int
    findings: tuple[QualityFinding, ...]

    @property
    def status(self) -> Status:
        worst: Status = "ok"
        for finding in self.findings:
            if _RANK[finding.status] > _RANK[worst]:
                worst = finding.status
        return worst

    def problems(self) -> list[QualityFinding]:
        """The findings that warn or fail."""
        return [f for f in self.findings if f.status != "ok"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "status": self.status,
            "findings": [f.to_dict() for f in self.findings],
        }


_DEFAULT = QualityPolicy()


def check_quality(
    frame: Any,
    signature: Signature,
    profile: DatasetProfile | None = None,
    *,
    policy: QualityPolicy = _DEFAULT,
    counts: Mapping[str, BinnedColumn] | None = None,
) -> QualityReport:
    """Check a window (DataFrame, mapping of columns or pyarrow Table) against the signature
    and profile.

    ``counts`` is the same window counted on ``profile``'s bins (``count_window``), when the
    drift check already did it: categorical columns are then judged from those counts instead
    of being counted again, wherever they answer the checks (the findings are the same).

    >>> from watchkeeper.models.signature import ColumnSpec, Signature
    >>> sig = Signature((ColumnSpec(name="age", dtype="int", min=0, max=120),))
    >>> report = check_quality({"age": [30.0, None, 300.0, 40.0], "x": [1, 2, 3, 4]}, sig)
    >>> report.status, [(f.check, f.status) for f in report.problems()]
    ('fail', [('extra_column', 'warn'), ('null_rate', 'fail'), ('out_of_range', 'fail')])
    """
    columns = frame_columns(frame)
    rows = _rows(columns)
    findings = [_row_count(rows, policy)]
    for name in sorted(set(columns) - set(signature.names)):
        findings.append(
            _finding("extra_column", name, 1, None, None, "warn", "not in the signature")
        )
    for spec in signature.columns:
        if spec.name not in columns:
            findings.append(_finding("missing_column", spec.name, 1, None, None, "fail", "missing"))
            continue
        reference = profile.features.get(spec.name) if profile else None
        counted = counts.get(spec.name) if counts is not None else None
        findings.extend(_column(spec, columns[spec.name], rows, reference, policy, counted))
    return QualityReport(rows=rows, findings=tuple(findings))


def _column(
    spec: ColumnSpec, values: Any, rows: int, reference: Any, policy: QualityPolicy,
    counted: BinnedColumn | None = None,
) -> list[QualityFinding]:  # fmt: skip
    if spec.is_numeric:
        try:
            numbers = float_values(values)
        except InvalidInput as exc:
            return [_finding("type", spec.name, 1, None, None, "fail", f"expected numbers: {exc}")]
        present = numbers[~np.isnan(numbers)]
        found = [_nulls(spec, rows - present.size, rows, reference, policy)]
        found += _numeric(spec, present, reference, policy)
        return found
    tally = _tally_counted(spec, reference, counted) or _tally(spec, values, reference)
    nulls = _nulls(spec, tally.nulls, rows, reference, policy)
    return [nulls, *_labels(spec, tally, reference, policy)]


@dataclass(frozen=True)
class _Tally:
    """What the label checks need of a column: null and non-null values, those outside the
    known categories (``None`` when no category set is known), and whether one label only."""

    nulls: int
    total: int
    unseen: int | None
    single: bool


def _tally(spec: ColumnSpec, values: Any, reference: Any) -> _Tally:
    labels, nulls = count_labels(values)
    known = _known(spec, reference)
    labels = boolean_labels(labels, known or ())  # 0/1 numbers against booleans' categories
    unseen = None if known is None else sum(n for k, n in labels.items() if k not in known)
    return _Tally(nulls, sum(labels.values()), unseen, len(labels) == 1)


def _tally_counted(spec: ColumnSpec, reference: Any, counted: BinnedColumn | None) -> _Tally | None:
    """The tally from drift counts (reference categories + one unseen bin), or None where they
    cannot tell: other known categories than the profile's, or only unseen labels (one or
    several?)."""
    if counted is None or not isinstance(reference, CategoricalProfile):
        return None
    categories = list(reference.frequencies)
    if counted.counts.shape != (len(categories) + 1,):
        return None
    known = _known(spec, reference)
    if known is not None and known != set(categories):
        return None
    *seen, unseen = counted.counts.tolist()
    present = sum(1 for n in seen if n)
    if unseen and not present:
        return None
    single = present == 1 and not unseen
    return _Tally(counted.nulls, counted.total, None if known is None else unseen, single)


def _nulls(
    spec: ColumnSpec, nulls: int, rows: int, reference: Any, policy: QualityPolicy
) -> QualityFinding:
    rate = nulls / rows if rows else 0.0
    if rows and nulls == rows:
        return _finding("all_null", spec.name, 1.0, None, None, "fail", "every value is null")
    base = reference.null_rate if reference is not None else 0.0
    status = _grade(rate - base, policy.null_rate)
    message = f"null rate {rate:.4f} vs {base:.4f} in the reference"
    return _finding("null_rate", spec.name, rate, base, policy.null_rate[0], status, message)


def _numeric(
    spec: ColumnSpec, present: Any, reference: Any, policy: QualityPolicy
) -> list[QualityFinding]:
    found: list[QualityFinding] = []
    if present.size and (spec.min is not None or spec.max is not None):
        low = -np.inf if spec.min is None else spec.min
        high = np.inf if spec.max is None else spec.max
        rate = float(np.count_nonzero((present < low) | (present > high)) / present.size)
        status = _grade(rate, policy.out_of_range)
        message = f"{rate:.4f} of values outside [{low}, {high}]"
        found.append(
            _finding("out_of_range", spec.name, rate, 0.0, policy.out_of_range[0], status, message)
        )
    varied = not isinstance(reference, NumericProfile) or reference.std > 0
    if present.size > 1 and varied and present.min() == present.max():
        found.append(_finding("constant", spec.name, 1, 0, None, "warn", "the column is constant"))
    return found


def _labels(
    spec: ColumnSpec, tally: _Tally, reference: Any, policy: QualityPolicy
) -> list[QualityFinding]:
    found: list[QualityFinding] = []
    total = tally.total
    if tally.unseen is not None and total:
        rate = tally.unseen / total
        status = _grade(rate, policy.unseen)
        found.append(
            _finding(
                "unseen_category",
                spec.name,
                rate,
                0.0,
                policy.unseen[0],
                status,
                f"{rate:.4f} of values are categories never seen",
            )
        )
    varied = not isinstance(reference, CategoricalProfile) or reference.distinct > 1
    if total > 1 and varied and tally.single:
        found.append(_finding("constant", spec.name, 1, 0, None, "warn", "the column is constant"))
    return found


def _known(spec: ColumnSpec, reference: Any) -> set[str] | None:
    if spec.categories is not None:
        return set(spec.categories)
    if isinstance(reference, CategoricalProfile) and reference.other_count == 0:
        return set(reference.frequencies)
    return None


def _row_count(rows: int, policy: QualityPolicy) -> QualityFinding:
    status: Status = "fail" if rows < policy.min_rows else "ok"
    return _finding("row_count", None, rows, None, policy.min_rows, status, f"{rows} rows")


def _rows(columns: Mapping[str, Any]) -> int:
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise InvalidInput(f"columns differ in length: {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def _grade(value: float, limits: tuple[float, float]) -> Status:
    if value > limits[1]:
        return "fail"
    return "warn" if value > limits[0] else "ok"


def _finding(
    check: str,
    column: str | None,
    value: float,
    reference: float | None,
    threshold: float | None,
    status: Status,
    message: str,
) -> QualityFinding:
    return QualityFinding(
        check=check,
        column=column,
        value=float(value),
        reference=reference,
        threshold=threshold,
        status=status,
        message=message,
    )
