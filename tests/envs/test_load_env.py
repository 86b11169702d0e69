"""``satchel.load_model(..., env_manager="venv")`` and ``satchel evaluate --env-manager
venv``: the model predicts in its own environment's worker (real venv builds), the input
is fitted to the signature in this process, and the worker stops when the model closes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import satchel
from satchel.errors import EnvironmentBuildError, SatchelError, SignatureError

pytestmark = pytest.mark.slow


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    return state != "Z"


def test_load_model_predicts_in_the_models_environment(tabulate_model_dir: Path) -> None:
    # Locally the model's library is missing: it can only run in its environment.
    with pytest.raises(SatchelError, match="tabulate"):
        satchel.load_model(tabulate_model_dir).predict(pd.DataFrame({"x": [1]}))
    model = satchel.load_model(tabulate_model_dir, env_manager="venv")
    pid = model._predictor.worker.pid
    try:
        out = model.predict(pd.DataFrame({"x": np.array([1, 5], dtype=np.int32)}))
        assert [p.split(":")[0] for p in out] == ["0.9.0", "0.9.0"]
        assert [p.split(":")[2] for p in out] == ["2", "10"]
        # the signature is enforced here, before anything crosses to the worker
        with pytest.raises(SignatureError, match="'x'"):
            model.predict(pd.DataFrame({"x": ["not a number"]}))
        # the native object stays in the worker; what crosses is its description
        native = model.unwrap()
        assert repr(native) == "<Tabulated in a model worker>"
        assert not hasattr(native, "predict_proba") and not hasattr(native, "classes_")
        assert _alive(pid)
    finally:
        model.close()
    assert not _alive(pid)
    with pytest.raises(SatchelError, match="closed"):
        model.predict(pd.DataFrame({"x": [1]}))


def test_load_model_as_a_context_manager_stops_its_worker(tabulate_model_dir: Path) -> None:
    with satchel.load_model(tabulate_model_dir, env_manager="venv") as model:
        pid = model._predictor.worker.pid
        assert model.predict({"x": [3]})[0].endswith(":6")
    assert not _alive(pid)


def test_bad_env_manager_arguments_are_named(iris_model_dir: Path) -> None:
    with pytest.raises(EnvironmentBuildError, match="'conda' is not supported; use one of "
                                                    "local, venv"):
        satchel.load_model(iris_model_dir, env_manager="conda")
    with pytest.raises(EnvironmentBuildError, match="wheelhouse is only used"):
        satchel.load_model(iris_model_dir, wheelhouse="/nonexistent")
    with pytest.raises(EnvironmentBuildError, match=r"\['hook'\] cannot be sent"):
        satchel.load_model(iris_model_dir, env_manager="venv", hook=object())


def _table(iris: tuple[Any, Any], path: Path) -> Path:
    X, y = iris
    df = X.copy()
    df["species"] = y.to_numpy()
    df.to_csv(path, index=False)
    return path


def test_evaluate_with_env_manager_gives_the_local_figures(
    iris_model_dir: Path, iris: tuple[Any, Any], tmp_path: Path,
    capsys: pytest.CaptureFixture[str]
) -> None:
    from satchel.cli import main

    data = _table(iris, tmp_path / "iris.csv")
    runs = {}
    for label, extra in (("local", []), ("venv", ["--env-manager", "venv"])):
        out = tmp_path / f"{label}.json"
        assert main(["evaluate", str(iris_model_dir), "--data", str(data), "--target",
                     "species", "--resamples", "20", "--json", str(out), "-q", *extra]) == 0
        runs[label] = json.loads(out.read_text())
    local, venv = runs["local"]["metrics"], runs["venv"]["metrics"]
    # the probabilities came from the worker's predict_proba: the same log loss and AUC
    assert "log_loss" in venv and "roc_auc" in venv
    assert local.keys() == venv.keys()
    for name in local:
        assert venv[name]["value"] == pytest.approx(local[name]["value"], rel=1e-12), name
    assert runs["venv"]["task"] == "classifier"


def test_evaluate_refuses_a_stray_wheelhouse(iris_model_dir: Path, iris: tuple[Any, Any],
                                             tmp_path: Path) -> None:
    from satchel.cli import main

    data = _table(iris, tmp_path / "iris.csv")
    base = ["evaluate", str(iris_model_dir), "--data", str(data), "--target", "species"]
    with pytest.raises(SystemExit, match="--wheelhouse is only used"):
        main([*base, "--wheelhouse", str(tmp_path)])
    with pytest.raises(SystemExit, match="--wheelhouse is only used"):
        main([*base, "--wheelhouse", str(tmp_path), "--spark", "local[1]"])


@pytest.fixture(scope="module")
def tabulate_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classifier whose predict imports tabulate, which this interpreter (the driver's
    and Spark's Python workers') lacks: it can only predict in its environment."""
    import sys
    import textwrap

    from satchel.schema import ColSpec, DataType, Schema, Signature

    from .conftest import ABSENT_PIN

    root = tmp_path_factory.mktemp("tabclf")
    code = root / "tabclf.py"
    code.write_text(textwrap.dedent('''
        import satchel

        class Parity(satchel.PythonModel):
            def predict(self, model_input, params=None):
                import tabulate  # noqa: F401 - absent outside the model's environment
                return ["even" if x % 2 == 0 else "odd" for x in model_input["x"]]
    '''))
    sys.path.insert(0, str(root))
    try:
        import tabclf  # type: ignore[import-not-found]

        sig = Signature(Schema([ColSpec(DataType.long, "x")]),
                        Schema([ColSpec(DataType.string)]))
        path = root / "model"
        satchel.save_model(tabclf.Parity(), path, signature=sig, code_paths=[code],
                           extra_pip_requirements=[ABSENT_PIN])
    finally:
        sys.path.remove(str(root))
        sys.modules.pop("tabclf", None)
    return path


