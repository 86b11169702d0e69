"""xgboost, lightgbm, catboost and statsmodels both ways with real MLflow.

MLflow -> satchel: MLflow 3.x saves each flavor in the side venv and records what its own
pyfunc predicts; satchel (no mlflow here) loads the directory and must predict exactly
the same: values, dtype, shape and column names. satchel -> MLflow: satchel saves,
MLflow (no satchel there) loads through ``mlflow.pyfunc`` and ``mlflow.<flavor>`` and
must predict what satchel predicts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

import satchel

pytestmark = [pytest.mark.interop]

# Loaded by every script: the shared arrays and an exact encoding of predictions
# (tolist() -> JSON -> float keeps float32/float64 values unchanged).
COMMON = """
import json, sys
from pathlib import Path
import numpy as np, pandas as pd

result_path, work = sys.argv[1], Path(sys.argv[2])
def frame(name):
    d = json.loads((work / f"{name}.json").read_text())
    return pd.DataFrame(np.load(work / f"{name}.npy"), columns=d["columns"]), np.load(
        work / f"{name}_y.npy")
iris, iris_y = frame("iris")
cancer, cancer_y = frame("cancer")
iris_cat = iris.iloc[:, :3].assign(size=np.where(iris.iloc[:, 3] > 1.0, "big", "small"))
DATA = {"iris": iris, "iris3": iris.iloc[:, :3], "iris_cat": iris_cat, "cancer": cancer}

def enc(p):
    if isinstance(p, pd.DataFrame):
        return {"kind": "frame", "columns": [str(c) for c in p.columns],
                "dtypes": [str(t) for t in p.dtypes], "index": [str(i) for i in p.index],
                "value": [np.asarray(p[c].tolist()).tolist() for c in p.columns]}
    if isinstance(p, pd.Series):
        return {"kind": "series", "name": None if p.name is None else str(p.name),
                "dtype": str(p.dtype), "index": [str(i) for i in p.index],
                "value": np.asarray(p.tolist()).tolist()}
    a = np.asarray(p)
    return {"kind": type(p).__name__, "dtype": str(a.dtype), "shape": list(a.shape),
            "value": a.tolist()}

def done(result):
    Path(result_path).write_text(json.dumps(result))
"""


def enc(p: Any) -> dict[str, Any]:
    """The scripts' ``enc`` for satchel's predictions."""
    if isinstance(p, pd.DataFrame):
        return {
            "kind": "frame",
            "columns": [str(c) for c in p.columns],
            "dtypes": [str(t) for t in p.dtypes],
            "index": [str(i) for i in p.index],
            "value": [np.asarray(p[c].tolist()).tolist() for c in p.columns],
        }
    if isinstance(p, pd.Series):
        return {
            "kind": "series",
            "name": None if p.name is None else str(p.name),
            "dtype": str(p.dtype),
            "index": [str(i) for i in p.index],
            "value": np.asarray(p.tolist()).tolist(),
        }
    a = np.asarray(p)
    return {
        "kind": type(p).__name__,
        "dtype": str(a.dtype),
        "shape": list(a.shape),
        "value": a.tolist(),
    }


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data both sides read: iris (multiclass) and breast cancer (binary)."""
    from sklearn.datasets import load_breast_cancer, load_iris

    d = tmp_path_factory.mktemp("interop-trees")
    for name, loader in (("iris", load_iris), ("cancer", load_breast_cancer)):
        X, y = loader(return_X_y=True, as_frame=True)
        X.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in X.columns]
        np.save(d / f"{name}.npy", X.to_numpy(dtype=np.float64))
        np.save(d / f"{name}_y.npy", y.to_numpy())
        (d / f"{name}.json").write_text(json.dumps({"columns": list(X.columns)}))
    return d


def frame(work: Path, name: str) -> tuple[pd.DataFrame, np.ndarray]:
    if name == "iris3":
        X, y = frame(work, "iris")
        return X.iloc[:, :3], y
    if name == "iris_const":
        import statsmodels.api as sm

        X, y = frame(work, "iris")
        return sm.add_constant(X.iloc[:, :3]), y
    if name == "range":
        return pd.DataFrame({"start": [150], "end": [159]}), np.zeros(0)
    if name == "iris_cat":
        X, y = frame(work, "iris")
        size = np.where(X.iloc[:, 3] > 1.0, "big", "small")
        return X.iloc[:, :3].assign(size=size), y
    columns = json.loads((work / f"{name}.json").read_text())["columns"]
    X = pd.DataFrame(np.load(work / f"{name}.npy"), columns=columns)
    return X, np.load(work / f"{name}_y.npy")


