"""Limits and protection on a real server: body size, time, queue, token, request ids, logs."""

from __future__ import annotations

import json
import os
import select
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import satchel
from satchel.schema import ColSpec, DataType, ParamSchema, ParamSpec, Schema, Signature

SIGNATURE = Signature(inputs=Schema([ColSpec(DataType.double, "x")]),
                      params=ParamSchema([ParamSpec("sleep", DataType.double, 0.0)]))


class Sleepy(satchel.PythonModel):
    """y = x, after sleeping ``params["sleep"]`` seconds.

    Row-independent, so it is batched, and so always scored in a worker thread: a request
    scored inline on the event loop (a model measured as cheap, not batched) cannot be
    interrupted, and its 504 would come only once it returns.
    """

    row_independent = True

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        time.sleep((params or {}).get("sleep", 0.0))
        return pd.DataFrame({"y": model_input["x"]})


def score(x: float = 1.0, sleep: float = 0.0) -> str:
    return json.dumps({"dataframe_split": {"columns": ["x"], "data": [[x]]},
                       "params": {"sleep": sleep}})


@pytest.fixture(scope="module")
def sleepy_dir(tmp_path_factory: pytest.TempPathFactory, save_python_model: Any) -> Path:
    return save_python_model(Sleepy(), tmp_path_factory.mktemp("sleepy") / "sleepy",
                             signature=SIGNATURE)


@pytest.fixture(scope="module")
def limited(sleepy_dir: Path, start_server: Any, tmp_path_factory: pytest.TempPathFactory
            ) -> Any:
    """A server with small limits and a token (from a file), JSON logs."""
    token_file = tmp_path_factory.mktemp("token") / "token"
    token_file.write_text("s3cret-token\n")
    with start_server(sleepy_dir, "--max-body-size", "1MiB", "--timeout", "1",
                      "--max-queue", "2", "--auth-token-file", str(token_file),
                      "--log-format", "json") as server:
        yield server


AUTH = {"Authorization": "Bearer s3cret-token"}


