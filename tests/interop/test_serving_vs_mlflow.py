"""``satchel serve`` answers like ``mlflow models serve``: the same requests sent to both
real servers get the same status, the same top-level keys and the same predictions.

Cases: a column model (satchel-saved sklearn, which MLflow loads as ``mlflow.sklearn``),
a custom model with params (saved by each tool with the same code), an extra column, a
missing column and a numeric string in a double column.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pandas as pd
import pytest

import satchel
from satchel.schema import ColSpec, DataType, ParamSchema, ParamSpec, Schema, Signature

pytestmark = pytest.mark.interop

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]

MLFLOW_CUSTOM = """
import sys
import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

class Scale(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        params = params or {}
        return pd.DataFrame({"y": model_input["x"] * params.get("multiplier", 1.0),
                             "city": model_input["city"] + params.get("suffix", ""),
                             "n": model_input["n"]})

sig = ModelSignature(
    inputs=Schema([ColSpec("double", "x"), ColSpec("string", "city"), ColSpec("long", "n")]),
    params=ParamSchema([ParamSpec("multiplier", "double", 1.0), ParamSpec("suffix", "string", "")]))
mlflow.pyfunc.save_model(sys.argv[2], python_model=Scale(), signature=sig)
open(sys.argv[1], "w").write("{}")
"""


class Scale(satchel.PythonModel):
    """The same model as MLFLOW_CUSTOM's, for satchel."""

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        params = params or {}
        return pd.DataFrame({"y": model_input["x"] * params.get("multiplier", 1.0),
                             "city": model_input["city"] + params.get("suffix", ""),
                             "n": model_input["n"]})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Client:
    def __init__(self, port: int) -> None:
        self.port = port

    def post(self, payload: Any) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request("POST", "/invocations", json.dumps(payload),
                         {"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read())
        finally:
            conn.close()

    def ping(self) -> int | None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            conn.request("GET", "/ping")
            status = conn.getresponse().status
            conn.close()
            return status
        except OSError:
            return None


@contextlib.contextmanager
def serving(cmd: list[str], port: int, env: dict[str, str], log: Path) -> Iterator[Client]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    client = Client(port)
    try:
        deadline = time.monotonic() + 120
        while client.ping() != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{cmd[0]} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield client
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextlib.contextmanager
def both(model_satchel: Path, model_mlflow: Path, mlflow_python: Path,
         logs: Path) -> Iterator[tuple[Client, Client]]:
    bin_dir = mlflow_python.parent
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith("SATCHEL_")}
    # mlflow starts its server as `uvicorn ...` through the shell: its venv goes first.
    ml_env = {**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
              "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true", "PYTHONWARNINGS": "ignore"}
    p1, p2 = _free_port(), _free_port()
    with serving([sys.executable, "-m", "satchel", "serve", "-m", str(model_satchel),
                  "--port", str(p1)], p1, env, logs / f"satchel-{p1}.log") as ours, \
         serving([str(bin_dir / "mlflow"), "models", "serve", "-m", str(model_mlflow),
                  "--env-manager", "local", "-h", "127.0.0.1", "-p", str(p2), "-w", "1"],
                 p2, ml_env, logs / f"mlflow-{p2}.log") as theirs:
        yield ours, theirs


def same(ours: Client, theirs: Client, payload: Any) -> tuple[Any, Any]:
    s1, b1 = ours.post(payload)
    s2, b2 = theirs.post(payload)
    assert s1 == s2, (b1, b2)
    if s1 == 200:
        assert b1 == b2
    else:
        assert {"error_code", "message"} <= set(b1) and {"error_code", "message"} <= set(b2)
    return b1, b2


def test_column_model_answers_like_mlflow(mlflow_python: Path, iris_model_dir: Path,
                                          iris: tuple[Any, Any], tmp_path: Path) -> None:
    X = iris[0].iloc[[0, 60, 120]]
    rows = X.to_numpy().tolist()
    records = X.to_dict(orient="records")
    with both(iris_model_dir, iris_model_dir, mlflow_python, tmp_path) as (ours, theirs):
        body, _ = same(ours, theirs, {"dataframe_split": {"columns": COLUMNS, "data": rows}})
        assert body == {"predictions": [0, 1, 2]}
        same(ours, theirs, {"dataframe_records": records})
        same(ours, theirs, {"inputs": X.to_dict(orient="list")})
        # an extra column: dropped by both (satchel also says so in a header)
        same(ours, theirs, {"dataframe_split": {"columns": [*COLUMNS, "extra"],
                                                "data": [[*r, 1.0] for r in rows]}})
        # a missing column: 400 from both, with the same error code
        b1, b2 = same(ours, theirs, {"dataframe_split": {"columns": COLUMNS[:3],
                                                         "data": [r[:3] for r in rows]}})
        assert b1["error_code"] == b2["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "petal_width" in b1["message"] and "petal_width" in b2["message"]
        # a numeric string in a double column: accepted by both
        quoted = [dict(r) for r in records]
        quoted[0]["sepal_length"] = str(quoted[0]["sepal_length"])
        body, _ = same(ours, theirs, {"dataframe_records": quoted})
        assert body == {"predictions": [0, 1, 2]}


def test_custom_model_with_params_answers_like_mlflow(mlflow_python: Path, run_mlflow: Any,
                                                      tmp_path: Path) -> None:
    ml_path = tmp_path / "mlflow-scale"
    run_mlflow(MLFLOW_CUSTOM, str(ml_path))
    sig = Signature(
        inputs=Schema([ColSpec(DataType.double, "x"), ColSpec(DataType.string, "city"),
                       ColSpec(DataType.long, "n")]),
        params=ParamSchema([ParamSpec("multiplier", DataType.double, 1.0),
                            ParamSpec("suffix", DataType.string, "")]))
    module = sys.modules[Scale.__module__]
    cloudpickle.register_pickle_by_value(module)
    try:
        satchel.save_model(Scale(), tmp_path / "satchel-scale", flavor="python", signature=sig)
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    split = {"columns": ["x", "city", "n"], "data": [[1.5, "Oslo", 2], [2.0, "Rome", 3]]}
    with both(tmp_path / "satchel-scale", ml_path, mlflow_python, tmp_path) as (ours, theirs):
        body, _ = same(ours, theirs, {"dataframe_split": split,
                                      "params": {"multiplier": 2.0, "suffix": "!"}})
        assert body == {"predictions": [{"y": 3.0, "city": "Oslo!", "n": 2},
                                        {"y": 4.0, "city": "Rome!", "n": 3}]}
        body, _ = same(ours, theirs, {"dataframe_split": split})
        assert body["predictions"][0] == {"y": 1.5, "city": "Oslo", "n": 2}
