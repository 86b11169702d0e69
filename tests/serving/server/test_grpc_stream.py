"""gRPC ``ModelStreamInfer``, ``ModelConfig`` and ``ModelStatistics``, and their HTTP
twins (``/v2/models/{name}/config``, ``/stats``): the real ``tritonclient.grpc`` and
``tritonclient.http`` clients against a real ``satchel serve`` on loopback."""

from __future__ import annotations

import queue
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import satchel

tg = pytest.importorskip("tritonclient.grpc")
th = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException, np_to_triton_dtype  # noqa: E402

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
TOKEN = "stream-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
MAX_ROWS = 500


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Servers:
    """One ``satchel serve`` with gRPC, and a client of each kind for it."""

    def __init__(self, http: Any, grpc_port: int) -> None:
        self.http = http
        self.grpc_url = f"127.0.0.1:{grpc_port}"
        self.grpc = tg.InferenceServerClient(self.grpc_url)
        self.rest = th.InferenceServerClient(f"127.0.0.1:{http.port}")


@pytest.fixture(scope="module")
def servers(start_server: Any, iris_model_dir: Path, scale_model_dir: Path,
            rowsum_model_dir: Path) -> Iterator[Servers]:
    """iris (batched), scale and rowsum, with a token, a 64 KiB message limit and a row
    limit."""
    port = _free_port()
    with start_server(f"iris={iris_model_dir}", "-m", f"scale={scale_model_dir}",
                      "-m", f"rowsum={rowsum_model_dir}", "--grpc-port", str(port),
                      "--max-body-size", "64KiB", "--max-rows", str(MAX_ROWS),
                      env={"SATCHEL_AUTH_TOKEN": TOKEN}) as http:
        s = Servers(http, port)
        yield s
        s.grpc.close()
        s.rest.close()


def _inputs(frame: pd.DataFrame, module: Any = tg) -> list[Any]:
    out = []
    for col in frame.columns:
        arr = frame[col].to_numpy()
        t = module.InferInput(col, [len(arr)], np_to_triton_dtype(arr.dtype))
        t.set_data_from_numpy(arr)
        out.append(t)
    return out


def _scale(x: list[float]) -> list[Any]:
    return _inputs(pd.DataFrame({"x": x, "city": ["a"] * len(x),
                                 "n": np.arange(len(x), dtype=np.int64)}))


def _city(city: str) -> list[Any]:
    return _inputs(pd.DataFrame({"x": [1.0], "city": [city], "n": np.array([1])}))


class Stream:
    """A tritonclient stream whose answers are collected in arrival order."""

    def __init__(self, url: str, headers: dict[str, str] | None = AUTH) -> None:
        self.client = tg.InferenceServerClient(url)
        self.answers: queue.Queue[tuple[Any, Any]] = queue.Queue()
        self.client.start_stream(lambda result, error: self.answers.put((result, error)),
                                 headers=headers)

    def send(self, model: str, inputs: list[Any], request_id: str, **kw: Any) -> None:
        self.client.async_stream_infer(model, inputs, request_id=request_id, **kw)

    def take(self, n: int) -> list[tuple[Any, Any]]:
        return [self.answers.get(timeout=30) for _ in range(n)]

    def close(self) -> None:
        self.client.stop_stream(cancel_requests=True)
        self.client.close()


# --- ModelStreamInfer ---------------------------------------------------------------------


def test_stream_answers_every_request_in_order(servers: Servers, iris: Any,
                                               iris_model_dir: Path) -> None:
    X = iris[0]
    expected = np.asarray(satchel.load_model(iris_model_dir).predict(X))
    stream = Stream(servers.grpc_url)
    try:
        # different sizes, sent without waiting: the answers still come in sending order
        spans = [(i * 7 % 140, i * 7 % 140 + 1 + i % 9) for i in range(40)]
        for i, (a, b) in enumerate(spans):
            stream.send("iris", _inputs(X.iloc[a:b]), f"r{i}")
        answers = stream.take(len(spans))
    finally:
        stream.close()
    assert [e for _, e in answers] == [None] * len(spans)
    assert [r.get_response().id for r, _ in answers] == [f"r{i}" for i in range(len(spans))]
    for (a, b), (result, _) in zip(spans, answers):
        out = result.as_numpy(result.get_response().outputs[0].name)
        np.testing.assert_array_equal(out, expected[a:b])


