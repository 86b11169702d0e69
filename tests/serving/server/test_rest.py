"""The REST server for real: ``satchel serve`` subprocesses answering a real HTTP client.

MLflow's scoring protocol (every input format, every error case, params, CSV, Parquet)
and the Open Inference Protocol (health, metadata, infer with column and tensor
signatures). Error replies are 4xx with a message naming the problem, never the payload.
"""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import satchel
from satchel.serving.server.http import DROPPED_HEADER, UNKNOWN_PARAMS_HEADER

Server = Any  # conftest.Server: .get, .post_json, .request, .port
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


# The dtype pandas gives text: "object" on pandas 2, "str" on pandas 3 (both supported).
STR = str(pd.Series(["a"]).dtype)


@pytest.fixture(scope="module")
def rows(iris: tuple[Any, Any]) -> list[list[float]]:
    X, _ = iris
    return X.iloc[[0, 60, 120]].to_numpy().tolist()


@pytest.fixture(scope="module")
def expected(iris: tuple[Any, Any], iris_logreg: Any) -> list[int]:
    X, _ = iris
    return [int(v) for v in iris_logreg.predict(X.iloc[[0, 60, 120]])]


def _error(reply: Any, status: int, code: str | None = None) -> str:
    assert reply.status == status, reply.body
    body = reply.json()
    assert "stack_trace" not in body and b"Traceback" not in reply.body
    if code is not None:
        assert body["error_code"] == code
    return str(body["message"] if "message" in body else body["error"])


# --- health ----------------------------------------------------------------------------


def test_ping_health_version(iris_server: Server) -> None:
    for path in ("/ping", "/health"):
        reply = iris_server.get(path)
        assert reply.status == 200 and reply.body == b"\n"
    assert iris_server.get("/version").body.decode() == satchel.__version__


# --- every input format ----------------------------------------------------------------


def test_dataframe_split(iris_server: Server, rows: list[list[float]],
                         expected: list[int]) -> None:
    reply = iris_server.post_json("/invocations", {"dataframe_split": {
        "columns": COLUMNS, "data": rows, "index": [7, 8, 9]}})
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"predictions": expected}
    assert DROPPED_HEADER.lower() not in reply.headers


def test_dataframe_split_without_columns_is_positional(iris_server: Server,
                                                       rows: list[list[float]],
                                                       expected: list[int]) -> None:
    reply = iris_server.post_json("/invocations", {"dataframe_split": {"data": rows}})
    assert reply.json() == {"predictions": expected}


def test_dataframe_records(iris_server: Server, rows: list[list[float]],
                           expected: list[int]) -> None:
    records = [dict(zip(COLUMNS, r)) for r in rows]
    reply = iris_server.post_json("/invocations", {"dataframe_records": records})
    assert reply.status == 200 and reply.json() == {"predictions": expected}


@pytest.mark.parametrize("key", ["instances", "inputs"])
def test_instances_and_inputs(iris_server: Server, rows: list[list[float]],
                              expected: list[int], key: str) -> None:
    as_rows = iris_server.post_json("/invocations", {key: rows})
    columnar = iris_server.post_json("/invocations", {key: {
        c: [r[i] for r in rows] for i, c in enumerate(COLUMNS)}})
    records = iris_server.post_json("/invocations", {key: [dict(zip(COLUMNS, r)) for r in rows]})
    for reply in (as_rows, columnar, records):
        assert reply.status == 200, reply.body
        assert reply.json() == {"predictions": expected}


@pytest.mark.parametrize("content_type", ["text/csv", "application/csv",
                                          "text/csv; charset=utf-8"])
def test_csv(iris_server: Server, rows: list[list[float]], expected: list[int],
             content_type: str) -> None:
    text = pd.DataFrame(rows, columns=COLUMNS).to_csv(index=False)
    reply = iris_server.request("POST", "/invocations", text, content_type)
    assert reply.status == 200, reply.body
    assert reply.json() == {"predictions": expected}


def test_parquet(iris_server: Server, rows: list[list[float]], expected: list[int]) -> None:
    buf = io.BytesIO()
    pd.DataFrame(rows, columns=COLUMNS).to_parquet(buf)
    reply = iris_server.request("POST", "/invocations", buf.getvalue(),
                                "application/vnd.apache.parquet")
    assert reply.status == 200 and reply.json() == {"predictions": expected}


