"""Two-way compatibility with real MLflow (run in a side venv, never imported here).

MLflow -> satchel: MLflow saves sklearn (skops, cloudpickle, pickle), ONNX and a custom
PythonModel; satchel loads them without mlflow, reads the same signature and predicts
what MLflow's own pyfunc predicts. satchel -> MLflow: satchel saves, MLflow (without
satchel) loads through pyfunc and the native loaders and predicts the same.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

import satchel
from satchel.errors import FlavorLoadError, UntrustedTypeError
from satchel.schema import (
    AnyType,
    Array,
    ColSpec,
    DataType,
    Map,
    Object,
    ParamSchema,
    ParamSpec,
    Property,
    Schema,
    Signature,
    TensorSpec,
)

pytestmark = [
    pytest.mark.interop,
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]

TREE = "sklearn.tree._tree.Tree"

# Shared by the scripts: load the arrays the test wrote, and encode predictions as JSON
# exactly (float32 and float64 values survive tolist() -> JSON -> float unchanged).
COMMON = """
import json, sys, hashlib
from pathlib import Path
import numpy as np, pandas as pd

result_path, work = sys.argv[1], Path(sys.argv[2])
X = np.load(work / "X.npy")
y = np.load(work / "y.npy")
columns = json.loads((work / "columns.json").read_text())
df = pd.DataFrame(X, columns=columns)
df3 = df.iloc[:, :3]
x32 = X.astype(np.float32)
DATA = {"df": df, "df3": df3, "x32": x32}

def enc(p):
    if isinstance(p, pd.DataFrame):
        return {"kind": "frame", "value": {str(c): enc_col(p[c]) for c in p.columns}}
    if isinstance(p, pd.Series):
        return {"kind": "array", "value": enc_col(p)}
    if isinstance(p, dict):
        return {"kind": "dict", "value": {k: np.asarray(v).tolist() for k, v in p.items()}}
    return {"kind": "array", "value": np.asarray(p).tolist()}

def enc_col(s):
    return [np.asarray(v).tolist() for v in s.tolist()]

def done(result):
    Path(result_path).write_text(json.dumps(result))
"""


def enc(p: Any) -> dict[str, Any]:
    """The same encoding as the scripts' ``enc``, for satchel's predictions."""
    if isinstance(p, pd.DataFrame):
        return {
            "kind": "frame",
            "value": {str(c): [np.asarray(v).tolist() for v in p[c].tolist()] for c in p.columns},
        }
    if isinstance(p, pd.Series):
        return {"kind": "array", "value": [np.asarray(v).tolist() for v in p.tolist()]}
    if isinstance(p, dict):
        return {"kind": "dict", "value": {k: np.asarray(v).tolist() for k, v in p.items()}}
    return {"kind": "array", "value": np.asarray(p).tolist()}


def mlmodel_signature(path: Path) -> dict[str, Any]:
    return dict(yaml.safe_load((path / "MLmodel").read_text())["signature"])


def onnx_digest(path: Path) -> str:
    import onnx

    return hashlib.sha256(onnx.load(str(path / "model.onnx")).SerializeToString()).hexdigest()


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, iris: tuple[Any, Any]) -> Path:
    """Arrays both sides read, and two ONNX files made here with skl2onnx."""
    from onnx import numpy_helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LinearRegression
    from sklearn.neural_network import MLPClassifier

    d = tmp_path_factory.mktemp("interop")
    X, y = iris
    np.save(d / "X.npy", X.to_numpy(dtype=np.float64))
    np.save(d / "y.npy", y.to_numpy())
    (d / "columns.json").write_text(json.dumps(list(X.columns)))
    x = X.to_numpy()
    # 4x100 + 100x3 float weights: over onnx's 1 KiB threshold, so MLflow's default
    # save_as_external_data=True really writes a side file.
    mlp = MLPClassifier(hidden_layer_sizes=(100,), max_iter=300, random_state=0).fit(x, y)
    onx = convert_sklearn(
        mlp, initial_types=[("input", FloatTensorType([None, 4]))], options={"zipmap": False}
    )
    # skl2onnx writes weights as float lists, which onnx never moves out; raw bytes move.
    for t in onx.graph.initializer:
        t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t), t.name))
    (d / "mlp.onnx").write_bytes(onx.SerializeToString())
    lin = LinearRegression().fit(x[:, :3], x[:, 3])
    onx = convert_sklearn(lin, initial_types=[("input", FloatTensorType([None, 3]))])
    (d / "linreg.onnx").write_bytes(onx.SerializeToString())
    return d


def test_mlflow_is_not_importable_here() -> None:
    # The premise of the MLflow -> satchel direction.
    assert importlib.util.find_spec("mlflow") is None


# --- MLflow -> satchel ---------------------------------------------------------------

MLFLOW_SAVES = (
    COMMON
    + """
