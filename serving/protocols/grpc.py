"""The Open Inference Protocol's gRPC codec: protobuf messages to and from the V2 forms.

Pure functions, no grpcio and no status codes. A ``ModelInferRequest`` decodes to the
same :class:`~satchel.serving.protocols.v2.InferRequest` the JSON codec gives (the tensors arranged
as the model's signature takes them, model params from the request's ``parameters``), so
everything after decoding (batching, the coercion policy, predict) is shared with HTTP.
Metadata replies are built from the same dictionaries the JSON endpoints answer with.
Errors are :class:`~satchel.errors.InputFormatError` naming the input and the problem.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from google.protobuf import json_format

from satchel.errors import InputFormatError
from satchel.model import Prediction
from satchel.schema import ColSpec, DataType, Schema, TensorSpec
from satchel.serving.protocols import frames, v2
from satchel.serving.protocols import grpc_tensors as tensors
from satchel.serving.protocols import satchel_inference_pb2 as pb
from satchel.serving.protocols.base import Decoded, Inbound, Protocol, Reply, reply_of

if TYPE_CHECKING:
    from satchel.serving.server.repository import ServedModel

# The name stock clients call (tritonclient, KServe): /inference.GRPCInferenceService/...
SERVICE = "inference.GRPCInferenceService"

__all__ = ["GRPC", "SERVICE", "GrpcProtocol", "decode_infer", "encode_infer",
           "model_config", "model_metadata", "model_statistics", "pb", "repository_index",
           "server_metadata", "stream_error"]


# --- requests --------------------------------------------------------------------------


def parameter_value(param: Any, where: str) -> Any:
    """The Python value of one ``InferParameter`` (or ``ModelRepositoryParameter``)."""
    kind = param.WhichOneof("parameter_choice")
    if kind is None:
        raise InputFormatError(f"{where} has no value")
    return getattr(param, kind)


def parameters(params: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A ``parameters`` map as a dict of plain values."""
    return {key: parameter_value(value, f"{where} '{key[:100]}'")
            for key, value in params.items()}


def decode_infer(request: pb.ModelInferRequest, schema: Schema | None) -> v2.InferRequest:
    """Decode a ``ModelInferRequest`` into the model's input (see the module docstring).

    Raises:
        InputFormatError: no inputs, a duplicate or unnamed input, an unknown datatype, a
            negative dimension, values that do not fill the shape or do not fit the
            datatype, raw contents that do not match the inputs.
    """
    if not request.inputs:
        raise InputFormatError("the inference request needs 'inputs': a non-empty list of "
                               "tensors with name, shape and datatype")
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InputFormatError(f"raw_input_contents has {len(raw)} entries for "
                               f"{len(request.inputs)} inputs; send one per input or none")
    if raw and not request.parameters:
        fast = _raw_column_block(request, raw, schema)
        if fast is not None:
            return v2.InferRequest(fast, None, request.id or None,
                                   tuple(o.name for o in request.outputs))
    params = parameters(request.parameters, "request parameter")
    content_type = params.get("content_type")
    if content_type is not None and content_type not in v2.REQUEST_CONTENT_TYPES:
        raise InputFormatError(f"parameters.content_type '{str(content_type)[:40]}' is not "
                               f"supported; use one of {list(v2.REQUEST_CONTENT_TYPES)}")
    binary = _binary_inputs(schema)
    arrays: dict[str, np.ndarray] = {}
    codecs: dict[str, str] = {}
    for i, item in enumerate(request.inputs):
        name = item.name
        if not name:
            raise InputFormatError(f"inputs[{i}] needs a 'name'")
        where = f"input '{name[:100]}'"
        if name in arrays:
            raise InputFormatError(f"{where} is given twice")
        if item.datatype not in tensors.DATATYPES:
            raise InputFormatError(f"{where}: datatype {item.datatype[:40]!r} is not one of "
                                   f"{list(tensors.DATATYPES)}")
        shape = tensors.check_shape(item.shape, where)
        if raw:
            arr = tensors.from_raw(raw[i], item.datatype, shape, where)
        else:
            arr = tensors.from_contents(item.contents, item.datatype, shape, where)
        codec = parameters(item.parameters, f"{where} parameter").get("content_type")
        if item.datatype == "BYTES":
            arr = tensors.text_or_bytes(arr, name in binary or (len(request.inputs) == 1
                                                                and None in binary), where)
        arrays[name] = arr
        if isinstance(codec, str):
            codecs[name] = codec
    data = _one_block_frame(arrays, schema, content_type)
    if data is None:
        data = v2.arrange(arrays, codecs, schema, content_type)
    model_params = {k: v for k, v in params.items()
                    if k not in v2.PROTOCOL_PARAMETERS} or None
    return v2.InferRequest(data, model_params, request.id or None,
                           tuple(o.name for o in request.outputs))


