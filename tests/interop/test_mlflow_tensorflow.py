"""MLflow's ``tensorflow`` flavor both ways, with real MLflow 3.17 and real tensorflow-cpu.

MLflow -> satchel: in a side venv with tensorflow-cpu (``run_mlflow_tf``), a tf.keras
model is trained on iris and saved with ``mlflow.tensorflow.save_model`` three ways
(TensorFlow 2.16+ writes ``data/model.keras``; with a signature, without one, and as
``.h5``), plus a ``tf.Module`` (a TF2 SavedModel). satchel loads the tf.keras ones here,
where neither mlflow nor tensorflow is installed (Keras 3 on jax), and predicts what
MLflow's pyfunc predicted (values, shape, DataFrame columns and index); the SavedModel is
refused with a message naming tensorflow. satchel -> MLflow: the loaded model saved by
satchel loads in MLflow (pyfunc, ``mlflow.keras``) and in tf.keras on the tensorflow
backend, with the same predictions.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import satchel
from satchel.errors import FlavorLoadError

pytestmark = pytest.mark.interop
os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")

COMMON = """
import json, sys
from pathlib import Path
import numpy as np, pandas as pd
import tensorflow as tf

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
import mlflow.pyfunc, mlflow.tensorflow
assert tf.keras.backend.backend() == "tensorflow", tf.keras.backend.backend()
y = np.load(work / "y.npy")
tf.keras.utils.set_random_seed(0)
model = tf.keras.Sequential([
    tf.keras.Input((4,)),
    tf.keras.layers.Dense(8, activation="relu"),
    tf.keras.layers.Dense(3, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
model.fit(x32, y, epochs=3, verbose=0)

class Scale(tf.Module):
    def __init__(self):
        self.w = tf.Variable(2.0)

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
    def __call__(self, x):
        return x * self.w

reqs = [f"tensorflow-cpu=={tf.__version__}"]
out = {"tf_version": tf.__version__}
for name, kw, data in [
    ("keras_sig", dict(input_example=x32[:5]), x32),
    ("keras_nosig", {}, df),
    ("h5", dict(keras_model_kwargs={"save_format": "h5"}), df),
]:
    path = work / "from_mlflow" / name
    mlflow.tensorflow.save_model(model, str(path), pip_requirements=reqs, **kw)
    files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
    out[name] = {"path": str(path), "files": files,
                 "pred": enc(mlflow.pyfunc.load_model(str(path)).predict(data))}
path = work / "from_mlflow" / "module"
mlflow.tensorflow.save_model(Scale(), str(path), pip_requirements=reqs)
out["module"] = {"path": str(path)}
done(out)
"""
)

MLFLOW_LOADS = (
    COMMON
    + """
import mlflow.keras, mlflow.pyfunc
out = {}
for name in ("sig", "nosig"):
    path = work / "from_satchel" / name
    data = x32 if name == "sig" else df
    native = mlflow.keras.load_model(str(path))
    plain = tf.keras.models.load_model(path / "data" / "model.keras")
    out[name] = {"pyfunc": enc(mlflow.pyfunc.load_model(str(path)).predict(data)),
                 "native": enc(native.predict(x32, verbose=0)),
                 "plain": enc(plain.predict(x32, verbose=0)),
                 "backend": tf.keras.backend.backend()}
done(out)
"""
)

# The same float32 network on two backends (TensorFlow there, jax here): equal up to
# float32 rounding, not bit for bit.
RTOL, ATOL = 1e-5, 1e-6


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
    np.testing.assert_allclose(
        np.asarray(got["value"]), np.asarray(want["value"]), rtol=RTOL, atol=ATOL
    )


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, iris: Any) -> Path:
    d = tmp_path_factory.mktemp("interop-tensorflow")
    np.save(d / "x32.npy", iris[0].to_numpy(np.float32))
    np.save(d / "y.npy", iris[1].to_numpy())
    (d / "columns.json").write_text(json.dumps(list(iris[0].columns)))
    return d


def _data(work: Path, name: str) -> Any:
    x32 = np.load(work / "x32.npy")
    if name in ("keras_sig", "sig"):
        return x32
    cols = json.loads((work / "columns.json").read_text())
    return pd.DataFrame(x32, columns=cols, index=range(100, 100 + len(x32)))


@pytest.fixture(scope="module")
def from_mlflow(run_mlflow_tf: Any, work: Path) -> dict[str, Any]:
    return dict(run_mlflow_tf(MLFLOW_SAVES, str(work)))


def test_neither_mlflow_nor_tensorflow_is_importable_here() -> None:
    assert importlib.util.find_spec("mlflow") is None
    assert importlib.util.find_spec("tensorflow") is None


def test_mlflow_wrote_its_tensorflow_layout(from_mlflow: dict[str, Any]) -> None:
    assert "data/model.keras" in from_mlflow["keras_sig"]["files"]
    assert "data/keras_module.txt" in from_mlflow["keras_sig"]["files"]
    assert "data/model.h5" in from_mlflow["h5"]["files"]


@pytest.mark.parametrize("name", ["keras_sig", "keras_nosig", "h5"])
def test_satchel_loads_what_mlflow_saved(
    from_mlflow: dict[str, Any], work: Path, name: str
) -> None:
    model = satchel.load_model(from_mlflow[name]["path"], allow_code=False)
    assert model.flavor_name == "tensorflow"
    assert (model.signature is not None) == (name == "keras_sig")
    _same(enc(model.predict(_data(work, name))), from_mlflow[name]["pred"])
    assert "tensorflow" not in sys.modules and "mlflow" not in sys.modules


def test_savedmodel_module_is_refused_naming_tensorflow(from_mlflow: dict[str, Any]) -> None:
    with pytest.raises(FlavorLoadError, match=r"tf2-module.*pip install tensorflow"):
        satchel.load_model(from_mlflow["module"]["path"])


def test_mlflow_loads_what_satchel_saved(
    run_mlflow_tf: Any, from_mlflow: dict[str, Any], work: Path
) -> None:
    loaded = satchel.load_model(from_mlflow["keras_sig"]["path"])
    base = work / "from_satchel"
    x32 = np.load(work / "x32.npy")
    satchel.save_model(loaded.unwrap(), base / "sig", input_example=x32[:5])
    satchel.save_model(loaded.unwrap(), base / "nosig")
    assert satchel.load_model(base / "sig").flavor_name == "keras"
    result = run_mlflow_tf(MLFLOW_LOADS, str(work))
    for name in ("sig", "nosig"):
        ours = enc(satchel.load_model(base / name).predict(_data(work, name)))
        _same(ours, result[name]["pyfunc"])
        assert result[name]["backend"] == "tensorflow"
        for native in ("native", "plain"):
            np.testing.assert_allclose(
                np.asarray(result[name][native]["value"]),
                np.asarray(from_mlflow["keras_sig"]["pred"]["value"]),
                rtol=RTOL,
                atol=ATOL,
            )
