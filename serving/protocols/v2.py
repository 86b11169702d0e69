"""The Open Inference Protocol (KServe V2) over JSON: request decoding, response
encoding, and the codec object :data:`V2` the data plane uses (tensors and metadata are
in :mod:`satchel.serving.protocols.v2_tensors`).

No HTTP here. Decoding turns wire tensors (``name``, ``shape``, ``datatype``,
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
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from satchel import _normalize
from satchel.errors import InputFormatError, SatchelError
from satchel.model import Prediction
from satchel.schema import ColSpec, DataType, Schema
from satchel.serving.protocols import frames
from satchel.serving.protocols.base import Decoded, Inbound, Protocol, Reply, reply_of
from satchel.serving.protocols.strict_json import loads
from satchel.serving.protocols.v2_binary import (
    HEADER,
    BinaryReader,
    read_tensor,
    split_body,
    write_tensor,
)
from satchel.serving.protocols.v2_tensors import (
    DATATYPES,
    float_columns,
    model_metadata,
    output_array,
    request_content_type,
    server_metadata,
    tensor,
    tensor_metadata,
    wire_array,
    wire_datatype,
)

if TYPE_CHECKING:
    from satchel.serving.server.repository import ServedModel

__all__ = ["DATATYPES", "V2", "InferRequest", "V2Protocol", "decode_infer", "encode_infer",
           "encode_reply", "model_metadata", "output_arrays", "output_tensors",
           "server_metadata", "tensor_metadata", "wire_array", "wire_datatype"]
# request-level ``parameters`` that steer decoding and are not model params
PROTOCOL_PARAMETERS = frozenset({"content_type", "headers", "binary_data_output"})
REQUEST_CONTENT_TYPES = ("pd", "np", "dict")


def _orjson() -> Any:
    try:
        import orjson
    except ImportError:  # optional (pip install orjson): the json module writes alike
        return None
    return orjson


_ORJSON = _orjson()


@dataclass(frozen=True)
class InferRequest:
    """A decoded inference request.

    Attributes:
        data: the model input (DataFrame, ndarray or dict of ndarrays).
        params: model params taken from the request's ``parameters`` (None if none).
        id: the request id, echoed in the response.
        outputs: names of the outputs asked for; empty means all.
        binary: names of the outputs to send as binary data (the binary extension).
        binary_default: send outputs not named in ``outputs`` as binary
            (``parameters.binary_data_output``).
    """

    data: Any
    params: dict[str, Any] | None
    id: str | None = None
    outputs: tuple[str, ...] = field(default=())
    binary: frozenset[str] = frozenset()
    binary_default: bool = False


# --- requests --------------------------------------------------------------------------


def decode_infer(body: bytes, schema: Schema | None,
                 header_length: str | None = None) -> InferRequest:
    """Decode ``POST .../infer`` (JSON, or a JSON header plus binary tensor data when
    ``header_length`` — the ``Inference-Header-Content-Length`` header — is given) into
    the model's input.

    Raises:
        InputFormatError: malformed JSON, a missing or wrong field, an unknown datatype,
            data that does not fill the shape, values outside the datatype, or binary
            sizes that do not add up.
    """
    header, binary = split_body(body, header_length)
    obj = loads(header)
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
    data = None
    if (binary is None and "content_type" not in parameters and schema is not None
            and not schema.is_tensor and schema.has_names):
        data = float_columns(inputs)
        if data is not None and not parameters and "outputs" not in obj:
            # the usual request: nothing else to read (every default below holds)
            return InferRequest(data, None, request_id)
    if data is None:
        reader = BinaryReader(binary)
        for i, item in enumerate(inputs):
            name, arr, codec = decode_tensor(item, i, reader)
            if name in tensors:
                raise InputFormatError(f"input '{name}' is given twice")
            tensors[name] = arr
            if codec:
                codecs[name] = codec
        reader.finish()
    binary_default = parameters.get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise InputFormatError("parameters.binary_data_output must be true or false")
    content_type = parameters.get("content_type")
    if content_type is not None and content_type not in REQUEST_CONTENT_TYPES:
        raise InputFormatError(f"parameters.content_type '{str(content_type)[:40]}' is not "
                               f"supported; use one of {list(REQUEST_CONTENT_TYPES)}")
    if data is None:
        data = arrange(tensors, codecs, schema, content_type)
    params = {k: v for k, v in parameters.items() if k not in PROTOCOL_PARAMETERS} or None
    outputs, binary_outputs = _requested_outputs(obj.get("outputs"))
    return InferRequest(data, params, request_id, outputs, binary_outputs, binary_default)


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputFormatError(f"'{where}' must be an object")
    return value


def _requested_outputs(value: Any) -> tuple[tuple[str, ...], frozenset[str]]:
    """(names asked for, names asked for as binary data)."""
    if value is None:
        return (), frozenset()
    if not isinstance(value, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in value):
        raise InputFormatError("'outputs' must be a list of objects with a 'name'")
    binary = set()
    for o in value:
        flag = _object(o.get("parameters"), f"output '{o['name'][:100]}' parameters").get(
            "binary_data", False)
        if not isinstance(flag, bool):
            raise InputFormatError(f"output '{o['name'][:100]}': parameters.binary_data must "
                                   "be true or false")
        if flag:
            binary.add(o["name"])
    return tuple(o["name"] for o in value), frozenset(binary)


def decode_tensor(item: Any, i: int, reader: BinaryReader | None = None
                  ) -> tuple[str, np.ndarray, str | None]:
    """One request tensor as (name, array shaped as declared, per-input content type);
    its values come from ``data`` or, with ``parameters.binary_data_size``, from the
    binary section ``reader`` hands out."""
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
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise InputFormatError(f"{where}: datatype {str(datatype)[:40]!r} is not one of "
                               f"{list(DATATYPES)}")
    parameters = _object(item.get("parameters"), f"{where} parameters")
    codec = parameters.get("content_type")
    if "binary_data_size" in parameters:
        if "data" in item:
            raise InputFormatError(f"{where}: give either 'data' or "
                                   "parameters.binary_data_size, not both")
        chunk = (reader or BinaryReader(None)).take(parameters["binary_data_size"], where)
        arr = read_tensor(chunk, datatype, shape, where)
        return name, arr.reshape(shape), codec if isinstance(codec, str) else None
    if "data" not in item:
        raise InputFormatError(f"{where}: 'data' is missing")
    arr = wire_array(item["data"], datatype, where)
    count = math.prod(shape)
    if arr.size != count:
        raise InputFormatError(f"{where}: shape {shape} holds {count} values, but 'data' has "
                               f"{arr.size}")
    return name, arr.reshape(shape), codec if isinstance(codec, str) else None


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
        elif spec is not None and spec.type is DataType.string and arr.dtype == object:
            arr = _text(arr, name)
        columns[name] = arr
    lengths = {len(a) for a in columns.values()}
    if len(lengths) > 1:
        raise InputFormatError(f"column inputs have different lengths {sorted(lengths)}")
    dtypes = {a.dtype for a in columns.values()}
    if len(dtypes) == 1 and next(iter(dtypes)).kind in "iuf" and len(columns) > 1:
        # One numeric dtype (e.g. FP64 columns): one 2-D block at once, the layout the
        # signature check and the model take fastest; pandas builds a dict of columns
        # one by one.
        return frames.frame(np.stack(list(columns.values()), axis=1), list(columns))
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


def _text(arr: np.ndarray, name: str) -> np.ndarray:
    """A string column sent as BYTES binary data: UTF-8 bytes become text."""
    values = arr.tolist()
    if not any(isinstance(v, bytes) for v in values):
        return arr
    out = np.empty(len(values), dtype=object)
    try:
        out[:] = [v.decode() if isinstance(v, bytes) else v for v in values]
    except UnicodeDecodeError as exc:
        raise InputFormatError(f"input '{name}' is a string column: its bytes must be UTF-8 "
                               f"(byte {exc.start} of an element is not)") from None
    return out


# --- responses -------------------------------------------------------------------------


def encode_infer(output: Any, *, model_name: str, model_version: str | None,
                 request: InferRequest, output_schema: Schema | None = None) -> bytes:
    """The inference response body (see :func:`encode_reply`)."""
    return encode_reply(output, model_name=model_name, model_version=model_version,
                        request=request, output_schema=output_schema)[0]


def encode_reply(output: Any, *, model_name: str, model_version: str | None,
                 request: InferRequest, output_schema: Schema | None = None
                 ) -> tuple[bytes, int | None]:
    """The inference response: (body, JSON header length or None when all JSON).

    Outputs the request asked to get as binary data follow the JSON header as raw
    bytes (the binary extension); the others are JSON tensors.

    Raises:
        InputFormatError: the request asked for an output the model does not return.
        SatchelError: the output holds values that cannot be written as JSON.
    """
    arrays = output_arrays(output, output_schema)
    if request.outputs:
        by_name = dict(arrays)
        unknown = [n for n in request.outputs if n not in by_name]
        if unknown:
            raise InputFormatError(f"unknown outputs {unknown[:10]}; the model returns "
                                   f"{list(by_name)[:20]}")
        arrays = [(n, by_name[n]) for n in request.outputs]
        binary = request.binary | (request.binary_default and
                                   frozenset(request.outputs) or frozenset())
    else:
        binary = frozenset(dict(arrays)) if request.binary_default else frozenset()
    tensors, chunks = [], []
    native = _ORJSON is not None
    for name, arr in arrays:
        if name in binary:
            arr = output_array(arr)
            chunk = write_tensor(arr)
            tensors.append({"name": name, "datatype": wire_datatype(arr.dtype),
                            "shape": list(arr.shape),
                            "parameters": {"binary_data_size": len(chunk)}})
            chunks.append(chunk)
        else:
            tensors.append(tensor(name, arr, native))
    reply: dict[str, Any] = {"model_name": model_name, "model_version": model_version,
                             # 128 random bits as hex when the client sent no id: what
                             # uuid4() holds, at a quarter of its cost (2.5 us a reply)
                             "id": request.id if request.id is not None
                             else os.urandom(16).hex(),
                             "parameters": {}, "outputs": tensors}
    header = _write(reply, arrays, binary) if native else None
    if header is None:
        try:
            header = json.dumps(reply, allow_nan=False, separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:
            raise SatchelError(f"the model's output cannot be written as JSON: {exc}"
                               ) from None
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)


def _write(reply: dict[str, Any], arrays: list[tuple[str, np.ndarray]],
           binary: frozenset[str]) -> bytes | None:
    """``reply`` written by orjson (numeric arrays straight from numpy), or None when
    orjson refuses a value (an integer past 64 bits, a lone surrogate): then ``reply``'s
    arrays are made plain Python values for the json module, which writes or names it."""
    try:
        return bytes(_ORJSON.dumps(reply, option=_ORJSON.OPT_SERIALIZE_NUMPY))
    except _ORJSON.JSONEncodeError:
        reply["outputs"] = [t if n in binary else tensor(n, a)
                            for t, (n, a) in zip(reply["outputs"], arrays)]
        return None


def output_tensors(output: Any, schema: Schema | None = None) -> list[dict[str, Any]]:
    """A prediction as V2 output tensors (name, datatype, shape, flat data)."""
    return [tensor(name, arr) for name, arr in output_arrays(output, schema)]


def output_arrays(output: Any, schema: Schema | None = None) -> list[tuple[str, np.ndarray]]:
    """A prediction as named arrays: one per DataFrame column, dict entry, or the array."""
    kind = _normalize.pandas_kind(output)
    if kind == "frame":
        return [(str(c), output.iloc[:, i].to_numpy()) for i, c in enumerate(output.columns)]
    if kind == "series":
        name = str(output.name) if output.name is not None else _output_name(schema, 0)
        return [(name, output.to_numpy())]
    if isinstance(output, dict):
        return [(str(k), np.asarray(v)) for k, v in output.items()]
    return [(_output_name(schema, 0), np.asarray(output))]


def _output_name(schema: Schema | None, i: int) -> str:
    if schema is not None and len(schema.inputs) > i and schema.inputs[i].name is not None:
        return str(schema.inputs[i].name)
    return f"output-{i}"


# --- the codec ---------------------------------------------------------------------------


class V2Protocol(Protocol):
    """``POST /v2/models/{name}[/versions/{v}]/infer`` with JSON tensors."""

    name = "v2"

    def decode(self, served: ServedModel, message: Any, inbound: Inbound) -> Decoded:
        sig = served.require().signature
        request = decode_infer(message, sig.inputs if sig is not None else None,
                               inbound.headers.get(HEADER))
        return Decoded(request.data, request.params, request)

    def encode(self, served: ServedModel, decoded: Decoded, prediction: Prediction) -> Reply:
        sig = served.require().signature
        body, header_length = encode_reply(
            prediction.output, model_name=served.name, model_version=served.version,
            request=decoded.context, output_schema=sig.outputs if sig is not None else None)
        if header_length is None:
            return reply_of(prediction, body)
        return reply_of(prediction, body, "application/octet-stream",
                        {"Inference-Header-Content-Length": str(header_length)})

    def error_body(self, message: str, code: str, extra: Mapping[str, Any] | None = None
                   ) -> bytes:
        return json.dumps({"error": message}, ensure_ascii=False,
                          separators=(",", ":")).encode()


V2 = V2Protocol()
