"""Saving and loading model directories: format, atomicity, integrity, bad input."""

from __future__ import annotations

import json
import pickle
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd
import pytest
import yaml

import satchel
from satchel.errors import (
    DestinationExistsError,
    ExampleError,
    ExtraColumnsWarning,
    FlavorNotFoundError,
    IntegrityError,
    ModelFormatError,
    PickleNotAllowedError,
    PythonVersionWarning,
    SignatureError,
    UnsupportedModelError,
)
from satchel.schema import ColSpec, DataType, Schema, Signature


def test_manifest_has_mlflow_keys_sorted(iris_model_dir: Path) -> None:
    text = (iris_model_dir / "MLmodel").read_text()
    data = yaml.safe_load(text)
    top = [ln.split(":")[0] for ln in text.splitlines() if ln and not ln.startswith(" ")]
    assert top == sorted(top)
    for key in (
        "flavors",
        "model_uuid",
        "utc_time_created",
        "signature",
        "model_size_bytes",
        "saved_input_example_info",
        "satchel_version",
        "artifact_digests",
    ):
        assert key in data, key
    assert len(data["model_uuid"]) == 32
    assert isinstance(data["signature"]["inputs"], str)
    json.loads(data["signature"]["inputs"])
    pf = data["flavors"]["python_function"]
    assert pf["loader_module"] == "mlflow.sklearn"
    assert pf["env"] == {"conda": "conda.yaml", "virtualenv": "python_env.yaml"}
    assert data["flavors"]["sklearn"]["serialization_format"] == "cloudpickle"
    assert set(data["artifact_digests"]) == {p.name for p in iris_model_dir.iterdir()} - {"MLmodel"}


def test_env_files(iris_model_dir: Path) -> None:
    reqs = (iris_model_dir / "requirements.txt").read_text().splitlines()
    assert reqs[0].startswith("satchel==")
    assert any(r.startswith("scikit-learn==") for r in reqs)
    env = yaml.safe_load((iris_model_dir / "python_env.yaml").read_text())
    assert env["python"].count(".") == 2 and env["dependencies"] == ["-r requirements.txt"]
    conda = yaml.safe_load((iris_model_dir / "conda.yaml").read_text())
    assert conda["dependencies"][-1]["pip"] == reqs


def test_requirements_replace_and_extend(tmp_path: Path, iris_logreg: Any) -> None:
    satchel.save_model(
        iris_logreg,
        tmp_path / "a",
        pip_requirements=["scikit-learn>=1"],
        extra_pip_requirements=["boto3==1.0"],
    )
    assert (tmp_path / "a/requirements.txt").read_text().splitlines() == [
        "scikit-learn>=1",
        "boto3==1.0",
    ]


def test_examples_written_in_mlflow_form(iris_model_dir: Path, iris: Any) -> None:
    ex = json.loads((iris_model_dir / "input_example.json").read_text())
    assert ex["columns"] == list(iris[0].columns) and len(ex["data"]) == 5
    serving = json.loads((iris_model_dir / "serving_input_example.json").read_text())
    assert serving == {"dataframe_split": ex}


def test_signature_inferred_from_example(iris_model_dir: Path) -> None:
    sig = satchel.load_model(iris_model_dir).signature
    assert sig is not None and sig.inputs is not None and sig.outputs is not None
    assert sig.inputs.names() == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert all(s.type is DataType.double for s in sig.inputs)  # type: ignore[union-attr]


def test_round_trip_predict_equals_native(
    iris_model_dir: Path, iris: Any, iris_logreg: Any
) -> None:
    model = satchel.load_model(iris_model_dir)
    X = iris[0]
    np.testing.assert_array_equal(model.predict(X), iris_logreg.predict(X))
    np.testing.assert_array_equal(model.predict(X.to_dict("records")), iris_logreg.predict(X))
    assert type(model.unwrap()).__name__ == "LogisticRegression"


def test_extra_column_warns_and_is_dropped(iris_model_dir: Path, iris: Any) -> None:
    model = satchel.load_model(iris_model_dir)
    X = iris[0].head(3).assign(extra=1)
    with pytest.warns(ExtraColumnsWarning, match=r"\['extra'\]"):
        model.predict(X)


def test_wrong_type_error_names_column(iris_model_dir: Path, iris: Any) -> None:
    model = satchel.load_model(iris_model_dir)
    X = iris[0].head(2).astype({"sepal_width": object})
    X["sepal_width"] = ["a", "b"]
    with pytest.raises(SignatureError, match="column 'sepal_width': expected double"):
        model.predict(X)