import mlflow, mlflow.sklearn, mlflow.onnx, mlflow.pyfunc, onnx, onnxruntime as ort
from mlflow.models import infer_signature
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

REQS = json.loads(sys.argv[3])
rf = RandomForestClassifier(n_estimators=10, random_state=0).fit(df, y)
lr = LogisticRegression(max_iter=1000).fit(df, y)
out = {}

def saved(name, data_key):
    path = work / "from_mlflow" / name
    model = mlflow.pyfunc.load_model(str(path))
    out[name] = {"path": str(path), "data": data_key, "pred": enc(model.predict(DATA[data_key]))}

def sk(name, model, **kw):
    mlflow.sklearn.save_model(model, str(work / "from_mlflow" / name), input_example=df.head(5),
                              pip_requirements=REQS["sklearn"], **kw)
    saved(name, "df")

sk("skops_rf", rf, serialization_format="skops", skops_trusted_types=["__TREE__"])
sk("skops_lr", lr)  # MLflow 3's default format is skops
sk("cloudpickle_lr", lr, serialization_format="cloudpickle")
sk("pickle_rf", rf, serialization_format="pickle")

sess = ort.InferenceSession(str(work / "mlp.onnx"), providers=["CPUExecutionProvider"])
label, proba = sess.run(None, {"input": x32})
mlflow.onnx.save_model(onnx.load(str(work / "mlp.onnx")), str(work / "from_mlflow" / "onnx_mlp"),
                       signature=infer_signature(x32, {"label": label, "probabilities": proba}),
                       input_example=x32[:5], pip_requirements=REQS["onnx"])
saved("onnx_mlp", "x32")

sess = ort.InferenceSession(str(work / "linreg.onnx"), providers=["CPUExecutionProvider"])
(variable,) = sess.run(None, {"input": df3.to_numpy(np.float32)})
mlflow.onnx.save_model(onnx.load(str(work / "linreg.onnx")),
                       str(work / "from_mlflow" / "onnx_linreg"),
                       signature=infer_signature(df3, pd.DataFrame({"variable": variable[:, 0]})),
                       input_example=df3.head(5), pip_requirements=REQS["onnx"])
saved("onnx_linreg", "df3")

class Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input["sepal_length"] * 2 + (params or {}).get("k", 0)

mlflow.pyfunc.save_model(str(work / "from_mlflow" / "custom"), python_model=Doubler(),
                         input_example=(df.head(5), {"k": 1}), pip_requirements=REQS["custom"])
out["custom"] = {"path": str(work / "from_mlflow" / "custom"),
                 "pred": enc(mlflow.pyfunc.load_model(str(work / "from_mlflow" / "custom"))
                             .predict(df, params={"k": 3}))}
done(out)
""".replace("__TREE__", TREE)
)


def _reqs() -> str:
    from satchel.env import pin

    return json.dumps(
        {
            "sklearn": [pin("scikit-learn"), pin("skops"), pin("cloudpickle")],
            "onnx": [pin("onnx"), pin("onnxruntime")],
            "custom": [pin("cloudpickle"), pin("pandas")],
        }
    )


@pytest.fixture(scope="module")
def from_mlflow(run_mlflow: Any, work: Path) -> dict[str, Any]:
    """Models MLflow saved, with MLflow's own pyfunc predictions on them."""
    return dict(run_mlflow(MLFLOW_SAVES, str(work), _reqs()))


def _data(work: Path, key: str) -> Any:
    X = np.load(work / "X.npy")
    df = pd.DataFrame(X, columns=json.loads((work / "columns.json").read_text()))
    return {"df": df, "df3": df.iloc[:, :3], "x32": X.astype(np.float32)}[key]


@pytest.mark.parametrize(
    "name", ["skops_rf", "skops_lr", "cloudpickle_lr", "pickle_rf", "onnx_mlp", "onnx_linreg"]
)
def test_satchel_loads_what_mlflow_saved(
    from_mlflow: dict[str, Any], work: Path, name: str
) -> None:
    entry = from_mlflow[name]
    path = Path(entry["path"])
    options = {"trusted_types": [TREE]} if name == "skops_rf" else {}
    model = satchel.load_model(path, **options)
    assert model.signature is not None
    assert model.signature.to_dict() == mlmodel_signature(path)
    assert enc(model.predict(_data(work, entry["data"]))) == entry["pred"]
    if name == "onnx_mlp":
        # MLflow's default save_as_external_data=True put the weights in a side file.
        assert (
            len(
                [
                    p
                    for p in path.iterdir()
                    if p.name
                    not in {
                        "MLmodel",
                        "model.onnx",
                        "conda.yaml",
                        "python_env.yaml",
                        "requirements.txt",
                        "input_example.json",
                        "serving_input_example.json",
                    }
                ]
            )
            == 1
        )


