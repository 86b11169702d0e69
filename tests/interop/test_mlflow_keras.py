"""Keras 3 both ways with real MLflow 3.17 (jax backend on both sides; no tensorflow).

MLflow -> satchel: ``mlflow.keras.save_model`` writes the model with and without a
signature; satchel loads each without mlflow and predicts what MLflow's pyfunc predicts
(values, shape, DataFrame columns and index). satchel -> MLflow: MLflow loads satchel's
directories through pyfunc and ``mlflow.keras.load_model``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import satchel
from satchel.flavors import keras as keras_flavor

pytestmark = pytest.mark.interop
os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")

COMMON = """
import os
os.environ["KERAS_BACKEND"] = "jax"
import json, sys
from pathlib import Path
import numpy as np, pandas as pd, keras

result_path, work = sys.argv[1], Path(sys.argv[2])
x32 = np.load(work / "x32.npy")
cols = json.loads((work / "columns.json").read_text())
df = pd.DataFrame(x32, columns=cols, index=range(100, 100 + len(x32)))

def enc(p):
    if isinstance(p, pd.DataFrame):
        return {"kind": "frame", "columns": [str(c) for c in p.columns],
                "index": [int(i) for i in p.index], "value": p.to_numpy().tolist()}
    return {"kind": "array", "shape": list(np.shape(p)), "value": np.asarray(p).tolist()}

def done(result):
    Path(result_path).write_text(json.dumps(result))
"""

MLFLOW_SAVES = (
    COMMON
    + """
import mlflow.keras, mlflow.pyfunc
reqs = json.loads(sys.argv[3])
model = keras.saving.load_model(work / "clf.keras")
out = {}
for name, kw, data in [("sig", dict(input_example=x32[:5]), x32), ("nosig", {}, df)]:
    path = work / "from_mlflow" / name
    path.mkdir(parents=True)  # mlflow.keras writes the example before creating the directory
    mlflow.keras.save_model(model, str(path), pip_requirements=reqs, **kw)
    out[name] = {"path": str(path), "pred": enc(mlflow.pyfunc.load_model(str(path)).predict(data))}
done(out)
"""
)

MLFLOW_LOADS = (
    COMMON
    + """
import mlflow.keras, mlflow.pyfunc
out = {}
for name in ("sig", "nosig"):
    path = str(work / "from_satchel" / name)
    data = df if name == "nosig" else x32
    native = mlflow.keras.load_model(path)
    out[name] = {"pyfunc": enc(mlflow.pyfunc.load_model(path).predict(data)),
                 "native": enc(native.predict(x32, verbose=0)),
                 "native_type": type(native).__name__}
done(out)
"""
)


def enc(p: Any) -> dict[str, Any]:
    if isinstance(p, pd.DataFrame):
        return {
            "kind": "frame",
            "columns": [str(c) for c in p.columns],
            "index": [int(i) for i in p.index],
            "value": p.to_numpy().tolist(),
        }
    return {"kind": "array", "shape": list(np.shape(p)), "value": np.asarray(p).tolist()}


def _same(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert {k: v for k, v in got.items() if k != "value"} == {
        k: v for k, v in want.items() if k != "value"
    }
    np.testing.assert_allclose(np.asarray(got["value"]), np.asarray(want["value"]), rtol=1e-6)


@pytest.fixture(scope="module")
def clf() -> Any:
    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, iris: Any, clf: Any) -> Path:
    d = tmp_path_factory.mktemp("interop-keras")
    np.save(d / "x32.npy", iris[0].to_numpy(np.float32))
    (d / "columns.json").write_text(json.dumps(list(iris[0].columns)))
    clf.save(str(d / "clf.keras"))
    return d


def _data(work: Path, name: str) -> Any:
    x32 = np.load(work / "x32.npy")
    if name == "sig":
        return x32
    cols = json.loads((work / "columns.json").read_text())
    return pd.DataFrame(x32, columns=cols, index=range(100, 100 + len(x32)))


@pytest.fixture(scope="module")
def from_mlflow(run_mlflow: Any, work: Path) -> dict[str, Any]:
    from satchel.env import pin

    return dict(run_mlflow(MLFLOW_SAVES, str(work), json.dumps([pin("keras"), pin("jax")])))


@pytest.mark.parametrize("name", ["sig", "nosig"])
def test_satchel_loads_what_mlflow_saved(
    from_mlflow: dict[str, Any], work: Path, name: str
) -> None:
    model = satchel.load_model(from_mlflow[name]["path"], allow_code=False)
    assert model.flavor_name == "keras"
    _same(enc(model.predict(_data(work, name))), from_mlflow[name]["pred"])


def test_mlflow_loads_what_satchel_saved(run_mlflow: Any, work: Path, clf: Any) -> None:
    base = work / "from_satchel"
    x32 = np.load(work / "x32.npy")
    keras_flavor.save_model(clf, base / "sig", input_example=x32[:5])
    keras_flavor.save_model(clf, base / "nosig")
    result = run_mlflow(MLFLOW_LOADS, str(work))
    for name in ("sig", "nosig"):
        ours = enc(satchel.load_model(base / name).predict(_data(work, name)))
        _same(ours, result[name]["pyfunc"])
        assert result[name]["native_type"] == "Sequential"
        np.testing.assert_allclose(
            np.asarray(result[name]["native"]["value"]),
            clf.predict(x32, verbose=0),
            rtol=1e-6,
        )
