"""The Open Inference Protocol (KServe V2): metadata, request decoding, response encoding.

Pure functions, no HTTP. Decoding turns wire tensors (``name``, ``shape``, ``datatype``,
row-major ``data``) into numpy arrays of the declared wire datatype, then arranges them
the way the model's signature takes them: a DataFrame for a column signature, one
array for one unnamed tensor, a dict of arrays for named tensors. Fitting values to the
signature is left to the core policy (``Model.predict_detailed``).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from satchel import _json
from satchel._version import __version__
from satchel.errors import InputFormatError, SatchelError
from satchel.schema import ColSpec, DataType, Schema, Signature, TensorSpec
from satchel.serving.codecs import loads

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
# request-level ``parameters`` that steer decoding and are not model params
PROTOCOL_PARAMETERS = frozenset({"content_type", "headers", "binary_data_output"})
REQUEST_CONTENT_TYPES = ("pd", "np", "dict")


@dataclass(frozen=True)
class InferRequest:
    """A decoded inference request.

    Attributes:
        data: the model input (DataFrame, ndarray or dict of ndarrays).
        params: model params taken from the request's ``parameters`` (None if none).
        id: the request id, echoed in the response.
        outputs: names of the outputs asked for; empty means all.
    """

    data: Any
    params: dict[str, Any] | None
    id: str | None = None
    outputs: tuple[str, ...] = field(default=())


# --- metadata --------------------------------------------------------------------------


def server_metadata() -> dict[str, Any]:
    """``GET /v2``: the server's name, version and protocol extensions."""
    return {"name": "satchel", "version": __version__, "extensions": []}


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


# --- requests --------------------------------------------------------------------------


def decode_infer(body: bytes, schema: Schema | None) -> InferRequest:
    """Decode ``POST .../infer`` JSON into the model's input.

    Raises:
        InputFormatError: malformed JSON, a missing or wrong field, an unknown datatype,
            data that does not fill the shape, or values outside the datatype.
    """
    obj = loads(body)
    if not isinstance(obj, dict):
        raise InputFormatError("the inference request must be a JSON object with 'inputs'")
    inputs = obj.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InputFormatError("the inference request needs 'inputs': a non-empty list of "
                               "tensors with name, shape, datatype and data")
    request_id = obj.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InputFormatError("'id' must be a string")
    parameters = _object(obj.get("parameters"), "parameters")
    tensors: dict[str, np.ndarray] = {}
    codecs: dict[str, str] = {}
    for i, item in enumerate(inputs):
        name, arr, codec = decode_tensor(item, i)
        if name in tensors:
            raise InputFormatError(f"input '{name}' is given twice")
        tensors[name] = arr
        if codec:
            codecs[name] = codec
    content_type = parameters.get("content_type")
    if content_type is not None and content_type not in REQUEST_CONTENT_TYPES:
        raise InputFormatError(f"parameters.content_type '{str(content_type)[:40]}' is not "
                               f"supported; use one of {list(REQUEST_CONTENT_TYPES)}")
    data = arrange(tensors, codecs, schema, content_type)
    params = {k: v for k, v in parameters.items() if k not in PROTOCOL_PARAMETERS} or None
    return InferRequest(data, params, request_id, _requested_outputs(obj.get("outputs")))


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputFormatError(f"'{where}' must be an object")
    return value


def _requested_outputs(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in value):
        raise InputFormatError("'outputs' must be a list of objects with a 'name'")
    return tuple(o["name"] for o in value)


def decode_tensor(item: Any, i: int) -> tuple[str, np.ndarray, str | None]:
    """One request tensor as (name, array shaped as declared, per-input content type)."""
    if not isinstance(item, dict):
        raise InputFormatError(f"inputs[{i}] must be an object")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise InputFormatError(f"inputs[{i}] needs a 'name' (a string)")
    where = f"input '{name[:100]}'"
    shape = item.get("shape")
    if (not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool)
                                               and d >= 0 for d in shape)):
        raise InputFormatError(f"{where}: 'shape' must be a list of non-negative integers")
    datatype = item.get("datatype")
    if datatype not in DATATYPES:
        raise InputFormatError(f"{where}: datatype {str(datatype)[:40]!r} is not one of "
                               f"{list(DATATYPES)}")
    if "data" not in item:
        raise InputFormatError(f"{where}: 'data' is missing")
    codec = _object(item.get("parameters"), f"{where} parameters").get("content_type")
    arr = wire_array(item["data"], datatype, where)
    count = math.prod(shape)
    if arr.size != count:
        raise InputFormatError(f"{where}: shape {shape} holds {count} values, but 'data' has "
                               f"{arr.size}")
    return name, arr.reshape(shape), codec if isinstance(codec, str) else None


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


