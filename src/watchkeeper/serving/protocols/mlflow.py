"""MLflow's scoring protocol: ``POST /invocations``, as ``mlflow models serve`` answers it.

``application/json`` bodies hold exactly one of::

    {"dataframe_split": {"columns": [...], "data": [[...], ...], "index": [...]}}
    {"dataframe_records": [{"col": value, ...}, ...]}
    {"instances": [...]}                 rows, row objects or (one input) scalars
    {"inputs": [...]} or {"inputs": {"col": [values...]}}

plus an optional ``"params"`` object, which is accepted and ignored. ``text/csv`` bodies have a
header row naming the columns; each column's cells become numbers when all of them read as
integers (or all as numbers), booleans when all read ``true``/``false``, else stay text; an empty
cell is ``null``. This mirrors how pandas would have typed the training data. The answer is
``{"predictions": [...]}``.
"""

from __future__ import annotations

import codecs
import csv
import io
from typing import Any

from watchkeeper.errors import Detail, MalformedRequest, UnsupportedMediaType
from watchkeeper.serving.batch import ParsedBatch
from watchkeeper.serving.protocols._bounds import check_csv, check_json
from watchkeeper.serving.protocols._json import dumps, loads
from watchkeeper.serving.protocols.kserve_v1 import columns_of, from_instances

INPUT_FIELDS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_FIELDS_HELP = (
    "the request must be a JSON object with exactly one of the fields "
    + ", ".join(INPUT_FIELDS)
    + ' (and optionally "params")'
)
_UTF8 = ("utf-8", "utf8")
# quotes, commas and newlines are the same bytes in these: counted before decoding
_ASCII_BASED = (*_UTF8, "ascii", "us-ascii", "latin-1", "latin1", "iso-8859-1")


def parse(
    body: bytes, content_type: str, names: list[str] | None, *, max_rows: int = 10_000
) -> ParsedBatch:
    """The rows of an ``/invocations`` request (JSON or CSV, by its content type). A body
    holding more values (or CSV lines) than ``max_rows`` rows could is refused before it is
    parsed."""
    media, charset = _media_type(content_type)
    width = len(names) if names else None
    if media == "application/json":
        text = body if charset in _UTF8 else _decode(body, charset)
        check_json(text, max_rows, width)
        return _parse_json(text, names)
    if media == "text/csv":
        check_csv(body if charset in _ASCII_BASED else _decode(body, charset), max_rows, width)
        return _parse_csv(_decode(body, charset))
    raise UnsupportedMediaType(
        f"content type {content_type!r} is not supported; send application/json or text/csv",
        details=[Detail("content-type", "unsupported")],
    )


def render(predictions: Any, probabilities: Any = None) -> bytes:
    """``{"predictions": [...]}``; ``probabilities`` are added only when given."""
    out: dict[str, Any] = {"predictions": predictions}
    if probabilities is not None:
        out["probabilities"] = probabilities
    return dumps(out)


def _media_type(content_type: str) -> tuple[str, str]:
    media, _, rest = content_type.partition(";")
    charset = "utf-8"
    for param in rest.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    return media.strip().lower(), charset


def _decode(body: bytes, charset: str) -> str:
    try:
        codecs.lookup(charset)
    except LookupError as exc:
        raise UnsupportedMediaType(f"unknown charset {charset!r}") from exc
    try:
        return body.decode(charset)
    except UnicodeDecodeError as exc:
        raise MalformedRequest(f"request body is not valid {charset}: {exc}") from exc


def _parse_json(body: bytes | str, names: list[str] | None) -> ParsedBatch:
    obj = loads(body)
    if not isinstance(obj, dict):
        raise MalformedRequest(f"{_FIELDS_HELP}; got a JSON {type(obj).__name__}")
    fields = [key for key in obj if key != "params"]
    if len(fields) != 1 or fields[0] not in INPUT_FIELDS:
        raise MalformedRequest(
            f"{_FIELDS_HELP}; got {fields or 'none'}",
            details=[Detail(key, "unexpected_field") for key in fields if key not in INPUT_FIELDS],
        )
    key = fields[0]
    payload = obj[key]
    if key == "dataframe_split":
        return _split(payload, names)
    if key == "dataframe_records":
        return _records(payload)
    if key == "inputs" and isinstance(payload, dict):
        return ParsedBatch(columns=columns_of(payload, key))
    if isinstance(payload, list):
        return from_instances(payload, names, field=key)
    raise MalformedRequest(f'"{key}" must be a list' + (" or an object" if key == "inputs" else ""))


def _split(payload: Any, names: list[str] | None) -> ParsedBatch:
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise MalformedRequest(
            '"dataframe_split" must be an object with "data" (a list of rows) and "columns"',
            details=[Detail("dataframe_split.data", "expected_rows")],
        )
    data: list[Any] = payload["data"]
    columns = payload.get("columns")
    if columns is None or columns == names:
        return ParsedBatch(rows=data)  # positional: the validator checks each row
    if not isinstance(columns, list) or not all(type(c) is str for c in columns):
        raise MalformedRequest('"dataframe_split.columns" must be a list of column names')
    if len(set(columns)) != len(columns):
        raise MalformedRequest('"dataframe_split.columns" names a column twice')
    return ParsedBatch(records=_zip_rows(columns, data, "dataframe_split.data"))


def _zip_rows(header: list[str], data: list[Any], field: str) -> list[dict[str, Any]]:
    records = []
    for row, values in enumerate(data):
        if type(values) is not list or len(values) != len(header):
            raise MalformedRequest(
                f"row {row} of {field} does not have one value per column ({len(header)})",
                details=[Detail(field, "wrong_length", row)],
            )
        records.append(dict(zip(header, values, strict=True)))
    return records


def _records(payload: Any) -> ParsedBatch:
    if not isinstance(payload, list):
        raise MalformedRequest('"dataframe_records" must be a list of row objects')
    for row, record in enumerate(payload):
        if type(record) is not dict:
            raise MalformedRequest(
                f'row {row} of "dataframe_records" is not an object',
                details=[Detail("dataframe_records", "not_an_object", row)],
            )
    return ParsedBatch(records=payload)


def _parse_csv(text: str) -> ParsedBatch:
    try:
        lines = [line for line in csv.reader(io.StringIO(text, newline="")) if line]
    except csv.Error as exc:
        raise MalformedRequest(f"request body is not valid CSV: {exc}") from exc
    if not lines:
        raise MalformedRequest("the CSV body is empty; it needs a header row naming the columns")
    header, rows = lines[0], lines[1:]
    if len(set(header)) != len(header):
        raise MalformedRequest("the CSV header names a column twice")
    for row, cells in enumerate(rows):
        if len(cells) != len(header):
            raise MalformedRequest(
                f"CSV row {row} has {len(cells)} cells; the header has {len(header)}",
                details=[Detail("*", "wrong_length", row)],
            )
    columns = zip(*rows, strict=True) if rows else ([] for _ in header)
    return ParsedBatch(
        columns={name: _typed(list(cells)) for name, cells in zip(header, columns, strict=True)}
    )


def _typed(cells: list[str]) -> list[Any]:
    """One CSV column: integers, else numbers, else booleans, else text; empty cells null."""
    for read in (int, float):
        try:
            return [read(cell) if cell else None for cell in cells]
        except ValueError:
            continue
    present = {cell.lower() for cell in cells if cell}
    if present and present <= {"true", "false"}:
        return [cell.lower() == "true" if cell else None for cell in cells]
    return [cell if cell else None for cell in cells]