def reqs(*names: str) -> str:
    from satchel.env import pin

    return json.dumps([pin(n) for n in names])


def mlmodel(path: Path) -> dict[str, Any]:
    return dict(yaml.safe_load((path / "MLmodel").read_text()))


# --- xgboost ------------------------------------------------------------------------------

XGB_SAVES = (
    COMMON
    + """
import mlflow, mlflow.xgboost, mlflow.sklearn, mlflow.pyfunc, xgboost as xgb
from mlflow.models import infer_signature
REQS = json.loads(sys.argv[3])
out = {}
def save_and_predict(name, data_key, saver, model, params=None, **kw):
    path = str(work / "from_mlflow" / name)
    saver(model, path, pip_requirements=REQS, **kw)
    pyfunc = mlflow.pyfunc.load_model(path)
    data = DATA[data_key]
    out[name] = {"path": path, "data": data_key, "params": params,
                 "pred": enc(pyfunc.predict(data, params=params) if params
                             else pyfunc.predict(data))}

clf = xgb.XGBClassifier(n_estimators=8, max_depth=3, random_state=0).fit(iris, iris_y)
save_and_predict("xgb_classifier", "iris", mlflow.xgboost.save_model, clf,
                 input_example=iris.head(5))
reg = xgb.XGBRegressor(n_estimators=6).fit(iris.iloc[:, :3], iris.iloc[:, 3])
save_and_predict("xgb_regressor_json", "iris3", mlflow.xgboost.save_model, reg,
                 model_format="json", input_example=iris.iloc[:5, :3])
booster = xgb.train({"objective": "binary:logistic", "max_depth": 3},
                    xgb.DMatrix(cancer, label=cancer_y), num_boost_round=10)
sig = infer_signature(cancer, booster.predict(xgb.DMatrix(cancer)),
                      params={"output_margin": False})
save_and_predict("xgb_booster", "cancer", mlflow.xgboost.save_model, booster,
                 params={"output_margin": True}, signature=sig)
# MLflow's predict_proba option lives in its sklearn flavor, which pickles the estimator.
save_and_predict("xgb_sklearn_proba", "iris", mlflow.sklearn.save_model, clf,
                 serialization_format="cloudpickle", pyfunc_predict_fn="predict_proba",
                 input_example=iris.head(5))
done(out)
"""
)


@pytest.fixture(scope="module")
def xgb_from_mlflow(run_mlflow: Any, work: Path) -> dict[str, Any]:
    return dict(run_mlflow(XGB_SAVES, str(work), reqs("xgboost", "scikit-learn", "cloudpickle")))


@pytest.mark.parametrize(
    "name", ["xgb_classifier", "xgb_regressor_json", "xgb_booster", "xgb_sklearn_proba"]
)
def test_satchel_loads_xgboost_mlflow_saved(
    xgb_from_mlflow: dict[str, Any], work: Path, name: str
) -> None:
    entry = xgb_from_mlflow[name]
    path = Path(entry["path"])
    model = satchel.load_model(path)
    assert model.flavor.name == ("sklearn" if name == "xgb_sklearn_proba" else "xgboost")
    doc = mlmodel(path)
    if model.signature is not None:
        assert model.signature.to_dict() == doc["signature"]
    X, _ = frame(work, entry["data"])
    got = model.predict(X, params=entry["params"]) if entry["params"] else model.predict(X)
    assert enc(got) == entry["pred"]


def test_mlflow_xgboost_sections_match_satchels(
    xgb_from_mlflow: dict[str, Any], tmp_path: Path, work: Path
) -> None:
    import xgboost as xgb

    X, y = frame(work, "iris")
    clf = xgb.XGBClassifier(n_estimators=3).fit(X, y)
    theirs = mlmodel(Path(xgb_from_mlflow["xgb_classifier"]["path"]))["flavors"]
    ours = satchel.save_model(clf, tmp_path / "m").flavors
    assert set(ours["xgboost"]) == set(theirs["xgboost"])
    for key in ("data", "model_class", "model_format", "xgb_version"):
        assert ours["xgboost"][key] == theirs["xgboost"][key]
    assert ours["python_function"]["loader_module"] == theirs["python_function"]["loader_module"]
    assert ours["python_function"]["data"] == theirs["python_function"]["data"]


