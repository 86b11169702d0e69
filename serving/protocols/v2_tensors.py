"""The Open Inference Protocol's tensors and metadata: wire datatypes, wire data as
numpy arrays and back, and the metadata documents derived from a signature.

Pure functions, no HTTP; :mod:`satchel.serving.protocols.v2` decodes and encodes whole
requests with them.
"""

from __future__ import annotations

from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np

from satchel import _json
from satchel._version import __version__
from satchel.errors import InputFormatError
from satchel.schema import ColSpec, DataType, Schema, Signature, TensorSpec
from satchel.serving.protocols import frames

# wire datatype -> numpy dtype (BYTES: Python str/bytes objects)
DATATYPES: dict[str, Any] = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
    "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
    "BYTES": object,
}
# MLflow column type -> (wire datatype, MLServer's per-input content type)
COLUMN_TYPES = {
    DataType.boolean: ("BOOL", "np"), DataType.integer: ("INT32", "np"),
    DataType.long: ("INT64", "np"), DataType.float: ("FP32", "np"),
    DataType.double: ("FP64", "np"), DataType.string: ("BYTES", "str"),
    DataType.binary: ("BYTES", "base64"), DataType.datetime: ("BYTES", "datetime"),
}
# --- metadata --------------------------------------------------------------------------


def server_metadata() -> dict[str, Any]:
    """``GET /v2``: the server's name, version and protocol extensions."""
    return {"name": "satchel", "version": __version__, "extensions": ["binary_tensor_data"]}


def model_metadata(name: str, version: str | None, signature: Signature | None,
                   platform: str) -> dict[str, Any]:
    """``GET /v2/models/{name}``: inputs and outputs derived from the signature."""
    inputs = signature.inputs if signature is not None else None
    outputs = signature.outputs if signature is not None else None
    meta: dict[str, Any] = {
        "name": name,
        "versions": [version] if version else [],
        "platform": platform,
        "inputs": tensor_metadata(inputs, "input"),
        "outputs": tensor_metadata(outputs, "output"),
    }
    if inputs is not None:
        meta["parameters"] = {"content_type": request_content_type(inputs)}
    return meta


def tensor_metadata(schema: Schema | None, prefix: str) -> list[dict[str, Any]]:
    """One V2 tensor per column (shape ``[-1]``) or per tensor spec."""
    if schema is None:
        return []
    out = []
    for i, spec in enumerate(schema.inputs):
        name = spec.name if spec.name is not None else f"{prefix}-{i}"
        if isinstance(spec, TensorSpec):
            out.append({"name": name, "datatype": wire_datatype(np.dtype(spec.dtype)),
                        "shape": list(spec.shape)})
            continue
        assert isinstance(spec, ColSpec)
        # array, object and map columns travel as JSON text
        datatype, codec = (COLUMN_TYPES[spec.type] if isinstance(spec.type, DataType)
                           else ("BYTES", "json"))
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": [-1],
                                 "parameters": {"content_type": codec}}
        if not spec.required:
            entry["optional"] = True
        out.append(entry)
    return out


def request_content_type(schema: Schema) -> str:
    """MLServer's request content type for a schema: pd, np (one tensor) or dict."""
    if not schema.is_tensor:
        return "pd"
    return "np" if len(schema.inputs) == 1 and schema.inputs[0].name is None else "dict"


def wire_datatype(dtype: np.dtype[Any]) -> str:
    """The V2 datatype of a numpy dtype (BYTES for strings, bytes, dates and objects)."""
    if dtype.kind == "b":
        return "BOOL"
    if dtype.kind == "i":
        return f"INT{dtype.itemsize * 8}"
    if dtype.kind == "u":
        return f"UINT{dtype.itemsize * 8}"
    if dtype.kind == "f" and dtype.itemsize in (2, 4, 8):
        return f"FP{dtype.itemsize * 8}"
    return "BYTES"


# --- data ------------------------------------------------------------------------------


def wire_array(data: Any, datatype: str, where: str) -> np.ndarray:
    """``data`` (flat or nested, row-major) as a flat array of the wire datatype."""
    if not isinstance(data, list):
        data = [data]
    try:
        raw = np.array(data, dtype=object if datatype == "BYTES" else None).reshape(-1)
    except (ValueError, TypeError, OverflowError):
        raise InputFormatError(f"{where}: 'data' is not a regular nested list of "
                               f"{datatype} values") from None
    target = DATATYPES[datatype]
    if raw.size == 0:
        return np.empty(0, dtype=target)
    kind = raw.dtype.kind
    if datatype == "BYTES":
        if not all(isinstance(v, (str, bytes)) for v in raw.tolist()):
            raise InputFormatError(f"{where}: BYTES data must be strings")
        return raw
    if datatype == "BOOL":
        if kind != "b":
            raise InputFormatError(f"{where}: BOOL data must be true/false, given {_given(raw)}")
        return raw
    tdt = np.dtype(target)
    if tdt.kind in "iu":
        if kind not in "iu":
            raise InputFormatError(f"{where}: {datatype} data must be integers, given "
                                   f"{_given(raw)}")
        info = np.iinfo(tdt)
        if int(raw.min()) < info.min or int(raw.max()) > info.max:
            raise InputFormatError(f"{where}: values outside the {datatype} range "
                                   f"[{info.min}, {info.max}]")
        return raw.astype(tdt)
    if kind not in "iuf":
        raise InputFormatError(f"{where}: {datatype} data must be numbers, given {_given(raw)}")
    return raw.astype(tdt)