def test_a_bad_request_fails_its_answer_not_the_stream(servers: Servers) -> None:
    stream = Stream(servers.grpc_url)
    try:
        bad_tensor = _inputs(pd.DataFrame({"x": ["a"], "city": ["b"],
                                           "n": np.array([1], dtype=np.int64)}))
        stream.send("scale", _scale([1.0]), "ok-1")
        stream.send("nope", _scale([1.0]), "unknown-model")
        stream.send("scale", bad_tensor, "bad-tensor")
        stream.send("scale", _scale([-1.0]), "model-raises")
        stream.send("scale", _scale([1.0] * (MAX_ROWS + 1)), "too-many-rows")
        stream.send("scale", _scale([2.0]), "ok-2", parameters={"multiplier": 3.0})
        answers = stream.take(6)
        stream.send("scale", _scale([4.0]), "ok-3")  # the stream is still open
        answers += stream.take(1)
    finally:
        stream.close()
    errors = [e.message() if e is not None else None for _, e in answers]
    assert errors[0] is None and errors[5] is None and errors[6] is None
    assert "nope" in errors[1]
    assert "'x'" in errors[2]
    assert "x must not be negative" in errors[3]
    assert str(MAX_ROWS) in errors[4] and "rows" in errors[4]
    assert answers[5][0].as_numpy("y").tolist() == [6.0]
    assert answers[6][0].as_numpy("y").tolist() == [4.0]
    assert answers[6][0].get_response().id == "ok-3"


def test_stream_message_over_the_limit_fails_that_message_only(servers: Servers) -> None:
    """A message over --max-body-size is answered in the stream with an error naming the
    limit; the same stream answers the requests after it."""
    stream = Stream(servers.grpc_url)
    try:
        stream.send("scale", _scale([1.0]), "before")
        stream.send("scale", _city("a" * 60_000), "under")  # 60 KB plus framing: fine
        stream.send("scale", _city("a" * 70_000), "over")  # over 64 KiB
        stream.send("scale", _scale([5.0]), "after")
        stream.send("nope", _scale([1.0]), "unknown-model")
        stream.send("scale", _city("b" * 500_000), "far-over")  # 7x the limit
        stream.send("scale", _scale([6.0]), "last")
        answers = stream.take(7)
    finally:
        stream.close()
    (before, e0), (under, e1), (over, e2), (after, e3), (unknown, e4), (far, e5), \
        (last, e6) = answers
    assert (e0, e1, e3, e6) == (None, None, None, None)
    assert before.get_response().id == "before"
    assert len(under.as_numpy("city")[0]) == 60_000
    assert over is None and far is None and unknown is None
    for error in (e2, e5):
        assert "over the limit of 64 KiB (65536 bytes" in error.message()
        assert "aaaa" not in error.message() and "bbbb" not in error.message()
    assert "nope" in e4.message()
    assert after.as_numpy("y").tolist() == [5.0] and after.get_response().id == "after"
    assert last.as_numpy("y").tolist() == [6.0] and last.get_response().id == "last"


def _raw_stream(url: str, messages: list[bytes]) -> list[Any]:
    """Send ``messages`` (wire bytes, sent as they are) on one ModelStreamInfer stream
    through grpcio's own channel; the answers, parsed by tritonclient's message types."""
    import grpc
    from tritonclient.grpc import service_pb2

    with grpc.insecure_channel(url) as channel:
        call = channel.stream_stream(
            "/inference.GRPCInferenceService/ModelStreamInfer",
            request_serializer=lambda b: b,
            response_deserializer=service_pb2.ModelStreamInferResponse.FromString)
        return list(call(iter(messages), metadata=tuple(AUTH.items()), timeout=30))


