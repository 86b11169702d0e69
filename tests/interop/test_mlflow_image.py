"""An MLflow 3.17.2 custom model whose requirements pin pandas==3.1.1 (what MLflow writes
when pandas 3 is installed) builds into a satchel image, runs, and scores: the image has
pandas 3.1.1 and no mlflow, and answers what MLflow's own pyfunc predicts."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from satchel.errors import DockerUnavailableError
from satchel.serving.images import docker as sd

pytestmark = [pytest.mark.interop, pytest.mark.docker]

BASE_IMAGE = os.environ.get("SATCHEL_TEST_BASE_IMAGE", "local/python:3.11-bookworm-slim")

SAVE = r'''
import json, sys
from pathlib import Path
import numpy as np, pandas as pd
import mlflow, mlflow.pyfunc

result_path, out = sys.argv[1], Path(sys.argv[2])

class Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input["x"] * 2 + (params or {}).get("k", 0)

df = pd.DataFrame({"x": [1.0, 2.5, 4.0]})
mlflow.pyfunc.save_model(
    str(out), python_model=Doubler(), input_example=(df, {"k": 0}),
    pip_requirements=["mlflow==3.17.2", "cloudpickle==" + __import__("cloudpickle").__version__,
                      "numpy==" + np.__version__, "pandas==3.1.1"])
pred = mlflow.pyfunc.load_model(str(out)).predict(df, params={"k": 1})
Path(result_path).write_text(json.dumps({"pred": pred.tolist()}))
'''


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    """The engine at DOCKER_HOST with the local base image; fails (never skips) without."""
    if not os.environ.get("DOCKER_HOST"):
        pytest.fail("DOCKER_HOST is not set: start an engine with eval \"$(.ci/docker-up.sh)\"")
    try:
        client = sd.docker_client()
    except DockerUnavailableError as exc:
        pytest.fail(str(exc))
    tags: list[str] = []
    client.satchel_test_tags = tags
    yield client
    for tag in tags:
        try:
            client.remove_image(tag, force=True)
        except Exception:  # noqa: BLE001 - already gone
            pass


def _post(port: int, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_mlflow_model_pinned_to_pandas_3_builds_runs_and_scores(
    engine: Any, run_mlflow: Any, tmp_path: Path, port: int
) -> None:
    model = tmp_path / "model"
    got = run_mlflow(SAVE, str(model))
    assert "pandas==3.1.1" in (model / "requirements.txt").read_text().split()
    tag = f"satchel-test/mlflow-pandas3:{uuid.uuid4().hex[:8]}"
    engine.satchel_test_tags.append(tag)
    sd.build_image(model, tag, base_image=BASE_IMAGE, progress=lambda _line: None)
    cid = engine.create_container(
        tag, environment={"SATCHEL_PORT": str(port), "SATCHEL_HOST": "127.0.0.1"},
        host_config=engine.create_host_config(network_mode="host"))["Id"]
    try:
        engine.start(cid)
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or not engine.inspect_container(cid)["State"][
                        "Running"]:
                    pytest.fail(engine.logs(cid).decode(errors="replace")[-2000:])
                time.sleep(0.3)
        reply = _post(port, {"dataframe_split": {"columns": ["x"], "data": [[1.0], [2.5], [4.0]]},
                             "params": {"k": 1}})
        # a named Series goes out as one-column records, as MLflow's server sends it
        assert [row["x"] for row in reply["predictions"]] == got["pred"]
        ex = engine.exec_create(cid, ["python", "-c",
                                      "import pandas, importlib.util as u; "
                                      "print(pandas.__version__, u.find_spec('mlflow') is None)"])
        out = engine.exec_start(ex["Id"]).decode().split()
        assert out == ["3.1.1", "True"]
    finally:
        engine.remove_container(cid, force=True)
