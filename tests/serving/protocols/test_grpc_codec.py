"""The gRPC codec and its .proto: wire compatibility with tritonclient's own generated
messages, decoding of raw and typed contents, and the hostile cases of each."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from satchel.errors import InputFormatError
from satchel.schema import ColSpec, DataType, Schema, TensorSpec
from satchel.serving.protocols import grpc as codec
from satchel.serving.protocols.grpc import pb

triton_pb = pytest.importorskip("tritonclient.grpc.service_pb2")

PROTO = Path(__file__).resolve().parents[3] / "serving" / "protocols" / "satchel_inference.proto"
COLUMNS = Schema([ColSpec(DataType.double, "x"), ColSpec(DataType.string, "city"),
                  ColSpec(DataType.binary, "blob")])


def _fields(desc: Any) -> dict[str, tuple[int, int, bool, str | None]]:
    return {f.name: (f.number, f.type, f.is_repeated,
                     f.message_type.name if f.message_type else None) for f in desc.fields}


def _check_same_wire(ours: Any, theirs: Any, where: str) -> None:
    mine, triton = _fields(ours), _fields(theirs)
    for name, spec in mine.items():
        assert name in triton, f"{where}.{name} is not in tritonclient's message"
        assert spec == triton[name], f"{where}.{name}: ours {spec}, tritonclient {triton[name]}"
        field = ours.fields_by_name[name]
        if field.message_type is not None:
            _check_same_wire(field.message_type, theirs.fields_by_name[name].message_type,
                             f"{where}.{name}")


def _theirs(name: str) -> Any:
    """tritonclient's message ``inference.<name>`` (service or model configuration file)."""
    from google.protobuf import descriptor_pool

    pytest.importorskip("tritonclient.grpc.model_config_pb2")
    return descriptor_pool.Default().FindMessageTypeByName(f"inference.{name}")


def test_every_message_matches_tritonclient_field_for_field() -> None:
    ours = pb.DESCRIPTOR
    assert ours.package == "satchel.inference"  # never clashes with inference.* in one pool
    assert {"ModelConfig", "ModelStatistics", "ModelStreamInferResponse"} <= set(
        ours.message_types_by_name)
    for name, desc in ours.message_types_by_name.items():
        _check_same_wire(desc, _theirs(name), name)


def test_data_type_enum_matches_tritonclient() -> None:
    from google.protobuf import descriptor_pool

    pytest.importorskip("tritonclient.grpc.model_config_pb2")
    theirs = descriptor_pool.Default().FindEnumTypeByName("inference.DataType")
    ours = pb.DESCRIPTOR.enum_types_by_name["DataType"]
    assert [(v.name, v.number) for v in ours.values] == [
        (v.name, v.number) for v in theirs.values]


def test_service_methods_match_tritonclient() -> None:
    ours = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    theirs = triton_pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert codec.SERVICE == theirs.full_name == "inference.GRPCInferenceService"
    for method in ours.methods:
        other = theirs.methods_by_name[method.name]
        assert (method.input_type.name, method.output_type.name) == (
            other.input_type.name, other.output_type.name)
        assert (method.client_streaming, method.server_streaming) == (
            other.client_streaming, other.server_streaming)
    assert ours.methods_by_name["ModelStreamInfer"].client_streaming