def _raw(port: int, head: bytes, chunks: Any = (), timeout: float = 30.0) -> tuple[bytes, int]:
    """Send ``head`` then ``chunks`` until the server answers; (reply bytes, bytes sent)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sent = 0
    try:
        sock.sendall(head)
        reply = b""
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered (or hung up): stop sending
            try:
                sock.sendall(chunk)  # blocking: a partial send would corrupt the stream
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                reply += data
                if b"\r\n\r\n" in reply:
                    head_part, _, rest = reply.partition(b"\r\n\r\n")
                    length = [int(h.split(b":")[1]) for h in head_part.split(b"\r\n")
                              if h.lower().startswith(b"content-length:")]
                    if length and len(rest) >= length[0]:
                        break
        except (ConnectionResetError, TimeoutError):
            pass
        return reply, sent
    finally:
        sock.close()


def _status(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


def _json_body(reply: bytes) -> Any:
    return json.loads(reply.partition(b"\r\n\r\n")[2])


# --- body size ---------------------------------------------------------------------------


def test_413_from_content_length_before_reading_the_body(limited: Any) -> None:
    head = (b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer s3cret-token\r\nContent-Length: 1073741824\r\n\r\n")
    reply, _ = _raw(limited.port, head)  # no body sent at all: the answer comes anyway
    assert _status(reply) == 413
    message = _json_body(reply)["message"]
    assert "1 MiB" in message and "1073741824" in message
    assert limited.get("/ping").status == 200


def test_413_for_a_streamed_body_stops_reading(limited: Any) -> None:
    head = (b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer s3cret-token\r\nTransfer-Encoding: chunked\r\n\r\n")
    piece = b"x" * 65536
    chunk = b"%x\r\n" % len(piece) + piece + b"\r\n"
    reply, sent = _raw(limited.port, head, (chunk for _ in range(16384)))  # up to 1 GiB
    assert _status(reply) == 413
    assert "over the limit of 1 MiB" in _json_body(reply)["message"]
    assert sent < 64 * 2**20  # the server stopped long before the end
    assert limited.request("POST", "/invocations", score(), "application/json",
                           AUTH).status == 200


# --- time and queue ----------------------------------------------------------------------


def test_504_when_scoring_takes_too_long(limited: Any) -> None:
    start = time.monotonic()
    reply = limited.request("POST", "/invocations", score(sleep=3.0), "application/json", AUTH)
    assert reply.status == 504
    assert "longer than the limit of 1 s" in reply.json()["message"]
    assert time.monotonic() - start < 2.5  # answered at the limit, not after the model
    assert limited.get("/ping").status == 200  # the event loop was never blocked
    # Python cannot stop the model's call: its thread finishes in the background, then
    # the model scores again
    time.sleep(max(0.0, start + 3.2 - time.monotonic()))
    assert limited.request("POST", "/invocations", score(), "application/json",
                           AUTH).status == 200


def _failures(server: Any) -> float:
    from satchel.serving.server.metrics import parse_page

    page = parse_page(server.request("GET", "/metrics", headers=AUTH).body.decode())
    return page.get('satchel_inference_duration_seconds_count{model="sleepy",'
                    'outcome="fail"}', 0.0)


def test_a_504_counts_as_one_failed_inference(limited: Any) -> None:
    before = _failures(limited)
    reply = limited.request("POST", "/invocations", score(sleep=1.2), "application/json", AUTH)
    assert reply.status == 504
    assert _failures(limited) == before + 1
    time.sleep(0.4)  # the abandoned call finishes before the next test scores
    assert limited.request("POST", "/invocations", score(), "application/json",
                           AUTH).status == 200
    assert _failures(limited) == before + 1  # a success adds no failure


def test_408_when_the_body_never_arrives(limited: Any) -> None:
    head = (b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer s3cret-token\r\nContent-Length: 100\r\n\r\n{\"data")
    reply, _ = _raw(limited.port, head)  # promises 100 bytes, sends 6
    assert _status(reply) == 408
    assert "6 bytes received" in _json_body(reply)["message"]


def test_503_with_retry_after_when_the_queue_is_full(limited: Any) -> None:
    replies: list[Any] = []

    def slow() -> None:
        # one scores while the other waits for it: 2 x 0.4 s, within the 1 s limit
        replies.append(limited.request("POST", "/invocations", score(sleep=0.4),
                                       "application/json", AUTH))

    threads = [threading.Thread(target=slow) for _ in range(2)]
    for t in threads:
        t.start()
    # wait until both are held (one scoring, one queued behind it)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        page = limited.request("GET", "/metrics", headers=AUTH).body.decode()
        if "satchel_requests_in_flight 3" in page:  # the two, and this /metrics request
            break
        time.sleep(0.01)
    full = limited.request("POST", "/invocations", score(), "application/json", AUTH)
    for t in threads:
        t.join()
    assert full.status == 503
    assert full.headers["retry-after"] == "1"
    assert "full" in full.json()["message"]
    assert sorted(r.status for r in replies) == [200, 200]
    assert limited.get("/ping").status == 200


# --- auth --------------------------------------------------------------------------------


def test_401_without_or_with_a_wrong_token(limited: Any) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
        reply = limited.request("POST", "/invocations", score(), "application/json", headers)
        assert reply.status == 401
        assert reply.headers["www-authenticate"].startswith("Bearer")
        assert "token" in reply.json()["message"]
    for path in ("/metrics", "/openapi.json", "/v2/models/sleepy", "/v2/health/ready"):
        assert limited.get(path).status == 401, path
    v2 = limited.request("POST", "/v2/models/sleepy/infer", "{}", "application/json")
    assert v2.status == 401 and "error" in v2.json()


def test_liveness_needs_no_token(limited: Any) -> None:
    for path in ("/ping", "/health", "/v2/health/live"):
        assert limited.get(path).status == 200, path
    assert limited.request("GET", "/metrics", headers=AUTH).status == 200


def test_token_from_the_environment(sleepy_dir: Path, start_server: Any) -> None:
    with start_server(sleepy_dir, env={"SATCHEL_AUTH_TOKEN": "from-env"}) as server:
        ok = server.request("POST", "/invocations", score(), "application/json",
                            {"Authorization": "Bearer from-env"})
        assert ok.status == 200
        assert server.request("POST", "/invocations", score(), "application/json").status == 401


# --- request ids and logs ----------------------------------------------------------------


def test_request_id_is_echoed_or_generated(limited: Any) -> None:
    mine = limited.request("GET", "/ping", headers={"X-Request-ID": "abc-123"})
    assert mine.headers["x-request-id"] == "abc-123"
    made = limited.get("/ping").headers["x-request-id"]
    assert len(made) == 32 and made != limited.get("/ping").headers["x-request-id"]
    hostile = limited.request("GET", "/ping", headers={"X-Request-ID": "a" * 500})
    assert len(hostile.headers["x-request-id"]) == 32  # not echoed: replaced
    error = limited.request("POST", "/invocations", "{", "application/json",
                            {**AUTH, "X-Request-ID": "req-400"})
    assert error.status == 400 and error.headers["x-request-id"] == "req-400"


def test_json_access_log_lines(limited: Any) -> None:
    limited.request("POST", "/invocations", score(), "application/json",
                    {**AUTH, "X-Request-ID": "log-me-1"})
    deadline = time.monotonic() + 5
    line = None
    while time.monotonic() < deadline and line is None:
        for raw in limited.log.read_text().splitlines():
            if "log-me-1" in raw:
                line = json.loads(raw)
        time.sleep(0.05)
    assert line is not None
    assert line["event"] == "access" and line["status"] == 200
    assert line["method"] == "POST" and line["path"] == "/invocations"
    assert line["duration_ms"] >= 0 and line["level"] == "info"
    # every line the server wrote is JSON, its own startup lines included
    lines = [json.loads(raw) for raw in limited.log.read_text().splitlines() if raw.strip()]
    assert any(entry["logger"].startswith("uvicorn") for entry in lines)


def test_limits_from_the_environment(sleepy_dir: Path, start_server: Any) -> None:
    env = {"SATCHEL_MAX_BODY_SIZE": "1KiB", "SATCHEL_LOG_FORMAT": "json",
           "SATCHEL_TIMEOUT": "0.5"}
    with start_server(sleepy_dir, env=env) as server:
        big = json.dumps({"dataframe_split": {"columns": ["x"], "data": [[1.0]] * 300}})
        reply = server.request("POST", "/invocations", big, "application/json")
        assert reply.status == 413 and "1 KiB (1024 bytes)" in reply.json()["message"]
        slow = server.request("POST", "/invocations", score(sleep=1.0), "application/json")
        assert slow.status == 504 and "0.5 s" in slow.json()["message"]
        assert json.loads(server.log.read_text().splitlines()[0])["level"] == "info"


def test_bad_option_values_exit_with_one_line(sleepy_dir: Path) -> None:
    import subprocess
    import sys

    for args, env, needle in (
            (["--max-body-size", "lots"], {}, "is not a size"),
            ([], {"SATCHEL_BATCHING": "sometimes"}, "SATCHEL_BATCHING"),
            (["--auth-token-file", "/no/such/file"], {}, "auth-token-file"),
            ([], {"SATCHEL_TIMEOUT": "soon"}, "SATCHEL_TIMEOUT")):
        out = subprocess.run([sys.executable, "-m", "satchel", "serve", "-m", str(sleepy_dir),
                              "--port", "0", *args], capture_output=True, text=True,
                             timeout=60, env={**os.environ, **env})
        assert out.returncode != 0, args
        assert needle in out.stderr and "Traceback" not in out.stderr, out.stderr
