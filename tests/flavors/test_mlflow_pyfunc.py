"""MLflow custom models without mlflow: the restricted mapping, its refusals, models from
code with MLflow's names. Real MLflow-saved models are in tests/interop/; here pickles
that refer to MLflow's names are made with stand-in ``mlflow`` modules, so the hostile
cases (names outside the mapping, corrupt files) need no mlflow."""

from __future__ import annotations

import gc
import lzma
import sys
import textwrap
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd
import pytest
import yaml

import satchel
from satchel.errors import CodeNotAllowedError, FlavorLoadError, MlflowNameError, ModelFormatError

DF = pd.DataFrame({"a": [1.0, 2.0, 3.0]})


@pytest.fixture
def fake_mlflow() -> Iterator[types.SimpleNamespace]:
    """``mlflow.pyfunc.model`` with MLflow's class names, only while a pickle is written."""
    names = ["mlflow", "mlflow.pyfunc", "mlflow.pyfunc.model", "mlflow.tracking"]
    mods = {n: types.ModuleType(n) for n in names}
    ns = types.SimpleNamespace()
    for cls_name in ("PythonModel", "ChatModel", "PythonModelContext"):
        cls = type(cls_name, (), {"__module__": "mlflow.pyfunc.model"})
        setattr(mods["mlflow.pyfunc.model"], cls_name, cls)
        setattr(ns, cls_name, cls)
    mods["mlflow"].pyfunc = mods["mlflow.pyfunc"]  # type: ignore[attr-defined]
    mods["mlflow"].tracking = mods["mlflow.tracking"]  # type: ignore[attr-defined]
    assert not any(n in sys.modules for n in names)
    sys.modules.update(mods)
    try:
        yield ns
    finally:
        for n in names:
            sys.modules.pop(n, None)


def mlflow_dir(path: Path, model: Any, *, compression: str | None = None, **pyfunc: Any) -> Path:
    """A directory laid out as MLflow 3 saves a custom model (no satchel digests)."""
    path.mkdir()
    blob = cloudpickle.dumps(model)
    name = "python_model.pkl"
    if compression == "lzma":
        blob, name = lzma.compress(blob), "python_model.pkl.xz"
    (path / name).write_bytes(blob)
    section = {
        "loader_module": "mlflow.pyfunc.model",
        "python_model": name,
        "cloudpickle_version": cloudpickle.__version__,
        "python_version": "3.11.7",
        **pyfunc,
    }
    if compression:
        section["python_model_compression"] = compression
    (path / "MLmodel").write_text(yaml.safe_dump({"flavors": {"python_function": section}}))
    return path


def subclass(base: type, **methods: Any) -> Any:
    # Defined as in a notebook (__main__), so cloudpickle stores the class by value and
    # refers to its MLflow base by name, exactly like MLflow's own pickles.
    return type("UserModel", (base,), {"__module__": "__main__", **methods})()


def test_context_artifacts_config_and_params(tmp_path: Path, fake_mlflow: Any) -> None:
    def load_context(self: Any, context: Any) -> None:
        self.k = float(Path(context.artifacts["k"]).read_text())
        self.z = context.model_config["z"]

    def predict(self: Any, context: Any, model_input: Any, params: Any = None) -> Any:
        return model_input["a"] * self.k + self.z + (params or {}).get("p", 0)

    model = subclass(fake_mlflow.PythonModel, load_context=load_context, predict=predict)
    path = mlflow_dir(
        tmp_path / "m",
        model,
        artifacts={"k": {"path": "artifacts/k.txt", "uri": "/elsewhere/k.txt"}},
        config={"z": 100},
    )
    (path / "artifacts").mkdir()
    (path / "artifacts" / "k.txt").write_text("10")
    del model
    gc.collect()  # else cloudpickle hands back the live class instead of rebuilding it
    m = satchel.load_model(path)
    assert m.flavor.name == "mlflow_pyfunc" and not m.row_independent
    np.testing.assert_allclose(m.predict(DF, params={"p": 1}), [111.0, 121.0, 131.0])
    native = m.unwrap()
    # rebuilt on satchel's stand-in base, not on the fake MLflow class it was saved with
    assert isinstance(native, satchel.PythonModel)
    assert not isinstance(native, fake_mlflow.PythonModel)