def test_config_and_statistics_documents_convert_to_tritonclients_messages() -> None:
    """The JSON documents become our messages, which tritonclient's classes read back
    field for field (what get_model_config / get_inference_statistics return)."""
    from satchel.serving.protocols import v2_config

    meta = {"name": "m", "platform": "sklearn",
            "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1], "optional": True},
                       {"name": "s", "datatype": "BYTES", "shape": [-1]}],
            "outputs": [{"name": "y", "datatype": "INT64", "shape": [-1, 3]}]}
    doc = v2_config.model_config(meta, v2_config.Batching(2.5, 64))
    reply = codec.model_config(doc)
    theirs = triton_pb.ModelConfigResponse.FromString(reply.SerializeToString()).config
    assert (theirs.name, theirs.platform, theirs.backend, theirs.max_batch_size) == (
        "m", "sklearn", "satchel", 0)
    assert [(i.name, i.data_type, list(i.dims), i.optional) for i in theirs.input] == [
        ("x", 12, [-1], True), ("s", 13, [-1], False)]  # TYPE_FP64, TYPE_STRING
    assert [(o.name, o.data_type, list(o.dims)) for o in theirs.output] == [("y", 9, [-1, 3])]
    assert theirs.dynamic_batching.max_queue_delay_microseconds == 2500
    assert theirs.parameters["max_batch_rows"].string_value == "64"
    assert not codec.model_config(v2_config.model_config(meta, None)).config.HasField(
        "dynamic_batching")

    counts = v2_config.Counts(success=(3, 0.5), fail=(1, 0.25), compute=(2, 0.125), rows=30,
                              last=1700000000.25)
    stats = codec.model_statistics({"model_stats": [v2_config.model_statistics("m", "2",
                                                                               counts)]})
    got = triton_pb.ModelStatisticsResponse.FromString(stats.SerializeToString()).model_stats[0]
    assert (got.name, got.version, got.last_inference, got.inference_count,
            got.execution_count) == ("m", "2", 1700000000250, 30, 2)
    s = got.inference_stats
    assert (s.success.count, s.success.ns, s.fail.count, s.fail.ns) == (3, 500_000_000, 1,
                                                                         250_000_000)
    assert (s.compute_infer.count, s.compute_infer.ns, s.queue.count) == (3, 0, 3)
    timed = v2_config.Counts(
        success=(3, 0.5), compute=(2, 0.125), memory=4096,
        stages={"queue": 0.001, "compute_input": 0.002, "compute_infer": 0.125,
                "compute_output": 0.003},
        batches=(v2_config.BatchCounts(100, 1, {"compute_infer": 0.1}),
                 v2_config.BatchCounts(1, 2, {"compute_input": 0.5, "compute_infer": 0.25})))
    stats = codec.model_statistics({"model_stats": [v2_config.model_statistics("m", "2",
                                                                               timed)]})
    got = triton_pb.ModelStatisticsResponse.FromString(stats.SerializeToString()).model_stats[0]
    s = got.inference_stats
    assert [(d.count, d.ns) for d in (s.queue, s.compute_input, s.compute_infer,
                                      s.compute_output)] == [
        (3, 1_000_000), (3, 2_000_000), (3, 125_000_000), (3, 3_000_000)]
    assert [(b.batch_size, b.compute_input.count, b.compute_input.ns, b.compute_infer.ns,
             b.compute_output.count) for b in got.batch_stats] == [
        (1, 2, 500_000_000, 250_000_000, 2), (100, 1, 0, 100_000_000, 1)]
    assert [(m.type, m.id, m.byte_size) for m in got.memory_usage] == [("CPU", 0, 4096)]


def test_a_document_key_the_message_lacks_is_an_error() -> None:
    from google.protobuf.json_format import ParseError

    with pytest.raises(ParseError, match="nope"):
        codec.model_config({"name": "m", "nope": 1})


def test_stream_error_names_the_request() -> None:
    request = pb.ModelInferRequest(model_name="m", model_version="1", id="r9")
    answer = codec.stream_error(request, "bad tensor")
    assert answer.error_message == "bad tensor"
    assert (answer.infer_response.model_name, answer.infer_response.id) == ("m", "r9")
    assert not answer.infer_response.outputs


def test_checked_in_module_is_generated_from_the_proto(tmp_path: Path) -> None:
    """The generated module describes exactly what the .proto says (protoc's version may
    differ: the descriptors are compared, not the files)."""
    protoc = pytest.importorskip("grpc_tools.protoc")
    from google.protobuf import descriptor_pb2

    out = tmp_path / "set.pb"
    rc = protoc.main(["protoc", f"-I{PROTO.parent}", f"--descriptor_set_out={out}",
                      str(PROTO)])
    assert rc == 0
    fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    current = descriptor_pb2.FileDescriptorProto()
    pb.DESCRIPTOR.CopyToProto(current)
    fresh.ClearField("source_code_info")
    for message in _all_messages(fresh.message_type):  # protoc adds JSON names here only
        for field in message.field:
            field.ClearField("json_name")
    assert current == fresh, "run scripts/gen_grpc.sh: the _pb2 module is stale"