def test_mlflow_skops_trust_list_is_not_trusted_by_satchel(from_mlflow: dict[str, Any]) -> None:
    path = Path(from_mlflow["skops_rf"]["path"])
    section = yaml.safe_load((path / "MLmodel").read_text())["flavors"]["sklearn"]
    assert section["skops_trusted_types"] == [TREE]
    assert section["pickled_model"] == "model.skops"
    with pytest.raises(UntrustedTypeError) as err:
        satchel.load_model(path)
    assert err.value.types == [TREE]


def test_mlflow_custom_model_loads_without_mlflow(from_mlflow: dict[str, Any], work: Path) -> None:
    entry = from_mlflow["custom"]
    model = satchel.load_model(entry["path"])
    assert model.flavor.name == "mlflow_pyfunc"
    assert enc(model.predict(_data(work, "df"), params={"k": 3})) == entry["pred"]
    with pytest.raises(FlavorLoadError) as err:  # through mlflow: it is not installed here
        satchel.load_model(entry["path"], allow_mlflow=True)
    assert "pip install mlflow" in str(err.value)


CUSTOM_WITH_SATCHEL = (
    COMMON
    + """
import satchel
path = sys.argv[3]
own = satchel.load_model(path)
model = satchel.load_model(path, allow_mlflow=True)
done({"own": enc(own.predict(df, params={"k": 3})),
      "own_base": type(own.unwrap()).__mro__[1].__module__,
      "pred": enc(model.predict(df, params={"k": 3})),
      "native": type(model.unwrap()).__name__, "flavor": model.flavor.name})
"""
)


def test_mlflow_custom_model_loads_through_mlflow_when_allowed(
    run_mlflow: Any, satchel_overlay: str, work: Path, from_mlflow: dict[str, Any]
) -> None:
    entry = from_mlflow["custom"]
    got = run_mlflow(CUSTOM_WITH_SATCHEL, str(work), entry["path"], pythonpath=satchel_overlay)
    assert got["flavor"] == "mlflow_pyfunc"
    # Without allow_mlflow, satchel's own mapping is used even where mlflow is installed.
    assert got["own_base"] == "satchel.flavors._mlflow_pyfunc_compat"
    assert got["own"] == entry["pred"]
    assert got["native"] == "Doubler"
    assert got["pred"] == entry["pred"]


# --- satchel -> MLflow ---------------------------------------------------------------

MLFLOW_LOADS = (
    COMMON
    + """
import mlflow, mlflow.sklearn, mlflow.onnx, mlflow.pyfunc, onnx
from mlflow.models import Model
import importlib.util
assert importlib.util.find_spec("satchel") is None, "satchel must not be installed here"
models = json.loads(sys.argv[3])
out = {}
for name, spec in models.items():
    data = DATA[spec["data"]]
    pyfunc = mlflow.pyfunc.load_model(spec["path"])
    entry = {"pred": enc(pyfunc.predict(data)),
             "signature": Model.load(spec["path"]).signature.to_dict()}
    if spec["flavor"] == "sklearn":
        entry["native"] = enc(mlflow.sklearn.load_model(spec["path"]).predict(data))
    else:
        proto = mlflow.onnx.load_model(spec["path"])
        entry["native"] = hashlib.sha256(proto.SerializeToString()).hexdigest()
    out[name] = entry
done(out)
"""
)


