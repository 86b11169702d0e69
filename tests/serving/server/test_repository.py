"""The repository API on real servers: ``--model-repository``, load/unload without a
restart, a directory replaced in place and reloaded under load (no request lost, the
ones in flight finish on the old model), with one worker and with several."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import satchel
from satchel.schema import ColSpec, DataType, Schema, Signature

SIGNATURE = Signature(inputs=Schema([ColSpec(DataType.double, "sleep")]),
                      outputs=Schema([ColSpec(DataType.long, "value")]))


class Const(satchel.PythonModel):
    """Answers its ``value`` for every row, after sleeping the input's largest ``sleep``."""

    def __init__(self, value: int) -> None:
        self.value = value

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        time.sleep(float(model_input["sleep"].max()))
        return pd.DataFrame({"value": [self.value] * len(model_input)})


def _save(save_python_model: Any, value: int, path: Path) -> Path:
    return save_python_model(Const(value), path, signature=SIGNATURE)


def _score(server: Any, sleep: float = 0.0, path: str = "/invocations") -> tuple[int, Any]:
    if path == "/invocations":
        reply = server.post_json(path, {"dataframe_split": {"columns": ["sleep"],
                                                            "data": [[sleep]]}})
        value = reply.json()["predictions"][0]["value"] if reply.status == 200 else None
    else:
        reply = server.post_json(path, {"inputs": [{"name": "sleep", "shape": [1],
                                                    "datatype": "FP64", "data": [sleep]}]})
        value = reply.json()["outputs"][0]["data"][0] if reply.status == 200 else None
    return reply.status, value


@pytest.fixture
def repo(tmp_path: Path, save_python_model: Any) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    _save(save_python_model, 1, root / "m")
    _save(save_python_model, 7, root / "other")
    return root


def _replace_in_place(root: Path, save_python_model: Any, value: int) -> None:
    staging = root.parent / f"staging-{value}"
    _save(save_python_model, value, staging)
    old = root.parent / f"old-{time.monotonic_ns()}"
    os.rename(root / "m", old)
    os.rename(staging, root / "m")


def _hammer(server: Any, stop: threading.Event, out: list[tuple[float, float, int, Any]]
            ) -> None:
    paths = ["/invocations", "/v2/models/m/infer"]
    i = 0
    while not stop.is_set():
        start = time.monotonic()
        status, value = _score(server, 0.0, paths[i % 2])
        out.append((start, time.monotonic(), status, value))
        i += 1


@pytest.mark.parametrize("workers", [1, 2])
def test_swap_under_load_loses_no_request(repo: Path, start_server: Any,
                                          save_python_model: Any, workers: int) -> None:
    with start_server(None, "--model-repository", str(repo), "--default", "m",
                      "--workers", str(workers)) as server:
        index = server.post_json("/v2/repository/index", {}).json()
        assert {e["name"]: e["state"] for e in index} == {"m": "READY", "other": "READY"}
        assert _score(server, 0.0, "/v2/models/other/infer") == (200, 7)
        stop, results = threading.Event(), []  # type: ignore[var-annotated]
        threads = [threading.Thread(target=_hammer, args=(server, stop, results))
                   for _ in range(4)]
        slow: list[tuple[int, Any]] = []
        slow_thread = threading.Thread(target=lambda: slow.append(_score(server, 1.5)))
        for t in threads:
            t.start()
        time.sleep(0.5)
        slow_thread.start()  # in flight while the model is swapped
        time.sleep(0.2)
        _replace_in_place(repo, save_python_model, 2)
        reply = server.request("POST", "/v2/repository/models/m/load")
        loaded_at = time.monotonic()
        assert reply.status == 200, reply.body
        time.sleep(1.0)
        stop.set()
        for t in [*threads, slow_thread]:
            t.join(30)
        assert slow == [(200, 1)]  # the request in flight finished on the old model
        statuses = {status for _, _, status, _ in results}
        assert statuses == {200}, f"lost requests: {statuses}"
        assert {v for *_, v in results} <= {1, 2}
        assert any(v == 1 for *_, v in results) and any(v == 2 for *_, v in results)
        after = [v for start, _, _, v in results if start > loaded_at]
        assert after and set(after) == {2}, "a request sent after the load saw the old model"
        # several requests after the load reach every worker: all on the new model
        assert {_score(server)[1] for _ in range(20)} == {2}