def _all_messages(messages: Any) -> list[Any]:
    out = []
    for message in messages:
        out += [message, *_all_messages(message.nested_type)]
    return out


# --- decoding ----------------------------------------------------------------------------


def _triton_request(**inputs: np.ndarray) -> Any:
    """A request as tritonclient builds it (its own message classes, raw contents)."""
    import tritonclient.grpc as tg

    request = triton_pb.ModelInferRequest(model_name="m", id="r1")
    for name, arr in inputs.items():
        datatype = tg.np_to_triton_dtype(arr.dtype)
        tensor = tg.InferInput(name, list(arr.shape), datatype)
        tensor.set_data_from_numpy(arr)
        request.inputs.append(tensor._get_tensor())
        request.raw_input_contents.append(tensor._get_content())
    return request


def _ours(request: Any) -> Any:
    return pb.ModelInferRequest.FromString(request.SerializeToString())


def test_tritonclient_raw_request_decodes_to_a_frame() -> None:
    request = _triton_request(x=np.array([1.5, 2.5]), city=np.array(["Zürich", "Oslo"],
                                                                    dtype=object),
                              blob=np.array([b"\x00\xff", b""], dtype=object))
    decoded = codec.decode_infer(_ours(request), COLUMNS)
    assert isinstance(decoded.data, pd.DataFrame)
    assert decoded.data["x"].tolist() == [1.5, 2.5]
    assert decoded.data["city"].tolist() == ["Zürich", "Oslo"]  # text columns become str
    assert decoded.data["blob"].tolist() == [b"\x00\xff", b""]  # binary columns stay bytes
    assert decoded.id == "r1" and decoded.params is None


NUMBERS = Schema([ColSpec(DataType.double, "a"), ColSpec(DataType.double, "b"),
                  ColSpec(DataType.double, "c")])


@pytest.mark.parametrize("rows", [0, 1, 7])
def test_raw_numeric_columns_decode_in_one_block(rows: int) -> None:
    """tritonclient's request for a numeric column model: one block of the columns in the
    order sent, the values as sent, and a writable frame the model may change."""
    data = np.arange(rows * 3, dtype=np.float64).reshape(3, rows) + 0.5
    request = _ours(_triton_request(c=data[0], a=data[1], b=data[2]))
    frame = codec.decode_infer(request, NUMBERS).data
    expected = pd.DataFrame({"c": data[0], "a": data[1], "b": data[2]})
    pd.testing.assert_frame_equal(frame, expected)
    assert frame._mgr.nblocks == 1  # one array for the model, as _one_block_frame gives
    frame.iloc[:, 0] = 1.0  # not a read-only view of the message's bytes
    column = _ours(_triton_request(a=data[0].reshape(rows, 1), b=data[1].reshape(rows, 1)))
    assert codec.decode_infer(column, NUMBERS).data["b"].tolist() == data[1].tolist()