def _given(raw: np.ndarray) -> str:
    if raw.dtype == object:
        return ", ".join(sorted({type(v).__name__ for v in raw.tolist()[:1000]}))
    return {"b": "booleans", "U": "strings", "f": "floats"}.get(raw.dtype.kind, str(raw.dtype))


def output_array(arr: np.ndarray) -> np.ndarray:
    """An output array as it goes on the wire: an object array of booleans becomes BOOL."""
    if arr.dtype == object and arr.size and all(isinstance(v, bool) for v in arr.ravel()):
        return arr.astype(bool)
    return arr


# dtypes (by numpy's type char) orjson writes straight from the array exactly as
# json.dumps writes the array's tolist(): bools, integers and float64 (NaN and infinity
# as null). float32/16 are not: orjson writes their own shortest form, tolist() the
# double's digits.
_NATIVE_CHARS = frozenset("?bBhHiIlLqQd")


def tensor(name: str, arr: np.ndarray, native: bool = False) -> dict[str, Any]:
    """One V2 output tensor; ``data`` is flat and row-major, NaN as null, bytes as base64.

    With ``native``, ``data`` of a numeric dtype orjson writes alike stays a numpy
    array (for ``orjson.dumps(..., option=OPT_SERIALIZE_NUMPY)``: no Python object per
    value); otherwise it is plain Python values.
    """
    arr = output_array(arr)
    flat = arr.reshape(-1)
    if native and flat.dtype.char in _NATIVE_CHARS and flat.dtype.isnative:
        data: Any = np.ascontiguousarray(flat)
    else:
        data = _json.array_jsonable(flat)
    return {"name": name, "datatype": wire_datatype(arr.dtype), "shape": list(arr.shape),
            "data": data}


# --- requests: the common column layout ---------------------------------------------


# wire datatypes the column fast path reads (BOOL and BYTES take the general path)
_NUMERIC = frozenset(d for d in DATATYPES if d not in ("BOOL", "BYTES"))
_FIELDS = itemgetter("name", "shape", "datatype", "data")


# Column names already found to be distinct non-empty strings: a client sends the same
# names request after request (bounded as every cache of names is: frames.keep).
_NAMES_SEEN: dict[tuple[str, ...], None] = {}


def _new_names(names: tuple[Any, ...]) -> bool:
    """True (and remembered) when ``names`` are distinct non-empty strings."""
    if set(map(type, names)) != {str} or "" in names or len(set(names)) != len(names):
        return False
    frames.keep(_NAMES_SEEN, names, None, names)  # too many or too long: checked each time
    return True


def float_columns(inputs: list[Any]) -> Any:
    """The DataFrame of several well-formed numeric columns of one wire datatype and one
    length (e.g. an FP64 tensor of shape [N] per column, what a V2 client sends a model
    with a column signature), or None for anything else (``decode_infer``'s general path
    decodes that, and words its errors).

    The values are read as ``v2.decode_tensor`` reads them (numbers only, ints widened
    to a float type, integers within the integer type's range), but all columns in one
    numpy call and with the per-tensor checks cut to type tests: decoded one by one,
    twenty 1-row columns cost about a third of a 1-row request's CPU.
    """
    # Each check is one pass in C over all inputs: a loop in Python over twenty 1-row
    # columns costs as much as the rest of the decode. A value of another JSON type
    # (a list where a string belongs, a number where an object does) makes a check
    # raise TypeError or KeyError, or compare unequal: the general path then words it.
    count = len(inputs)
    try:
        if count < 2 or set(map(len, inputs)) != {4}:
            return None  # parameters (binary data, a content type) take the general path
        names, shapes, datatypes, values = zip(*map(_FIELDS, inputs))
        datatype, shape = datatypes[0], shapes[0]
        if (type(datatype) is not str or datatype not in _NUMERIC
                or datatypes.count(datatype) != count or type(shape) is not list
                or len(shape) != 1 or shapes.count(shape) != count
                # [1.0] and [True] equal [1]: every dimension must be an int
                or set(map(type, chain.from_iterable(shapes))) != {int} or shape[0] <= 0
                or (names not in _NAMES_SEEN and not _new_names(names))):
            return None
    except (TypeError, KeyError):  # an input not an object, or without one of the fields
        return None
    rows = shape[0]
    try:
        # numbers only: numpy would read true/false among floats as 1.0/0.0, and the
        # general path refuses a column of booleans by name
        if not set(map(type, chain.from_iterable(values))) <= {float, int}:
            return None
        block = np.array(values)
    except (ValueError, TypeError, OverflowError):  # data not a list; ragged; huge ints
        return None
    target = np.dtype(DATATYPES[datatype])
    kind = block.dtype.kind
    # data of another length, nested or ragged: another shape, or no array at all
    if block.shape != (len(names), rows) or kind not in "iuf":
        return None  # bools, strings, nested or huge values: the general path says so
    if target.kind in "iu":
        info = np.iinfo(target)
        if kind == "f" or int(block.min()) < info.min or int(block.max()) > info.max:
            return None
    # columns x rows, transposed as a view: the layout pandas keeps a block in
    # (np.array made it for this request: the frame may own it)
    return frames.frame(block.astype(target, copy=False).T, list(names), owned=True)