def _request_bytes(model: str, request_id: str, x: float) -> bytes:
    from tritonclient.grpc import service_pb2

    req = service_pb2.ModelInferRequest(model_name=model, id=request_id)
    for name, datatype, raw in (("x", "FP64", np.array([x]).tobytes()),
                                ("city", "BYTES", b"\x01\x00\x00\x00a"),
                                ("n", "INT64", np.array([1], dtype=np.int64).tobytes())):
        req.inputs.add(name=name, datatype=datatype, shape=[1])
        req.raw_input_contents.append(raw)
    return bytes(req.SerializeToString())


def test_stream_malformed_message_fails_that_message_only(servers: Servers) -> None:
    """Bytes that are no ModelInferRequest, a message cut short, an unknown model and a
    message over the limit, between good requests of one stream: each bad one answered
    with its error, naming the request where its bytes say which it was."""
    good = _request_bytes("scale", "ok-1", 1.0)
    over = _request_bytes("scale", "too-big", 1.0) + b"\x0a" + b"\x80\x80\x04" + b"m" * 65536
    answers = _raw_stream(servers.grpc_url, [
        good, b"\xff\xff\xff\xff", _request_bytes("scale", "ok-2", 2.0),
        good[:-3], _request_bytes("ghost", "who", 1.0), over,
        _request_bytes("scale", "ok-3", 3.0)])
    assert len(answers) == 7
    errors = [a.error_message for a in answers]
    ok = [np.frombuffer(a.infer_response.raw_output_contents[0]).tolist()
          for i, a in enumerate(answers) if i in (0, 2, 6)]
    assert ok == [[1.0], [2.0], [3.0]]
    assert [answers[i].infer_response.id for i in (0, 2, 6)] == ["ok-1", "ok-2", "ok-3"]
    assert (errors[0], errors[2], errors[6]) == ("", "", "")
    assert "not a valid ModelInferRequest" in errors[1]
    assert "not a valid ModelInferRequest" in errors[3]
    assert answers[3].infer_response.id == "ok-1"  # its name fields were whole
    assert "ghost" in errors[4] and answers[4].infer_response.id == "who"
    assert "over the limit of 64 KiB" in errors[5]
    assert answers[5].infer_response.model_name == "scale"
    assert answers[5].infer_response.id == "too-big"
    assert "mmmm" not in errors[5]


def test_stream_message_over_grpcios_cap_ends_that_stream_only(servers: Servers) -> None:
    """grpcio's own limit, set to the --max-body-size plus 1 MiB here, bounds what one
    message makes the server buffer: a message over it ends its stream with
    RESOURCE_EXHAUSTED, and the server and new streams carry on."""
    stream = Stream(servers.grpc_url)
    try:
        stream.send("scale", _scale([1.0]), "before")
        (ok, error), = stream.take(1)
        assert error is None and ok.get_response().id == "before"
        stream.send("scale", _city("a" * (65536 + (1 << 20))), "way-over")
        (result, error), = stream.take(1)
    finally:
        stream.close()
    assert result is None and "RESOURCE_EXHAUSTED" in str(error.status())
    assert str(65536 + (1 << 20)) in error.message()
    again = Stream(servers.grpc_url)
    try:
        again.send("scale", _scale([5.0]), "after")
        (ok, error), = again.take(1)
    finally:
        again.close()
    assert error is None and ok.as_numpy("y").tolist() == [5.0]


def test_stream_without_the_token_is_refused(servers: Servers) -> None:
    stream = Stream(servers.grpc_url, headers=None)
    try:  # refused as the stream opens, before any request is read
        (result, error), = stream.take(1)
        with pytest.raises(InferenceServerException, match="no longer in valid state"):
            stream.send("scale", _scale([1.0]), "r")
    finally:
        stream.close()
    assert result is None and "UNAUTHENTICATED" in str(error.status())
    assert TOKEN not in error.message()


