"""The python flavor: PythonModel subclasses, plain callables, artifacts and code paths."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import satchel
from satchel.flavors import python as py_flavor
from satchel.testing import check_flavor


class AddN(satchel.PythonModel):
    """Adds a constant read from an artifact file at load time."""

    def load_context(self, context: satchel.PythonModelContext) -> None:
        self.n = float(Path(context.artifacts["n"]).read_text())

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        scale = (params or {}).get("scale", 1.0)
        return (model_input["x"] + self.n) * scale


class Doubler(satchel.PythonModel):
    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        return model_input * 2


def test_conformance_python_model() -> None:
    check_flavor("python", Doubler(), pd.DataFrame({"x": [1.0, 2.0]}))


def test_conformance_callable() -> None:
    def fn(df: Any) -> Any:
        return df.sum(axis=1)

    check_flavor(
        "python", fn, pd.DataFrame({"a": [1.0], "b": [2.0]}), native_predict=lambda f, x: f(x)
    )


def test_artifacts_and_params(tmp_path: Path) -> None:
    art = tmp_path / "n.txt"
    art.write_text("10")
    df = pd.DataFrame({"x": [1.0, 2.0]})
    py_flavor.save_model(
        tmp_path / "m", AddN(), artifacts={"n": str(art)}, input_example=(df, {"scale": 1.0})
    )
    art.unlink()  # the model must use its own copy
    model = satchel.load_model(tmp_path / "m")
    assert model.signature.params is not None  # type: ignore[union-attr]
    np.testing.assert_allclose(model.predict(df), [11.0, 12.0])
    np.testing.assert_allclose(model.predict(df, params={"scale": 2}), [22.0, 24.0])
    assert (tmp_path / "m/artifacts/n/n.txt").read_text() == "10"
    assert not model.row_independent  # custom code is not batched unless it says so


def test_code_paths_importable_at_load(tmp_path: Path) -> None:
    pkg = tmp_path / "src" / "mylib_for_satchel_test"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        textwrap.dedent("""
        import satchel
        class Triple(satchel.PythonModel):
            row_independent = True
            def predict(self, model_input, params=None):
                return model_input * 3
    """)
    )
    sys.path.insert(0, str(tmp_path / "src"))
    try:
        from mylib_for_satchel_test import Triple  # type: ignore[import-not-found]

        py_flavor.save_model(tmp_path / "m", Triple(), code_paths=[str(pkg)])
    finally:
        sys.path.remove(str(tmp_path / "src"))
        sys.modules.pop("mylib_for_satchel_test", None)
    assert (tmp_path / "m/code/mylib_for_satchel_test/__init__.py").is_file()
    model = satchel.load_model(tmp_path / "m")
    np.testing.assert_array_equal(model.predict(np.array([1, 2])), [3, 6])
    assert model.row_independent


def test_model_error_is_wrapped_with_its_class(tmp_path: Path) -> None:
    def boom(df: Any) -> Any:
        raise KeyError("no such thing")

    py_flavor.save_model(tmp_path / "m", boom)
    with pytest.raises(satchel.PredictionError, match="the model raised KeyError") as info:
        satchel.load_model(tmp_path / "m").predict(pd.DataFrame({"a": [1]}))
    assert info.value.error_class == "KeyError"


def test_missing_artifact_fails_save_cleanly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="artifact 'n'"):
        py_flavor.save_model(tmp_path / "m", AddN(), artifacts={"n": str(tmp_path / "nope")})
    assert not (tmp_path / "m").exists()


def test_mlflow_loader_hook(tmp_path: Path) -> None:
    py_flavor.save_model(tmp_path / "m", Doubler())
    predictor = py_flavor._load_pyfunc(str(tmp_path / "m"))
    np.testing.assert_array_equal(predictor.predict(np.array([2])), [4])