@pytest.fixture(scope="module")
def from_satchel(
    tmp_path_factory: pytest.TempPathFactory, work: Path, iris: tuple[Any, Any]
) -> dict[str, dict[str, Any]]:
    """Models satchel saved (sklearn in every format, ONNX two ways), and what satchel
    itself predicts on them."""
    import onnx
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LinearRegression, LogisticRegression

    import satchel.flavors.onnx as sonnx
    import satchel.flavors.sklearn as ssk

    root = tmp_path_factory.mktemp("from_satchel")
    X, y = iris
    rf = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    lr = LogisticRegression(max_iter=1000).fit(X, y)
    models: dict[str, dict[str, Any]] = {}

    def add(name: str, flavor: str, data: str, **load: Any) -> None:
        path = root / name
        models[name] = {
            "path": str(path),
            "flavor": flavor,
            "data": data,
            "pred": enc(satchel.load_model(path, **load).predict(_data(work, data))),
        }

    ssk.save_model(
        rf,
        root / "skops_rf",
        serialization_format="skops",
        skops_trusted_types=[TREE],
        input_example=X.head(5),
    )
    add("skops_rf", "sklearn", "df", trusted_types=[TREE])
    for fmt in ("skops", "cloudpickle", "pickle"):
        # with a reference profile (reference_profile.json, digested): MLflow ignores it
        ssk.save_model(lr, root / f"{fmt}_lr", serialization_format=fmt, input_example=X.head(5),
                       reference_data=X)
        add(f"{fmt}_lr", "sklearn", "df")
    sonnx.save_model(
        onnx.load(str(work / "mlp.onnx")),
        root / "onnx_mlp",
        input_example=X.head(5).to_numpy(np.float32),
        save_as_external_data=True,
    )
    add("onnx_mlp", "onnx", "x32")
    # A converted regressor: column signature, DataFrame in and out on both sides.
    satchel.save_model(
        LinearRegression().fit(X.iloc[:, :3], X.iloc[:, 3]),
        root / "sk_linreg",
        input_example=X.iloc[:5, :3],
    )
    satchel.convert(root / "sk_linreg", "onnx", root / "onnx_linreg")
    add("onnx_linreg", "onnx", "df3")
    return models


def test_satchel_saved_external_data(from_satchel: dict[str, dict[str, Any]]) -> None:
    path = Path(from_satchel["onnx_mlp"]["path"])
    assert (path / "model.onnx.data").is_file()