XGB_LOADS = (
    COMMON
    + """
import importlib.util
import mlflow, mlflow.xgboost, mlflow.pyfunc
from mlflow.models import Model
assert importlib.util.find_spec("satchel") is None, "satchel must not be installed here"
models = json.loads(sys.argv[3])
out = {}
for name, spec in models.items():
    data = DATA[spec["data"]]
    pyfunc = mlflow.pyfunc.load_model(spec["path"])
    params = spec.get("params")
    native = mlflow.xgboost.load_model(spec["path"])
    out[name] = {"pred": enc(pyfunc.predict(data, params=params) if params
                             else pyfunc.predict(data)),
                 "native_class": type(native).__module__ + "." + type(native).__name__,
                 "signature": Model.load(spec["path"]).signature.to_dict()}
done(out)
"""
)


def test_mlflow_loads_xgboost_satchel_saved(run_mlflow: Any, work: Path, tmp_path: Path) -> None:
    import xgboost as xgb

    from satchel.schema import Signature
    from satchel.signature import infer_signature

    iris, iris_y = frame(work, "iris")
    cancer, cancer_y = frame(work, "cancer")
    clf = xgb.XGBClassifier(n_estimators=8, max_depth=3, random_state=0).fit(iris, iris_y)
    reg = xgb.XGBRegressor(n_estimators=6).fit(iris.iloc[:, :3], iris.iloc[:, 3])
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3},
        xgb.DMatrix(cancer, label=cancer_y),
        num_boost_round=10,
    )
    sig = infer_signature(
        cancer, booster.predict(xgb.DMatrix(cancer)), params={"output_margin": False}
    )
    specs: dict[str, dict[str, Any]] = {
        "classifier": {"obj": clf, "data": "iris", "kw": {"input_example": iris.head(5)}},
        "regressor_json": {
            "obj": reg,
            "data": "iris3",
            "kw": {"model_format": "json", "input_example": iris.iloc[:5, :3]},
        },
        "booster": {
            "obj": booster,
            "data": "cancer",
            "kw": {"signature": Signature(sig.inputs, sig.outputs, sig.params)},
            "params": {"output_margin": True},
        },
    }
    models: dict[str, dict[str, Any]] = {}
    ours: dict[str, Any] = {}
    for name, spec in specs.items():
        path = tmp_path / name
        satchel.save_model(spec["obj"], path, **spec["kw"])
        models[name] = {"path": str(path), "data": spec["data"], "params": spec.get("params")}
        X = frame(work, spec["data"])[0]
        model = satchel.load_model(path)
        ours[name] = (
            model.predict(X, params=spec["params"]) if spec.get("params") else model.predict(X)
        )
    got = run_mlflow(XGB_LOADS, str(work), json.dumps(models))
    assert got["classifier"]["native_class"] == "xgboost.sklearn.XGBClassifier"
    assert got["booster"]["native_class"] == "xgboost.core.Booster"
    for name in specs:
        assert got[name]["pred"] == enc(ours[name]), name
        assert got[name]["signature"] == mlmodel(Path(models[name]["path"]))["signature"]


# --- lightgbm -----------------------------------------------------------------------------

LGB_SAVES = (
    COMMON
    + """
import mlflow, mlflow.lightgbm, mlflow.sklearn, mlflow.pyfunc, lightgbm as lgb
REQS = json.loads(sys.argv[3])
out = {}
def save_and_predict(name, data_key, saver, model, **kw):
    path = str(work / "from_mlflow" / name)
    saver(model, path, pip_requirements=REQS, **kw)
    out[name] = {"path": path, "data": data_key,
                 "pred": enc(mlflow.pyfunc.load_model(path).predict(DATA[data_key]))}

booster = lgb.train({"objective": "binary", "num_leaves": 7, "verbose": -1},
                    lgb.Dataset(cancer, cancer_y), num_boost_round=10)
save_and_predict("lgb_booster", "cancer", mlflow.lightgbm.save_model, booster,
                 input_example=cancer.head(3))
clf = lgb.LGBMClassifier(n_estimators=8, num_leaves=7, verbose=-1).fit(iris, iris_y)
save_and_predict("lgb_classifier_skops", "iris", mlflow.lightgbm.save_model, clf,
                 input_example=iris.head(3))
reg = lgb.LGBMRegressor(n_estimators=6, verbose=-1).fit(iris.iloc[:, :3], iris.iloc[:, 3])
save_and_predict("lgb_regressor_cloudpickle", "iris3", mlflow.lightgbm.save_model, reg,
                 serialization_format="cloudpickle", input_example=iris.iloc[:3, :3])
save_and_predict("lgb_sklearn_proba", "iris", mlflow.sklearn.save_model, clf,
                 serialization_format="cloudpickle", pyfunc_predict_fn="predict_proba",
                 input_example=iris.head(3))
done(out)
"""
)