def _raw_column_block(request: pb.ModelInferRequest, raw: Any, schema: Schema | None
                     ) -> Any:
    """The request ``tritonclient`` sends a column model, decoded in a few numpy calls: one
    raw column per input, all of one numeric datatype and row count, named as the
    signature's columns, no parameters. The tensors' bytes are joined and read as one
    (columns x rows) block, so no array is made per column (a 1-row, 20-column request
    decodes in about a quarter of the general path's time, benchmarks/mlserver_bench.py).
    None when anything differs (then the general path decodes, and names any error)."""
    if schema is None or schema.is_tensor:
        return None
    inputs = request.inputs
    datatype = inputs[0].datatype
    dtype = tensors.RAW_DTYPES.get(datatype)
    shape = list(inputs[0].shape)
    if (dtype is None or datatype == "BOOL" or not 1 <= len(shape) <= 2 or shape[0] < 0
            or shape[1:] not in ([], [1])):
        return None
    rows = shape[0]
    size = rows * dtype.itemsize
    names = []
    for item, data in zip(inputs, raw):
        if (item.datatype != datatype or len(data) != size or item.shape != shape
                or item.parameters):
            return None
        names.append(item.name)
    known = schema.names()
    if len(set(names)) != len(names) or not set(names) <= set(known):
        return None
    # (columns x rows) read in one call; pandas copies the transposed view into its block
    block = np.frombuffer(b"".join(raw), dtype=dtype).reshape(len(names), rows)
    return frames.frame(block.T, names)


def _one_block_frame(arrays: dict[str, np.ndarray], schema: Schema | None,
                     content_type: Any) -> Any:
    """The common column request (every column numeric, of one dtype, one value per row) as
    a DataFrame of one block, built in one call: several times cheaper than pandas' dict
    constructor, and the model reads one block back as one array. None for anything else
    (then :func:`v2.arrange` decides)."""
    if schema is None or schema.is_tensor or content_type not in (None, "pd"):
        return None
    names = schema.names()
    first = next(iter(arrays.values()))
    rows, dtype = first.shape[0] if first.ndim else -1, first.dtype
    if dtype.kind not in "biuf" or not set(arrays) <= set(names):
        return None
    for arr in arrays.values():
        if (arr.dtype != dtype or arr.shape[0:1] != (rows,)
                or not (arr.ndim == 1 or arr.ndim == 2 and arr.shape[1] == 1)):
            return None

    block = np.column_stack([a.reshape(-1) for a in arrays.values()])
    return frames.frame(block, list(arrays))


def _binary_inputs(schema: Schema | None) -> set[str | None]:
    """Inputs whose BYTES values stay bytes (binary columns, bytes tensors); the rest are
    text. ``None`` stands for the unnamed tensor of a one-tensor signature."""
    out: set[str | None] = set()
    if schema is None:
        return out
    for spec in schema.inputs:
        if isinstance(spec, ColSpec) and spec.type is DataType.binary:
            out.add(spec.name)
        elif isinstance(spec, TensorSpec) and np.dtype(spec.dtype).kind in "SV":
            out.add(spec.name)
    return out


# --- replies ---------------------------------------------------------------------------


def output_arrays(output: Any, schema: Schema | None = None) -> list[tuple[str, np.ndarray]]:
    """A prediction as named arrays, named as the JSON codec names its output tensors."""
    module = type(output).__module__
    if module.startswith("pandas") and type(output).__name__ == "DataFrame":
        return [(str(c), output.iloc[:, i].to_numpy()) for i, c in enumerate(output.columns)]
    if module.startswith("pandas") and type(output).__name__ == "Series":
        name = str(output.name) if output.name is not None else _output_name(schema)
        return [(name, output.to_numpy())]
    if isinstance(output, dict):
        return [(str(k), np.asarray(v)) for k, v in output.items()]
    return [(_output_name(schema), np.asarray(output))]


def _output_name(schema: Schema | None) -> str:
    if schema is not None and len(schema.inputs) and schema.inputs[0].name is not None:
        return str(schema.inputs[0].name)
    return "output-0"


def encode_infer(output: Any, *, model_name: str, model_version: str | None,
                 request: v2.InferRequest,
                 output_schema: Schema | None = None) -> pb.ModelInferResponse:
    """The ``ModelInferResponse`` to a prediction, values in ``raw_output_contents``.

    Raises:
        InputFormatError: the request asked for an output the model does not return.
    """
    arrays = output_arrays(output, output_schema)
    if request.outputs:
        by_name = dict(arrays)
        unknown = [n for n in request.outputs if n not in by_name]
        if unknown:
            raise InputFormatError(f"unknown outputs {[n[:100] for n in unknown[:10]]}; the "
                                   f"model returns {list(by_name)[:20]}")
        arrays = [(n, by_name[n]) for n in request.outputs]
    reply = pb.ModelInferResponse(model_name=model_name, model_version=model_version or "",
                                  id=request.id or "")
    for name, arr in arrays:
        datatype, raw = tensors.to_raw(arr)
        reply.outputs.add(name=name, datatype=datatype, shape=arr.shape)
        reply.raw_output_contents.append(raw)
    return reply