def test_stream_requests_are_counted_per_answer(servers: Servers) -> None:
    def count(status: str) -> float:
        page = servers.http.request("GET", "/metrics", headers=AUTH).body.decode()
        key = ('satchel_requests_total{route="/inference.GRPCInferenceService/'
               f'ModelStreamInfer",status="{status}"}}')
        return next((float(x.rsplit(" ", 1)[1]) for x in page.splitlines()
                     if x.startswith(key)), 0.0)

    ok, bad = count("OK"), count("NOT_FOUND")
    stream = Stream(servers.grpc_url)
    try:
        for i in range(5):
            stream.send("scale", _scale([1.0]), f"r{i}")
        stream.send("nope", _scale([1.0]), "x")
        stream.take(6)
    finally:
        stream.close()
    assert (count("OK") - ok, count("NOT_FOUND") - bad) == (5, 1)


# --- ModelConfig and /config ----------------------------------------------------------------


def test_model_config_from_the_signature(servers: Servers) -> None:
    config = servers.grpc.get_model_config("scale", headers=AUTH, as_json=True)["config"]
    assert config["name"] == "scale" and config["backend"] == "satchel"
    assert config["platform"] == servers.grpc.get_model_metadata(
        "scale", headers=AUTH, as_json=True)["platform"]
    assert config.get("max_batch_size", 0) == 0  # the rows are in every tensor's dims
    assert [(i["name"], i["data_type"], i["dims"]) for i in config["input"]] == [
        ("x", "TYPE_FP64", ["-1"]), ("city", "TYPE_STRING", ["-1"]), ("n", "TYPE_INT64", ["-1"])]
    assert [(o["name"], o["data_type"]) for o in config["output"]] == [
        ("y", "TYPE_FP64"), ("city", "TYPE_STRING"), ("n", "TYPE_INT64"),
        ("types", "TYPE_STRING")]
    rowsum = servers.grpc.get_model_config("rowsum", headers=AUTH).config
    assert [(i.name, list(i.dims)) for i in rowsum.input] == [("input-0", [-1, 3])]
    iris = servers.grpc.get_model_config("iris", headers=AUTH).config
    assert iris.dynamic_batching.max_queue_delay_microseconds > 0  # batched: an sklearn model
    assert int(iris.parameters["max_batch_rows"].string_value) > 0


def test_http_config_is_the_grpc_config(servers: Servers) -> None:
    for name in ("scale", "rowsum", "iris"):
        over_http = servers.rest.get_model_config(name, headers=AUTH)
        over_grpc = servers.grpc.get_model_config(name, headers=AUTH, as_json=True)["config"]
        for key in ("input", "output"):  # protobuf's JSON writes int64 as text
            for item in over_grpc[key]:
                item["dims"] = [int(d) for d in item["dims"]]
        if "dynamic_batching" in over_grpc:
            batching = over_grpc["dynamic_batching"]
            batching["max_queue_delay_microseconds"] = int(
                batching["max_queue_delay_microseconds"])
        assert over_http == {"max_batch_size": 0, **over_grpc}


def test_config_of_an_unknown_model_or_version(servers: Servers) -> None:
    for call in (lambda: servers.grpc.get_model_config("nope", headers=AUTH),
                 lambda: servers.grpc.get_model_config("scale", "7", headers=AUTH)):
        with pytest.raises(InferenceServerException) as info:
            call()
        assert "NOT_FOUND" in str(info.value.status())
    with pytest.raises(InferenceServerException) as info:
        servers.rest.get_model_config("nope", headers=AUTH)
    assert str(info.value.status()) == "404" and "nope" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        servers.grpc.get_model_config("scale")  # no token
    assert "UNAUTHENTICATED" in str(info.value.status())
    assert servers.http.request("GET", "/v2/models/scale/config").status == 401


