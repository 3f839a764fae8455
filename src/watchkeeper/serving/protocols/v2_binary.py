"""The binary tensor data extension of the Open Inference Protocol, as tritonclient sends it.

A request with binary tensors carries an ``Inference-Header-Content-Length: N`` header: its first
``N`` bytes are the JSON inference request, and the rest holds, one after the other in the order
of the inputs, the data of every input whose ``parameters`` give a ``binary_data_size`` (and no
``data``). Tensor data is little-endian and row-major, without padding; BOOL is one byte per
element (0 or 1); BYTES is, per element, a 4-byte little-endian length and then that many bytes
(UTF-8 text here). Outputs come back the same way when asked for (``binary_data`` in a requested
output, or ``binary_data_output`` in the request's parameters).

Every size is checked before anything is laid out from it: a tensor's bytes against its shape
and datatype, against what is left of the body, and the count of values against what the row
limit allows (413, as for JSON); bytes left over after the last tensor are refused.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from watchkeeper.errors import Detail, MalformedRequest, PayloadTooLarge

HEADER = "Inference-Header-Content-Length"
_DTYPES = {
    "BOOL": np.dtype("u1"),
    **{f"INT{b}": np.dtype(f"<i{b // 8}") for b in (8, 16, 32, 64)},
    **{f"UINT{b}": np.dtype(f"<u{b // 8}") for b in (8, 16, 32, 64)},
    **{f"FP{b}": np.dtype(f"<f{b // 8}") for b in (16, 32, 64)},
}
_LENGTH = struct.Struct("<I")


def split(body: bytes, header_length: str | None) -> tuple[bytes, memoryview | None]:
    """The JSON part of ``body`` and its binary part (None when the request has no header)."""
    if header_length is None:
        return body, None
    text = header_length.strip()
    if not text.isdigit() or int(text) > len(body):
        raise MalformedRequest(
            f"the {HEADER} header must be the byte length of the JSON part of the body, at most "
            f"{len(body)}; got {clip_value(header_length)}",
            details=[Detail(HEADER, "bad_header")],
        )
    length = int(text)
    return body[:length], memoryview(body)[length:]


def clip_value(text: str) -> str:
    return repr(text if len(text) <= 40 else f"{text[:40]}…")


class Blob:
    """The binary part of a request, handed out tensor by tensor in the order of the inputs."""

    def __init__(self, data: memoryview | None, *, max_values: int) -> None:
        self.data = data
        self.offset = 0
        self.values_left = max_values

    def take(self, name: str, shape: list[int], datatype: str, size: Any) -> list[Any]:
        """The values of input ``name``, whose ``binary_data_size`` is ``size``."""
        data = self.data
        if data is None:
            raise MalformedRequest(
                f"input {name!r} has a binary_data_size but the request has no {HEADER} header "
                "saying where its JSON part ends",
                details=[Detail(HEADER, "missing")],
            )
        left = len(data) - self.offset
        if type(size) is not int or not 0 <= size <= left:
            raise MalformedRequest(
                f"input {name!r}: binary_data_size must be a byte count of at most the {left} "
                f"bytes left in the body; got {clip_value(str(size))}",
                details=[Detail(f"{name}.binary_data_size", "bad_size")],
            )
        count = math.prod(shape)
        self._spend(name, count)
        chunk = data[self.offset : self.offset + size]
        self.offset += size
        if datatype == "BYTES":
            return _strings(name, shape, chunk, count)
        expected = count * _DTYPES[datatype].itemsize
        if size != expected:
            raise MalformedRequest(
                f"input {name!r}: shape {shape} of {datatype} takes {expected} bytes but its "
                f"binary_data_size is {size}",
                details=[Detail(f"{name}.binary_data_size", "size_mismatch")],
            )
        values = np.frombuffer(chunk, dtype=_DTYPES[datatype])
        out: list[Any] = (values != 0).tolist() if datatype == "BOOL" else values.tolist()
        return out

    def finish(self) -> None:
        """Refuse bytes no input claimed (the sizes and the header do not agree)."""
        if self.data is not None and self.offset != len(self.data):
            extra = len(self.data) - self.offset
            raise MalformedRequest(
                f"the body holds {extra} bytes after the binary data of the inputs; the "
                f"{HEADER} header and the inputs' binary_data_size do not add up",
                details=[Detail(HEADER, "size_mismatch")],
            )

    def _spend(self, name: str, count: int) -> None:
        self.values_left -= count
        if self.values_left < 0:
            raise PayloadTooLarge(
                f"input {name!r}: the binary tensors hold more values than the row limit allows "
                "in one request",
                details=[Detail(name, "too_many_values")],
            )


def _strings(name: str, shape: list[int], chunk: memoryview, count: int) -> list[Any]:
    """BYTES elements, each a 4-byte little-endian length and then that many bytes of UTF-8."""
    size = len(chunk)
    if count * _LENGTH.size > size:
        raise _bytes_mismatch(name, shape, count, size)
    out: list[Any] = []
    pos = 0
    for index in range(count):
        if pos + _LENGTH.size > size:
            raise _bytes_mismatch(name, shape, count, size)
        (length,) = _LENGTH.unpack_from(chunk, pos)
        pos += _LENGTH.size
        if pos + length > size:
            raise _bytes_mismatch(name, shape, count, size)
        try:
            out.append(str(chunk[pos : pos + length], "utf-8"))
        except UnicodeDecodeError as exc:
            raise MalformedRequest(
                f"input {name!r}: element {index} is not UTF-8 text",
                details=[Detail(name, "not_utf8", index)],
            ) from exc
        pos += length
    if pos != size:
        raise _bytes_mismatch(name, shape, count, size)
    return out


def _bytes_mismatch(name: str, shape: list[int], count: int, size: int) -> MalformedRequest:
    return MalformedRequest(
        f"input {name!r}: its binary_data_size of {size} bytes does not hold exactly the {count} "
        f"length-prefixed BYTES elements of shape {shape}",
        details=[Detail(f"{name}.binary_data_size", "size_mismatch")],
    )


def encode(data: Any, datatype: str) -> bytes:
    """One output's values as binary tensor data: ``data`` is an array, or for BYTES a list."""
    if datatype != "BYTES":
        return np.ascontiguousarray(data, dtype=_DTYPES[datatype]).tobytes()
    parts: list[bytes] = []
    for value in data:
        raw = value if isinstance(value, bytes) else b"" if value is None else str(value).encode()
        parts += (_LENGTH.pack(len(raw)), raw)
    return b"".join(parts)