@pytest.fixture(scope="module")
def lgb_from_mlflow(run_mlflow: Any, work: Path) -> dict[str, Any]:
    return dict(
        run_mlflow(LGB_SAVES, str(work), reqs("lightgbm", "scikit-learn", "skops", "cloudpickle"))
    )


@pytest.mark.parametrize(
    "name",
    ["lgb_booster", "lgb_classifier_skops", "lgb_regressor_cloudpickle", "lgb_sklearn_proba"],
)
def test_satchel_loads_lightgbm_mlflow_saved(
    lgb_from_mlflow: dict[str, Any], work: Path, name: str
) -> None:
    entry = lgb_from_mlflow[name]
    path = Path(entry["path"])
    model = satchel.load_model(path)
    assert model.flavor.name == ("sklearn" if name == "lgb_sklearn_proba" else "lightgbm")
    assert model.signature is not None
    assert model.signature.to_dict() == mlmodel(path)["signature"]
    assert enc(model.predict(frame(work, entry["data"])[0])) == entry["pred"]
    if name == "lgb_classifier_skops":
        # MLflow 3's default for estimators is skops: it loads with code execution off.
        assert mlmodel(path)["flavors"]["lightgbm"]["serialization_format"] == "skops"
        satchel.load_model(path, allow_code=False)


LGB_LOADS = (
    COMMON
    + """
import importlib.util
import mlflow, mlflow.lightgbm, mlflow.pyfunc
assert importlib.util.find_spec("satchel") is None, "satchel must not be installed here"
models = json.loads(sys.argv[3])
out = {}
for name, spec in models.items():
    data = DATA[spec["data"]]
    native = mlflow.lightgbm.load_model(spec["path"])
    out[name] = {"pred": enc(mlflow.pyfunc.load_model(spec["path"]).predict(data)),
                 "native": enc(native.predict(data)),
                 "native_class": type(native).__module__ + "." + type(native).__name__}
done(out)
"""
)


def test_mlflow_loads_lightgbm_satchel_saved(run_mlflow: Any, work: Path, tmp_path: Path) -> None:
    import lightgbm as lgb

    iris, iris_y = frame(work, "iris")
    cancer, cancer_y = frame(work, "cancer")
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 7, "verbose": -1},
        lgb.Dataset(cancer, cancer_y),
        num_boost_round=10,
    )
    clf = lgb.LGBMClassifier(n_estimators=8, num_leaves=7, verbose=-1).fit(iris, iris_y)
    reg = lgb.LGBMRegressor(n_estimators=6, verbose=-1).fit(iris.iloc[:, :3], iris.iloc[:, 3])
    specs: dict[str, tuple[Any, str, dict[str, Any]]] = {
        "booster": (booster, "cancer", {}),
        "classifier_skops": (clf, "iris", {}),
        "regressor_cloudpickle": (reg, "iris3", {"serialization_format": "cloudpickle"}),
    }
    models: dict[str, dict[str, Any]] = {}
    ours: dict[str, Any] = {}
    for name, (obj, data, kw) in specs.items():
        path = tmp_path / name
        X = frame(work, data)[0]
        satchel.save_model(obj, path, input_example=X.head(3), **kw)
        models[name] = {"path": str(path), "data": data}
        ours[name] = satchel.load_model(path).predict(X)
    got = run_mlflow(LGB_LOADS, str(work), json.dumps(models))
    assert got["booster"]["native_class"] == "lightgbm.basic.Booster"
    assert got["classifier_skops"]["native_class"] == "lightgbm.sklearn.LGBMClassifier"
    for name in specs:
        assert got[name]["pred"] == enc(ours[name]), name
        assert got[name]["native"] == enc(ours[name]), name