@pytest.fixture(scope="module")
def loaded_by_mlflow(
    run_mlflow: Any, work: Path, from_satchel: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    spec = {k: {kk: v[kk] for kk in ("path", "flavor", "data")} for k, v in from_satchel.items()}
    return dict(run_mlflow(MLFLOW_LOADS, str(work), json.dumps(spec)))


@pytest.mark.parametrize(
    "name", ["skops_rf", "skops_lr", "cloudpickle_lr", "pickle_lr", "onnx_mlp", "onnx_linreg"]
)
def test_mlflow_loads_what_satchel_saved(
    from_satchel: dict[str, dict[str, Any]], loaded_by_mlflow: dict[str, Any], work: Path, name: str
) -> None:
    ours, theirs = from_satchel[name], loaded_by_mlflow[name]
    path = Path(ours["path"])
    assert theirs["signature"] == mlmodel_signature(path)
    assert theirs["pred"] == ours["pred"]
    if ours["flavor"] == "sklearn":
        assert theirs["native"] == _native_sklearn_pred(path, work)
    else:
        assert theirs["native"] == onnx_digest(path)


def test_mlflow_loads_a_model_saved_with_a_reference_profile(
    from_satchel: dict[str, dict[str, Any]], loaded_by_mlflow: dict[str, Any]
) -> None:
    """The drift monitor's reference profile is one more digested file MLflow ignores:
    the three LogisticRegression models carry one and MLflow loads and scores them."""
    for name in ("skops_lr", "cloudpickle_lr", "pickle_lr"):
        path = Path(from_satchel[name]["path"])
        assert (path / "reference_profile.json").is_file()
        assert "reference_profile.json" in satchel.load_model(path).manifest.artifact_digests
        assert loaded_by_mlflow[name]["pred"] == from_satchel[name]["pred"]


def _native_sklearn_pred(path: Path, work: Path) -> dict[str, Any]:
    import satchel.flavors.sklearn as ssk

    estimator = ssk.load_model(path, trusted_types=[TREE])
    return enc(estimator.predict(_data(work, "df")))


# --- signature JSON, byte for byte ---------------------------------------------------

MLFLOW_SIGNATURES = (
    COMMON
    + """
import datetime
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import (AnyType, Array, ColSpec, DataType, Map, Object, ParamSchema,
                                 ParamSpec, Property, Schema, TensorSpec)
sigs = {}
sigs["columns"] = ModelSignature(
    inputs=Schema([
        ColSpec("double", "x"), ColSpec(Array(DataType.long), "ids", required=False),
        ColSpec(Object([Property("b", DataType.string),
                        Property("a", DataType.double, required=False)]), "o"),
        ColSpec(Map(DataType.double), "m"), ColSpec(DataType.datetime, "t", required=False),
        ColSpec(Array(Object([Property("k", DataType.long)])), "nested"),
        ColSpec(Map(Array(DataType.string)), "mm"), ColSpec(AnyType(), "any"),
        ColSpec(DataType.binary, "bin"), ColSpec(DataType.boolean, "flag"),
        ColSpec(DataType.integer, "i32"), ColSpec(DataType.float, "f32")]),
    outputs=Schema([ColSpec("long")]))
sigs["tensors"] = ModelSignature(
    inputs=Schema([TensorSpec(np.dtype("float32"), (-1, 28, 28, 1), "img"),
                   TensorSpec(np.dtype("int64"), (-1,), "ids")]),
    outputs=Schema([TensorSpec(np.dtype("float64"), (-1, 10))]))
sigs["params"] = ModelSignature(
    inputs=Schema([ColSpec("string", "text")]),
    params=ParamSchema([
        ParamSpec("temperature", DataType.double, 0.5),
        ParamSpec("n", DataType.long, 3),
        ParamSpec("flag", DataType.boolean, True),
        ParamSpec("name", DataType.string, "x"),
        ParamSpec("f32", DataType.float, 1.5),
        ParamSpec("i32", DataType.integer, 7),
        ParamSpec("stops", DataType.string, ["a", "b"], (-1,)),
        ParamSpec("weights", DataType.double, [0.25, 0.75], (-1,)),
        ParamSpec("when", DataType.datetime, datetime.datetime(2024, 1, 2, 3, 4, 5)),
        ParamSpec("whens", DataType.datetime, [datetime.datetime(2024, 1, 2),
                                               datetime.datetime(2024, 5, 6, 7, 8, 9, 123456)],
                  (-1,)),
        ParamSpec("day", DataType.datetime, datetime.date(2024, 1, 2)),
        ParamSpec("opts", Object([Property("k", DataType.long),
                                  Property("a", DataType.string, required=False)]), {"k": 1}),
        ParamSpec("none_default", DataType.long, None),
    ]))
done({k: v.to_dict() for k, v in sigs.items()})
"""
)


def satchel_signatures() -> dict[str, Signature]:
    d = DataType
    columns = Signature(
        inputs=Schema(
            [
                ColSpec(d.double, "x"),
                ColSpec(Array(d.long), "ids", False),
                ColSpec(Object((Property("b", d.string), Property("a", d.double, False))), "o"),
                ColSpec(Map(d.double), "m"),
                ColSpec(d.datetime, "t", False),
                ColSpec(Array(Object((Property("k", d.long),))), "nested"),
                ColSpec(Map(Array(d.string)), "mm"),
                ColSpec(AnyType(), "any"),
                ColSpec(d.binary, "bin"),
                ColSpec(d.boolean, "flag"),
                ColSpec(d.integer, "i32"),
                ColSpec(d.float, "f32"),
            ]
        ),
        outputs=Schema([ColSpec(d.long)]),
    )
    tensors = Signature(
        inputs=Schema(
            [TensorSpec("float32", (-1, 28, 28, 1), "img"), TensorSpec("int64", (-1,), "ids")]
        ),
        outputs=Schema([TensorSpec("float64", (-1, 10))]),
    )
    params = Signature(
        inputs=Schema([ColSpec(d.string, "text")]),
        params=ParamSchema(
            [
                ParamSpec("temperature", d.double, 0.5),
                ParamSpec("n", d.long, 3),
                ParamSpec("flag", d.boolean, True),
                ParamSpec("name", d.string, "x"),
                ParamSpec("f32", d.float, 1.5),
                ParamSpec("i32", d.integer, 7),
                ParamSpec("stops", d.string, ["a", "b"], (-1,)),
                ParamSpec("weights", d.double, [0.25, 0.75], (-1,)),
                ParamSpec("when", d.datetime, datetime.datetime(2024, 1, 2, 3, 4, 5)),
                ParamSpec(
                    "whens",
                    d.datetime,
                    [datetime.datetime(2024, 1, 2), datetime.datetime(2024, 5, 6, 7, 8, 9, 123456)],
                    (-1,),
                ),
                ParamSpec("day", d.datetime, datetime.date(2024, 1, 2)),
                ParamSpec(
                    "opts",
                    Object((Property("k", d.long), Property("a", d.string, False))),
                    {"k": 1},
                ),
                ParamSpec("none_default", d.long, None),
            ]
        ),
    )
    return {"columns": columns, "tensors": tensors, "params": params}


def test_signature_json_is_mlflows_byte_for_byte(run_mlflow: Any, work: Path) -> None:
    theirs = run_mlflow(MLFLOW_SIGNATURES, str(work))
    ours = {k: v.to_dict() for k, v in satchel_signatures().items()}
    for kind in ("columns", "tensors", "params"):
        assert ours[kind] == theirs[kind], kind
        # and MLflow's JSON reads back into the same text
        assert Signature.from_dict(theirs[kind]).to_dict() == theirs[kind], kind