def test_json_charset_utf8_accepted(iris_server: Server, rows: list[list[float]],
                                    expected: list[int]) -> None:
    body = json.dumps({"dataframe_split": {"columns": COLUMNS, "data": rows}})
    reply = iris_server.request("POST", "/invocations", body, "application/json; charset=UTF-8")
    assert reply.status == 200 and reply.json() == {"predictions": expected}


# --- the policy over HTTP: extra, missing, wrong and numeric-string columns ---------------


def test_extra_column_dropped_and_reported(iris_server: Server, rows: list[list[float]],
                                           expected: list[int]) -> None:
    reply = iris_server.post_json("/invocations", {"dataframe_split": {
        "columns": [*COLUMNS, "extra col"], "data": [[*r, 1] for r in rows]}})
    assert reply.status == 200 and reply.json() == {"predictions": expected}
    assert reply.headers[DROPPED_HEADER.lower()] == "extra%20col"


def test_missing_column(iris_server: Server, rows: list[list[float]]) -> None:
    reply = iris_server.post_json("/invocations", {"dataframe_split": {
        "columns": COLUMNS[:3], "data": [r[:3] for r in rows]}})
    message = _error(reply, 400, "INVALID_PARAMETER_VALUE")
    assert "petal_width" in message and "missing" in message


def test_wrong_type_names_column_expected_and_given(iris_server: Server) -> None:
    reply = iris_server.post_json("/invocations", {"dataframe_records": [
        {"sepal_length": "long", "sepal_width": 1.0, "petal_length": 1.0, "petal_width": 1.0}]})
    message = _error(reply, 400, "INVALID_PARAMETER_VALUE")
    body = reply.json()
    assert "sepal_length" in message and "double" in message
    assert body["column"] == "sepal_length" and body["expected"] == "double"
    assert "str" in body["given"]


def test_numeric_string_in_double_column(iris_server: Server, rows: list[list[float]],
                                         expected: list[int]) -> None:
    records = [dict(zip(COLUMNS, r)) for r in rows]
    records[0]["sepal_length"] = str(records[0]["sepal_length"])
    reply = iris_server.post_json("/invocations", {"dataframe_records": records})
    assert reply.status == 200 and reply.json() == {"predictions": expected}


def test_null_in_required_column(iris_server: Server, rows: list[list[float]]) -> None:
    data = [list(r) for r in rows]
    data[1][2] = None
    reply = iris_server.post_json("/invocations", {"dataframe_split": {"columns": COLUMNS,
                                                                        "data": data}})
    message = _error(reply, 400, "INVALID_PARAMETER_VALUE")
    assert "petal_length" in message and "null" in message


# --- malformed bodies and content types ------------------------------------------------


def test_malformed_json_names_position(iris_server: Server) -> None:
    body = '{"dataframe_split": {"columns": ["a"],\n "data": [[1,]]}}'
    reply = iris_server.request("POST", "/invocations", body, "application/json")
    message = _error(reply, 400, "BAD_REQUEST")
    assert "malformed JSON" in message and "line 2" in message and "column" in message


def test_unknown_key(iris_server: Server) -> None:
    message = _error(iris_server.post_json("/invocations", {"dataframe": [[1]]}), 400,
                     "BAD_REQUEST")
    assert "has none of them" in message and "dataframe_split" in message


def test_unknown_key_next_to_a_format_key(iris_server: Server, rows: list[list[float]]) -> None:
    reply = iris_server.post_json("/invocations", {"inputs": rows, "extra": 1})
    assert "'extra'" in _error(reply, 400, "BAD_REQUEST")


def test_several_format_keys(iris_server: Server, rows: list[list[float]]) -> None:
    reply = iris_server.post_json("/invocations", {"inputs": rows, "instances": rows})
    message = _error(reply, 400, "BAD_REQUEST")
    assert "instances" in message and "inputs" in message


def test_top_level_list(iris_server: Server, rows: list[list[float]]) -> None:
    message = _error(iris_server.post_json("/invocations", rows), 400, "BAD_REQUEST")
    assert "not a list" in message


def test_bad_shape_in_split(iris_server: Server) -> None:
    reply = iris_server.post_json("/invocations", {"dataframe_split": {
        "columns": COLUMNS, "data": [[1.0, 2.0]]}})
    message = _error(reply, 400, "BAD_REQUEST")
    assert "row 0 has 2 values" in message


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml",
                                          "application/json; format=pandas-split"])
def test_unsupported_content_type(iris_server: Server, content_type: str) -> None:
    reply = iris_server.request("POST", "/invocations", "{}", content_type)
    message = _error(reply, 415)
    assert "application/json" in message or "charset" in message