class Unpicklable:
    """An estimator-like object that raises half-way through being pickled."""

    def predict(self, x: Any) -> Any:
        return x

    def __call__(self, x: Any) -> Any:
        return x

    def __reduce__(self) -> Any:
        raise RuntimeError("cannot pickle me")


def test_failed_save_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="cannot pickle me"):
        satchel.save_model(Unpicklable(), tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_existing_destination_refused_then_overwritten(tmp_path: Path, iris_logreg: Any) -> None:
    dest = tmp_path / "m"
    dest.mkdir()
    (dest / "keep.txt").write_text("x")
    with pytest.raises(DestinationExistsError, match="overwrite=True"):
        satchel.save_model(iris_logreg, dest)
    assert (dest / "keep.txt").exists()
    satchel.save_model(iris_logreg, dest, overwrite=True)
    assert not (dest / "keep.txt").exists() and (dest / "MLmodel").exists()
    # Overwriting publishes a versioned sibling behind a symlink (docs/format.md): the
    # path and the one version it points to, nothing else.
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names[1] == "m" and names[0].startswith(".m.v-") and len(names) == 2
    assert dest.is_symlink() and dest.resolve() == tmp_path / names[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    satchel.save_model(iris_logreg, empty)  # an empty directory is fine


@pytest.fixture
def model_copy(tmp_path: Path, iris_model_dir: Path) -> Path:
    dest = tmp_path / "copy"
    shutil.copytree(iris_model_dir, dest)
    return dest


def test_tampered_file_refused_by_name(model_copy: Path) -> None:
    with open(model_copy / "model.pkl", "ab") as f:
        f.write(b"\0")
    with pytest.raises(IntegrityError, match="model.pkl was modified") as info:
        satchel.load_model(model_copy)
    assert info.value.file == "model.pkl"


def test_missing_file_refused_by_name(model_copy: Path) -> None:
    (model_copy / "requirements.txt").unlink()
    with pytest.raises(IntegrityError, match="requirements.txt is missing"):
        satchel.load_model(model_copy)


def test_added_file_refused(model_copy: Path) -> None:
    (model_copy / "evil.py").write_text("import os")
    with pytest.raises(IntegrityError, match="evil.py was added"):
        satchel.load_model(model_copy)


def test_allow_code_false_refuses_cloudpickle(iris_model_dir: Path) -> None:
    with pytest.raises(PickleNotAllowedError, match="cloudpickle.*allow_code=False"):
        satchel.load_model(iris_model_dir, allow_code=False)


def test_python_minor_version_mismatch_warns(model_copy: Path) -> None:
    mlmodel = model_copy / "MLmodel"
    data = yaml.safe_load(mlmodel.read_text())
    data["flavors"]["python_function"]["python_version"] = "3.8.10"
    mlmodel.write_text(yaml.safe_dump(data))
    with pytest.warns(PythonVersionWarning, match=r"3\.8\.10.*running Python 3\.11"):
        satchel.load_model(model_copy)


@pytest.mark.parametrize(
    "content, fragment",
    [
        (None, "has no MLmodel file"),
        ("flavors: [unclosed", "is unreadable"),
        ("- a list", "is not a YAML mapping"),
        ("model_uuid: x\n", "has no 'flavors' section"),
        ("flavors:\n  onnx_only: {}\n", "has no python_function flavor"),
    ],
)
def test_bad_manifests(tmp_path: Path, content: str | None, fragment: str) -> None:
    if content is not None:
        (tmp_path / "MLmodel").write_text(content)
    with pytest.raises(ModelFormatError, match=fragment):
        satchel.load_model(tmp_path)


def test_unknown_loader_names_it(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text(
        "flavors:\n  python_function:\n    loader_module: acme.secret_loader\n"
    )
    with pytest.raises(FlavorNotFoundError, match="acme.secret_loader"):
        satchel.load_model(tmp_path)
    assert "acme" not in sys.modules


def test_known_but_missing_flavor_says_what_provides_it(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text(
        "flavors:\n  python_function:\n    loader_module: mlflow.h2o\n  h2o: {}\n"
    )
    with pytest.raises(FlavorNotFoundError, match="flavor 'h2o'.*satchel.flavors"):
        satchel.load_model(tmp_path)


def test_missing_data_file(tmp_path: Path, iris_logreg: Any) -> None:
    satchel.save_model(iris_logreg, tmp_path / "m")
    (tmp_path / "m/model.pkl").unlink()
    with pytest.raises(ModelFormatError, match="model.pkl' is missing"):
        satchel.load_model(tmp_path / "m", verify=False)


def test_manifest_path_traversal_refused(tmp_path: Path, iris_logreg: Any) -> None:
    satchel.save_model(iris_logreg, tmp_path / "m")
    mlmodel = tmp_path / "m/MLmodel"
    data = yaml.safe_load(mlmodel.read_text())
    data["flavors"]["python_function"]["model_path"] = "../../etc/passwd"
    mlmodel.write_text(yaml.safe_dump(data))
    with pytest.raises(ModelFormatError, match="outside the model directory"):
        satchel.load_model(tmp_path / "m")


def test_unsupported_object_names_type_and_flavors(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedModelError, match=r"builtins.int.*installed flavors: .*sklearn"):
        satchel.save_model(42, tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_malformed_input_example_leaves_nothing(tmp_path: Path, iris_logreg: Any) -> None:
    with pytest.raises(ExampleError):
        satchel.save_model(iris_logreg, tmp_path / "m", input_example=object())
    with pytest.raises(ExampleError, match="does not fit the signature"):
        satchel.save_model(
            iris_logreg,
            tmp_path / "m",
            input_example=pd.DataFrame({"x": ["a"]}),
            signature=Signature(Schema([ColSpec(DataType.double, "x")])),
        )
    assert list(tmp_path.iterdir()) == []


def test_unknown_manifest_keys_preserved(model_copy: Path) -> None:
    from satchel.manifest import Manifest

    data = yaml.safe_load((model_copy / "MLmodel").read_text())
    data["run_id"] = "abc"
    data["databricks_runtime"] = "14.3"
    m = Manifest.from_dict(data)
    assert m.to_dict()["run_id"] == "abc" and m.to_dict()["databricks_runtime"] == "14.3"


# --- directories written exactly as MLflow writes them (no mlflow needed) --------------

MLFLOW_3_MLMODEL = """\
artifact_path: model
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
    predict_fn: {predict_fn}
    python_version: 3.11.7
  sklearn:
    code: null
    pickled_model: model.pkl
    serialization_format: {fmt}
    sklearn_version: 1.5.1
is_signature_from_type_hint: false
mlflow_version: 3.17.2
model_size_bytes: 5521
model_uuid: 39ca11813cfc46b09ab83972740b80ca
run_id: 8ede7df408dd42ed9fc39019ef7df309
saved_input_example_info:
  artifact_path: input_example.json
  pandas_orient: split
  serving_input_path: serving_input_example.json
  type: dataframe
signature:
  inputs: '[{{"type": "double", "name": "sepal_length", "required": true}}, {{"type": "double",
    "name": "sepal_width", "required": true}}, {{"type": "double", "name": "petal_length",
    "required": true}}, {{"type": "double", "name": "petal_width", "required": true}}]'
  outputs: '[{{"type": "tensor", "tensor-spec": {{"dtype": "int64", "shape": [-1]}}}}]'
  params: null
type_hint_from_example: false
utc_time_created: '2025-01-12 05:17:31.634689'
"""

MLFLOW_1_MLMODEL = """\
artifact_path: model
flavors:
  python_function:
    env: conda.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
    python_version: 3.11.7
  sklearn:
    pickled_model: model.pkl
    serialization_format: {fmt}
    sklearn_version: 0.24.2
mlflow_version: 1.30.0
run_id: 8ede7df408dd42ed9fc39019ef7df309
utc_time_created: '2021-01-12 05:17:31.634689'
"""


def _mlflow_dir(
    tmp_path: Path,
    estimator: Any,
    X: pd.DataFrame,
    template: str,
    fmt: str,
    predict_fn: str = "predict",
) -> Path:
    d = tmp_path / f"mlflow-{fmt}-{predict_fn}"
    d.mkdir()
    (d / "MLmodel").write_text(template.format(fmt=fmt, predict_fn=predict_fn))
    with open(d / "model.pkl", "wb") as f:
        (cloudpickle if fmt == "cloudpickle" else pickle).dump(estimator, f)
    (d / "requirements.txt").write_text("mlflow==3.17.2\nscikit-learn==1.5.1\ncloudpickle==3.0.0\n")
    (d / "conda.yaml").write_text("name: mlflow-env\nchannels: [conda-forge]\n")
    (d / "python_env.yaml").write_text("python: 3.11.7\ndependencies: [-r requirements.txt]\n")
    example = {"columns": list(X.columns), "data": X.head(2).values.tolist()}
    (d / "input_example.json").write_text(json.dumps(example))
    (d / "serving_input_example.json").write_text(json.dumps({"dataframe_split": example}))
    return d


@pytest.mark.parametrize("fmt", ["pickle", "cloudpickle"])
@pytest.mark.parametrize(
    "template", [MLFLOW_3_MLMODEL, MLFLOW_1_MLMODEL], ids=["mlflow3", "mlflow1"]
)
def test_mlflow_saved_sklearn_loads_without_mlflow(
    tmp_path: Path, iris: Any, iris_logreg: Any, fmt: str, template: str
) -> None:
    X = iris[0]
    d = _mlflow_dir(tmp_path, iris_logreg, X, template, fmt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = satchel.load_model(d)
    assert "mlflow" not in sys.modules
    np.testing.assert_array_equal(model.predict(X), iris_logreg.predict(X))
    if template is MLFLOW_3_MLMODEL:
        assert model.signature is not None and model.signature.inputs.names()[0] == "sepal_length"
        ex = model.input_example()
        assert ex is not None and list(ex.data.columns) == list(X.columns)
        assert model.manifest.extra["run_id"] == "8ede7df408dd42ed9fc39019ef7df309"
    else:
        assert model.signature is None


def test_mlflow_predict_fn_is_honoured(tmp_path: Path, iris: Any, iris_logreg: Any) -> None:
    X = iris[0]
    d = _mlflow_dir(tmp_path, iris_logreg, X, MLFLOW_3_MLMODEL, "cloudpickle", "predict_proba")
    out = satchel.load_model(d).predict(X.head(3))
    np.testing.assert_allclose(out, iris_logreg.predict_proba(X.head(3)))


def test_mlflow_predict_fn_outside_allow_list_refused(
    tmp_path: Path, iris: Any, iris_logreg: Any
) -> None:
    d = _mlflow_dir(tmp_path, iris_logreg, iris[0], MLFLOW_3_MLMODEL, "cloudpickle", "__reduce__")
    with pytest.raises(ModelFormatError, match="predict_fn '__reduce__'"):
        satchel.load_model(d)


class _Recorder(satchel.PythonModel):
    """Returns what it was given, so a test sees what predict handed the model."""

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        seen = json.dumps(params)
        if params:
            params["k"] = 99  # a model that changes its params
        return pd.DataFrame({"n": [len(model_input)], "params": [seen]})


def test_fast_and_full_predict_paths_hand_the_model_the_same(tmp_path: Path) -> None:
    # Model.predict skips building the coercion answers for a frame that already fits
    # and no params; what the model gets must be what the full path gives it.
    from satchel.schema import ParamSchema, ParamSpec

    sig = Signature(
        Schema([ColSpec(DataType.double, "a"), ColSpec(DataType.long, "b")]),
        params=ParamSchema([ParamSpec("k", DataType.long, 3)]),
    )
    satchel.save_model(_Recorder(), tmp_path / "m", signature=sig)
    model = satchel.load_model(tmp_path / "m")
    fits = pd.DataFrame({"a": [1.0, 2.0], "b": [1, 2]})
    fast = model.predict(fits)
    full = model.predict_detailed(fits).output
    assert fast.to_dict() == full.to_dict() == {"n": {0: 2}, "params": {0: '{"k": 3}'}}
    # the defaults handed to the model are a new dict each call: a model that changes
    # its params never changes the next call's
    assert json.loads(model.predict(fits)["params"][0]) == {"k": 3}
    # a NaN in a required column, a column that needs widening and given params all
    # leave the fast path and get the full policy
    with pytest.raises(SignatureError, match="column 'a' is required but has 1 null"):
        model.predict(pd.DataFrame({"a": [np.nan, 2.0], "b": [1, 2]}))
    widened = model.predict(pd.DataFrame({"a": [1, 2], "b": np.array([1, 2], np.int32)}))
    assert widened["n"].tolist() == [2]
    assert json.loads(model.predict(fits, params={"k": 5})["params"][0]) == {"k": 5}
    with pytest.raises(SignatureError, match="param 'k'"):
        model.predict(fits, params={"k": "five"})