def test_predict_without_context_and_lzma(tmp_path: Path, fake_mlflow: Any) -> None:
    def predict(self: Any, model_input: Any, params: Any = None) -> Any:
        return model_input["a"] + 1

    path = mlflow_dir(
        tmp_path / "m", subclass(fake_mlflow.PythonModel, predict=predict), compression="lzma"
    )
    np.testing.assert_allclose(satchel.load_model(path).predict(DF), [2.0, 3.0, 4.0])


def test_class_outside_the_mapping_is_named(tmp_path: Path, fake_mlflow: Any) -> None:
    def predict(self: Any, messages: Any, params: Any = None) -> Any:
        return messages

    path = mlflow_dir(tmp_path / "m", subclass(fake_mlflow.ChatModel, predict=predict))
    sys.modules.pop("mlflow.pyfunc.model")  # loading happens without mlflow
    with pytest.raises(MlflowNameError) as err:
        satchel.load_model(path)
    assert err.value.mlflow_name == "mlflow.pyfunc.model.ChatModel"
    assert "allow_mlflow=True" in str(err.value) and "mlflow.pyfunc.PythonModel" in str(err.value)


def test_mlflow_module_used_at_predict_time_is_named(tmp_path: Path, fake_mlflow: Any) -> None:
    import mlflow  # the fake

    def predict(self: Any, model_input: Any, params: Any = None) -> Any:
        mlflow.tracking.log_metric("n", len(model_input))  # type: ignore[attr-defined]
        return model_input

    predict.__globals__["mlflow"] = mlflow
    path = mlflow_dir(tmp_path / "m", subclass(fake_mlflow.PythonModel, predict=predict))
    for name in list(sys.modules):
        if name.startswith("mlflow"):
            sys.modules.pop(name)
    model = satchel.load_model(path)
    with pytest.raises(MlflowNameError, match=r"mlflow\.tracking"):
        model.predict(DF)


def test_allow_code_false_refuses(tmp_path: Path, fake_mlflow: Any) -> None:
    path = mlflow_dir(tmp_path / "m", subclass(fake_mlflow.PythonModel, predict=lambda s, x: x))
    with pytest.raises(CodeNotAllowedError, match="cloudpickle"):
        satchel.load_model(path, allow_code=False)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing"])
def test_corrupt_pickle_is_a_one_line_error(tmp_path: Path, fake_mlflow: Any, damage: str) -> None:
    path = mlflow_dir(tmp_path / "m", subclass(fake_mlflow.PythonModel, predict=lambda s, x: x))
    pkl = path / "python_model.pkl"
    if damage == "truncate":
        pkl.write_bytes(pkl.read_bytes()[:40])
    elif damage == "garbage":
        pkl.write_bytes(b"\x80\x05not a pickle at all")
    else:
        pkl.unlink()
    with pytest.raises(ModelFormatError, match="python_model.pkl") as err:
        satchel.load_model(path)
    assert "\n" not in str(err.value)


def test_unknown_compression_and_escaping_paths(tmp_path: Path, fake_mlflow: Any) -> None:
    model = subclass(fake_mlflow.PythonModel, predict=lambda s, x: x)
    path = mlflow_dir(tmp_path / "m", model, compression="zstd-9000")
    with pytest.raises(ModelFormatError, match="python_model_compression"):
        satchel.load_model(path)
    path = mlflow_dir(tmp_path / "n", model, python_model="../../etc/passwd")
    with pytest.raises(ModelFormatError, match="outside the model directory"):
        satchel.load_model(path)
    path = mlflow_dir(tmp_path / "o", model, artifacts={"x": {"path": "/etc/passwd"}})
    with pytest.raises(ModelFormatError, match="outside the model directory"):
        satchel.load_model(path)