def test_unsupported_charset(iris_server: Server) -> None:
    reply = iris_server.request("POST", "/invocations", "{}", "application/json; charset=latin-1")
    assert "utf-8" in _error(reply, 415)


def test_no_content_type(iris_server: Server, rows: list[list[float]]) -> None:
    reply = iris_server.request("POST", "/invocations", json.dumps({"inputs": rows}))
    message = _error(reply, 415)
    assert "no Content-Type" in message and "text/csv" in message


def test_invalid_utf8_and_empty_bodies(iris_server: Server) -> None:
    assert "UTF-8" in _error(iris_server.request("POST", "/invocations", b'{"a": "\xff"}',
                                                 "application/json"), 400)
    assert "malformed JSON" in _error(iris_server.request("POST", "/invocations", b"",
                                                          "application/json"), 400)
    assert "CSV" in _error(iris_server.request("POST", "/invocations", b"", "text/csv"), 400)
    assert "Parquet" in _error(iris_server.request("POST", "/invocations", b"nope",
                                                   "application/vnd.apache.parquet"), 400)


def test_error_never_echoes_the_payload(iris_server: Server) -> None:
    marker = "SECRET-PAYLOAD-MARKER"
    records = [{"sepal_length": marker, "sepal_width": 1.0, "petal_length": 1.0,
                "petal_width": 1.0}] * 50
    reply = iris_server.post_json("/invocations", {"dataframe_records": records})
    assert reply.status == 400 and marker.encode() not in reply.body


def test_404_and_405(iris_server: Server) -> None:
    assert _error(iris_server.get("/nope"), 404, "ENDPOINT_NOT_FOUND")
    reply = iris_server.get("/invocations")
    _error(reply, 405)
    assert reply.headers["allow"] == "POST"


# --- a custom model with params, and a model that raises --------------------------------


def test_params_reach_the_model(scale_server: Server) -> None:
    reply = scale_server.post_json("/invocations", {
        "dataframe_split": {"columns": ["x", "city", "n"], "data": [[1.5, "Oslo", 2]]},
        "params": {"multiplier": 2, "suffix": "!"}})
    assert reply.status == 200, reply.body
    assert reply.json() == {"predictions": [
        {"y": 3.0, "city": "Oslo!", "n": 2, "types": f"float64,{STR},int64"}]}


def test_param_defaults_and_unknown_params(scale_server: Server) -> None:
    reply = scale_server.post_json("/invocations", {
        "inputs": {"x": [1.0], "city": ["a"], "n": [1]}, "params": {"other": 1, "z": 2}})
    assert reply.status == 200
    assert reply.json()["predictions"][0]["y"] == 1.0
    assert reply.headers[UNKNOWN_PARAMS_HEADER.lower()] == "other,z"


def test_param_of_wrong_type(scale_server: Server) -> None:
    reply = scale_server.post_json("/invocations", {
        "inputs": {"x": [1.0], "city": ["a"], "n": [1]}, "params": {"multiplier": "lots"}})
    assert "multiplier" in _error(reply, 400, "INVALID_PARAMETER_VALUE")


def test_params_must_be_an_object(scale_server: Server) -> None:
    reply = scale_server.post_json("/invocations", {
        "inputs": {"x": [1.0], "city": ["a"], "n": [1]}, "params": [1]})
    assert "params" in _error(reply, 400, "BAD_REQUEST")


def test_model_raising_is_422_naming_its_error(scale_server: Server) -> None:
    reply = scale_server.post_json("/invocations", {
        "dataframe_records": [{"x": -1.0, "city": "a", "n": 1}]})
    message = _error(reply, 422, "BAD_REQUEST")
    assert reply.json()["error_class"] == "ValueError"
    assert "ValueError" in message and "x must not be negative" in message


def test_csv_keeps_string_columns_as_text(scale_server: Server) -> None:
    text = "x,city,n\n1.5,01,3\n2,NA,4\n"
    reply = scale_server.request("POST", "/invocations", text, "text/csv")
    assert reply.status == 200, reply.body
    preds = reply.json()["predictions"]
    assert [p["city"] for p in preds] == ["01", "NA"]
    assert [p["y"] for p in preds] == [1.5, 2.0] and [p["n"] for p in preds] == [3, 4]
    assert preds[0]["types"] == f"float64,{STR},int64"


