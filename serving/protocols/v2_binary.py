"""The Open Inference Protocol's binary tensor data extension (Triton's ``binary_data``).

A request or reply body is a JSON header followed by raw tensor bytes; the header's
length is in ``Inference-Header-Content-Length``. Each tensor sent in binary names its
byte count in ``parameters.binary_data_size`` and carries no ``data``; the chunks follow
the header in the order of the tensors. Numbers are little-endian, BOOL one byte each,
BYTES elements a 4-byte little-endian length followed by that many bytes.

Every size is checked against what is really there before a byte is read: a header
length past the body, a size that does not fill the shape, chunks that run past the end
or leave bytes over are each an :class:`~satchel.errors.InputFormatError` naming the
tensor and both numbers.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from satchel.errors import InputFormatError
from satchel.serving.protocols.v2_tensors import DATATYPES

HEADER = "inference-header-content-length"
_LENGTH = struct.Struct("<I")


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, memoryview | None]:
    """(JSON header, binary section) of a body; the whole body is JSON without the header.

    Raises:
        InputFormatError: the header is not a length in bytes, or runs past the body.
    """
    if header_length is None:
        return body, None
    text = header_length.strip()
    if not text.isdigit() or len(text) > 19:
        raise InputFormatError(f"the Inference-Header-Content-Length header must be a byte "
                               f"count, not {text[:40]!r}")
    size = int(text)
    if size > len(body):
        raise InputFormatError(f"Inference-Header-Content-Length is {size} bytes, but the "
                               f"body has only {len(body)}")
    view = memoryview(body)
    return bytes(view[:size]), view[size:]


class BinaryReader:
    """Hands out the binary section's chunks in order, checking every size."""

    def __init__(self, binary: memoryview | None) -> None:
        self._binary = binary
        self._offset = 0

    def take(self, size: Any, where: str) -> memoryview:
        """The next ``size`` bytes for the tensor described by ``where``."""
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InputFormatError(f"{where}: parameters.binary_data_size must be a "
                                   f"non-negative integer, not {str(size)[:40]!r}")
        if self._binary is None:
            raise InputFormatError(f"{where}: binary_data_size is given, but the request has "
                                   "no binary data (send the Inference-Header-Content-Length "
                                   "header with the JSON header's length)")
        left = len(self._binary) - self._offset
        if size > left:
            raise InputFormatError(f"{where}: binary_data_size is {size} bytes, but only "
                                   f"{left} bytes of binary data are left")
        chunk = self._binary[self._offset:self._offset + size]
        self._offset += size
        return chunk

    def finish(self) -> None:
        """Raise unless every byte of the binary section was claimed by a tensor."""
        if self._binary is not None and self._offset != len(self._binary):
            raise InputFormatError(
                f"the binary data has {len(self._binary) - self._offset} bytes that no input's "
                f"binary_data_size accounts for ({len(self._binary)} bytes sent, "
                f"{self._offset} claimed)")


def read_tensor(chunk: memoryview, datatype: str, shape: list[int], where: str) -> np.ndarray:
    """One binary chunk as a flat array of the wire datatype (``shape`` sets the count).

    Raises:
        InputFormatError: the chunk does not hold exactly the shape's elements.
    """
    count = math.prod(shape)
    if datatype == "BYTES":
        return _read_bytes(chunk, count, where)
    dtype = np.dtype(DATATYPES[datatype]).newbyteorder("<")
    if len(chunk) != count * dtype.itemsize:
        raise InputFormatError(f"{where}: shape {shape} of {datatype} takes "
                               f"{count * dtype.itemsize} bytes, but binary_data_size is "
                               f"{len(chunk)}")
    if datatype == "BOOL":
        raw = np.frombuffer(chunk, dtype=np.uint8)
        if raw.size and int(raw.max()) > 1:
            raise InputFormatError(f"{where}: BOOL bytes must be 0 or 1")
        return raw.astype(bool)
    # a copy: the request body's memory is not kept alive by the model's input
    return np.frombuffer(chunk, dtype=dtype).astype(dtype.newbyteorder("="))


def _read_bytes(chunk: memoryview, count: int, where: str) -> np.ndarray:
    if count * 4 > len(chunk):  # checked before allocating: every element takes 4 bytes
        raise InputFormatError(f"{where}: shape of {count} BYTES elements needs at least "
                               f"{count * 4} bytes, but binary_data_size is {len(chunk)}")
    out = np.empty(count, dtype=object)
    data = bytes(chunk)
    offset = 0
    for i in range(count):
        if offset + 4 > len(data):
            raise InputFormatError(f"{where}: the BYTES data ends after {i} of {count} "
                                   "elements (each is a 4-byte length, then the bytes)")
        (n,) = _LENGTH.unpack_from(data, offset)
        offset += 4
        if offset + n > len(data):
            raise InputFormatError(f"{where}: BYTES element {i} is {n} bytes long, but only "
                                   f"{len(data) - offset} bytes are left")
        out[i] = data[offset:offset + n]
        offset += n
    if offset != len(data):
        raise InputFormatError(f"{where}: {len(data) - offset} bytes are left after the "
                               f"{count} BYTES elements of its shape")
    return out


def write_tensor(arr: np.ndarray) -> bytes:
    """An output array as the extension's bytes (row-major, little-endian)."""
    if arr.dtype == object or arr.dtype.kind in "USM":
        flat = arr.reshape(-1)
        values = (np.datetime_as_string(flat).tolist() if flat.dtype.kind == "M"
                  else flat.tolist())
        parts = []
        for v in values:
            b = v if isinstance(v, bytes) else str(v).encode()
            parts.append(_LENGTH.pack(len(b)))
            parts.append(b)
        return b"".join(parts)
    if arr.dtype.kind == "b":
        return np.ascontiguousarray(arr, dtype=np.uint8).tobytes()
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
