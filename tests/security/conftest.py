"""Attacker's tools: real model directories tampered with on disk, fresh processes."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml


def run_python(code: str, *, timeout: float = 120, env: dict[str, str] | None = None,
               cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (nothing imported yet, as in a real server)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def run_cli(
    *args: str, timeout: float = 120, preexec: Any = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "satchel", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec,
    )


def edit_manifest(model: Path, change: Any) -> None:
    """Rewrite MLmodel the way a hand editor would: load, change, dump."""
    path = model / "MLmodel"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


@pytest.fixture
def onnx_model() -> Any:
    """A one-node ONNX graph: y = 2 * x (float, N x 1)."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])
    two = helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0])
    graph = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["y"])], "g", [x], [y], [two])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


class Served:
    """A real ``satchel serve`` subprocess on a free loopback port."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: list[tuple[str, str]] | None = None,
                timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
        """One request; ``headers`` may repeat a name (http.client sends each)."""
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for k, v in headers or []:
                conn.putheader(k, v)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def ping(self, timeout: float = 2) -> int | None:
        try:
            return self.request("GET", "/ping", timeout=timeout)[0]
        except OSError:
            return None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def serve(model: Path | str, log_dir: Path, *args: str, preexec: Any = None,
          env: dict[str, str] | None = None) -> Iterator[Served]:
    """``python -m satchel serve -m MODEL ARGS``, up when /ping answers 200; stopped by pid."""
    from tests.conftest import free_port

    port = free_port()
    log = log_dir / f"serve-{port}.log"
    cmd = [sys.executable, "-m", "satchel", "serve", "-m", str(model), "--port", str(port),
           *args]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=preexec, env={**os.environ, **(env or {})})
    server = Served(proc, port, log)
    try:
        deadline = time.monotonic() + 90
        while server.ping() != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"satchel serve did not start:\n{server.log_text()[-3000:]}")
            time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