def test_csv_wrong_type(scale_server: Server) -> None:
    reply = scale_server.request("POST", "/invocations", "x,city,n\nabc,a,1\n", "text/csv")
    message = _error(reply, 400, "INVALID_PARAMETER_VALUE")
    assert "'x'" in message and "double" in message


def test_debug_server_adds_stack_traces(scale_model_dir: Path, start_server: Any) -> None:
    with start_server(scale_model_dir, "--debug") as server:
        reply = server.post_json("/invocations", {"inputs": [1]})
        assert reply.status == 400 and "stack_trace" in reply.json()


# --- Open Inference Protocol -------------------------------------------------------------


def test_v2_server_health_and_metadata(iris_server: Server) -> None:
    assert iris_server.get("/v2").json() == {"name": "satchel", "version": satchel.__version__,
                                             "extensions": ["binary_tensor_data"]}
    assert iris_server.get("/v2/health/live").status == 200
    assert iris_server.get("/v2/health/ready").status == 200
    assert iris_server.get("/v2/models/iris/ready").status == 200
    meta = iris_server.get("/v2/models/iris").json()
    assert meta["name"] == "iris" and meta["platform"] == "sklearn"
    assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [
        (c, "FP64", [-1]) for c in COLUMNS]
    assert meta["outputs"] == [{"name": "output-0", "datatype": "INT64", "shape": [-1]}]


def test_v2_unknown_model_and_version(iris_server: Server) -> None:
    for reply in (iris_server.get("/v2/models/nope"), iris_server.get("/v2/models/nope/ready"),
                  iris_server.post_json("/v2/models/nope/infer", {"inputs": []}),
                  iris_server.get("/v2/models/iris/versions/3")):
        assert reply.status == 404 and "error" in reply.json()


def _v2_columns(rows: list[list[float]]) -> list[dict[str, Any]]:
    return [{"name": c, "shape": [len(rows)], "datatype": "FP64", "data": [r[i] for r in rows]}
            for i, c in enumerate(COLUMNS)]


def test_v2_infer_column_signature(iris_server: Server, rows: list[list[float]],
                                   expected: list[int]) -> None:
    inputs = _v2_columns(rows)
    inputs[1]["datatype"] = "FP32"  # any numeric wire type; the policy widens it
    inputs[2]["shape"] = [len(rows), 1]
    inputs[2]["data"] = [[v] for v in inputs[2]["data"]]
    reply = iris_server.post_json("/v2/models/iris/infer", {"id": "req-42", "inputs": inputs})
    assert reply.status == 200, reply.body
    assert reply.json() == {"model_name": "iris", "model_version": None, "id": "req-42",
                            "parameters": {}, "outputs": [{"name": "output-0",
                                                           "datatype": "INT64", "shape": [3],
                                                           "data": expected}]}


def test_v2_infer_generates_an_id(iris_server: Server, rows: list[list[float]]) -> None:
    body = iris_server.post_json("/v2/models/iris/infer", {"inputs": _v2_columns(rows)}).json()
    assert isinstance(body["id"], str) and len(body["id"]) >= 8


def test_v2_outputs_filter(iris_server: Server, rows: list[list[float]]) -> None:
    good = iris_server.post_json("/v2/models/iris/infer", {
        "inputs": _v2_columns(rows), "outputs": [{"name": "output-0"}]})
    assert [o["name"] for o in good.json()["outputs"]] == ["output-0"]
    bad = iris_server.post_json("/v2/models/iris/infer", {
        "inputs": _v2_columns(rows), "outputs": [{"name": "proba"}]})
    assert bad.status == 400 and "proba" in bad.json()["error"]


@pytest.mark.parametrize(("change", "needle"), [
    ({"datatype": "FLOAT"}, "datatype"),
    ({"shape": [5]}, "holds 5 values"),
    ({"data": ["a", "b", "c"]}, "must be numbers"),
    ({"datatype": "INT8", "data": [1, 2, 300]}, "INT8 range"),
    ({"datatype": "BOOL"}, "true/false"),
    ({"shape": [3, 2], "data": [1, 2, 3, 4, 5, 6]}, "shape [N] or [N, 1]"),
])
def test_v2_bad_tensors(iris_server: Server, rows: list[list[float]], change: dict[str, Any],
                        needle: str) -> None:
    inputs = _v2_columns(rows)
    inputs[0].update(change)
    reply = iris_server.post_json("/v2/models/iris/infer", {"inputs": inputs})
    assert reply.status == 400, reply.body
    assert needle in reply.json()["error"]


