"""The Open Inference Protocol as pure functions: metadata, decoding, encoding."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

import satchel
from satchel.errors import InputFormatError
from satchel.schema import ColSpec, DataType, Schema, Signature, TensorSpec
from satchel.serving.protocols import v2

COLS = Schema([ColSpec(DataType.double, "x"), ColSpec(DataType.string, "s"),
               ColSpec(DataType.binary, "b", required=False),
               ColSpec(DataType.datetime, "t"), ColSpec(DataType.boolean, "f"),
               ColSpec(DataType.integer, "i"), ColSpec(DataType.float, "g")])


def test_server_metadata() -> None:
    assert v2.server_metadata() == {"name": "satchel", "version": satchel.__version__,
                                    "extensions": ["binary_tensor_data"]}


def test_column_metadata_follows_mlservers_type_table() -> None:
    meta = v2.model_metadata("m", "3", Signature(inputs=COLS), "sklearn")
    assert meta["versions"] == ["3"] and meta["parameters"] == {"content_type": "pd"}
    got = [(i["name"], i["datatype"], i["shape"], i["parameters"]["content_type"])
           for i in meta["inputs"]]
    assert got == [("x", "FP64", [-1], "np"), ("s", "BYTES", [-1], "str"),
                   ("b", "BYTES", [-1], "base64"), ("t", "BYTES", [-1], "datetime"),
                   ("f", "BOOL", [-1], "np"), ("i", "INT32", [-1], "np"),
                   ("g", "FP32", [-1], "np")]
    assert meta["inputs"][2]["optional"] is True
    assert meta["outputs"] == []


def test_tensor_metadata() -> None:
    one = Schema([TensorSpec("uint8", (-1, 28, 28))])
    named = Schema([TensorSpec("float16", (-1,), "a"), TensorSpec("int8", (2,), "b")])
    assert v2.model_metadata("m", None, Signature(inputs=one, outputs=named), "onnx") == {
        "name": "m", "versions": [], "platform": "onnx",
        "inputs": [{"name": "input-0", "datatype": "UINT8", "shape": [-1, 28, 28]}],
        "outputs": [{"name": "a", "datatype": "FP16", "shape": [-1]},
                    {"name": "b", "datatype": "INT8", "shape": [2]}],
        "parameters": {"content_type": "np"}}
    assert v2.model_metadata("m", None, None, "python")["inputs"] == []


def _request(inputs: list[dict[str, Any]], **extra: Any) -> bytes:
    return json.dumps({"inputs": inputs, **extra}).encode()


def test_decode_columns_to_a_dataframe() -> None:
    stamp = "2024-01-02T03:04:05"
    req = v2.decode_infer(_request([
        {"name": "x", "shape": [2], "datatype": "FP32", "data": [1.5, 2]},
        {"name": "s", "shape": [2, 1], "datatype": "BYTES", "data": [["a"], ["b"]]},
        {"name": "b", "shape": [2], "datatype": "BYTES",
         "data": [base64.b64encode(b"\x00").decode(), "aGk="]},
        {"name": "t", "shape": [2], "datatype": "BYTES", "data": [stamp, stamp]},
        {"name": "f", "shape": [2], "datatype": "BOOL", "data": [True, False]},
        {"name": "i", "shape": [2], "datatype": "INT16", "data": [1, -2]},
    ], id="r1", outputs=[{"name": "y"}], parameters={"k": 1, "content_type": "pd"}), COLS)
    df = req.data
    assert isinstance(df, pd.DataFrame) and list(df.columns) == ["x", "s", "b", "t", "f", "i"]
    assert df["x"].dtype == np.float32 and df["i"].dtype == np.int16
    assert df["s"].tolist() == ["a", "b"] and df["b"].tolist() == [b"\x00", b"hi"]
    assert df["f"].tolist() == [True, False] and df["t"].tolist() == [stamp, stamp]
    assert req.id == "r1" and req.outputs == ("y",) and req.params == {"k": 1}


def test_binary_column_as_plain_text() -> None:
    req = v2.decode_infer(_request([{"name": "b", "shape": [1], "datatype": "BYTES",
                                     "data": ["hi"], "parameters": {"content_type": "str"}}]),
                          COLS)
    assert req.data["b"].tolist() == [b"hi"]
    with pytest.raises(InputFormatError, match="base64"):
        v2.decode_infer(_request([{"name": "b", "shape": [1], "datatype": "BYTES",
                                   "data": ["not base64!"]}]), COLS)


def test_unnamed_columns_are_positional() -> None:
    schema = Schema([ColSpec(DataType.double), ColSpec(DataType.double)])
    req = v2.decode_infer(_request([
        {"name": "input-0", "shape": [1], "datatype": "FP64", "data": [1]},
        {"name": "input-1", "shape": [1], "datatype": "FP64", "data": [2]}]), schema)
    assert list(req.data.columns) == ["0", "1"]


def test_decode_tensors() -> None:
    one = Schema([TensorSpec("float32", (-1, 3))])
    req = v2.decode_infer(_request([{"name": "anything", "shape": [2, 3], "datatype": "FP64",
                                     "data": [1, 2, 3, 4, 5, 6]}]), one)
    assert isinstance(req.data, np.ndarray) and req.data.shape == (2, 3)
    assert req.data.dtype == np.float64  # the wire type; the policy casts later
    named = Schema([TensorSpec("float64", (-1, 2), "a"), TensorSpec("int64", (-1,), "b")])
    req = v2.decode_infer(_request([
        {"name": "a", "shape": [1, 2], "datatype": "FP64", "data": [[1, 2]]},
        {"name": "b", "shape": [1], "datatype": "UINT8", "data": [7]}]), named)
    assert set(req.data) == {"a", "b"} and req.data["b"].dtype == np.uint8
    forced = v2.decode_infer(_request([
        {"name": "a", "shape": [1], "datatype": "FP64", "data": [1]},
        {"name": "b", "shape": [1], "datatype": "FP64", "data": [2]}],
        parameters={"content_type": "dict"}), None)
    assert isinstance(forced.data, dict)


def test_no_schema_guesses_from_the_count() -> None:
    one = v2.decode_infer(_request([{"name": "a", "shape": [1], "datatype": "INT64",
                                     "data": [1]}]), None)
    two = v2.decode_infer(_request([
        {"name": "a", "shape": [1], "datatype": "INT64", "data": [1]},
        {"name": "b", "shape": [1], "datatype": "INT64", "data": [2]}]), None)
    assert isinstance(one.data, np.ndarray) and isinstance(two.data, pd.DataFrame)


@pytest.mark.parametrize(("datatype", "data", "dtype"), [
    ("BOOL", [True], np.bool_), ("UINT64", [2**63], np.uint64), ("INT64", [-(2**63)], np.int64),
    ("FP16", [1.5], np.float16), ("FP32", [1], np.float32), ("BYTES", ["a"], object),
    ("INT32", [], np.int32),
])
def test_wire_datatypes(datatype: str, data: list[Any], dtype: Any) -> None:
    arr = v2.wire_array(data, datatype, "input 'x'")
    assert arr.dtype == np.dtype(dtype) and arr.tolist() == data


@pytest.mark.parametrize(("item", "needle"), [
    ({"shape": [1], "datatype": "FP64", "data": [1]}, "needs a 'name'"),
    ({"name": "x", "shape": [-1], "datatype": "FP64", "data": [1]}, "non-negative"),
    ({"name": "x", "shape": [1], "datatype": "FLOAT64", "data": [1]}, "not one of"),
    ({"name": "x", "shape": [1], "datatype": "FP64"}, "'data' is missing"),
    ({"name": "x", "shape": [2], "datatype": "FP64", "data": [1]}, "holds 2 values"),
    ({"name": "x", "shape": [1], "datatype": "UINT8", "data": [-1]}, "UINT8 range"),
    ({"name": "x", "shape": [1], "datatype": "INT32", "data": [1.5]}, "must be integers"),
    ({"name": "x", "shape": [1], "datatype": "BOOL", "data": [1]}, "true/false"),
    ({"name": "x", "shape": [1], "datatype": "BYTES", "data": [1]}, "must be strings"),
    ({"name": "x", "shape": [2], "datatype": "FP64", "data": [[1], [2, 3]]}, "regular"),
])
def test_tensor_errors(item: dict[str, Any], needle: str) -> None:
    with pytest.raises(InputFormatError) as err:
        v2.decode_infer(_request([item]), None)
    assert needle in str(err.value)


@pytest.mark.parametrize(("body", "needle"), [
    (b"[]", "JSON object"), (b'{"inputs": []}', "non-empty"), (b"{", "malformed JSON"),
    (b'{"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1]}], "id": 3}',
     "'id'"),
    (b'{"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1]}], '
     b'"parameters": {"content_type": "xml"}}', "content_type"),
    (b'{"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1]}], '
     b'"outputs": ["a"]}', "'outputs'"),
])
def test_request_errors(body: bytes, needle: str) -> None:
    with pytest.raises(InputFormatError) as err:
        v2.decode_infer(body, None)
    assert needle in str(err.value)


def test_shape_errors_for_columns_and_one_tensor() -> None:
    with pytest.raises(InputFormatError, match=r"shape \[N\] or \[N, 1\]"):
        v2.decode_infer(_request([{"name": "x", "shape": [1, 2], "datatype": "FP64",
                                   "data": [1, 2]}]), COLS)
    with pytest.raises(InputFormatError, match="different lengths"):
        v2.decode_infer(_request([
            {"name": "x", "shape": [1], "datatype": "FP64", "data": [1]},
            {"name": "i", "shape": [2], "datatype": "INT32", "data": [1, 2]}]), COLS)
    with pytest.raises(InputFormatError, match="takes one tensor"):
        v2.decode_infer(_request([
            {"name": "a", "shape": [1], "datatype": "FP64", "data": [1]},
            {"name": "b", "shape": [1], "datatype": "FP64", "data": [1]}]),
            Schema([TensorSpec("float64", (-1,))]))


def test_encode_response() -> None:
    req = v2.InferRequest(None, None, "abc")
    reply = json.loads(v2.encode_infer(np.array([[1.0, np.nan]], dtype=np.float32),
                                       model_name="m", model_version="2", request=req))
    assert reply == {"model_name": "m", "model_version": "2", "id": "abc", "parameters": {},
                     "outputs": [{"name": "output-0", "datatype": "FP32", "shape": [1, 2],
                                  "data": [1.0, None]}]}


def test_encode_frames_dicts_and_named_outputs() -> None:
    frame = pd.DataFrame({"label": ["a", "b"], "p": [0.5, 0.25]})
    tensors = v2.output_tensors(frame)
    assert tensors == [
        {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]},
        {"name": "p", "datatype": "FP64", "shape": [2], "data": [0.5, 0.25]}]
    out = v2.output_tensors({"k": np.array([1], dtype=np.uint16)})
    assert out == [{"name": "k", "datatype": "UINT16", "shape": [1], "data": [1]}]
    named = Schema([TensorSpec("int64", (-1,), "label")])
    assert v2.output_tensors(np.array([3]), named)[0]["name"] == "label"
    assert v2.output_tensors(pd.Series([True]))[0]["datatype"] == "BOOL"


def test_unknown_requested_output() -> None:
    req = v2.InferRequest(None, None, "x", ("nope",))
    with pytest.raises(InputFormatError, match="nope"):
        v2.encode_infer(np.array([1]), model_name="m", model_version=None, request=req)


def test_numeric_columns_become_one_block_with_the_same_values() -> None:
    from satchel.serving.protocols.v2 import decode_infer

    names = ["b", "a", "c"]  # not sorted: the request's order is kept
    schema = Schema([ColSpec(DataType.double, n) for n in names])
    cols = {n: [float(i * 10 + j) for j in range(4)] for i, n in enumerate(names)}
    body = json.dumps({"inputs": [{"name": n, "shape": [4], "datatype": "FP64", "data": v}
                                  for n, v in cols.items()]}).encode()
    frame = decode_infer(body, schema).data
    assert list(frame.columns) == names and len(frame._mgr.blocks) == 1
    assert all(frame[n].tolist() == v for n, v in cols.items())
    assert all(str(t) == "float64" for t in frame.dtypes)
    # mixed wire types keep a dtype per column, as before
    mixed = json.dumps({"inputs": [
        {"name": "b", "shape": [2], "datatype": "FP64", "data": [1.5, 2.5]},
        {"name": "a", "shape": [2], "datatype": "INT64", "data": [1, 2]},
        {"name": "c", "shape": [2, 1], "datatype": "FP32", "data": [[1.0], [2.0]]}]}).encode()
    got = decode_infer(mixed, schema).data
    assert [str(t) for t in got.dtypes] == ["float64", "int64", "float32"]
    assert got["a"].tolist() == [1, 2] and got["c"].tolist() == [1.0, 2.0]


@pytest.mark.parametrize("datatype", ["FP64", "FP32"])
def test_float_columns_read_as_the_general_path_reads_them(datatype: str) -> None:
    from satchel.serving.protocols.v2 import decode_infer

    names = ["b", "a", "c"]
    schema = Schema([ColSpec(DataType.double, n) for n in names])
    values = [[1.5, 2.0, -3.25], [4, 5, 6], [0.1, 1e300, 7.0]]  # ints widen, as before

    def request(extra: dict[str, Any]) -> bytes:
        return json.dumps({"inputs": [
            {"name": n, "shape": [3], "datatype": datatype, "data": v, **extra}
            for n, v in zip(names, values)]}).encode()

    from satchel.serving.protocols.v2_tensors import float_columns

    assert float_columns(json.loads(request({}))["inputs"]) is not None
    assert float_columns(json.loads(request({"parameters": {}}))["inputs"]) is None
    fast = decode_infer(request({}), schema).data
    general = decode_infer(request({"parameters": {}}), schema).data  # not the fast path
    pd.testing.assert_frame_equal(fast, general)
    assert list(fast.columns) == names


@pytest.mark.parametrize("odd", [[True, False], ["1.5", 2.0], [[1.0], 2.0], [1.0],
                                 [True, 2.0], [1, 2**70], [None, 1.0]])
def test_float_columns_answer_odd_data_as_the_general_path_does(odd: list[Any]) -> None:
    from satchel.serving.protocols.v2 import decode_infer

    schema = Schema([ColSpec(DataType.double, "a"), ColSpec(DataType.double, "b")])

    def outcome(extra: dict[str, Any]) -> Any:
        body = json.dumps({"inputs": [
            {"name": "a", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0], **extra},
            {"name": "b", "shape": [2], "datatype": "FP64", "data": odd, **extra}]}).encode()
        try:
            return decode_infer(body, schema).data.to_dict("list")
        except InputFormatError as exc:
            return str(exc)

    assert outcome({}) == outcome({"parameters": {}})  # fast path == general path


@pytest.mark.parametrize("datatype, values", [
    ("INT64", [[1, 2], [3, -4]]), ("INT32", [[1, 2], [3, 2**31]]),  # past INT32: refused
    ("UINT8", [[1, 2], [3, -1]]), ("INT64", [[1, 2], [3, 2.5]]), ("FP16", [[1, 2], [3, 0.5]]),
    ("UINT64", [[1, 2], [3, 2**64 - 1]]), ("INT64", [[1, 2], [3, 2**63]])])
def test_integer_and_half_columns_read_as_the_general_path_reads_them(
        datatype: str, values: list[list[Any]]) -> None:
    from satchel.serving.protocols.v2 import decode_infer

    schema = Schema([ColSpec(DataType.long, "a"), ColSpec(DataType.long, "b")])

    def outcome(extra: dict[str, Any]) -> Any:
        body = json.dumps({"inputs": [
            {"name": n, "shape": [2], "datatype": datatype, "data": v, **extra}
            for n, v in zip("ab", values)]}).encode()
        try:
            frame = decode_infer(body, schema).data
            return frame.to_dict("list"), [str(t) for t in frame.dtypes]
        except InputFormatError as exc:
            return str(exc)

    assert outcome({}) == outcome({"parameters": {}})


@pytest.mark.parametrize("change", [
    {"shape": [True]}, {"shape": [1.0]}, {"shape": [2]}, {"shape": [1, 1]}, {"shape": 1},
    {"name": ""}, {"name": 3}, {"name": "a"}, {"data": 1.5}, {"data": [[1.5]]},
    {"data": [1.5, 2.5]}, {"data": "1"}, {"data": {"x": 1.0}}, {"datatype": "FP32"},
    {"datatype": "BOOL", "data": [True]}, {"datatype": "BYTES", "data": ["x"]}])
def test_odd_tensors_answer_as_the_general_path_does(change: dict[str, Any]) -> None:
    from satchel.serving.protocols.v2 import decode_infer
    from satchel.serving.protocols.v2_tensors import float_columns

    schema = Schema([ColSpec(DataType.double, n) for n in "abc"])

    def body(extra: dict[str, Any]) -> bytes:
        inputs: list[dict[str, Any]] = [
            {"name": n, "shape": [1], "datatype": "FP64", "data": [0.5], **extra} for n in "abc"]
        inputs[1].update(change)
        return json.dumps({"inputs": inputs}).encode()

    def outcome(extra: dict[str, Any]) -> Any:
        try:
            frame = decode_infer(body(extra), schema).data
            return frame.to_dict("list"), [str(t) for t in frame.dtypes]
        except InputFormatError as exc:
            return str(exc)

    assert float_columns(json.loads(body({}))["inputs"]) is None
    assert outcome({}) == outcome({"parameters": {}})


@pytest.mark.parametrize("change", [
    {"datatype": ["FP64"]}, {"datatype": {"t": "FP64"}}, {"datatype": None},
    {"name": ["a"]}, {"name": {"n": 1}}, {"shape": [[1]]}, {"shape": [{"d": 1}]},
    {"shape": None}, {"data": None}])
def test_hostile_field_types_in_every_column_are_a_400_naming_the_field(
        change: dict[str, Any]) -> None:
    """JSON values of another type (lists and objects are unhashable) in the first
    column or in all of them: the column fast path steps aside, the general path names
    the field; never a TypeError (a 500)."""
    from satchel.serving.protocols.v2 import decode_infer
    from satchel.serving.protocols.v2_tensors import float_columns

    schema = Schema([ColSpec(DataType.double, n) for n in "abc"])
    for first_only in (True, False):
        inputs: list[dict[str, Any]] = [
            {"name": n, "shape": [1], "datatype": "FP64", "data": [0.5]} for n in "abc"]
        for item in inputs[:1] if first_only else inputs:
            item.update(change)
        body = json.dumps({"inputs": inputs}).encode()
        assert float_columns(json.loads(body)["inputs"]) is None
        with pytest.raises(InputFormatError, match=next(iter(change))):
            decode_infer(body, schema)


def test_column_names_seen_before_are_still_checked_per_request() -> None:
    """The fast path remembers names it has checked; a request repeating them with a
    duplicate or an empty name is still refused as the general path refuses it."""
    from satchel.serving.protocols.v2 import decode_infer

    schema = Schema([ColSpec(DataType.double, n) for n in "abc"])

    def body(names: str | list[str]) -> bytes:
        return json.dumps({"inputs": [{"name": n, "shape": [1], "datatype": "FP64",
                                       "data": [float(i)]} for i, n in enumerate(names)]
                           }).encode()

    for _ in range(2):
        assert decode_infer(body("abc"), schema).data.values.tolist() == [[0.0, 1.0, 2.0]]
    with pytest.raises(InputFormatError, match="'a' is given twice"):
        decode_infer(body("aab"), schema)
    with pytest.raises(InputFormatError, match="needs a 'name'"):
        decode_infer(body(["a", "", "b"]), schema)


@pytest.mark.parametrize("output", [
    np.array([1.5, np.nan, np.inf, -np.inf, 1e-300, 0.1]),
    np.array([[1, -2], [3, 2**62]], dtype=np.int64), np.array([2**64 - 1], dtype=np.uint64),
    np.array([True, False]), np.array([0.1, 1 / 3], dtype=np.float32),
    np.array([0.5], dtype=np.float16), np.array([1.5, 2.5], dtype=">f8"),
    np.array([2**70, 1], dtype=object), np.array(["é", "\ud800"], dtype=object),
    np.array(["2024-01-02"], dtype="datetime64[D]"),
    pd.DataFrame({"a": [1.5, np.nan], "b": [1, 2], "c": ["x", "y"]}),
    pd.DataFrame(np.arange(6.0).reshape(3, 2), columns=["p", "q"]),  # strided columns
    {"x": np.array([1, 2]), "y": np.array([[0.25, 0.75]])}])
def test_replies_written_by_orjson_read_as_the_json_modules(
        output: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from satchel.serving.protocols import v2

    request = v2.InferRequest(None, None, id="r1")

    def reply() -> Any:
        body = v2.encode_infer(output, model_name="m", model_version=None, request=request)
        return json.loads(body)

    fast = reply()
    monkeypatch.setattr(v2, "_ORJSON", None)
    assert fast == reply()