def test_allow_mlflow_without_mlflow_names_what_to_install(
    tmp_path: Path, fake_mlflow: Any
) -> None:
    path = mlflow_dir(tmp_path / "m", subclass(fake_mlflow.PythonModel, predict=lambda s, x: x))
    for name in list(sys.modules):
        if name.startswith("mlflow"):
            sys.modules.pop(name)
    with pytest.raises(FlavorLoadError, match="pip install mlflow"):
        satchel.load_model(path, allow_mlflow=True)


# --- MLflow models from code, without mlflow -------------------------------------------


def code_dir(path: Path, source: str, **pyfunc: Any) -> Path:
    path.mkdir()
    (path / "model.py").write_text(textwrap.dedent(source))
    section = {
        "loader_module": "mlflow.pyfunc.loaders.code_model",
        "model_code_path": "/somewhere/at/save/time/model.py",
        **pyfunc,
    }
    (path / "MLmodel").write_text(yaml.safe_dump({"flavors": {"python_function": section}}))
    return path


def test_code_model_with_mlflow_names(tmp_path: Path) -> None:
    path = code_dir(
        tmp_path / "m",
        """
        import mlflow
        from mlflow.pyfunc import PythonModel
        from mlflow.models import set_model

        class Scaled(PythonModel):
            def load_context(self, context):
                self.f = context.model_config["factor"]
            def predict(self, context, model_input, params=None):
                return model_input["a"] * self.f

        set_model(Scaled())
        """,
        config={"factor": 3},
    )
    model = satchel.load_model(path)
    np.testing.assert_allclose(model.predict(DF), [3.0, 6.0, 9.0])
    assert "mlflow" not in sys.modules  # the stand-ins were only there while it ran
    with pytest.raises(CodeNotAllowedError, match="python source"):
        satchel.load_model(path, allow_code=False)


def test_code_model_function_via_mlflow_models_set_model(tmp_path: Path) -> None:
    path = code_dir(
        tmp_path / "m",
        """
        import mlflow
        def f(model_input):
            return model_input["a"] + 0.5
        mlflow.models.set_model(f)
        """,
    )
    np.testing.assert_allclose(satchel.load_model(path).predict(DF), [1.5, 2.5, 3.5])


@pytest.mark.parametrize(
    "line, name",
    [
        ("from mlflow.models import ModelConfig", "mlflow.models.ModelConfig"),
        ("import mlflow.deployments", "mlflow.deployments"),
        ("import mlflow\nmlflow.set_tracking_uri('x')", "mlflow.set_tracking_uri"),
        ("from mlflow.pyfunc import ChatModel", "mlflow.pyfunc.ChatModel"),
    ],
)
def test_code_model_other_mlflow_names_are_named(tmp_path: Path, line: str, name: str) -> None:
    path = code_dir(tmp_path / "m", f"{line}\n")
    with pytest.raises(MlflowNameError) as err:
        satchel.load_model(path)
    assert err.value.mlflow_name == name
    assert "model.py uses" in str(err.value) and "allow_mlflow=True" in str(err.value)
    assert not [m for m in sys.modules if m.startswith("mlflow")]
    assert not [f for f in sys.meta_path if "Mlflow" in type(f).__name__]


def test_code_model_path_is_taken_by_base_name_inside_the_directory(tmp_path: Path) -> None:
    path = code_dir(tmp_path / "m", "import mlflow\nmlflow.models.set_model(lambda d: d)\n")
    (tmp_path / "evil.py").write_text("raise SystemExit('ran code outside the model')\n")
    mlmodel = path / "MLmodel"
    data = yaml.safe_load(mlmodel.read_text())
    data["flavors"]["python_function"]["model_code_path"] = "../evil.py"
    mlmodel.write_text(yaml.safe_dump(data))
    with pytest.raises(ModelFormatError, match="evil.py' is missing"):
        satchel.load_model(path)