def test_v2_signature_errors(iris_server: Server, rows: list[list[float]]) -> None:
    reply = iris_server.post_json("/v2/models/iris/infer", {"inputs": _v2_columns(rows)[:3]})
    assert reply.status == 400 and "petal_width" in reply.json()["error"]
    malformed = iris_server.request("POST", "/v2/models/iris/infer", "{", "application/json")
    assert malformed.status == 400 and "malformed JSON" in malformed.json()["error"]
    no_inputs = iris_server.post_json("/v2/models/iris/infer", {"id": "x"})
    assert no_inputs.status == 400 and "inputs" in no_inputs.json()["error"]


def test_v2_bytes_and_params(scale_server: Server) -> None:
    reply = scale_server.post_json("/v2/models/scale/infer", {
        "id": "p", "parameters": {"multiplier": 10, "content_type": "pd"},
        "inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [1, 2]},
                   {"name": "city", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]},
                   {"name": "n", "shape": [2], "datatype": "INT32", "data": [5, 6]}]})
    assert reply.status == 200, reply.body
    out = {o["name"]: o for o in reply.json()["outputs"]}
    assert out["y"] == {"name": "y", "datatype": "FP64", "shape": [2], "data": [10.0, 20.0]}
    assert out["city"]["datatype"] == "BYTES" and out["city"]["data"] == ["a", "b"]
    assert out["n"]["datatype"] == "INT64" and out["n"]["data"] == [5, 6]
    meta = scale_server.get("/v2/models/scale").json()
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
        ("x", "FP64"), ("city", "BYTES"), ("n", "INT64")]


def test_v2_model_error_is_422(scale_server: Server) -> None:
    reply = scale_server.post_json("/v2/models/scale/infer", {"inputs": [
        {"name": "x", "shape": [1], "datatype": "FP64", "data": [-1]},
        {"name": "city", "shape": [1], "datatype": "BYTES", "data": ["a"]},
        {"name": "n", "shape": [1], "datatype": "INT64", "data": [1]}]})
    assert reply.status == 422 and "x must not be negative" in reply.json()["error"]


def test_v2_tensor_signature(rowsum_server: Server) -> None:
    meta = rowsum_server.get("/v2/models/rowsum").json()
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 3]}]
    assert meta["parameters"] == {"content_type": "np"}
    reply = rowsum_server.post_json("/v2/models/rowsum/infer", {"inputs": [
        {"name": "input-0", "shape": [2, 3], "datatype": "FP32",
         "data": [1, 2, 3, 4, 5, 6.5]}]})
    assert reply.status == 200, reply.body
    assert reply.json()["outputs"] == [{"name": "output-0", "datatype": "FP32", "shape": [2],
                                        "data": [6.0, 15.5]}]
    bad_rank = rowsum_server.post_json("/v2/models/rowsum/infer", {"inputs": [
        {"name": "input-0", "shape": [6], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}]})
    assert bad_rank.status == 400 and "shape" in bad_rank.json()["error"]


def test_tensor_model_over_invocations(rowsum_server: Server) -> None:
    reply = rowsum_server.post_json("/invocations", {"inputs": [[1, 2, 3], [4, 5, 6]]})
    assert reply.status == 200 and reply.json() == {"predictions": [6.0, 15.0]}
    ragged = rowsum_server.post_json("/invocations", {"inputs": [[1, 2, 3], [4]]})
    assert ragged.status == 400


def test_v2_named_tensors(named_server: Server) -> None:
    meta = named_server.get("/v2/models/named").json()
    assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [
        ("a", "FP64", [-1, 2]), ("b", "INT64", [-1])]
    assert meta["parameters"] == {"content_type": "dict"}
    reply = named_server.post_json("/v2/models/named/infer", {"inputs": [
        {"name": "a", "shape": [2, 2], "datatype": "FP64", "data": [[1, 2], [3, 4]]},
        {"name": "b", "shape": [2], "datatype": "INT32", "data": [10, -1]}]})
    assert reply.status == 200, reply.body
    out = {o["name"]: o for o in reply.json()["outputs"]}
    assert out["total"]["data"] == [13.0, 6.0] and out["total"]["shape"] == [2]
    assert out["flag"] == {"name": "flag", "datatype": "BOOL", "shape": [2],
                           "data": [True, False]}
    invocations = named_server.post_json("/invocations", {"inputs": {"a": [[1, 2]], "b": [1]}})
    assert invocations.json() == {"predictions": {"total": [4.0], "flag": [True]}}


