"""``satchel serve --grpc-port``: the real ``tritonclient.grpc`` client against a real
server on loopback (a subprocess, stopped by pid), for every method and the hostile cases."""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pandas as pd
import pytest

import satchel

tg = pytest.importorskip("tritonclient.grpc")
service_pb2 = pytest.importorskip("tritonclient.grpc.service_pb2")
service_pb2_grpc = pytest.importorskip("tritonclient.grpc.service_pb2_grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
TOKEN = "s3cret-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GrpcServer:
    """A running ``satchel serve`` with its gRPC port and a tritonclient for it."""

    def __init__(self, http: Any, grpc_port: int) -> None:
        self.http = http
        self.grpc_port = grpc_port
        self.url = f"127.0.0.1:{grpc_port}"
        self.client = tg.InferenceServerClient(self.url)

    def stub(self) -> Any:
        """tritonclient's own generated stub, for messages its helpers never send."""
        return service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(self.url))


@pytest.fixture(scope="module")
def onnx_model_dir(tmp_path_factory: pytest.TempPathFactory, iris_logreg: Any) -> Path:
    """The iris LogisticRegression as ONNX: one float32 [-1, 4] tensor in, label and
    probabilities out."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onnx_model = convert_sklearn(iris_logreg, initial_types=[("input", FloatTensorType([None, 4]))],
                                 options={"zipmap": False})
    path = tmp_path_factory.mktemp("models") / "iris-onnx"
    satchel.save_model(onnx_model, path)
    return path


@pytest.fixture(scope="module")
def server(start_server: Any, iris_model_dir: Path, onnx_model_dir: Path,
           scale_model_dir: Path, rowsum_model_dir: Path) -> Iterator[GrpcServer]:
    """Four models on one server, with a token and a 64 KiB message limit."""
    port = _free_port()
    with start_server(f"iris={iris_model_dir}", "-m", f"onnx={onnx_model_dir}",
                      "-m", f"scale={scale_model_dir}", "-m", f"rowsum={rowsum_model_dir}",
                      "--grpc-port", str(port), "--max-body-size", "64KiB",
                      env={"SATCHEL_AUTH_TOKEN": TOKEN}) as http:
        srv = GrpcServer(http, port)
        yield srv
        srv.client.close()


def _inputs(frame: pd.DataFrame) -> list[Any]:
    out = []
    for col in frame.columns:
        arr = frame[col].to_numpy()
        if arr.dtype == object:
            arr = arr.astype(object)
        t = tg.InferInput(col, [len(arr)], tg.np_to_triton_dtype(arr.dtype))
        t.set_data_from_numpy(arr)
        out.append(t)
    return out


def _status(exc: pytest.ExceptionInfo[InferenceServerException]) -> str:
    return str(exc.value.status())


# --- health and metadata -------------------------------------------------------------------


def test_health_and_server_metadata(server: GrpcServer) -> None:
    c = server.client
    assert c.is_server_live()  # liveness needs no token, as on HTTP
    assert c.is_server_ready(headers=AUTH)
    assert c.is_model_ready("iris", headers=AUTH)
    meta = c.get_server_metadata(headers=AUTH, as_json=True)
    assert meta["name"] == "satchel" and meta["version"] == satchel.__version__


def test_model_metadata_matches_the_http_document(server: GrpcServer) -> None:
    meta = server.client.get_model_metadata("iris", headers=AUTH, as_json=True)
    http = json.loads(server.http.request("GET", "/v2/models/iris", headers=AUTH).body)
    assert meta["name"] == "iris" and meta["platform"] == http["platform"] == "sklearn"
    assert [(i["name"], i["datatype"], [int(d) for d in i["shape"]]) for i in meta["inputs"]] == [
        (i["name"], i["datatype"], i["shape"]) for i in http["inputs"]]
    assert [i["name"] for i in meta["inputs"]] == COLUMNS
    onnx = server.client.get_model_metadata("onnx", headers=AUTH, as_json=True)
    assert onnx["inputs"] == [{"name": "input", "datatype": "FP32", "shape": ["-1", "4"]}]


# --- scoring -------------------------------------------------------------------------------


def test_infer_iris_equals_local_predict(server: GrpcServer, iris: Any,
                                         iris_model_dir: Path) -> None:
    X = iris[0].iloc[::10]
    result = server.client.infer("iris", _inputs(X), request_id="req-7", headers=AUTH)
    expected = satchel.load_model(iris_model_dir).predict(X)
    response = result.get_response()
    assert response.id == "req-7" and response.model_name == "iris"
    assert response.raw_output_contents  # replies travel raw, as Triton's do
    np.testing.assert_array_equal(result.as_numpy(response.outputs[0].name),
                                  np.asarray(expected))


def test_infer_onnx_tensor_model(server: GrpcServer, iris: Any, onnx_model_dir: Path) -> None:
    X = iris[0].to_numpy(dtype=np.float32)[:7]
    t = tg.InferInput("input", list(X.shape), "FP32")
    t.set_data_from_numpy(X)
    outputs = [tg.InferRequestedOutput("probabilities")]
    result = server.client.infer("onnx", [t], outputs=outputs, headers=AUTH)
    expected = satchel.load_model(onnx_model_dir).predict(X)
    assert [o.name for o in result.get_response().outputs] == ["probabilities"]
    probs = result.as_numpy("probabilities")
    assert probs.dtype == np.float32 and probs.shape == (7, 3)
    np.testing.assert_allclose(probs, expected["probabilities"], rtol=1e-6)


def test_bytes_inputs_and_params(server: GrpcServer) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.5], "city": ["Zürich", "Oslo"],
                          "n": np.array([3, 4], dtype=np.int64)})
    result = server.client.infer("scale", _inputs(frame), headers=AUTH,
                                 parameters={"multiplier": 2.0, "suffix": "!"})
    assert result.as_numpy("y").tolist() == [2.0, 5.0]
    assert [v.decode() for v in result.as_numpy("city")] == ["Zürich!", "Oslo!"]
    assert result.as_numpy("n").tolist() == [3, 4]


def test_typed_contents_through_tritonclients_stub(server: GrpcServer) -> None:
    request = service_pb2.ModelInferRequest(model_name="rowsum")
    t = request.inputs.add(name="input-0", datatype="FP32", shape=[2, 3])
    t.contents.fp32_contents.extend([1, 2, 3, 4, 5, 6.5])
    reply = server.stub().ModelInfer(request, metadata=tuple(AUTH.items()))
    assert reply.outputs[0].datatype == "FP32" and list(reply.outputs[0].shape) == [2]
    assert np.frombuffer(reply.raw_output_contents[0], "<f4").tolist() == [6.0, 15.5]


def test_metrics_count_grpc_calls_with_http(server: GrpcServer) -> None:
    frame = pd.DataFrame([[5.1, 3.5, 1.4, 0.2]] * 3, columns=COLUMNS)
    server.client.infer("iris", _inputs(frame), headers=AUTH)
    page = server.http.request("GET", "/metrics", headers=AUTH).body.decode()
    line = next(x for x in page.splitlines() if x.startswith(
        'satchel_requests_total{route="/inference.GRPCInferenceService/ModelInfer",'
        'status="OK"}'))
    assert float(line.rsplit(" ", 1)[1]) >= 1
    assert 'satchel_rows_predicted_total{model="iris"}' in page
    # every gRPC call that started has ended: only this /metrics request is in flight
    assert "satchel_requests_in_flight 1" in page.splitlines()


# --- the hostile cases ---------------------------------------------------------------------


def test_auth_missing_or_wrong_token(server: GrpcServer) -> None:
    with pytest.raises(InferenceServerException) as missing:
        server.client.is_server_ready()
    assert _status(missing) == "StatusCode.UNAUTHENTICATED"
    assert "bearer token" in missing.value.message()
    for bad in ("Bearer nope", "Basic " + TOKEN, TOKEN, "Bearer " + TOKEN + "x"):
        with pytest.raises(InferenceServerException) as wrong:
            server.client.get_model_metadata("iris", headers={"authorization": bad})
        assert _status(wrong) == "StatusCode.UNAUTHENTICATED"
        assert TOKEN not in wrong.value.message()


def test_message_over_the_limit(server: GrpcServer) -> None:
    X = np.zeros((3000, 4), dtype=np.float32)  # 48 KB of values: fine
    t = tg.InferInput("input", list(X.shape), "FP32")
    t.set_data_from_numpy(X)
    assert server.client.infer("onnx", [t], headers=AUTH).as_numpy("label").shape == (3000,)
    X = np.zeros((5000, 4), dtype=np.float32)  # 80 KB: over 64 KiB
    t = tg.InferInput("input", list(X.shape), "FP32")
    t.set_data_from_numpy(X)
    with pytest.raises(InferenceServerException) as info:
        server.client.infer("onnx", [t], headers=AUTH)
    assert _status(info) == "StatusCode.RESOURCE_EXHAUSTED"
    message = info.value.message()
    assert "(80" in message and "over the limit of 64 KiB (65536 bytes" in message
    assert server.client.is_server_live()  # the server is still there
    # bytes that are no message at all: INVALID_ARGUMENT, never INTERNAL or UNKNOWN
    with grpc.insecure_channel(server.url) as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                   request_serializer=lambda b: b,
                                   response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as bad:
            call(b"\xff\xff\xff", metadata=tuple(AUTH.items()), timeout=10)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not a valid ModelInferRequest" in str(bad.value.details())
        with pytest.raises(grpc.RpcError) as big:  # over grpcio's own cap (limit + 1 MiB)
            call(b"\x0a" + b"\x80\x80\x48" + b"m" * (1 << 20) * 2,
                 metadata=tuple(AUTH.items()), timeout=10)
        assert big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_unknown_model_and_version(server: GrpcServer) -> None:
    for call in (lambda: server.client.get_model_metadata("nope", headers=AUTH),
                 lambda: server.client.is_model_ready("iris", "9", headers=AUTH),
                 lambda: server.client.infer("nope", _inputs(pd.DataFrame({"x": [1.0]})),
                                             headers=AUTH)):
        with pytest.raises(InferenceServerException) as info:
            call()
        assert _status(info) == "StatusCode.NOT_FOUND"
        assert "nope" in info.value.message() or "version" in info.value.message()


def test_wrong_datatype_and_shape(server: GrpcServer) -> None:
    frame = pd.DataFrame({"x": ["a", "b"], "city": ["Zürich", "Oslo"],
                          "n": np.array([3, 4], dtype=np.int64)})
    with pytest.raises(InferenceServerException) as info:
        server.client.infer("scale", _inputs(frame), headers=AUTH)
    assert _status(info) == "StatusCode.INVALID_ARGUMENT"
    assert "'x'" in info.value.message()
    X = np.zeros((2, 5), dtype=np.float32)  # the model takes [-1, 4]
    t = tg.InferInput("input", [2, 5], "FP32")
    t.set_data_from_numpy(X)
    with pytest.raises(InferenceServerException) as info:
        server.client.infer("onnx", [t], headers=AUTH)
    assert _status(info) == "StatusCode.INVALID_ARGUMENT"
    # the shape declared does not match the bytes sent
    request = service_pb2.ModelInferRequest(model_name="onnx")
    request.inputs.add(name="input", datatype="FP32", shape=[3, 4])
    request.raw_input_contents.append(np.zeros((2, 4), dtype=np.float32).tobytes())
    with pytest.raises(grpc.RpcError) as rpc:
        server.stub().ModelInfer(request, metadata=tuple(AUTH.items()))
    assert rpc.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "takes 48 bytes, but its raw contents have 32" in rpc.value.details()


@pytest.mark.parametrize("mutate", [
    lambda r: r.ClearField("inputs"),
    lambda r: r.raw_input_contents.append(b"x"),
    lambda r: setattr(r.inputs[0], "datatype", "COMPLEX64"),
    lambda r: r.inputs[0].shape.__setitem__(0, -1),
    lambda r: r.inputs[0].shape.__setitem__(0, 2**62),
    lambda r: r.raw_input_contents.__setitem__(0, struct.pack("<I", 2**31) + b"x"),
    lambda r: r.parameters["content_type"].MergeFrom(
        service_pb2.InferParameter(string_param="nope")),
    lambda r: r.outputs.add(name="nope"),
])
def test_hostile_requests_are_invalid_argument(server: GrpcServer, mutate: Any) -> None:
    """Each hostile message answers INVALID_ARGUMENT (never UNKNOWN or INTERNAL), and the
    message never echoes the payload."""
    request = service_pb2.ModelInferRequest(model_name="scale")
    request.inputs.add(name="city", datatype="BYTES", shape=[1])
    request.raw_input_contents.append(struct.pack("<I", 6) + b"SECRET")
    mutate(request)
    with pytest.raises(grpc.RpcError) as rpc:
        server.stub().ModelInfer(request, metadata=tuple(AUTH.items()))
    assert rpc.value.code() is grpc.StatusCode.INVALID_ARGUMENT, rpc.value.details()
    assert "SECRET" not in rpc.value.details()


def test_a_model_that_raises_is_invalid_argument(server: GrpcServer) -> None:
    frame = pd.DataFrame({"x": [-1.0], "city": ["a"], "n": np.array([1], dtype=np.int64)})
    with pytest.raises(InferenceServerException) as info:
        server.client.infer("scale", _inputs(frame), headers=AUTH)
    assert _status(info) == "StatusCode.INVALID_ARGUMENT"
    assert "x must not be negative" in info.value.message()


def test_unserved_methods_are_unimplemented(server: GrpcServer) -> None:
    """Shared memory, tracing and log settings are not served: UNIMPLEMENTED, by name."""
    for call in (lambda: server.client.get_system_shared_memory_status(headers=AUTH),
                 lambda: server.client.get_trace_settings(headers=AUTH)):
        with pytest.raises(InferenceServerException) as info:
            call()
        assert _status(info) == "StatusCode.UNIMPLEMENTED"


# --- process shapes ------------------------------------------------------------------------


def _listeners(port: int) -> int:
    """Sockets listening on ``port`` (state 0A in /proc/net/tcp*; grpcio listens on IPv6
    sockets that take IPv4 too)."""
    lines = [x for f in ("tcp", "tcp6") for x in
             Path(f"/proc/net/{f}").read_text().splitlines()[1:]]
    return sum(1 for x in lines if x.split()[1].endswith(f":{port:04X}") and x.split()[3] == "0A")


def test_grpc_beside_several_workers(start_server: Any, iris_model_dir: Path,
                                     iris: Any) -> None:
    """Every worker listens on the gRPC port (SO_REUSEPORT) and counts into one /metrics."""
    port = _free_port()
    X = iris[0].iloc[:5]
    with start_server(f"iris={iris_model_dir}", "--workers", "2", "--grpc-port",
                      str(port)) as http:
        deadline = time.monotonic() + 20  # /ping answers once the first worker is up
        while _listeners(port) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _listeners(port) == 2
        for _ in range(8):  # one connection each: the kernel spreads them over the workers
            client = tg.InferenceServerClient(f"127.0.0.1:{port}")
            result = client.infer("iris", _inputs(X))
            assert result.as_numpy(result.get_response().outputs[0].name).tolist() == [0] * 5
            client.close()
        deadline = time.monotonic() + 10
        total = 0.0
        while time.monotonic() < deadline:  # other workers' snapshots arrive within ~1 s
            page = http.request("GET", "/metrics").body.decode()
            total = sum(float(x.rsplit(" ", 1)[1]) for x in page.splitlines() if x.startswith(
                'satchel_requests_total{route="/inference.GRPCInferenceService/ModelInfer"'))
            if total == 8:
                break
            time.sleep(0.2)
        assert total == 8
        assert "satchel_workers 2" in page


def test_grpc_port_in_use_is_a_clear_error(tmp_path: Path, iris_model_dir: Path) -> None:
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "satchel", "serve", "-m",
                               str(iris_model_dir), "--port", str(_free_port()),
                               "--grpc-port", str(port)], capture_output=True, text=True,
                              timeout=60)
    assert proc.returncode != 0
    assert f"127.0.0.1:{port}" in proc.stderr and "gRPC" in proc.stderr
    assert "Traceback" not in proc.stderr


# --- the model repository --------------------------------------------------------------------


def test_repository_index_load_and_unload(start_server: Any, iris_model_dir: Path,
                                          scale_model_dir: Path, tmp_path: Path,
                                          iris: Any) -> None:
    import shutil

    iris_copy = tmp_path / "iris"
    shutil.copytree(iris_model_dir, iris_copy)
    port = _free_port()
    X = iris[0].iloc[:3]
    with start_server(f"iris={iris_copy}", "-m", f"scale={scale_model_dir}", "--grpc-port",
                      str(port)):
        c = tg.InferenceServerClient(f"127.0.0.1:{port}")
        index = c.get_model_repository_index(as_json=True)["models"]
        assert [(m["name"], m["state"]) for m in index] == [("iris", "READY"),
                                                           ("scale", "READY")]
        c.load_model("iris")  # reloaded from its directory and swapped in
        assert c.is_model_ready("iris")
        # a directory that no longer verifies: refused by name, the old model keeps serving
        pickled = next(p for p in iris_copy.iterdir() if p.suffix in (".pkl", ".skops"))
        pickled.write_bytes(pickled.read_bytes() + b"tampered")
        with pytest.raises(InferenceServerException) as info:
            c.load_model("iris")
        assert _status(info) == "StatusCode.FAILED_PRECONDITION"
        assert pickled.name in info.value.message()
        result = c.infer("iris", _inputs(X))
        assert result.as_numpy(result.get_response().outputs[0].name).tolist() == [0, 0, 0]
        with pytest.raises(InferenceServerException) as info:
            c.load_model("nope")
        assert _status(info) == "StatusCode.NOT_FOUND"
        with pytest.raises(InferenceServerException) as info:
            c.load_model("scale", config='{"backend": "python"}')
        assert _status(info) == "StatusCode.INVALID_ARGUMENT"
        assert "'config'" in info.value.message()
        c.unload_model("scale")
        assert [m["name"] for m in c.get_model_repository_index(as_json=True)["models"]] == [
            "iris"]
        for call in (lambda: c.is_model_ready("scale"), lambda: c.unload_model("scale")):
            with pytest.raises(InferenceServerException) as info:
                call()
            assert _status(info) == "StatusCode.NOT_FOUND"
        c.close()


class Sleepy(satchel.PythonModel):
    """x (double) -> x, after sleeping ``params["sleep"]`` seconds."""

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        import time as _time

        _time.sleep((params or {}).get("sleep", 0.0))
        return model_input["x"].to_numpy()


def test_time_limit_and_queue_bound(start_server: Any, save_python_model: Any,
                                    tmp_path: Path) -> None:
    from satchel.schema import ColSpec, DataType, ParamSchema, ParamSpec, Schema, Signature

    sig = Signature(inputs=Schema([ColSpec(DataType.double, "x")]),
                    params=ParamSchema([ParamSpec("sleep", DataType.double, 0.0)]))
    path = save_python_model(Sleepy(), tmp_path / "sleepy", signature=sig)
    port = _free_port()
    x = _inputs(pd.DataFrame({"x": [1.0]}))
    with start_server(f"sleepy={path}", "--grpc-port", str(port), "--timeout", "2",
                      "--max-queue", "1", "--batching", "off"):
        c = tg.InferenceServerClient(f"127.0.0.1:{port}")
        with pytest.raises(InferenceServerException) as info:
            c.infer("sleepy", x, parameters={"sleep": 4.0})
        assert _status(info) == "StatusCode.DEADLINE_EXCEEDED"
        assert "longer than the limit of 2 s" in info.value.message()
        done: list[Any] = []
        c.async_infer("sleepy", x, lambda result, error: done.append((result, error)),
                      parameters={"sleep": 0.8})
        time.sleep(0.3)  # the first call is being scored: the queue (1) is full
        with pytest.raises(InferenceServerException) as info:
            c.infer("sleepy", x)
        assert _status(info) == "StatusCode.UNAVAILABLE"
        assert "the server is full" in info.value.message()
        deadline = time.monotonic() + 10
        while not done and time.monotonic() < deadline:
            time.sleep(0.05)
        assert done and done[0][1] is None, (done[0][1].status(), done[0][1].message())
        assert done[0][0].as_numpy("output-0").tolist() == [1.0]
        assert c.infer("sleepy", x).as_numpy("output-0").tolist() == [1.0]  # room again
        # the statistics: the call over the time limit failed; the one refused by the
        # queue bound never reached the model and is not counted
        stats = c.get_inference_statistics("sleepy", as_json=True)["model_stats"][0]
        inference = stats["inference_stats"]
        assert int(inference["success"]["count"]) == 2
        assert int(inference["fail"]["count"]) == 1
        assert int(inference["fail"]["ns"]) >= 2e9
        c.close()


def test_calls_wait_for_a_batch_only_under_concurrent_load() -> None:
    """A lone sequential client never waits; a call among other clients' calls does."""
    from satchel.serving.server.dataplane import DataPlane
    from satchel.serving.server.grpc_service import InferenceService
    from satchel.serving.server.repository import ModelRepository

    class Peer:  # what grpcio's context tells about the caller
        def __init__(self, address: str) -> None:
            self.address = address

        def peer(self) -> str:
            return self.address

    service = InferenceService(DataPlane(ModelRepository()))
    assert service.gather_seconds == 0.001
    alone = Peer("ipv4:127.0.0.1:5000")
    assert not any(service._expect_more(alone) for _ in range(5))
    assert service._expect_more(Peer("ipv4:127.0.0.1:5001"))  # another client, just now
    time.sleep(0.06)
    assert not service._expect_more(alone)  # the other one went quiet


