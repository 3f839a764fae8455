"""KServe v1 (TensorFlow Serving style): ``POST /v1/models/{name}:predict``.

Request::

    {"instances": [{"age": 31, "plan": "pro"}, ...]}     row objects
    {"instances": [[31, "pro"], ...]}                    rows in signature order
    {"instances": [0.5, 0.7]}                            scalars, for a model with one input
    {"inputs": {"age": [31, 45], "plan": ["pro", "basic"]}}   columns

with an optional ``"return_probabilities": true``. Answer::

    {"predictions": [...], "probabilities": [[...]], "model": ..., "model_version": "3",
     "request_id": ...}

(``probabilities`` only when asked for and the model has them).
"""

from __future__ import annotations

from typing import Any

from watchkeeper.errors import Detail, MalformedRequest
from watchkeeper.serving.batch import ParsedBatch
from watchkeeper.serving.protocols._bounds import check_json
from watchkeeper.serving.protocols._json import dumps, loads

_SHAPE_HELP = (
    'a KServe v1 request is a JSON object with either "instances" (a list of row objects, '
    'rows or scalars) or "inputs" (an object of columns, or a list like "instances")'
)


def parse(body: bytes, names: list[str] | None, *, max_rows: int = 10_000) -> ParsedBatch:
    """The rows of a KServe v1 request; ``names`` are the model's input names, when known.
    A body holding more values than ``max_rows`` rows could is refused before it is parsed."""
    check_json(body, max_rows, len(names) if names else None)
    obj = loads(body)
    if not isinstance(obj, dict):
        raise MalformedRequest(_SHAPE_HELP)
    keys = [key for key in ("instances", "inputs") if key in obj]
    if len(keys) != 1:
        raise MalformedRequest(f"{_SHAPE_HELP}; got the fields {sorted(obj)}")
    flag = obj.get("return_probabilities", False)
    if not isinstance(flag, bool):
        raise MalformedRequest(
            '"return_probabilities" must be true or false',
            details=[Detail("return_probabilities", "expected_bool")],
        )
    payload = obj[keys[0]]
    if keys[0] == "inputs" and isinstance(payload, dict):
        return ParsedBatch(columns=columns_of(payload, "inputs"), return_probabilities=flag)
    if isinstance(payload, list):
        return from_instances(payload, names, field=keys[0], return_probabilities=flag)
    raise MalformedRequest(f'"{keys[0]}" must be a list; {_SHAPE_HELP}')


def columns_of(payload: dict[str, Any], field: str) -> dict[str, list[Any]]:
    """A JSON object of columns, each of which must be a list."""
    bad = [Detail(str(name), "not_an_array") for name, v in payload.items() if type(v) is not list]
    if bad:
        raise MalformedRequest(
            f'every column in "{field}" must be a list of values; {bad[0].field!r} is not',
            details=bad,
        )
    return payload


def from_instances(
    instances: list[Any],
    names: list[str] | None,
    *,
    field: str = "instances",
    return_probabilities: bool = False,
) -> ParsedBatch:
    """A list of row objects, of rows, or (for a one-input model) of scalars."""
    kinds = set(map(type, instances))
    if kinds <= {dict}:
        return ParsedBatch(records=instances, return_probabilities=return_probabilities)
    if kinds <= {list}:
        return ParsedBatch(rows=instances, return_probabilities=return_probabilities)
    if not kinds & {dict, list}:
        if names is not None and len(names) == 1:
            rows = [[value] for value in instances]
            return ParsedBatch(rows=rows, return_probabilities=return_probabilities)
        raise MalformedRequest(
            f'"{field}" holds single values, which only a model with exactly one input takes; '
            "send one object or one list per row",
            details=[Detail(field, "expected_rows")],
        )
    first = type(instances[0])
    row = next(i for i, item in enumerate(instances) if type(item) is not first)
    raise MalformedRequest(
        f'"{field}" mixes row objects, lists and single values; row {row} differs from row 0',
        details=[Detail(field, "mixed_rows", row)],
    )


def render(
    *,
    model: str,
    version: int | str,
    request_id: str | None,
    predictions: Any,
    probabilities: Any = None,
) -> bytes:
    """The KServe v1 answer; ``probabilities`` appear only when given."""
    out: dict[str, Any] = {"predictions": predictions}
    if probabilities is not None:
        out["probabilities"] = probabilities
    out["model"] = model
    out["model_version"] = str(version)
    out["request_id"] = request_id
    return dumps(out)
