"""JSON in and out of every wire protocol, through orjson.

Numeric numpy arrays and scalars are written by orjson itself (``OPT_SERIALIZE_NUMPY``); object
and string arrays, non-contiguous arrays and pandas objects go through :func:`_default`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pandas as pd

from watchkeeper.errors import MalformedRequest, WatchkeeperError

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def loads(body: bytes | bytearray | memoryview | str) -> Any:
    """The decoded body, or a MalformedRequest (400) saying where it stops being JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest(f"request body is not valid JSON: {exc}") from exc


def dumps(obj: Any) -> bytes:
    """``obj`` as JSON bytes; NaN and infinities are written as ``null``."""
    return orjson.dumps(obj, default=_default, option=_OPTIONS)


def error_body(exc: WatchkeeperError) -> bytes:
    """``{"error": {"code", "message", "details": [{"field", "problem", "row"?}]}}``."""
    return dumps(exc.to_dict())


def _default(obj: Any) -> Any:
    if obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, pd.DataFrame):
        return obj.to_dict(orient="records")
    if isinstance(obj, (pd.Series, pd.Index, pd.api.extensions.ExtensionArray)):
        return obj.tolist()
    raise TypeError(f"cannot write a {type(obj).__name__} as JSON")