def test_load_unload_and_their_mistakes(repo: Path, start_server: Any,
                                        save_python_model: Any) -> None:
    with start_server(None, "--model-repository", str(repo), "--workers", "2") as server:
        # unknown model on load: 404, naming it
        missing = server.request("POST", "/v2/repository/models/nope/load")
        assert missing.status == 404 and "nope" in missing.json()["error"]
        escape = server.request("POST", "/v2/repository/models/..%2Fm/load")
        assert escape.status == 404
        bad_body = server.request("POST", "/v2/repository/models/m/load", "[1]",
                                  "application/json")
        assert bad_body.status == 400 and "JSON object" in bad_body.json()["error"]
        # a directory that fails verification: 4xx, and the old model keeps serving
        _replace_in_place(repo, save_python_model, 3)
        victim = next(p for p in (repo / "m").iterdir() if p.suffix == ".pkl")
        victim.write_bytes(victim.read_bytes() + b"tampered")
        refused = server.request("POST", "/v2/repository/models/m/load")
        assert refused.status == 422, refused.body
        message = refused.json()["error"]
        assert "was not loaded" in message and "keeps serving" in message
        assert {_score(server, 0.0, "/v2/models/m/infer")[1] for _ in range(10)} == {1}
        # unload on every worker, then load back
        assert server.request("POST", "/v2/repository/models/other/unload").status == 200
        for _ in range(10):
            assert _score(server, 0.0, "/v2/models/other/infer")[0] == 404
        index = {e["name"]: e for e in server.post_json("/v2/repository/index", {}).json()}
        assert index["other"]["state"] == "UNAVAILABLE"
        again = server.request("POST", "/v2/repository/models/other/unload")
        assert again.status == 404
        assert server.request("POST", "/v2/repository/models/other/load", "{}",
                              "application/json").status == 200
        assert {_score(server, 0.0, "/v2/models/other/infer") for _ in range(10)} == {(200, 7)}
        # a new folder appears in the repository: load serves it by its name
        shutil.copytree(repo / "other", repo / "fresh")
        assert server.request("POST", "/v2/repository/models/fresh/load").status == 200
        assert {_score(server, 0.0, "/v2/models/fresh/infer") for _ in range(10)} == {(200, 7)}
        assert json.loads(server.get("/v2/models/fresh").body)["name"] == "fresh"


def test_model_repository_flag_mistakes(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "satchel", "serve", "--model-repository",
                          str(tmp_path / "absent"), "--port", "0"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0 and "is not a directory" in out.stderr
    assert "Traceback" not in out.stderr


def test_freeze_heap_collects_the_young_generation_less_often() -> None:
    """A server's young-generation threshold is raised to GEN0_THRESHOLD (older
    generations' thresholds kept); 0, collection turned off by the embedding process,
    stays off."""
    import gc

    from satchel.serving.server.repository import GEN0_THRESHOLD, freeze_heap

    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 11, 12)
        freeze_heap()
        assert gc.get_threshold() == (GEN0_THRESHOLD, 11, 12)
        gc.set_threshold(0, 11, 12)
        freeze_heap()
        assert gc.get_threshold() == (0, 11, 12)
        gc.set_threshold(GEN0_THRESHOLD * 2, 10, 10)  # a higher one is kept
        freeze_heap()
        assert gc.get_threshold() == (GEN0_THRESHOLD * 2, 10, 10)
    finally:
        gc.set_threshold(*saved)
        gc.unfreeze()