def test_json_access_log_has_a_line_per_call(start_server: Any, iris_model_dir: Path,
                                             iris: Any) -> None:
    port = _free_port()
    with start_server(f"iris={iris_model_dir}", "--grpc-port", str(port), "--log-format",
                      "json") as http:
        c = tg.InferenceServerClient(f"127.0.0.1:{port}")
        c.infer("iris", _inputs(iris[0].iloc[:2]), headers={"x-request-id": "req-42"})
        with pytest.raises(InferenceServerException):
            c.get_model_metadata("nope")
        c.close()
        deadline = time.monotonic() + 10
        lines: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            lines = [json.loads(x) for x in http.log.read_text().splitlines()
                     if x.startswith("{") and '"access"' in x and "GRPCInference" in x]
            if len(lines) >= 2:
                break
            time.sleep(0.1)
        infer = next(x for x in lines if x["path"].endswith("/ModelInfer"))
        assert infer["status"] == "OK" and infer["request_id"] == "req-42"
        assert infer["duration_ms"] > 0 and "127.0.0.1" in infer["client"]
        meta = next(x for x in lines if x["path"].endswith("/ModelMetadata"))
        assert meta["status"] == "NOT_FOUND"


def test_unload_and_load_reach_every_worker(start_server: Any, iris_model_dir: Path,
                                            tmp_path: Path, iris: Any) -> None:
    """A repository call on one gRPC connection changes what every worker serves."""
    import shutil

    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copytree(iris_model_dir, repo / "iris")
    port = _free_port()

    def ready_everywhere() -> set[bool]:
        seen = set()
        for _ in range(8):  # new connections land on either worker
            c = tg.InferenceServerClient(f"127.0.0.1:{port}")
            try:
                seen.add(c.is_model_ready("iris"))
            except InferenceServerException as exc:
                assert str(exc.status()) == "StatusCode.NOT_FOUND"
                seen.add(False)
            c.close()
        return seen

    with start_server(f"other={iris_model_dir}", "--model-repository", str(repo),
                      "--workers", "2", "--grpc-port", str(port)):
        deadline = time.monotonic() + 20
        while _listeners(port) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ready_everywhere() == {True}
        tg.InferenceServerClient(f"127.0.0.1:{port}").unload_model("iris")
        assert ready_everywhere() == {False}
        tg.InferenceServerClient(f"127.0.0.1:{port}").load_model("iris")
        assert ready_everywhere() == {True}
