"""``POST /v1/feedback``: ground truth and business outcomes that arrive after the prediction.

The body is one feedback object, a list of them, or ``{"feedback": [...]}``; each object is
``{"request_id", "row": 0, "label": ..., "outcome": {name: number}, "timestamp": ISO-8601}``.
Every problem is reported with its item index and field; nothing is stored unless all are valid.

Bounds: the body (``Limits.max_body_bytes``, refused by its Content-Length before it is read),
the items per request (``MAX_ITEMS``, also counted before parsing), outcome names (the pattern
``OUTCOME_NAME``: they become Parquet columns) and the number of distinct outcome names (the
logbook's ``max_outcome_names``). Bodies over ``Limits.offload_bytes`` are parsed in a thread.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request

from watchkeeper.errors import Detail, InvalidInput, SchemaError
from watchkeeper.logbook import OUTCOME_NAME, OUTCOME_NAME_RULE, FeedbackItem
from watchkeeper.logbook.entries import label_problem
from watchkeeper.serving.predict import Limits, read_request
from watchkeeper.serving.protocols import _bounds, _json

MAX_ITEMS = 100_000
_FIELDS_PER_ITEM = 8  # values of one item, beyond its outcomes, for the count before parsing


async def read(
    request: Request, limits: Limits, *, max_outcome_names: int | None = None
) -> list[FeedbackItem]:
    """The items of a feedback request, read within ``limits``."""
    body = await read_request(request, limits.max_body_bytes)
    if len(body) > limits.offload_bytes:
        return await asyncio.to_thread(parse, body, max_outcome_names=max_outcome_names)
    return parse(body, max_outcome_names=max_outcome_names)


def parse(body: bytes, *, max_outcome_names: int | None = None) -> list[FeedbackItem]:
    """The items of a feedback body; more than ``max_outcome_names`` distinct outcome names in
    it are refused before any item is checked (the logbook checks the names it already has)."""
    _bounds.check_json(body, MAX_ITEMS, _FIELDS_PER_ITEM)
    payload = _json.loads(body)
    if isinstance(payload, dict) and "feedback" in payload:
        payload = payload["feedback"]
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise SchemaError("no feedback in the request", details=[Detail("*", "empty")])
    if len(items) > MAX_ITEMS:
        raise InvalidInput(f"at most {MAX_ITEMS} feedback items per request, got {len(items)}")
    if max_outcome_names is not None:
        _count_names(items, max_outcome_names)
    problems: list[Detail] = []
    out = [_item(obj, i, problems) for i, obj in enumerate(items)]
    if problems:
        raise SchemaError(
            f"{len(problems)} problem(s) in the feedback: " + problems[0].field + ": "
            + problems[0].problem,
            details=problems[:50],
        )  # fmt: skip
    return [item for item in out if item is not None]


def _count_names(items: list[Any], limit: int) -> None:
    names: set[str] = set()
    for obj in items:
        outcome = obj.get("outcome") if isinstance(obj, dict) else None
        if isinstance(outcome, dict):
            names.update(outcome)
            if len(names) > limit:
                raise InvalidInput(
                    f"the feedback brings more than {limit} outcome names; at most {limit} "
                    "distinct outcome names are accepted (serve --max-outcome-names); nothing "
                    "was stored",
                    details=[Detail("outcome", "too_many_outcome_names")],
                )


def _item(obj: Any, index: int, problems: list[Detail]) -> FeedbackItem | None:
    if not isinstance(obj, dict):
        problems.append(Detail("*", "expected an object", row=index))
        return None
    before = len(problems)
    request_id = obj.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        problems.append(Detail("request_id", "required, a non-empty string", row=index))
    row = obj.get("row", 0)
    if not isinstance(row, int) or isinstance(row, bool) or row < 0:
        problems.append(Detail("row", "expected a non-negative integer", row=index))
    outcome = _outcome(obj.get("outcome"), index, problems)
    timestamp = _timestamp(obj.get("timestamp"), index, problems)
    unknown = set(obj) - {"request_id", "row", "label", "outcome", "timestamp"}
    for field in sorted(unknown):
        problems.append(Detail(field, "unknown field", row=index))
    if "label" not in obj and "outcome" not in obj:
        problems.append(Detail("label", "give a label or an outcome", row=index))
    if (wrong := label_problem(obj.get("label"))) is not None:
        problems.append(Detail("label", wrong, row=index))
    if len(problems) > before:
        return None
    return FeedbackItem(request_id=str(request_id), row=row, label=obj.get("label"),
                        outcome=outcome, timestamp=timestamp)  # fmt: skip


def _outcome(value: Any, index: int, problems: list[Detail]) -> dict[str, float] | None:
    if value is None:
        return None
    ok = isinstance(value, dict) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        for v in value.values()
    )
    if not ok:
        problems.append(Detail("outcome", "expected {name: number}", row=index))
        return None
    bad = [name for name in value if not OUTCOME_NAME.match(name)]
    if bad:
        problems.extend(Detail(f"outcome.{name}", OUTCOME_NAME_RULE, row=index) for name in bad[:5])
        return None
    return {str(k): float(v) for k, v in value.items()}


def _timestamp(value: Any, index: int, problems: list[Detail]) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        problems.append(Detail("timestamp", "expected an ISO-8601 time", row=index))
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
