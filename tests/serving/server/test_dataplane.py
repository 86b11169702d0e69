"""The data plane without a transport: one entry for every protocol, the observer hook,
and models loaded, swapped and unloaded at run time (real models, real threads)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from satchel.errors import IntegrityError, ModelNotFoundError, SatchelError
from satchel.serving.protocols.base import Inbound
from satchel.serving.protocols.mlflow import MLFLOW
from satchel.serving.protocols.v2 import V2
from satchel.serving.server.dataplane import DataPlane
from satchel.serving.server.repository import ModelRepository

ROWS = {"dataframe_split": {"columns": ["sepal_length", "sepal_width", "petal_length",
                                       "petal_width"], "data": [[5.1, 3.5, 1.4, 0.2]]}}


def _plane(**models: Path) -> DataPlane:
    repository = ModelRepository()
    for name, path in models.items():
        repository.add_path(name, path)
    repository.load_pending()
    return DataPlane(repository)


def _body(payload: Any) -> Inbound:
    return Inbound(json.dumps(payload).encode(), content_type="application/json")


def test_one_entry_scores_both_protocols(iris_model_dir: Path) -> None:
    plane = _plane(iris=iris_model_dir)

    async def go() -> tuple[Any, Any]:
        mlflow = await plane.score(None, MLFLOW, _body(ROWS))
        v2 = await plane.score("iris", V2, _body({"inputs": [
            {"name": c, "shape": [1], "datatype": "FP64", "data": [v]}
            for c, v in zip(ROWS["dataframe_split"]["columns"],
                            ROWS["dataframe_split"]["data"][0])]}))
        await plane.stop()
        return json.loads(mlflow.body), json.loads(v2.body)

    mlflow, v2 = asyncio.run(go())
    assert mlflow["predictions"] == [v2["outputs"][0]["data"][0]]
    assert 'satchel_rows_predicted_total{model="iris"} 2' in plane.metrics.render()


def test_observers_see_each_scored_request(iris_model_dir: Path) -> None:
    plane = _plane(iris=iris_model_dir)
    seen: list[tuple[str, Any, Any]] = []

    async def go() -> None:
        await plane.score(None, MLFLOW, _body(ROWS))  # nothing registered: nothing called
        plane.observe(lambda name, data, output: seen.append((name, data, output)))
        plane.observe(lambda *_: 1 / 0)  # a broken observer never fails serving
        reply = await plane.score(None, MLFLOW, _body(ROWS))
        assert json.loads(reply.body)["predictions"]
        await plane.stop()

    asyncio.run(go())
    ((name, data, output),) = seen
    assert name == "iris"
    assert list(data.columns) == ROWS["dataframe_split"]["columns"]
    assert len(np.asarray(output)) == 1


def test_a_model_swapped_or_unloaded_at_run_time(iris_model_dir: Path, tmp_path: Path,
                                                  save_python_model: Any) -> None:
    live = tmp_path / "live"
    shutil.copytree(iris_model_dir, live)
    plane = _plane(m=live)

    async def go() -> None:
        first = plane.model("m")
        before = json.loads((await plane.score("m", MLFLOW, _body(ROWS))).body)
        # a directory that fails verification: 4xx-class error, the old model keeps serving
        victim = next(p for p in live.iterdir() if p.suffix in (".pkl", ".skops"))
        original = victim.read_bytes()
        victim.write_bytes(original + b"tampered")
        with pytest.raises(IntegrityError):
            await plane.load("m")
        assert plane.model("m") is first
        victim.write_bytes(original)
        # reloading swaps in a new model object; the old one is still whole for requests
        # that hold it
        await plane.load("m")
        assert plane.model("m") is not first and first.ready
        after = json.loads((await plane.score("m", MLFLOW, _body(ROWS))).body)
        assert after == before
        with pytest.raises(ModelNotFoundError):
            await plane.load("nope")
        await plane.unload("m")
        with pytest.raises(ModelNotFoundError):
            await plane.score("m", MLFLOW, _body(ROWS))
        with pytest.raises(ModelNotFoundError):
            await plane.unload("m")
        await plane.stop()

    asyncio.run(go())


def test_repository_directory_serves_each_folder_by_name(iris_model_dir: Path,
                                                         tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copytree(iris_model_dir, root / "a")
    (root / ".hidden").mkdir()
    repository = ModelRepository(root)
    assert [m.name for m in repository] == ["a"]
    shutil.copytree(iris_model_dir, root / "b")
    repository.load_pending()
    assert repository.load("b").name == "b"  # found in the folder on load
    for bad in ("../a", "a/..", ".hidden", ""):
        with pytest.raises(ModelNotFoundError):
            repository.load(bad)
    with pytest.raises(SatchelError):
        (root / "c").mkdir()
        repository.load("c")  # a folder that is no model