@pytest.mark.parametrize(("mutate", "outcome"), [
    # each of these leaves the one-block path; the general path decodes or names the error
    (lambda r: setattr(r.inputs[1], "name", "a"), "'a' is given twice"),
    (lambda r: setattr(r.inputs[1], "name", ""), "inputs[1] needs a 'name'"),
    (lambda r: r.inputs[1].shape.__setitem__(0, 3), "takes 24 bytes, but its raw contents"),
    (lambda r: r.inputs[1].shape.__setitem__(0, -2), "negative dimension"),
    (lambda r: r.raw_input_contents.__setitem__(2, bytes(8)), "takes 16 bytes"),
    (lambda r: setattr(r.inputs[2], "datatype", "INT64"), None),  # mixed types: columns
    (lambda r: setattr(r.inputs[2], "name", "zzz"), None),  # not in the signature
    (lambda r: r.inputs[0].parameters["content_type"].MergeFrom(
        pb.InferParameter(string_param="str")), None),
])
def test_raw_numeric_columns_off_the_one_block_path(mutate: Any, outcome: str | None
                                                    ) -> None:
    request = _ours(_triton_request(a=np.array([1.0, 2.0]), b=np.array([3.0, 4.0]),
                                    c=np.array([5.0, 6.0])))
    mutate(request)
    if outcome is not None:
        with pytest.raises(InputFormatError, match=outcome.replace("[", r"\[")):
            codec.decode_infer(request, NUMBERS)
        return
    frame = codec.decode_infer(request, NUMBERS).data
    assert frame.iloc[:, 0].tolist() == [1.0, 2.0] and len(frame.columns) == 3


def test_typed_contents_decode_like_raw() -> None:
    request = pb.ModelInferRequest(model_name="m")
    t = request.inputs.add(name="input-0", datatype="INT32", shape=[2, 2])
    t.contents.int_contents.extend([1, 2, 3, 4])
    decoded = codec.decode_infer(request, Schema([TensorSpec("int32", (-1, 2))]))
    np.testing.assert_array_equal(decoded.data, np.array([[1, 2], [3, 4]], dtype=np.int32))


def test_parameters_become_model_params_and_outputs_are_kept() -> None:
    request = _ours(_triton_request(x=np.array([1.0])))
    request.parameters["multiplier"].double_param = 2.5
    request.parameters["suffix"].string_param = "!"
    request.parameters["content_type"].string_param = "pd"
    request.outputs.add(name="y")
    decoded = codec.decode_infer(request, None)
    assert decoded.params == {"multiplier": 2.5, "suffix": "!"}
    assert decoded.outputs == ("y",)


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda r: r.ClearField("inputs"), "needs 'inputs'"),
    (lambda r: r.raw_input_contents.append(b"xx"), "raw_input_contents has 2 entries for 1"),
    (lambda r: setattr(r.inputs[0], "datatype", "FLOAT"), "datatype 'FLOAT' is not one of"),
    (lambda r: r.inputs[0].shape.__setitem__(0, -3), "negative dimension"),
    (lambda r: r.inputs[0].shape.__setitem__(0, 3), "takes 24 bytes, but its raw contents have 16"),
    (lambda r: (r.inputs.add(name="x", datatype="FP64", shape=[2]),
                r.raw_input_contents.append(bytes(16))), "is given twice"),
    (lambda r: setattr(r.inputs[0], "name", ""), "inputs[0] needs a 'name'"),
    (lambda r: r.parameters["content_type"].string_param.__len__() or
     r.parameters["content_type"].MergeFrom(pb.InferParameter(string_param="xml")),
     "content_type 'xml' is not supported"),
    (lambda r: r.parameters["empty"].Clear(), "request parameter 'empty' has no value"),
])
def test_hostile_requests_name_the_problem(mutate: Any, message: str) -> None:
    request = _ours(_triton_request(x=np.array([1.0, 2.0])))
    mutate(request)
    with pytest.raises(InputFormatError, match=message.replace("[", r"\[").replace("(", r"\(")):
        codec.decode_infer(request, None)


@pytest.mark.parametrize(("raw", "shape", "message"), [
    (struct.pack("<I", 5) + b"abc", [1], "element 0 declares 5 bytes, past the end"),
    (struct.pack("<I", 1) + b"ab", [1], "1 bytes after its 1 elements"),
    (struct.pack("<I", 1) + b"a", [2], "cannot"),
    (struct.pack("<I", 3) + b"abc\x00", [2], "raw contents end inside element 1"),
    (b"", [10**15], "cannot"),  # a huge count is refused before any allocation
])
def test_hostile_bytes_raw_contents(raw: bytes, shape: list[int], message: str) -> None:
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="s", datatype="BYTES", shape=shape)
    request.raw_input_contents.append(raw)
    with pytest.raises(InputFormatError, match=message):
        codec.decode_infer(request, None)


