"""Cheap bounds on what a body holds, checked before it is parsed.

Parsing allocates one Python object per JSON value, and orjson holds the GIL while it does (a
10 MB body of 2.6 M one-value rows took a second, during which no other request moved). A body
whose values cannot fit the row limit is refused from a count of its separators instead: one
``bytes.count`` (a few ms for 10 MB) and, only when that count is over the limit, one vectorised
pass that leaves out separators inside strings, so a legitimate request with commas in its text
values is never refused.

A request of ``n`` rows of ``k`` columns has about ``n * k`` values whatever its layout (rows,
row objects, columns, one tensor per column); :func:`max_values` allows ``n`` up to the row limit
plus room for the protocol's own fields.
"""

from __future__ import annotations

import numpy as np

from watchkeeper.errors import Detail, PayloadTooLarge

UNSIGNED_WIDTH = 64  # columns assumed for a model registered without a signature
_QUOTE = ord('"')


def max_values(max_rows: int, width: int | None) -> int:
    """Values a request of at most ``max_rows`` rows of ``width`` columns can hold (an index
    column, tensor fields and other protocol keys included)."""
    k = width or UNSIGNED_WIDTH
    return max_rows * (k + 2) + 16 * k + 1000


def check_json(body: bytes | str, max_rows: int, width: int | None) -> None:
    """Refuse (413) a JSON body holding more values than ``max_rows`` rows could."""
    limit = max_values(max_rows, width)
    if _count(body, ",") < limit:
        return
    values = _outside_strings(_utf8(body), b",", json=True) + 1
    if values > limit:
        raise PayloadTooLarge(
            f"the request holds {values} values, more than {max_rows} rows of "
            f"{width or UNSIGNED_WIDTH} columns can; at most {max_rows} rows are accepted at once",
            details=[Detail("*", "too_many_values")],
        )


def check_csv(text: bytes | str, max_rows: int, width: int | None) -> None:
    """Refuse (413) a CSV body with more lines than a header and ``max_rows`` rows, or more
    cells than they could hold (newlines and commas inside quoted cells do not count)."""
    lines_limit = max_rows + 2  # the header, and a last line without a newline
    cells_limit = max_values(max_rows, width)
    if _count(text, "\n") < lines_limit and _count(text, ",") < cells_limit:
        return
    data = _utf8(text)
    lines = _outside_strings(data, b"\n", json=False) + 1
    if lines > lines_limit:
        raise PayloadTooLarge(
            f"the CSV body holds {lines} lines; at most {max_rows} rows (and a header) are "
            "accepted at once",
            details=[Detail("*", "too_many_rows")],
        )
    cells = _outside_strings(data, b",", json=False) + lines
    if cells > cells_limit:
        raise PayloadTooLarge(
            f"the CSV body holds {cells} cells, more than {max_rows} rows of "
            f"{width or UNSIGNED_WIDTH} columns can",
            details=[Detail("*", "too_many_values")],
        )


def _count(body: bytes | str, char: str) -> int:
    return body.count(char) if isinstance(body, str) else body.count(char.encode())


def _utf8(body: bytes | str) -> bytes:
    return body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body


def _outside_strings(data: bytes, char: bytes, *, json: bool) -> int:
    """How many times ``char`` occurs outside double-quoted strings.

    JSON escapes a quote as ``\\"`` (and a backslash as ``\\\\``): both are removed first, pairing
    backslashes from the left as a JSON reader does, so every quote left opens or closes a
    string. CSV doubles a quote inside a quoted cell, which keeps the count of quotes even. An
    odd running count of quotes then marks the inside of a string (``uint8`` wraps, keeping the
    parity, so the pass needs one byte per byte of body).
    """
    if json and b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    arr = np.frombuffer(data, dtype=np.uint8)
    inside = np.cumsum(arr == _QUOTE, dtype=np.uint8) & 1
    return int(np.count_nonzero((arr == char[0]) & (inside == 0)))