def arrange(tensors: dict[str, np.ndarray], codecs: dict[str, str], schema: Schema | None,
            content_type: str | None) -> Any:
    """Arrange decoded tensors as the model takes them (see the module docstring)."""
    kind = content_type or (request_content_type(schema) if schema is not None else None)
    if kind is None:
        kind = "np" if len(tensors) == 1 else "pd"
    if kind == "np":
        if len(tensors) != 1:
            raise InputFormatError(f"the model takes one tensor; the request has "
                                   f"{len(tensors)}: {sorted(tensors)[:10]}")
        return next(iter(tensors.values()))
    if kind == "dict":
        return tensors
    return _frame(tensors, codecs, schema)


def _frame(tensors: dict[str, np.ndarray], codecs: dict[str, str],
           schema: Schema | None) -> Any:
    import pandas as pd

    specs: dict[str, ColSpec] = {}
    if schema is not None and not schema.is_tensor:
        for i, (n, s) in enumerate(zip(schema.names(), schema.inputs)):
            assert isinstance(s, ColSpec)
            specs[n] = s
            if s.name is None and f"input-{i}" in tensors:
                tensors = {(n if k == f"input-{i}" else k): v for k, v in tensors.items()}
    columns: dict[str, Any] = {}
    for name, arr in tensors.items():
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr.reshape(-1)
        if arr.ndim != 1:
            raise InputFormatError(f"input '{name}' has shape {list(arr.shape)}; a column "
                                   "takes shape [N] or [N, 1]")
        spec = specs.get(name)
        if spec is not None and spec.type is DataType.binary and arr.dtype == object:
            arr = _binary(arr, codecs.get(name, "base64"), name)
        columns[name] = arr
    lengths = {len(a) for a in columns.values()}
    if len(lengths) > 1:
        raise InputFormatError(f"column inputs have different lengths {sorted(lengths)}")
    return pd.DataFrame(columns)


def _binary(arr: np.ndarray, codec: str, name: str) -> np.ndarray:
    out = np.empty(len(arr), dtype=object)
    try:
        for i, v in enumerate(arr.tolist()):
            if isinstance(v, str):
                v = v.encode() if codec == "str" else base64.b64decode(v, validate=True)
            out[i] = v
    except (binascii.Error, ValueError):
        raise InputFormatError(f"input '{name}' is binary: send base64 text, or set its "
                               "parameters.content_type to 'str'") from None
    return out


# --- responses -------------------------------------------------------------------------


def encode_infer(output: Any, *, model_name: str, model_version: str | None,
                 request: InferRequest, output_schema: Schema | None = None) -> bytes:
    """The inference response as JSON bytes: one V2 tensor per output column or array.

    Raises:
        InputFormatError: the request asked for an output the model does not return.
        SatchelError: the output holds values that cannot be written as JSON.
    """
    tensors = output_tensors(output, output_schema)
    if request.outputs:
        by_name = {t["name"]: t for t in tensors}
        unknown = [n for n in request.outputs if n not in by_name]
        if unknown:
            raise InputFormatError(f"unknown outputs {unknown[:10]}; the model returns "
                                   f"{list(by_name)[:20]}")
        tensors = [by_name[n] for n in request.outputs]
    reply: dict[str, Any] = {"model_name": model_name, "model_version": model_version,
                             "id": request.id if request.id is not None
                             else str(uuid.uuid4()),
                             "parameters": {}, "outputs": tensors}
    try:
        return json.dumps(reply, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise SatchelError(f"the model's output cannot be written as JSON: {exc}") from None


def output_tensors(output: Any, schema: Schema | None = None) -> list[dict[str, Any]]:
    """A prediction as V2 output tensors (name, datatype, shape, flat data)."""
    module = type(output).__module__
    if module.startswith("pandas") and type(output).__name__ == "DataFrame":
        return [tensor(str(c), output.iloc[:, i].to_numpy())
                for i, c in enumerate(output.columns)]
    if module.startswith("pandas") and type(output).__name__ == "Series":
        name = str(output.name) if output.name is not None else _output_name(schema, 0)
        return [tensor(name, output.to_numpy())]
    if isinstance(output, dict):
        return [tensor(str(k), np.asarray(v)) for k, v in output.items()]
    return [tensor(_output_name(schema, 0), np.asarray(output))]


def _output_name(schema: Schema | None, i: int) -> str:
    if schema is not None and len(schema.inputs) > i and schema.inputs[i].name is not None:
        return str(schema.inputs[i].name)
    return f"output-{i}"


def tensor(name: str, arr: np.ndarray) -> dict[str, Any]:
    """One V2 output tensor; ``data`` is flat and row-major, NaN as null, bytes as base64."""
    if arr.dtype == object and arr.size and all(isinstance(v, bool) for v in arr.ravel()):
        arr = arr.astype(bool)
    flat = arr.reshape(-1)
    return {"name": name, "datatype": wire_datatype(arr.dtype), "shape": list(arr.shape),
            "data": _json.array_jsonable(flat)}

