"""Version search filters: ``metrics.auc >= 0.8``, ``tags.team = risk``, ``stage = production``.

Each filter becomes an SQL condition (metrics and tags through ``EXISTS`` sub-queries), so the
database does the filtering however many versions there are.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVarTuple

from sqlalchemy import Select, exists, select
from sqlalchemy.sql.elements import ColumnElement

from watchkeeper.errors import Detail, InvalidInput
from watchkeeper.registry.schema import MetricRow, VersionRow, VersionTagRow

_PATTERN = re.compile(
    r"\s*(?:(?P<scope>metrics|tags)\.(?P<key>[\w.\-]+)|(?P<field>stage|flavor|run_id))"
    r"\s*(?P<op>>=|<=|!=|==|=|>|<)\s*(?P<value>.+?)\s*"
)  # always fullmatch: "$" would let a newline through
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_Ts = TypeVarTuple("_Ts")


@dataclass(frozen=True)
class Filter:
    """One condition on a version.

    >>> Filter.parse("metrics.auc >= 0.8")
    Filter(scope='metrics', key='auc', op='>=', value='0.8')
    """

    scope: str
    key: str
    op: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Filter:
        match = _PATTERN.fullmatch(text)
        if match is None:
            raise InvalidInput(
                f"cannot read filter '{text}'",
                details=[
                    Detail(
                        "filter",
                        "expected metrics.NAME OP NUMBER, tags.NAME = VALUE, "
                        "stage = STAGE, flavor = NAME or run_id = ID",
                    )
                ],
            )
        scope = match["scope"] or "field"
        key = match["key"] or match["field"]
        value = match["value"].strip("'\"")
        if scope == "metrics":
            try:
                float(value)
            except ValueError as exc:
                raise InvalidInput(f"filter '{text}': '{value}' is not a number") from exc
        elif match["op"] not in ("=", "==", "!="):
            raise InvalidInput(f"filter '{text}': only =, == and != apply to {key}")
        return cls(scope, key, match["op"], value)

    def condition(self) -> ColumnElement[bool]:
        compare = _OPS[self.op]
        if self.scope == "metrics":
            return exists(
                select(MetricRow.version_id).where(
                    MetricRow.version_id == VersionRow.id,
                    MetricRow.key == self.key,
                    compare(MetricRow.value, float(self.value)),
                )
            )
        if self.scope == "tags":
            return exists(
                select(VersionTagRow.version_id).where(
                    VersionTagRow.version_id == VersionRow.id,
                    VersionTagRow.key == self.key,
                    compare(VersionTagRow.value, self.value),
                )
            )
        column = {
            "stage": VersionRow.stage,
            "flavor": VersionRow.flavor,
            "run_id": VersionRow.run_id,
        }[self.key]
        result: ColumnElement[bool] = compare(column, self.value)
        return result


def apply_filters(query: Select[*_Ts], filters: Sequence[Filter]) -> Select[*_Ts]:
    for item in filters:
        query = query.where(item.condition())
    return query
