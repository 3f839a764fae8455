"""Just enough of PromQL to check the shipped dashboards and alert rules against ``/metrics``.

``parse(expr)`` tokenizes one expression and returns what it depends on: the metrics it selects
(with the label names of their matchers) and every label list (``by``, ``without``, ``on``,
``ignoring``, ``group_left``, ``group_right``) with the metrics each one applies to. It refuses
unbalanced brackets, unknown functions and stray characters, so a typo fails without a
Prometheus server. It is not an evaluator: values and types are not checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FUNCTIONS = frozenset({
    "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp",
    "clamp_max", "clamp_min", "count_over_time", "delta", "deriv", "exp", "floor",
    "histogram_quantile", "idelta", "increase", "irate", "label_join", "label_replace",
    "last_over_time", "ln", "log2", "log10", "max_over_time", "min_over_time", "predict_linear",
    "quantile_over_time", "rate", "resets", "round", "scalar", "sort", "sort_desc", "sqrt",
    "sum_over_time", "time", "timestamp", "vector",
})  # fmt: skip
AGGREGATIONS = frozenset({
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile",
})  # fmt: skip
GROUPINGS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|==|!=|<=|>=|[-+*/%^<>=])
  | (?P<punct>[(){},])
""", re.VERBOSE)  # fmt: skip
_RANGE = re.compile(r"\[(\d+[smhdwy]|\$\w+)(:(\d+[smhdwy])?)?\]")


@dataclass(frozen=True)
class Selector:
    metric: str
    labels: tuple[str, ...]  # label names in its matchers


@dataclass(frozen=True)
class Grouping:
    clause: str  # by, without, on, ignoring, group_left, group_right
    labels: tuple[str, ...]
    over: tuple[str, ...]  # the metrics it applies to (for by/without: the aggregated ones)


@dataclass(frozen=True)
class Query:
    selectors: tuple[Selector, ...]
    groupings: tuple[Grouping, ...]

    @property
    def metrics(self) -> set[str]:
        return {s.metric for s in self.selectors}

    def output_labels(self, exported: dict[str, set[str]]) -> set[str]:
        """The labels the result may carry: those aggregated by, plus those a ``group_left``
        or ``group_right`` copies; without aggregation, those of the metrics selected."""
        kept = [g for g in self.groupings if g.clause in ("by", "group_left", "group_right")]
        if any(g.clause == "by" for g in kept):
            return {label for g in kept for label in g.labels}
        return {label for m in self.metrics for label in exported.get(m, set())}


def tokenize(expr: str) -> list[tuple[str, str]]:
    tokens, at = [], 0
    while at < len(expr):
        match = _TOKEN.match(expr, at)
        if match is None:
            raise ValueError(f"unexpected {expr[at : at + 10]!r} at {at} in {expr!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind == "range" and not _RANGE.fullmatch(match.group()):
            raise ValueError(f"bad range {match.group()!r} in {expr!r}")
        if kind != "space":
            tokens.append((kind, match.group()))
        at = match.end()
    return tokens


def _pairs(tokens: list[tuple[str, str]], expr: str) -> dict[int, int]:
    """Index of each opening ``(`` or ``{`` -> index of its closing one, and back."""
    stack: list[int] = []
    pairs: dict[int, int] = {}
    for i, (kind, text) in enumerate(tokens):
        if kind == "punct" and text in "({":
            stack.append(i)
        elif kind == "punct" and text in ")}":
            if not stack or tokens[stack[-1]][1] != {")": "(", "}": "{"}[text]:
                raise ValueError(f"unbalanced {text!r} in {expr!r}")
            start = stack.pop()
            pairs[start], pairs[i] = i, start
    if stack:
        raise ValueError(f"unclosed {tokens[stack[-1]][1]!r} in {expr!r}")
    return pairs


def _names(tokens: list[tuple[str, str]], start: int, end: int, expr: str) -> tuple[str, ...]:
    """The label names of a list ``( a, b )`` between ``start`` and ``end``."""
    inner = [text for kind, text in tokens[start + 1 : end] if text != ","]
    if any(not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) for name in inner):
        raise ValueError(f"bad label list {inner} in {expr!r}")
    return tuple(inner)


def _matchers(tokens: list[tuple[str, str]], start: int, end: int, expr: str) -> tuple[str, ...]:
    """The label names of matchers ``{a="x", b=~"y"}`` between ``start`` and ``end``."""
    inner = tokens[start + 1 : end]
    names = []
    for j in range(0, len(inner), 4):
        matcher = inner[j : j + 3]
        kinds = [kind for kind, _ in matcher]
        op = matcher[1][1] if len(matcher) > 1 else ""
        if kinds != ["name", "op", "string"] or op not in ("=", "!=", "=~", "!~"):
            raise ValueError(f"bad matcher {''.join(t for _, t in matcher)} in {expr!r}")
        if j + 3 < len(inner) and inner[j + 3][1] != ",":
            raise ValueError(f"matchers not separated by commas in {expr!r}")
        names.append(matcher[0][1])
    return tuple(names)


def parse(expr: str) -> Query:
    tokens = tokenize(expr)
    pairs = _pairs(tokens, expr)
    selectors: list[tuple[int, Selector]] = []
    lists: list[tuple[int, str, int, int]] = []  # (index, clause, start, end)
    skip: set[int] = set()
    for i, (kind, text) in enumerate(tokens):
        if i in skip or kind != "name":
            continue
        after = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if text in GROUPINGS:
            if after != "(":
                raise ValueError(f"{text} without a label list in {expr!r}")
            end = pairs[i + 1]
            lists.append((i, text, i + 1, end))
            skip.update(range(i + 1, end + 1))
        elif after == "(" and text not in FUNCTIONS | AGGREGATIONS:
            raise ValueError(f"unknown function {text!r} in {expr!r}")
        elif text in FUNCTIONS | AGGREGATIONS | KEYWORDS:
            continue
        else:
            labels: tuple[str, ...] = ()
            if after == "{":
                end = pairs[i + 1]
                labels = _matchers(tokens, i + 1, end, expr)
                skip.update(range(i + 1, end + 1))
            selectors.append((i, Selector(text, labels)))
    return Query(tuple(s for _, s in selectors),
                 tuple(_grouping(tokens, pairs, selectors, g, expr) for g in lists))  # fmt: skip


def _grouping(tokens: list[tuple[str, str]], pairs: dict[int, int],
              selectors: list[tuple[int, Selector]], found: tuple[int, str, int, int],
              expr: str) -> Grouping:  # fmt: skip
    """A label list and the metrics it applies to: for ``by``/``without``, those of the
    aggregation's argument (``sum by (a) (x)`` or ``sum (x) by (a)``); else all of them."""
    index, clause, start, end = found
    labels = _names(tokens, start, end, expr)
    span = (0, len(tokens))
    if clause in ("by", "without"):
        if tokens[index - 1][1] in AGGREGATIONS and tokens[end + 1][1] == "(":
            span = (end + 1, pairs[end + 1])  # sum by (a) (x)
        elif tokens[index - 1][1] == ")" and tokens[pairs[index - 1] - 1][1] in AGGREGATIONS:
            span = (pairs[index - 1], index - 1)  # sum (x) by (a)
        else:
            raise ValueError(f"{clause} outside an aggregation in {expr!r}")
    over = tuple(sorted({s.metric for i, s in selectors if span[0] < i < span[1]}))
    return Grouping(clause, labels, over)
