"""Cheap bounds on what a body holds, checked before it is parsed.

Parsing allocates one Python object per JSON value, and orjson holds the GIL while it does (a
10 MB body of 2.6 M one-value rows took a second, during which no other request moved). A body
whose values cannot fit the row limit is refused from a count of its separators instead: one
``bytes.count`` (a few ms for 10 MB) and, only when that count is over the limit, a vectorised
pass that leaves out separators inside strings (so a legitimate request with commas in its text
values is never refused), chunk by chunk, stopping as soon as the count passes the limit (a
bomb is found in its first chunks).

A request of ``n`` rows of ``k`` columns has about ``n * k`` values whatever its layout (rows,
row objects, columns, one tensor per column); :func:`max_values` allows ``n`` up to the row limit
plus room for the protocol's own fields.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from watchkeeper.errors import Detail, PayloadTooLarge

UNSIGNED_WIDTH = 64  # columns assumed for a model registered without a signature
_QUOTE = ord('"')
_CHUNK = 256 * 1024


def max_values(max_rows: int, width: int | None) -> int:
    """Values a request of at most ``max_rows`` rows of ``width`` columns can hold (an index
    column, tensor fields and other protocol keys included)."""
    k = width or UNSIGNED_WIDTH
    return max_rows * (k + 2) + 16 * k + 1000


def check_json(body: bytes | str, max_rows: int, width: int | None) -> None:
    """Refuse (413) a JSON body holding more values than ``max_rows`` rows could."""
    limit = max_values(max_rows, width)
    if not _raw_over(body, ",", limit - 1):
        return
    if _outside_strings(_utf8(body), b",", json=True, above=limit - 1):
        raise PayloadTooLarge(
            f"the request holds more than {limit} values, more than {max_rows} rows of "
            f"{width or UNSIGNED_WIDTH} columns can; at most {max_rows} rows are accepted at once",
            details=[Detail("*", "too_many_values")],
        )


def check_csv(text: bytes | str, max_rows: int, width: int | None) -> None:
    """Refuse (413) a CSV body with more lines than a header and ``max_rows`` rows, or more
    cells than they could hold (newlines and commas inside quoted cells do not count)."""
    lines_limit = max_rows + 2  # the header, and a last line without a newline
    cells_limit = max_values(max_rows, width)
    if not _raw_over(text, "\n", lines_limit - 1) and not _raw_over(text, ",", cells_limit - 1):
        return
    data = _utf8(text)
    if _outside_strings(data, b"\n", json=False, above=lines_limit - 1):
        raise PayloadTooLarge(
            f"the CSV body holds more than {lines_limit} lines; at most {max_rows} rows (and a "
            "header) are accepted at once",
            details=[Detail("*", "too_many_rows")],
        )
    if _outside_strings(data, b",\n", json=False, above=cells_limit - 1):
        raise PayloadTooLarge(
            f"the CSV body holds more than {cells_limit} cells, more than {max_rows} rows of "
            f"{width or UNSIGNED_WIDTH} columns can; at most {max_rows} rows are accepted at once",
            details=[Detail("*", "too_many_values")],
        )


def _raw_over(body: bytes | str, char: str, above: int) -> bool:
    """Whether ``char`` occurs more than ``above`` times, strings included; counted by chunks so
    that a bomb is found in its first megabytes."""
    sub: Any = char if isinstance(body, str) else char.encode()
    count = 0
    for start in range(0, len(body), 4 * _CHUNK):
        count += body.count(sub, start, start + 4 * _CHUNK)
        if count > above:
            return True
    return False


def _utf8(body: bytes | str) -> bytes:
    return body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body


def _outside_strings(data: bytes, chars: bytes, *, json: bool, above: int) -> bool:
    """Whether ``chars`` occur more than ``above`` times outside double-quoted strings.

    JSON escapes a quote as ``\\"`` (and a backslash as ``\\\\``): both are removed first, pairing
    backslashes from the left as a JSON reader does, so every quote left opens or closes a
    string. CSV doubles a quote inside a quoted cell, which keeps the count of quotes even. An
    odd running count of quotes then marks the inside of a string (``uint8`` wraps, keeping the
    parity, so the pass needs one byte per byte of chunk). Chunks carry the parity over.
    """
    if json and b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    arr = np.frombuffer(data, dtype=np.uint8)
    count, parity = 0, 0
    for start in range(0, len(arr), _CHUNK):
        chunk = arr[start : start + _CHUNK]
        quotes = np.cumsum(chunk == _QUOTE, dtype=np.uint8)
        outside = (quotes & 1) == parity
        wanted = chunk == chars[0]
        for char in chars[1:]:
            wanted |= chunk == char
        count += int(np.count_nonzero(wanted & outside))
        if count > above:
            return True
        parity ^= int(quotes[-1]) & 1
    return False
