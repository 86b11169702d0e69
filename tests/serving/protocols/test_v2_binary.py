"""The Open Inference Protocol's binary tensor data extension, spoken by the real
``tritonclient.http`` client with its defaults, against real servers; and the hostile
bodies a client could send instead."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pandas as pd
import pytest

tritonclient_http = pytest.importorskip("tritonclient.http")

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]])
FRAME = pd.DataFrame(ROWS, columns=COLUMNS)


def _client(server: Any) -> Any:
    return tritonclient_http.InferenceServerClient(f"127.0.0.1:{server.port}")


def _column_inputs(rows: np.ndarray) -> list[Any]:
    inputs = []
    for i, name in enumerate(COLUMNS):
        tensor = tritonclient_http.InferInput(name, [len(rows)], "FP64")
        tensor.set_data_from_numpy(rows[:, i])  # binary_data=True is the default
        inputs.append(tensor)
    return inputs


def test_unmodified_tritonclient_infers_with_its_defaults(iris_server: Any,
                                                          iris_logreg: Any) -> None:
    client = _client(iris_server)
    assert client.is_server_live() and client.is_model_ready("iris")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    result = client.infer("iris", _column_inputs(ROWS))  # outputs: all, as binary
    response = result.get_response()
    (output,) = response["outputs"]
    assert "data" not in output and output["parameters"]["binary_data_size"] == 3 * 8
    got = result.as_numpy(output["name"])
    np.testing.assert_array_equal(got, iris_logreg.predict(FRAME))


def test_outputs_asked_for_in_json_or_binary(iris_server: Any, iris_logreg: Any) -> None:
    client = _client(iris_server)
    probe = client.infer("iris", _column_inputs(ROWS))
    name = probe.get_response()["outputs"][0]["name"]
    as_json = client.infer("iris", _column_inputs(ROWS), outputs=[
        tritonclient_http.InferRequestedOutput(name, binary_data=False)])
    (out,) = as_json.get_response()["outputs"]
    assert out["data"] == iris_logreg.predict(FRAME).tolist()
    np.testing.assert_array_equal(as_json.as_numpy(name), iris_logreg.predict(FRAME))
    # inputs in JSON, output in binary: the two halves are independent
    inputs = _column_inputs(ROWS)
    for tensor in inputs:
        tensor.set_data_from_numpy(ROWS[:, COLUMNS.index(tensor.name())], binary_data=False)
    mixed = client.infer("iris", inputs, outputs=[
        tritonclient_http.InferRequestedOutput(name, binary_data=True)])
    np.testing.assert_array_equal(mixed.as_numpy(name), iris_logreg.predict(FRAME))


def test_fp32_tensor_and_named_tensors_round_trip(rowsum_server: Any, named_server: Any) -> None:
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    tensor = tritonclient_http.InferInput("input-0", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    result = _client(rowsum_server).infer("rowsum", [tensor])
    (out,) = result.get_response()["outputs"]
    np.testing.assert_array_equal(result.as_numpy(out["name"]), x.sum(axis=1))

    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    b = np.array([5, -6], dtype=np.int64)
    ta = tritonclient_http.InferInput("a", [2, 2], "FP64")
    ta.set_data_from_numpy(a)
    tb = tritonclient_http.InferInput("b", [2], "INT64")
    tb.set_data_from_numpy(b)
    named = _client(named_server).infer("named", [ta, tb])
    np.testing.assert_array_equal(named.as_numpy("total"), a.sum(axis=1) + b)
    np.testing.assert_array_equal(named.as_numpy("flag"), b > 0)


def test_bytes_tensors_carry_strings_both_ways(scale_server: Any) -> None:
    x = np.array([1.5, 2.0])
    city = np.array(["Zürich", "Oslo"], dtype=object)
    n = np.array([3, 4], dtype=np.int64)
    inputs = []
    for name, arr, dt in (("x", x, "FP64"), ("city", city, "BYTES"), ("n", n, "INT64")):
        t = tritonclient_http.InferInput(name, [2], dt)
        t.set_data_from_numpy(arr)
        inputs.append(t)
    result = _client(scale_server).infer("scale", inputs)
    np.testing.assert_array_equal(result.as_numpy("y"), x)
    assert [v.decode() for v in result.as_numpy("city")] == ["Zürich", "Oslo"]
    np.testing.assert_array_equal(result.as_numpy("n"), n)


# --- hostile bodies ------------------------------------------------------------------------


def _raw(server: Any, header: dict[str, Any], binary: bytes, header_length: Any = None) -> Any:
    text = json.dumps(header).encode()
    length = len(text) if header_length is None else header_length
    return server.request("POST", "/v2/models/iris/infer", text + binary,
                          headers={"Inference-Header-Content-Length": str(length)})


def _inputs(sizes: list[int]) -> dict[str, Any]:
    return {"inputs": [{"name": c, "shape": [1], "datatype": "FP64",
                        "parameters": {"binary_data_size": s}}
                       for c, s in zip(COLUMNS, sizes)]}


@pytest.mark.parametrize(("header", "binary", "length", "needle"), [
    (_inputs([8, 8, 8, 8]), struct.pack("<4d", 1, 2, 3, 4), 10**6,
     "Inference-Header-Content-Length is 1000000 bytes, but the body has only"),
    (_inputs([8, 8, 8, 8]), struct.pack("<4d", 1, 2, 3, 4), "-5", "must be a byte count"),
    (_inputs([8, 8, 8, 8]), struct.pack("<4d", 1, 2, 3, 4), "ten", "must be a byte count"),
    (_inputs([8, 8, 8, 16]), struct.pack("<4d", 1, 2, 3, 4), None,
     "binary_data_size is 16 bytes, but only 8 bytes of binary data are left"),
    (_inputs([8, 8, 8, 8]), struct.pack("<5d", 1, 2, 3, 4, 5), None,
     "8 bytes that no input's binary_data_size accounts for"),
    (_inputs([8, 8, 8, 4]), struct.pack("<3d", 1, 2, 3) + b"\0" * 4, None,
     "takes 8 bytes, but binary_data_size is 4"),
    (_inputs([8, 8, 8, -1]), struct.pack("<4d", 1, 2, 3, 4), None, "non-negative integer"),
    (_inputs([8, 8, 8, "8"]), struct.pack("<4d", 1, 2, 3, 4), None, "non-negative integer"),
])
def test_sizes_that_do_not_add_up_are_400s(iris_server: Any, header: dict[str, Any],
                                           binary: bytes, length: Any, needle: str) -> None:
    reply = _raw(iris_server, header, binary, length)
    assert reply.status == 400, reply.body
    assert needle in reply.json()["error"]


def test_binary_size_without_binary_data_and_data_with_size(iris_server: Any) -> None:
    body = json.dumps(_inputs([8, 8, 8, 8])).encode()
    reply = iris_server.request("POST", "/v2/models/iris/infer", body, "application/json")
    assert reply.status == 400 and "no binary data" in reply.json()["error"]
    both = _inputs([8, 8, 8, 8])
    both["inputs"][0]["data"] = [1.0]
    reply = _raw(iris_server, both, struct.pack("<4d", 1, 2, 3, 4))
    assert reply.status == 400 and "not both" in reply.json()["error"]


def test_bytes_lengths_that_run_past_the_chunk(scale_server: Any) -> None:
    def send(chunk: bytes, count: int = 1) -> Any:
        # city first: a shape it cannot fill is refused before anything is allocated
        header = {"inputs": [
            {"name": "city", "shape": [count], "datatype": "BYTES",
             "parameters": {"binary_data_size": len(chunk)}},
            {"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]},
            {"name": "n", "shape": [1], "datatype": "INT64", "data": [1]}]}
        text = json.dumps(header).encode()
        return scale_server.request("POST", "/v2/models/scale/infer", text + chunk,
                                    headers={"Inference-Header-Content-Length": str(len(text))})

    too_long = send(struct.pack("<I", 100) + b"abc")
    assert too_long.status == 400 and "100 bytes long, but only 3" in too_long.json()["error"]
    huge_shape = send(struct.pack("<I", 1) + b"a", count=10**9)
    assert huge_shape.status == 400 and "needs at least" in huge_shape.json()["error"]
    left_over = send(struct.pack("<I", 1) + b"ab")
    assert left_over.status == 400 and "1 bytes are left" in left_over.json()["error"]
    not_utf8 = send(struct.pack("<I", 2) + b"\xff\xfe")
    assert not_utf8.status == 400 and "UTF-8" in not_utf8.json()["error"]
    fine = send(struct.pack("<I", 4) + b"Oslo")
    assert fine.status == 200, fine.body


def test_bad_binary_output_flags_are_400s(iris_server: Any) -> None:
    base = {"inputs": [{"name": c, "shape": [1], "datatype": "FP64", "data": [1.0]}
                       for c in COLUMNS]}
    for extra in ({"parameters": {"binary_data_output": "yes"}},
                  {"outputs": [{"name": "x", "parameters": {"binary_data": 1}}]}):
        reply = iris_server.post_json("/v2/models/iris/infer", {**base, **extra})
        assert reply.status == 400 and "true or false" in reply.json()["error"]