def test_typed_contents_in_the_wrong_list_or_out_of_range() -> None:
    request = pb.ModelInferRequest(model_name="m")
    t = request.inputs.add(name="a", datatype="INT64", shape=[1])
    t.contents.fp32_contents.append(1.5)
    with pytest.raises(InputFormatError, match="holds its values in 'int64_contents', but the "
                       r"request filled \['fp32_contents'\]"):
        codec.decode_infer(request, None)
    request = pb.ModelInferRequest(model_name="m")
    t = request.inputs.add(name="a", datatype="INT8", shape=[1])
    t.contents.int_contents.append(300)
    with pytest.raises(InputFormatError, match=r"outside the INT8 range \[-128, 127\]"):
        codec.decode_infer(request, None)
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="a", datatype="FP16", shape=[1]).contents.fp32_contents.append(1)
    with pytest.raises(InputFormatError, match="FP16 values travel in raw_input_contents only"):
        codec.decode_infer(request, None)
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="a", datatype="FP64", shape=[3]).contents.fp64_contents.append(1)
    with pytest.raises(InputFormatError, match="holds 3 values, but 'fp64_contents' has 1"):
        codec.decode_infer(request, None)


def test_bool_raw_must_be_zero_or_one_and_text_must_be_utf8() -> None:
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="b", datatype="BOOL", shape=[2])
    request.raw_input_contents.append(b"\x01\x07")
    with pytest.raises(InputFormatError, match="bytes other than 0 and 1"):
        codec.decode_infer(request, None)
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="city", datatype="BYTES", shape=[1])
    request.raw_input_contents.append(struct.pack("<I", 2) + b"\xff\xfe")
    with pytest.raises(InputFormatError, match="input 'city': a BYTES element is not UTF-8"):
        codec.decode_infer(request, COLUMNS)


def test_long_names_are_cut_in_messages() -> None:
    request = _ours(_triton_request(x=np.array([1.0])))
    request.inputs[0].name = "n" * 10_000
    request.inputs[0].datatype = "NOPE"
    with pytest.raises(InputFormatError) as info:
        codec.decode_infer(request, None)
    assert len(str(info.value)) < 400


# --- encoding ----------------------------------------------------------------------------


def test_outputs_travel_raw_and_tritonclient_reads_them() -> None:
    from tritonclient.grpc import InferResult

    output = pd.DataFrame({"y": [1.5, float("nan")], "city": ["a", "Zürich"],
                           "n": np.array([1, 2], dtype=np.int64), "ok": [True, False]})
    request = codec.decode_infer(_ours(_triton_request(x=np.array([1.0, 2.0]))), None)
    reply = codec.encode_infer(output, model_name="m", model_version="3", request=request)
    result = InferResult(triton_pb.ModelInferResponse.FromString(reply.SerializeToString()))
    np.testing.assert_array_equal(result.as_numpy("y"), [1.5, np.nan])
    assert result.as_numpy("city").tolist() == [b"a", "Zürich".encode()]
    assert result.as_numpy("n").dtype == np.int64
    assert result.as_numpy("ok").tolist() == [True, False]
    assert reply.model_version == "3" and reply.id == "r1"


def test_requested_outputs_are_selected_and_unknown_ones_refused() -> None:
    output = {"a": np.arange(3), "b": np.ones((3, 2), dtype=np.float32)}
    request = codec.decode_infer(_ours(_triton_request(x=np.array([1.0]))), None)
    picked = type(request)(request.data, None, None, ("b",))
    reply = codec.encode_infer(output, model_name="m", model_version=None, request=picked)
    assert [o.name for o in reply.outputs] == ["b"]
    assert list(reply.outputs[0].shape) == [3, 2] and reply.outputs[0].datatype == "FP32"
    missing = type(request)(request.data, None, None, ("zzz",))
    with pytest.raises(InputFormatError, match=r"unknown outputs \['zzz'\]"):
        codec.encode_infer(output, model_name="m", model_version=None, request=missing)