# --- catboost -----------------------------------------------------------------------------

CB_SAVES = (
    COMMON
    + """
import mlflow, mlflow.catboost, mlflow.pyfunc, catboost as cb
REQS = json.loads(sys.argv[3])
out = {}
def save_and_predict(name, data_key, model, **kw):
    path = str(work / "from_mlflow" / name)
    mlflow.catboost.save_model(model, path, pip_requirements=REQS, **kw)
    out[name] = {"path": path, "data": data_key,
                 "pred": enc(mlflow.pyfunc.load_model(path).predict(DATA[data_key]))}

clf = cb.CatBoostClassifier(iterations=10, depth=3, verbose=0, random_seed=0).fit(iris, iris_y)
save_and_predict("cb_classifier", "iris", clf, input_example=iris.head(3))
reg = cb.CatBoostRegressor(iterations=10, depth=3, verbose=0, cat_features=["size"])
reg.fit(iris_cat, iris.iloc[:, 3])
save_and_predict("cb_regressor_categorical", "iris_cat", reg, input_example=iris_cat.head(3))
done(out)
"""
)


@pytest.fixture(scope="module")
def cb_from_mlflow(run_mlflow: Any, work: Path) -> dict[str, Any]:
    return dict(run_mlflow(CB_SAVES, str(work), reqs("catboost")))


@pytest.mark.parametrize("name", ["cb_classifier", "cb_regressor_categorical"])
def test_satchel_loads_catboost_mlflow_saved(
    cb_from_mlflow: dict[str, Any], work: Path, name: str
) -> None:
    entry = cb_from_mlflow[name]
    path = Path(entry["path"])
    model = satchel.load_model(path, allow_code=False)
    assert model.flavor.name == "catboost"
    assert model.signature is not None
    assert model.signature.to_dict() == mlmodel(path)["signature"]
    assert enc(model.predict(frame(work, entry["data"])[0])) == entry["pred"]


CB_LOADS = (
    COMMON
    + """
import importlib.util
import mlflow, mlflow.catboost, mlflow.pyfunc
assert importlib.util.find_spec("satchel") is None, "satchel must not be installed here"
models = json.loads(sys.argv[3])
out = {}
for name, spec in models.items():
    data = DATA[spec["data"]]
    native = mlflow.catboost.load_model(spec["path"])
    out[name] = {"pred": enc(mlflow.pyfunc.load_model(spec["path"]).predict(data)),
                 "native": enc(native.predict(data)), "native_class": type(native).__name__}
done(out)
"""
)


def test_mlflow_loads_catboost_satchel_saved(run_mlflow: Any, work: Path, tmp_path: Path) -> None:
    import catboost as cb

    iris, iris_y = frame(work, "iris")
    iris_cat, _ = frame(work, "iris_cat")
    clf = cb.CatBoostClassifier(iterations=10, depth=3, verbose=0, random_seed=0)
    clf.fit(iris, iris_y)
    reg = cb.CatBoostRegressor(iterations=10, depth=3, verbose=0, cat_features=["size"])
    reg.fit(iris_cat, iris.iloc[:, 3])
    specs: dict[str, tuple[Any, str, dict[str, Any]]] = {
        "classifier": (clf, "iris", {}),
        "regressor_json": (reg, "iris_cat", {"save_format": "json"}),
    }
    models: dict[str, dict[str, Any]] = {}
    ours: dict[str, Any] = {}
    for name, (obj, data, kw) in specs.items():
        path = tmp_path / name
        X = frame(work, data)[0]
        satchel.save_model(obj, path, input_example=X.head(3), **kw)
        models[name] = {"path": str(path), "data": data}
        ours[name] = satchel.load_model(path).predict(X)
    got = run_mlflow(CB_LOADS, str(work), json.dumps(models))
    assert got["classifier"]["native_class"] == "CatBoostClassifier"
    assert got["regressor_json"]["native_class"] == "CatBoostRegressor"
    for name in specs:
        assert got[name]["pred"] == enc(ours[name]), name
        assert got[name]["native"] == enc(ours[name]), name


# --- statsmodels --------------------------------------------------------------------------