@pytest.mark.spark
def test_evaluate_on_spark_predicts_in_the_models_environment(
    tabulate_classifier: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from satchel.cli import main

    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    # the model is right on 3 rows in 4: the figures say the worker's predictions came back
    xs = list(range(400))
    truth = ["even" if x % 2 == 0 else "odd" for x in xs]
    truth = [("odd" if t == "even" else "even") if x % 4 == 3 else t for x, t in zip(xs, truth)]
    data = tmp_path / "t.csv"
    pd.DataFrame({"x": xs, "y": truth}).to_csv(data, index=False)
    base = ["evaluate", str(tabulate_classifier), "--data", str(data), "--target", "y",
            "--task", "classifier", "--resamples", "20", "-q"]
    runs = {}
    for label, extra in (("memory", ["--env-manager", "venv"]),
                         ("spark", ["--env-manager", "venv", "--spark", "local[2]"])):
        out = tmp_path / f"{label}.json"
        assert main([*base, "--json", str(out), *extra]) == 0
        runs[label] = json.loads(out.read_text())["metrics"]
    assert runs["spark"]["accuracy"]["value"] == pytest.approx(0.75)
    assert runs["spark"].keys() == runs["memory"].keys()
    for name, got in runs["spark"].items():
        assert got["value"] == pytest.approx(runs["memory"][name]["value"], rel=1e-12), name
    # without its environment the executors cannot import the model's library
    capsys.readouterr()
    assert main([*base, "--spark", "local[2]"]) == 1
    assert "No module named 'tabulate'" in capsys.readouterr().err


def test_calls_from_an_event_loop_overlap_and_each_gets_its_own_answer(
    tabulate_model_dir: Path,
) -> None:
    import asyncio
    import signal

    from satchel.errors import ModelNotReadyError

    with satchel.load_model(tabulate_model_dir, env_manager="venv") as model:
        assert model.out_of_process
        worker = model._predictor.worker

        async def go() -> list[Any]:
            calls = [model.predict_detailed_async({"x": np.array([i], dtype=np.int32)})
                     for i in range(24)]
            return await asyncio.gather(*calls)

        results = asyncio.run(go())
        assert [r.output[0].split(":")[2] for r in results] == [str(2 * i) for i in range(24)]
        # several requests were in flight at once, each on its own connection
        assert len(worker._idle_async) > 1
        # the signature is still enforced in this process, before the channel
        with pytest.raises(SignatureError, match="'x'"):
            asyncio.run(model.predict_detailed_async({"x": ["nope"]}))
        os.kill(worker.pid, signal.SIGKILL)
        with pytest.raises(ModelNotReadyError, match="restarting"):
            for _ in range(50):  # until the dead worker is seen
                asyncio.run(model.predict_detailed_async({"x": np.array([1], np.int32)}))
                time.sleep(0.05)