def server_metadata(meta: Mapping[str, Any]) -> pb.ServerMetadataResponse:
    """``ServerMetadata`` from the JSON endpoint's dictionary (``v2.server_metadata()``)."""
    return pb.ServerMetadataResponse(name=meta["name"], version=meta["version"],
                                     extensions=meta.get("extensions", []))


def model_metadata(meta: Mapping[str, Any]) -> pb.ModelMetadataResponse:
    """``ModelMetadata`` from the JSON endpoint's dictionary (``v2.model_metadata()``)."""
    reply = pb.ModelMetadataResponse(name=meta["name"], versions=meta.get("versions", []),
                                     platform=meta.get("platform", ""))
    for key, items in (("inputs", reply.inputs), ("outputs", reply.outputs)):
        for t in meta.get(key, []):
            items.add(name=t["name"], datatype=t["datatype"], shape=t["shape"])
    return reply


def model_config(config: Mapping[str, Any]) -> pb.ModelConfigResponse:
    """``ModelConfig`` from the JSON document (``v2_config.model_config()``): the document
    is protobuf's JSON form of the message, so it converts field for field (a key the
    message lacks is an error here, never a silently dropped field)."""
    return pb.ModelConfigResponse(config=json_format.ParseDict(config, pb.ModelConfig()))


def model_statistics(stats: Mapping[str, Any]) -> pb.ModelStatisticsResponse:
    """``ModelStatistics`` from the JSON document (``{"model_stats": [...]}``)."""
    reply = pb.ModelStatisticsResponse()
    json_format.ParseDict(stats, reply)
    return reply


def stream_error(request: pb.ModelInferRequest, message: str) -> pb.ModelStreamInferResponse:
    """The answer on a ``ModelStreamInfer`` stream to a request that failed: the error,
    and the request's model and id so a client can tell which request it was."""
    return pb.ModelStreamInferResponse(
        error_message=message,
        infer_response=pb.ModelInferResponse(model_name=request.model_name[:200],
                                             model_version=request.model_version[:200],
                                             id=request.id[:200]))


def repository_index(entries: Iterable[Mapping[str, Any]]) -> pb.RepositoryIndexResponse:
    """``RepositoryIndex`` from the JSON index's entries (name, version, state, reason)."""
    reply = pb.RepositoryIndexResponse()
    for e in entries:
        reply.models.add(name=e["name"], version=e.get("version") or "",
                         state=e.get("state", ""), reason=e.get("reason") or "")
    return reply


def refuse_load_parameters(params: Mapping[str, Any], model: str,
                           allowed: frozenset[str] = frozenset()) -> None:
    """satchel loads a model from its own directory: Triton's ``config`` and ``file:``
    overrides (or any other load parameter not in ``allowed``) are refused, by name."""
    unknown = sorted(k[:40] for k in params if k not in allowed)
    if unknown:
        raise InputFormatError(f"load of '{model[:100]}': parameters {unknown[:10]} are not "
                               "supported; satchel loads a model from its directory as it is")


# tritonclient's unload_model always sends it; satchel models have no dependents to unload
UNLOAD_PARAMETERS = frozenset({"unload_dependents"})


# --- the codec ---------------------------------------------------------------------------


class GrpcProtocol(Protocol):
    """``ModelInfer`` of ``inference.GRPCInferenceService``: protobuf messages in and out
    (the transport serializes them; errors are a status, set by the transport)."""

    name = "grpc"

    def size(self, message: Any) -> int:
        # The tensors' bytes: what decoding costs (ByteSize() would walk the message).
        return sum(len(raw) for raw in message.raw_input_contents) or 64 * len(message.inputs)

    def decode(self, served: ServedModel, message: Any, inbound: Inbound) -> Decoded:
        sig = served.require().signature
        request = decode_infer(message, sig.inputs if sig is not None else None)
        return Decoded(request.data, request.params, request)

    def encode(self, served: ServedModel, decoded: Decoded, prediction: Prediction) -> Reply:
        sig = served.require().signature
        body = encode_infer(prediction.output, model_name=served.name,
                            model_version=served.version, request=decoded.context,
                            output_schema=sig.outputs if sig is not None else None)
        return reply_of(prediction, body, "application/grpc")

    def error_body(self, message: str, code: str, extra: Mapping[str, Any] | None = None
                   ) -> bytes:
        # gRPC carries an error as a status code and a message, never a body.
        return b""


GRPC = GrpcProtocol()
