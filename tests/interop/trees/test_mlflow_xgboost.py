"""xgboost both ways with real MLflow: Booster, XGBClassifier, XGBRegressor (ubj, json),
MLflow's predict params, and MLflow's sklearn-flavor predict_proba on an XGBClassifier.

See tests/interop/trees/conftest.py for the shared data and the exact encoding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import satchel

pytestmark = [pytest.mark.interop]

XGB_SAVES = """
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


@pytest.fixture(scope="module")
def xgb_from_mlflow(kit: Any, run_mlflow: Any, work: Path) -> dict[str, Any]:
    return dict(
        run_mlflow(
            kit.common + XGB_SAVES, str(work), kit.reqs("xgboost", "scikit-learn", "cloudpickle")
        )
    )


@pytest.mark.parametrize(
    "name", ["xgb_classifier", "xgb_regressor_json", "xgb_booster", "xgb_sklearn_proba"]
)
def test_satchel_loads_xgboost_mlflow_saved(
    kit: Any, xgb_from_mlflow: dict[str, Any], work: Path, name: str
) -> None:
    entry = xgb_from_mlflow[name]
    path = Path(entry["path"])
    model = satchel.load_model(path)
    assert model.flavor.name == ("sklearn" if name == "xgb_sklearn_proba" else "xgboost")
    doc = kit.mlmodel(path)
    if model.signature is not None:
        assert model.signature.to_dict() == doc["signature"]
    X, _ = kit.frame(work, entry["data"])
    got = model.predict(X, params=entry["params"]) if entry["params"] else model.predict(X)
    assert kit.enc(got) == entry["pred"]


def test_mlflow_xgboost_sections_match_satchels(
    kit: Any, xgb_from_mlflow: dict[str, Any], tmp_path: Path, work: Path
) -> None:
    import xgboost as xgb

    X, y = kit.frame(work, "iris")
    clf = xgb.XGBClassifier(n_estimators=3).fit(X, y)
    theirs = kit.mlmodel(Path(xgb_from_mlflow["xgb_classifier"]["path"]))["flavors"]
    ours = satchel.save_model(clf, tmp_path / "m").flavors
    assert set(ours["xgboost"]) == set(theirs["xgboost"])
    for key in ("data", "model_class", "model_format", "xgb_version"):
        assert ours["xgboost"][key] == theirs["xgboost"][key]
    assert ours["python_function"]["loader_module"] == theirs["python_function"]["loader_module"]
    assert ours["python_function"]["data"] == theirs["python_function"]["data"]


XGB_LOADS = """
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


def test_mlflow_loads_xgboost_satchel_saved(
    kit: Any, run_mlflow: Any, work: Path, tmp_path: Path
) -> None:
    import xgboost as xgb

    from satchel.schema import Signature
    from satchel.signature import infer_signature

    iris, iris_y = kit.frame(work, "iris")
    cancer, cancer_y = kit.frame(work, "cancer")
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
        X = kit.frame(work, spec["data"])[0]
        model = satchel.load_model(path)
        ours[name] = (
            model.predict(X, params=spec["params"]) if spec.get("params") else model.predict(X)
        )
    got = run_mlflow(kit.common + XGB_LOADS, str(work), json.dumps(models))
    assert got["classifier"]["native_class"] == "xgboost.sklearn.XGBClassifier"
    assert got["booster"]["native_class"] == "xgboost.core.Booster"
    for name in specs:
        assert got[name]["pred"] == kit.enc(ours[name]), name
        assert got[name]["signature"] == kit.mlmodel(Path(models[name]["path"]))["signature"]
