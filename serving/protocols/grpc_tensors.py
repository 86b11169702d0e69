"""Tensors of the Open Inference Protocol's gRPC messages to and from numpy arrays.

Pure functions over the protobuf messages, no grpcio. A request tensor arrives either as
one entry of ``raw_input_contents`` (little-endian, row-major; BYTES elements each
behind a 4-byte little-endian length) or as one typed list of ``contents``; both are
checked against the declared datatype and shape before numpy sees them, so a client's
mistake is an :class:`~satchel.errors.InputFormatError` that names the input, never a
numpy exception. Replies always use ``raw_output_contents``: it is what Triton sends
and what clients read fastest.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import numpy as np

from satchel import _json
from satchel.errors import InputFormatError

# wire datatype -> little-endian numpy dtype of its raw bytes (BYTES: length-prefixed)
RAW_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"), "UINT8": np.dtype("u1"), "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"), "UINT64": np.dtype("<u8"), "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
}
DATATYPES = (*RAW_DTYPES, "BYTES")
# wire datatype -> the InferTensorContents field that holds it (FP16: raw only)
CONTENTS_FIELDS = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
    "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
    "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}
_LENGTH = struct.Struct("<I")


def check_shape(shape: Any, where: str) -> tuple[int, ...]:
    """The declared shape as a tuple, refused when a dimension is negative."""
    dims = tuple(int(d) for d in shape)
    if any(d < 0 for d in dims):
        raise InputFormatError(f"{where}: shape {list(dims)[:10]} has a negative dimension")
    return dims


def from_raw(raw: bytes, datatype: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    """One ``raw_input_contents`` entry as an array of ``shape``.

    Numeric tensors are read in place (a read-only view of the message's bytes).
    """
    count = math.prod(shape)
    if datatype == "BYTES":
        return _bytes_elements(raw, count, where).reshape(shape)
    dtype = RAW_DTYPES[datatype]
    if len(raw) != count * dtype.itemsize:
        raise InputFormatError(f"{where}: shape {list(shape)[:10]} of {datatype} takes "
                               f"{count * dtype.itemsize} bytes, but its raw contents have "
                               f"{len(raw)}")
    if datatype == "BOOL" and raw and max(raw) > 1:
        raise InputFormatError(f"{where}: BOOL raw contents hold bytes other than 0 and 1")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def _bytes_elements(raw: bytes, count: int, where: str) -> np.ndarray:
    # Every element takes at least its 4-byte length: a count past that is refused before
    # allocating for it.
    if count * 4 > len(raw):
        raise InputFormatError(f"{where}: the shape holds {count} BYTES elements, but its raw "
                               f"contents ({len(raw)} bytes) cannot")
    out = np.empty(count, dtype=object)
    view, pos, end = memoryview(raw), 0, len(raw)
    for i in range(count):
        if pos + 4 > end:
            raise InputFormatError(f"{where}: raw contents end inside element {i} of {count}")
        (size,) = _LENGTH.unpack_from(raw, pos)
        pos += 4
        if pos + size > end:
            raise InputFormatError(f"{where}: element {i} declares {size} bytes, past the end "
                                   f"of its raw contents")
        out[i] = bytes(view[pos:pos + size])
        pos += size
    if pos != end:
        raise InputFormatError(f"{where}: raw contents hold {end - pos} bytes after its "
                               f"{count} elements")
    return out


def from_contents(contents: Any, datatype: str, shape: tuple[int, ...],
                  where: str) -> np.ndarray:
    """A tensor sent as a typed ``contents`` list, as an array of ``shape``."""
    field = CONTENTS_FIELDS.get(datatype)
    used = [f.name for f, _ in contents.ListFields()]
    if field is None:
        raise InputFormatError(f"{where}: {datatype} values travel in raw_input_contents only")
    stray = [f for f in used if f != field]
    if stray:
        raise InputFormatError(f"{where}: a {datatype} tensor holds its values in '{field}', "
                               f"but the request filled {stray}")
    values = getattr(contents, field)
    count = math.prod(shape)
    if len(values) != count:
        raise InputFormatError(f"{where}: shape {list(shape)[:10]} holds {count} values, but "
                               f"'{field}' has {len(values)}")
    if datatype == "BYTES":
        out = np.empty(count, dtype=object)
        out[:] = list(values)
        return out.reshape(shape)
    dtype = RAW_DTYPES[datatype]
    wide = np.array(values, dtype=np.int64 if dtype.kind == "i" else
                    np.uint64 if dtype.kind == "u" else dtype)
    if dtype.kind in "iu" and wide.size and dtype.itemsize < 8:
        info = np.iinfo(dtype)
        if int(wide.min()) < info.min or int(wide.max()) > info.max:
            raise InputFormatError(f"{where}: values outside the {datatype} range "
                                   f"[{info.min}, {info.max}]")
    return wide.astype(dtype, copy=False).reshape(shape)


def text_or_bytes(arr: np.ndarray, keep_bytes: bool, where: str) -> np.ndarray:
    """BYTES elements as ``str`` (UTF-8), or left as ``bytes`` for a binary input."""
    if keep_bytes or arr.size == 0:
        return arr
    flat = arr.reshape(-1)
    out = np.empty(flat.size, dtype=object)
    try:
        for i, v in enumerate(flat.tolist()):
            out[i] = v.decode("utf-8") if isinstance(v, bytes) else v
    except UnicodeDecodeError:
        raise InputFormatError(f"{where}: a BYTES element is not UTF-8 text; this input "
                               "takes text") from None
    return out.reshape(arr.shape)


# --- replies ---------------------------------------------------------------------------


def wire_datatype(arr: np.ndarray) -> str:
    """The datatype an output array travels as (BYTES for text, bytes, dates, objects)."""
    kind, size = arr.dtype.kind, arr.dtype.itemsize
    if kind == "b":
        return "BOOL"
    if kind in "iu":
        return f"{'INT' if kind == 'i' else 'UINT'}{size * 8}"
    if kind == "f" and size in (2, 4, 8):
        return f"FP{size * 8}"
    return "BYTES"


def to_raw(arr: np.ndarray) -> tuple[str, bytes]:
    """An output array as (datatype, raw little-endian row-major bytes)."""
    if arr.dtype == object and arr.size and all(isinstance(v, bool) for v in arr.ravel()):
        arr = arr.astype(bool)
    datatype = wire_datatype(arr)
    if datatype != "BYTES":
        return datatype, np.ascontiguousarray(arr, dtype=RAW_DTYPES[datatype]).tobytes()
    if arr.dtype.kind == "M":
        arr = np.datetime_as_string(arr).astype(object)
    parts: list[bytes] = []
    for v in arr.reshape(-1).tolist():
        if isinstance(v, bytes):
            data = v
        elif isinstance(v, (dict, list, tuple)):  # e.g. a column of dicts: JSON text
            data = json.dumps(_json.jsonable(v), separators=(",", ":")).encode()
        else:
            data = ("" if v is None else str(v)).encode()
        parts.append(_LENGTH.pack(len(data)))
        parts.append(data)
    return datatype, b"".join(parts)
