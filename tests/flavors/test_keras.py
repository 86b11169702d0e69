"""The Keras 3 flavor (jax backend) and the load-only tensorflow flavor, against real Keras."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

import satchel
from satchel.errors import (
    CodeNotAllowedError,
    FlavorLoadError,
    LibraryVersionWarning,
    ModelFormatError,
)
from satchel.flavors import keras as keras_flavor
from satchel.schema import Schema, TensorSpec
from satchel.testing import check_flavor

# Keras picks its backend at first import; tensorflow (its default) is not installed.
os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")  # the keras extra is part of the test install


@pytest.fixture(scope="module")
def clf(iris: Any) -> Any:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(iris[0].to_numpy(np.float32), iris[1].to_numpy(), epochs=3, verbose=0)
    return model


@pytest.fixture
def x(iris: Any) -> np.ndarray:
    return iris[0].head(10).to_numpy(np.float32)


def _native(m: Any, x: Any) -> Any:
    return m.predict(x, verbose=0)


def test_conformance(clf: Any, x: np.ndarray) -> None:
    passed = check_flavor("keras", clf, x, native_predict=_native)
    assert "predict_matches_native" in passed and "tamper_detected" in passed


def test_manifest_matches_mlflow_keras(clf: Any, x: np.ndarray, tmp_path: Path) -> None:
    satchel.save_model(clf, tmp_path / "m", input_example=x)  # picked from the type
    doc = yaml.safe_load((tmp_path / "m/MLmodel").read_text())
    assert doc["flavors"]["keras"] == {
        "data": "data",
        "keras_version": keras.__version__,
        "keras_backend": "jax",
        "save_exported_model": False,
        "code": None,
    }
    assert doc["flavors"]["python_function"]["loader_module"] == "mlflow.keras"
    assert (tmp_path / "m/data/model.keras").is_file()
    assert (tmp_path / "m/data/keras_module.txt").read_text() == "keras"
    reqs = (tmp_path / "m/requirements.txt").read_text()
    assert f"keras=={keras.__version__}" in reqs and "jax==" in reqs
    sig = satchel.load_model(tmp_path / "m").signature
    assert sig is not None
    assert sig.inputs == Schema([TensorSpec("float32", (-1, 4))])
    assert sig.outputs == Schema([TensorSpec("float32", (-1, 3))])


def test_dataframe_in_dataframe_out(clf: Any, iris: Any, tmp_path: Path) -> None:
    keras_flavor.save_model(clf, tmp_path / "m")
    df = iris[0].iloc[10:14].astype(np.float32)
    out = satchel.load_model(tmp_path / "m").predict(df)
    assert isinstance(out, pd.DataFrame) and list(out.index) == list(df.index)
    assert list(out.columns) == [0, 1, 2]
    np.testing.assert_allclose(out.to_numpy(), _native(clf, df.to_numpy()), rtol=1e-6)


def test_large_inputs_are_chunked_with_the_same_values(
    clf: Any, iris: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keras_flavor.save_model(clf, tmp_path / "m")
    m = satchel.load_model(tmp_path / "m")
    big = np.tile(iris[0].to_numpy(np.float32), (3, 1))
    whole = m.predict(big)
    monkeypatch.setattr(keras_flavor, "ONE_CALL_ROWS", 64)
    np.testing.assert_allclose(m.predict(big), whole, rtol=1e-6)


def test_multi_input_model_takes_a_dict(tmp_path: Path) -> None:
    a = keras.Input((2,), name="a")
    b = keras.Input((3,), name="b")
    out = keras.layers.Dense(1)(keras.layers.Concatenate()([a, b]))
    model = keras.Model({"a": a, "b": b}, out)
    data = {"a": np.ones((4, 2), np.float32), "b": np.zeros((4, 3), np.float32)}
    keras_flavor.save_model(model, tmp_path / "m", input_example=data)
    m = satchel.load_model(tmp_path / "m")
    sig = m.signature
    assert sig is not None and sig.inputs is not None
    assert [s.name for s in sig.inputs.inputs] == ["a", "b"]
    np.testing.assert_allclose(m.predict(data), model.predict(data, verbose=0), rtol=1e-6)


def test_lambda_layer_needs_safe_mode_off_which_allow_code_false_refuses(
    tmp_path: Path,
) -> None:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda t: t * 2)])
    keras_flavor.save_model(model, tmp_path / "m")  # no example: nothing loads it back
    with pytest.raises(ModelFormatError, match="model.keras"):
        satchel.load_model(tmp_path / "m")
    with pytest.raises(CodeNotAllowedError, match="safe_mode"):
        satchel.load_model(tmp_path / "m", safe_mode=False, allow_code=False)
    m = satchel.load_model(tmp_path / "m", safe_mode=False)
    np.testing.assert_allclose(m.predict(np.ones((1, 2), np.float32)), [[2.0, 2.0]])


def test_backend_comes_from_the_model_when_unset(clf: Any, x: np.ndarray, tmp_path: Path) -> None:
    keras_flavor.save_model(clf, tmp_path / "m", input_example=x)
    code = (
        "import os, sys, satchel\n"
        f"m = satchel.load_model({str(tmp_path / 'm')!r})\n"
        "print(os.environ['KERAS_BACKEND'], m.predict(m.input_example().data).shape)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.split() == ["jax", "(10,", "3)"]


def test_import_satchel_and_can_save_do_not_import_keras() -> None:
    code = (
        "import sys\n"
        "from satchel import plugins\n"
        "f = plugins.get('keras')\n"
        "assert not f.can_save(object())\n"
        "print('keras' in sys.modules, 'jax' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_missing_keras_names_the_extra(clf: Any, x: np.ndarray, tmp_path: Path) -> None:
    keras_flavor.save_model(clf, tmp_path / "m", input_example=x)
    code = (
        "import sys; sys.modules['keras'] = None\n"
        "import satchel\n"
        "try:\n"
        f"    satchel.load_model({str(tmp_path / 'm')!r})\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("MissingLibraryError")
    assert "pip install 'satchel[keras]'" in out.stdout


def _edit(path: Path, flavor: str, **changes: Any) -> None:
    mlmodel = path / "MLmodel"
    doc = yaml.safe_load(mlmodel.read_text())
    doc["flavors"][flavor].update(changes)
    mlmodel.write_text(yaml.safe_dump(doc))


def test_newer_keras_warns_naming_both(clf: Any, x: np.ndarray, tmp_path: Path) -> None:
    keras_flavor.save_model(clf, tmp_path / "m", input_example=x)
    _edit(tmp_path / "m", "keras", keras_version="9.0.0")
    with pytest.warns(LibraryVersionWarning) as rec:
        satchel.load_model(tmp_path / "m")
    msg = str(rec[0].message)
    assert "9.0.0" in msg and keras.__version__ in msg


def test_corrupt_file_is_a_one_line_error_naming_it(
    clf: Any, x: np.ndarray, tmp_path: Path
) -> None:
    keras_flavor.save_model(clf, tmp_path / "m", input_example=x)
    (tmp_path / "m/data/model.keras").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ModelFormatError) as info:
        satchel.load_model(tmp_path / "m", verify=False)
    assert "model.keras" in str(info.value) and "\n" not in str(info.value)


def test_exported_keras_model_needs_tensorflow(clf: Any, x: np.ndarray, tmp_path: Path) -> None:
    keras_flavor.save_model(clf, tmp_path / "m", input_example=x)
    _edit(tmp_path / "m", "keras", save_exported_model=True)
    with pytest.raises(FlavorLoadError, match="tensorflow"):
        satchel.load_model(tmp_path / "m")


# --- MLflow's tensorflow flavor ------------------------------------------------------


def _mlflow_tf_dir(clf: Any, path: Path, model_type: str = "keras") -> Path:
    """A directory laid out as mlflow.tensorflow.save_model (MLflow 3.17.2) writes a tf.keras
    model under TensorFlow >= 2.16: data/model.keras, keras_module.txt, save_format.txt.

    Written by hand because MLflow's tensorflow flavor cannot save without tensorflow,
    which this environment does not install (see the module docstring of flavors/keras.py).
    """
    data = path / "data"
    data.mkdir(parents=True)
    clf.save(str(data / "model.keras"))
    (data / "keras_module.txt").write_text("tensorflow.keras")
    (data / "save_format.txt").write_text("tf")
    section: dict[str, Any] = {"code": None, "model_type": model_type}
    if model_type == "keras":
        section.update(data="data", keras_version="2.20.0", save_format="tf")
    else:
        section.update(saved_model_dir="tf2model")
    pyfunc: dict[str, Any] = {
        "loader_module": "mlflow.tensorflow",
        "python_version": "3.11.7",
        "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
    }
    if model_type == "keras":
        pyfunc["data"] = "data"
    (path / "MLmodel").write_text(
        yaml.safe_dump({"flavors": {"python_function": pyfunc, "tensorflow": section}})
    )
    return path


def test_tensorflow_flavor_loads_a_tf_keras_file_without_tensorflow(
    clf: Any, iris: Any, tmp_path: Path
) -> None:
    assert "tensorflow" not in sys.modules
    m = satchel.load_model(_mlflow_tf_dir(clf, tmp_path / "m"))
    assert m.flavor_name == "tensorflow"
    df = iris[0].head(6).astype(np.float32)
    out = m.predict(df)
    assert isinstance(out, pd.DataFrame) and list(out.index) == list(df.index)
    np.testing.assert_allclose(out.to_numpy(), _native(clf, df.to_numpy()), rtol=1e-6)
    assert type(keras_flavor.load_model(tmp_path / "m")).__name__ == "Sequential"


def test_tensorflow_savedmodel_names_what_it_needs(clf: Any, tmp_path: Path) -> None:
    with pytest.raises(FlavorLoadError, match="pip install tensorflow"):
        satchel.load_model(_mlflow_tf_dir(clf, tmp_path / "m", model_type="tf2-module"))
    path = _mlflow_tf_dir(clf, tmp_path / "n")
    (path / "data/model.keras").unlink()
    (path / "data/model").mkdir()
    with pytest.raises(FlavorLoadError, match="SavedModel"):
        satchel.load_model(path)
    shutil.rmtree(tmp_path)


def test_tensorflow_custom_objects_pickle_is_never_read_and_is_named(tmp_path: Path) -> None:
    # mlflow.tensorflow pickles the caller's custom_objects beside the model. satchel
    # never unpickles them: a model that loads without them loads; one that needs them
    # fails naming the file, and the pickle never ran.
    @keras.saving.register_keras_serializable(package="satchel_test")
    class Doubler(keras.layers.Layer):
        def call(self, x: Any) -> Any:
            return x * 2.0

    net = keras.Sequential([keras.Input((4,)), Doubler(), keras.layers.Dense(2)])
    path = _mlflow_tf_dir(net, tmp_path / "m")
    canary = tmp_path / "ran"
    import pickle

    class Boom:
        def __reduce__(self) -> Any:
            return (Path.touch, (canary,))

    (path / "data/custom_objects.cloudpickle").write_bytes(pickle.dumps(Boom()))
    # registered (as it would be where the class is importable): loads, pickle unread
    x = np.ones((3, 4), np.float32)
    np.testing.assert_allclose(satchel.load_model(path).predict(x), net.predict(x, verbose=0))
    del keras.saving.get_custom_objects()["satchel_test>Doubler"]
    with pytest.raises(ModelFormatError, match=r"data/custom_objects\.cloudpickle") as err:
        satchel.load_model(path)
    assert err.value.path == str(path / "data/custom_objects.cloudpickle")
    assert not canary.exists()