SM_SAVES = (
    COMMON
    + """
import mlflow, mlflow.statsmodels, mlflow.pyfunc
import statsmodels.api as sm, statsmodels.formula.api as smf
from statsmodels.tsa.arima.model import ARIMA
REQS = json.loads(sys.argv[3])
DATA["iris_const"] = sm.add_constant(iris.iloc[:, :3])
DATA["range"] = pd.DataFrame({"start": [150], "end": [159]})
out = {}
def save_and_predict(name, data_key, model, **kw):
    path = str(work / "from_mlflow" / name)
    mlflow.statsmodels.save_model(model, path, pip_requirements=REQS,
                                  input_example=DATA[data_key].head(3), **kw)
    out[name] = {"path": path, "data": data_key,
                 "pred": enc(mlflow.pyfunc.load_model(path).predict(DATA[data_key]))}

save_and_predict("sm_ols", "iris_const", sm.OLS(iris.iloc[:, 3], DATA["iris_const"]).fit())
glm = smf.glm("petal_width ~ sepal_length + np.log(sepal_width)", data=iris).fit()
save_and_predict("sm_glm_formula", "iris", glm, remove_data=True)
save_and_predict("sm_arima", "range", ARIMA(iris.iloc[:, 0].to_numpy(), order=(2, 0, 0)).fit())
done(out)
"""
)


@pytest.fixture(scope="module")
def sm_from_mlflow(run_mlflow: Any, work: Path) -> dict[str, Any]:
    return dict(run_mlflow(SM_SAVES, str(work), reqs("statsmodels")))


@pytest.mark.parametrize("name", ["sm_ols", "sm_glm_formula", "sm_arima"])
def test_satchel_loads_statsmodels_mlflow_saved(
    sm_from_mlflow: dict[str, Any], work: Path, name: str
) -> None:
    from satchel.errors import CodeNotAllowedError

    entry = sm_from_mlflow[name]
    path = Path(entry["path"])
    with pytest.raises(CodeNotAllowedError):
        satchel.load_model(path, allow_code=False)
    model = satchel.load_model(path)
    assert model.flavor.name == "statsmodels"
    assert model.row_independent is (name != "sm_arima")
    assert model.signature is not None
    assert model.signature.to_dict() == mlmodel(path)["signature"]
    assert enc(model.predict(frame(work, entry["data"])[0])) == entry["pred"]


SM_LOADS = (
    COMMON
    + """
import importlib.util
import mlflow, mlflow.statsmodels, mlflow.pyfunc
import statsmodels.api as sm
assert importlib.util.find_spec("satchel") is None, "satchel must not be installed here"
DATA["iris_const"] = sm.add_constant(iris.iloc[:, :3])
DATA["range"] = pd.DataFrame({"start": [150], "end": [159]})
models = json.loads(sys.argv[3])
out = {}
for name, spec in models.items():
    data = DATA[spec["data"]]
    native = mlflow.statsmodels.load_model(spec["path"])
    out[name] = {"pred": enc(mlflow.pyfunc.load_model(spec["path"]).predict(data)),
                 "native_class": type(native).__name__}
done(out)
"""
)


def test_mlflow_loads_statsmodels_satchel_saved(
    run_mlflow: Any, work: Path, tmp_path: Path
) -> None:
    import statsmodels.api as sm
    from statsmodels.tsa.arima.model import ARIMA

    iris, _ = frame(work, "iris")
    exog, _ = frame(work, "iris_const")
    specs: dict[str, tuple[Any, str]] = {
        "ols": (sm.OLS(iris.iloc[:, 3], exog).fit(), "iris_const"),
        "arima": (ARIMA(iris.iloc[:, 0].to_numpy(), order=(2, 0, 0)).fit(), "range"),
    }
    models: dict[str, dict[str, Any]] = {}
    ours: dict[str, Any] = {}
    for name, (obj, data) in specs.items():
        path = tmp_path / name
        X = frame(work, data)[0]
        satchel.save_model(obj, path, input_example=X.head(3))
        models[name] = {"path": str(path), "data": data}
        ours[name] = satchel.load_model(path).predict(X)
    got = run_mlflow(SM_LOADS, str(work), json.dumps(models))
    assert got["ols"]["native_class"] == "RegressionResultsWrapper"
    assert got["arima"]["native_class"] == "ARIMAResultsWrapper"
    for name in specs:
        assert got[name]["pred"] == enc(ours[name]), name