# --- ModelStatistics and /stats ---------------------------------------------------------------


def _stats(entry: dict[str, Any]) -> tuple[int, int, int, int, int]:
    s = entry["inference_stats"]
    return (int(s["success"].get("count", 0)), int(s["fail"].get("count", 0)),
            int(entry.get("inference_count", 0)), int(entry.get("execution_count", 0)),
            int(s["compute_infer"].get("count", 0)))


def test_statistics_count_both_transports(servers: Servers) -> None:
    def grpc_stats() -> dict[str, Any]:
        return servers.grpc.get_inference_statistics("rowsum", headers=AUTH,
                                                     as_json=True)["model_stats"][0]

    before = grpc_stats()
    started = time.time()
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    for module, client in ((tg, servers.grpc), (tg, servers.grpc), (th, servers.rest)):
        t = module.InferInput("input-0", [4, 3], "FP32")
        t.set_data_from_numpy(X)
        # a copy: tritonclient.http adds its binary header to the dict it is given
        assert client.infer("rowsum", [t], headers=dict(AUTH)).as_numpy(
            "output-0").tolist() == [3.0, 12.0, 21.0, 30.0]
    bad = tg.InferInput("input-0", [2, 5], "FP32")  # the model takes [-1, 3]
    bad.set_data_from_numpy(np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(InferenceServerException):
        servers.grpc.infer("rowsum", [bad], headers=AUTH)
    after = grpc_stats()
    assert after["name"] == "rowsum"
    delta = tuple(a - b for a, b in zip(_stats(after), _stats(before)))
    assert delta == (3, 1, 12, 3, 3)  # success, fail, rows, predict calls (timed)
    success = after["inference_stats"]["success"]
    assert int(success["ns"]) > int(before["inference_stats"]["success"].get("ns", 0))
    assert int(after["inference_stats"]["compute_infer"]["ns"]) > 0
    assert started - 1 <= int(after["last_inference"]) / 1000 <= time.time() + 1
    over_http = servers.rest.get_inference_statistics("rowsum", headers=AUTH)["model_stats"][0]
    assert _stats(over_http) == _stats(after)
    assert over_http["inference_stats"]["queue"]["count"] == _stats(after)[0]


def test_statistics_time_each_stage_and_each_batch_size(servers: Servers) -> None:
    """Queue, decode, predict and encode are measured per request in the data plane
    (whatever the transport), predict calls by size, and the model's memory at load;
    read back through the real clients' own message types."""
    X = np.arange(15, dtype=np.float32).reshape(5, 3)
    for module, client in ((tg, servers.grpc), (th, servers.rest)):
        t = module.InferInput("input-0", [5, 3], "FP32")
        t.set_data_from_numpy(X)
        client.infer("rowsum", [t], headers=dict(AUTH))
    reply = servers.grpc.get_inference_statistics("rowsum", headers=AUTH)  # the protobuf
    entry = reply.model_stats[0]
    stats = entry.inference_stats
    served = stats.success.count
    assert served >= 2
    for stage in (stats.queue, stats.compute_input, stats.compute_infer,
                  stats.compute_output):
        assert stage.count == served
    assert stats.compute_input.ns > 0 and stats.compute_infer.ns > 0
    assert stats.compute_output.ns > 0
    # every request's stages lie within its own time
    assert (stats.queue.ns + stats.compute_input.ns + stats.compute_infer.ns
            + stats.compute_output.ns) <= stats.success.ns
    sizes = {b.batch_size: b for b in entry.batch_stats}
    assert sizes[5].compute_infer.count >= 2 and sizes[5].compute_infer.ns > 0
    assert sum(b.compute_infer.count for b in entry.batch_stats) == entry.execution_count
    assert [m.type for m in entry.memory_usage] == ["CPU"]
    over_http = servers.rest.get_inference_statistics("rowsum", headers=AUTH)["model_stats"][0]
    assert over_http["batch_stats"][0]["batch_size"] == min(sizes)
    assert over_http["memory_usage"][0]["byte_size"] == entry.memory_usage[0].byte_size
    # the first model loaded brought scikit-learn in with it
    iris = servers.grpc.get_inference_statistics("iris", headers=AUTH).model_stats[0]
    assert iris.memory_usage[0].byte_size > 1_000_000


def test_batched_requests_count_their_wait_in_the_queue(servers: Servers, iris: Any) -> None:
    """iris is batched: requests sent together wait for the batch being formed, and the
    merged calls appear under their row counts."""
    import concurrent.futures

    def one(i: int) -> None:
        c = th.InferenceServerClient(f"127.0.0.1:{servers.http.port}")
        c.infer("iris", _inputs(iris[0].iloc[i:i + 1], th), headers=dict(AUTH))
        c.close()

    before = servers.grpc.get_inference_statistics("iris", headers=AUTH).model_stats[0]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(32)))
    after = servers.grpc.get_inference_statistics("iris", headers=AUTH).model_stats[0]
    stats, old = after.inference_stats, before.inference_stats
    assert stats.success.count - old.success.count == 32
    assert stats.queue.count == stats.success.count
    assert stats.queue.ns > old.queue.ns
    calls = {b.batch_size: b.compute_infer.count for b in after.batch_stats}
    old_calls = {b.batch_size: b.compute_infer.count for b in before.batch_stats}
    new = {k: v - old_calls.get(k, 0) for k, v in calls.items() if v != old_calls.get(k, 0)}
    assert sum(size * n for size, n in new.items()) == 32  # every row in some call