def test_kserve_style_raw_http_call(iris_server: Server, rows: list[list[float]],
                                    expected: list[int]) -> None:
    """What a KServe V2 REST client puts on the wire, written by hand on a socket."""
    body = json.dumps({"inputs": _v2_columns(rows[:1])}).encode()
    request = (b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Content-Type: application/json\r\nConnection: close\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    with socket.create_connection(("127.0.0.1", iris_server.port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, payload = b"".join(chunks).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(payload)["outputs"][0]["data"] == expected[:1]


# --- loading state -----------------------------------------------------------------------


class SlowToLoad(satchel.PythonModel):
    def load_context(self, context: Any) -> None:
        time.sleep(1.5)

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        return np.asarray(model_input["x"]) * 2


def test_ping_is_503_until_the_model_is_loaded(tmp_path: Path, save_python_model: Any,
                                               ping: Any, free_port_number: int) -> None:
    """A lazily loading app under a real uvicorn: 503 while loading, 200 after."""
    import uvicorn

    from satchel.serving import create_app

    path = save_python_model(SlowToLoad(), tmp_path / "slow",
                             input_example=pd.DataFrame({"x": [1.0]}))
    port = free_port_number
    server = uvicorn.Server(uvicorn.Config(create_app(path, lazy=True), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        statuses = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = ping(port)
            if status is not None:
                statuses.append(status)
            if status == 200:
                break
            time.sleep(0.05)
        assert statuses[0] == 503 and statuses[-1] == 200
        assert 503 in statuses
    finally:
        server.should_exit = True
        thread.join(10)


# --- an ONNX model (real onnxruntime behind the server) ------------------------------------


@pytest.fixture(scope="module")
def onnx_server(tmp_path_factory: pytest.TempPathFactory, iris_logreg: Any,
                start_server: Any) -> Any:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onx = convert_sklearn(iris_logreg, initial_types=[("input", FloatTensorType([None, 4]))],
                          options={"zipmap": False})
    path = tmp_path_factory.mktemp("onnx") / "iris_onnx"
    satchel.save_model(onx, path)
    with start_server(path, "--name", "iris_onnx") as server:
        yield server


def test_onnx_model(onnx_server: Server, iris_logreg: Any, rows: list[list[float]],
                    expected: list[int]) -> None:
    proba = iris_logreg.predict_proba(pd.DataFrame(rows, columns=COLUMNS))
    for payload in ({"inputs": rows}, {"inputs": {"input": rows}}, {"instances": rows}):
        reply = onnx_server.post_json("/invocations", payload)
        assert reply.status == 200, reply.body
        preds = reply.json()["predictions"]
        assert preds["label"] == expected
        np.testing.assert_allclose(preds["probabilities"], proba, atol=1e-5)
    meta = onnx_server.get("/v2/models/iris_onnx").json()
    assert meta["platform"] == "onnx"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    assert [o["name"] for o in meta["outputs"]] == ["label", "probabilities"]
    reply = onnx_server.post_json("/v2/models/iris_onnx/infer", {
        "id": "onnx-1", "outputs": [{"name": "probabilities"}],
        "inputs": [{"name": "input", "shape": [len(rows), 4], "datatype": "FP32",
                    "data": [v for r in rows for v in r]}]})
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["id"] == "onnx-1" and [o["name"] for o in body["outputs"]] == ["probabilities"]
    out = body["outputs"][0]
    assert out["datatype"] == "FP32" and out["shape"] == [len(rows), 3]
    np.testing.assert_allclose(np.reshape(out["data"], (-1, 3)), proba, atol=1e-5)
    wrong_width = onnx_server.post_json("/invocations", {"inputs": [[1.0, 2.0]]})
    assert wrong_width.status == 400 and "shape" in wrong_width.json()["message"]


def test_workers_serve_through_the_env_factory(iris_model_dir: Path, start_server: Any,
                                               rows: list[list[float]],
                                               expected: list[int]) -> None:
    with start_server(iris_model_dir, "--workers", "2", "--name", "w") as server:
        for _ in range(4):
            reply = server.post_json("/invocations", {"instances": rows})
            assert reply.status == 200 and reply.json() == {"predictions": expected}
        assert server.get("/v2/models/w/ready").status == 200


def test_serve_refuses_a_broken_model_before_listening(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    done = subprocess.run([sys.executable, "-m", "satchel", "serve", "-m", str(tmp_path),
                           "--port", "1"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith("satchel: error: ") and "Traceback" not in done.stderr
