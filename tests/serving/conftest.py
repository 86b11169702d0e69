"""Real servers for the serving tests: ``python -m satchel serve`` on a free loopback port.

Each server is a subprocess of the interpreter running the tests (so CI tests the
installed wheel), answered over real HTTP, and stopped by pid: terminate, then kill.
Models with custom code are saved with their classes pickled by value, so the server
process loads them without importing this test package.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd
import pytest

import satchel
from satchel.schema import (
    ColSpec,
    DataType,
    ParamSchema,
    ParamSpec,
    Schema,
    Signature,
    TensorSpec,
)

STARTUP_TIMEOUT = 60.0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Server:
    """A running ``satchel serve``: its base URL, port, process and log file."""

    url: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def request(self, method: str, path: str, body: bytes | str | None = None,
                content_type: str | None = None, headers: dict[str, str] | None = None) -> Reply:
        """One HTTP request with nothing added: no Content-Type unless given."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            hdrs = dict(headers or {})
            if content_type is not None:
                hdrs["Content-Type"] = content_type
            data = body.encode() if isinstance(body, str) else body
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def post_json(self, path: str, payload: Any) -> Reply:
        return self.request("POST", path, json.dumps(payload), "application/json")

    def get(self, path: str) -> Reply:
        return self.request("GET", path)


def _ping(port: int) -> int | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/ping")
        status = conn.getresponse().status
        conn.close()
        return status
    except OSError:
        return None


@contextlib.contextmanager
def run_server(model_dir: Path | str | None, log_dir: Path, *args: str,
               env: dict[str, str] | None = None) -> Iterator[Server]:
    """Start ``python -m satchel serve -m MODEL ARGS`` (``env`` added to the environment)
    and wait for ``/ping`` 200. ``model_dir`` may be ``NAME=PATH``, or None for no ``-m``
    (e.g. with ``--model-repository`` in ``args``)."""
    port = _free_port()
    log = log_dir / f"serve-{port}.log"
    models = ["-m", str(model_dir)] if model_dir is not None else []
    cmd = [sys.executable, "-m", "satchel", "serve", *models, "--host",
           "127.0.0.1", "--port", str(port), *args]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while _ping(port) != 200:
            if proc.poll() is not None:
                raise AssertionError(f"satchel serve exited with {proc.returncode}:\n"
                                     f"{log.read_text(errors='replace')[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"satchel serve did not answer /ping in "
                                     f"{STARTUP_TIMEOUT} s:\n{log.read_text(errors='replace')}")
            time.sleep(0.05)
        yield Server(f"http://127.0.0.1:{port}", port, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# --- models ------------------------------------------------------------------------------


class ScaleModel(satchel.PythonModel):
    """Columns x (double), city (string), n (long); params multiplier and suffix.

    Returns y = x * multiplier, the city with the suffix, n, and the dtype names the
    model received (so tests see what the parsers produced). Raises on negative x.
    """

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        params = params or {}
        if (model_input["x"] < 0).any():
            raise ValueError("x must not be negative")
        return pd.DataFrame({
            "y": model_input["x"] * params.get("multiplier", 1.0),
            "city": model_input["city"] + params.get("suffix", ""),
            "n": model_input["n"],
            "types": ",".join(str(t) for t in model_input.dtypes),
        })


class RowSum(satchel.PythonModel):
    """One unnamed float32 tensor [-1, 3] -> the sum of each row (float32)."""

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        assert isinstance(model_input, np.ndarray) and model_input.dtype == np.float32
        return model_input.sum(axis=1)


class NamedTensors(satchel.PythonModel):
    """Named tensors a: float64 [-1, 2], b: int64 [-1] -> {"total": a.sum(1) + b, "flag": ...}."""

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        a, b = model_input["a"], model_input["b"]
        return {"total": a.sum(axis=1) + b, "flag": b > 0}


def save_by_value(obj: Any, path: Path, **kwargs: Any) -> Path:
    """Save a PythonModel whose class is pickled by value (servers need not import it)."""
    module = sys.modules[type(obj).__module__]
    cloudpickle.register_pickle_by_value(module)
    try:
        satchel.save_model(obj, path, flavor="python", **kwargs)
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    return path


SCALE_SIGNATURE = Signature(
    inputs=Schema([ColSpec(DataType.double, "x"), ColSpec(DataType.string, "city"),
                   ColSpec(DataType.long, "n")]),
    outputs=Schema([ColSpec(DataType.double, "y"), ColSpec(DataType.string, "city"),
                    ColSpec(DataType.long, "n"), ColSpec(DataType.string, "types")]),
    params=ParamSchema([ParamSpec("multiplier", DataType.double, 1.0),
                        ParamSpec("suffix", DataType.string, "")]),
)


@pytest.fixture(scope="session")
def scale_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_by_value(ScaleModel(), tmp_path_factory.mktemp("models") / "scale",
                         signature=SCALE_SIGNATURE)


@pytest.fixture(scope="session")
def rowsum_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sig = Signature(inputs=Schema([TensorSpec("float32", (-1, 3))]),
                    outputs=Schema([TensorSpec("float32", (-1,))]))
    return save_by_value(RowSum(), tmp_path_factory.mktemp("models") / "rowsum", signature=sig)


@pytest.fixture(scope="session")
def named_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sig = Signature(inputs=Schema([TensorSpec("float64", (-1, 2), "a"),
                                   TensorSpec("int64", (-1,), "b")]))
    return save_by_value(NamedTensors(), tmp_path_factory.mktemp("models") / "named",
                         signature=sig)


@pytest.fixture(scope="session")
def server_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-logs")


@pytest.fixture(scope="session")
def start_server(server_logs: Path) -> Any:
    """``with start_server(model_dir, *args, env=None) as server:`` a server of one's own."""
    return lambda model_dir, *args, env=None: run_server(model_dir, server_logs, *args, env=env)


@pytest.fixture(scope="session")
def save_python_model() -> Any:
    """``save_python_model(obj, path, **kwargs)``: :func:`save_by_value`."""
    return save_by_value


@pytest.fixture(scope="session")
def ping() -> Any:
    """``ping(port) -> status or None``."""
    return _ping


@pytest.fixture
def free_port_number() -> int:
    return _free_port()


@pytest.fixture(scope="session")
def iris_server(iris_model_dir: Path, server_logs: Path) -> Iterator[Server]:
    """The iris LogisticRegression, served under the name ``iris``."""
    with run_server(iris_model_dir, server_logs, "--name", "iris") as server:
        yield server


@pytest.fixture(scope="session")
def scale_server(scale_model_dir: Path, server_logs: Path) -> Iterator[Server]:
    with run_server(scale_model_dir, server_logs, "--name", "scale") as server:
        yield server


@pytest.fixture(scope="session")
def rowsum_server(rowsum_model_dir: Path, server_logs: Path) -> Iterator[Server]:
    with run_server(rowsum_model_dir, server_logs, "--name", "rowsum") as server:
        yield server


@pytest.fixture(scope="session")
def named_server(named_model_dir: Path, server_logs: Path) -> Iterator[Server]:
    with run_server(named_model_dir, server_logs, "--name", "named") as server:
        yield server