def test_statistics_of_every_model_and_the_hostile_cases(servers: Servers) -> None:
    names = [m["name"] for m in servers.grpc.get_inference_statistics(
        headers=AUTH, as_json=True)["model_stats"]]
    assert names == ["iris", "scale", "rowsum"]
    assert [m["name"] for m in servers.rest.get_inference_statistics(
        headers=AUTH)["model_stats"]] == names
    for call in (lambda: servers.grpc.get_inference_statistics("nope", headers=AUTH),
                 lambda: servers.grpc.get_inference_statistics("scale", "3", headers=AUTH)):
        with pytest.raises(InferenceServerException) as info:
            call()
        assert "NOT_FOUND" in str(info.value.status())
    with pytest.raises(InferenceServerException) as info:
        servers.grpc.get_inference_statistics("", "3", headers=AUTH)
    assert "INVALID_ARGUMENT" in str(info.value.status())
    with pytest.raises(InferenceServerException) as info:
        servers.rest.get_inference_statistics("nope", headers=AUTH)
    assert str(info.value.status()) == "404"
    # a made-up model name never becomes a metrics label
    page = servers.http.request("GET", "/metrics", headers=AUTH).body.decode()
    assert 'model="nope"' not in page


def test_statistics_sum_every_worker(start_server: Any, iris_model_dir: Path,
                                     iris: Any) -> None:
    port = _free_port()
    X = iris[0].iloc[:3]
    with start_server(f"iris={iris_model_dir}", "--workers", "2", "--grpc-port", str(port)):
        for _ in range(8):  # a connection each: the kernel spreads them over the workers
            c = tg.InferenceServerClient(f"127.0.0.1:{port}")
            c.infer("iris", _inputs(X))
            c.close()
        deadline = time.monotonic() + 10
        counts: tuple[int, ...] = ()
        while time.monotonic() < deadline:  # other workers' snapshots arrive within ~1 s
            c = tg.InferenceServerClient(f"127.0.0.1:{port}")
            entry = c.get_inference_statistics("iris", as_json=True)["model_stats"][0]
            c.close()
            counts = _stats(entry)[:3]
            if counts == (8, 0, 24):
                break
            time.sleep(0.2)
        assert counts == (8, 0, 24)
