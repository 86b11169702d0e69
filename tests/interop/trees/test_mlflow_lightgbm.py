"""lightgbm both ways with real MLflow: Booster (text), estimators as skops (MLflow 3's
default) and cloudpickle, and MLflow's sklearn-flavor predict_proba on an LGBMClassifier.

See tests/interop/trees/conftest.py for the shared data and the exact encoding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import satchel

pytestmark = [pytest.mark.interop]

LGB_SAVES = """
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


@pytest.fixture(scope="module")
def lgb_from_mlflow(kit: Any, run_mlflow: Any, work: Path) -> dict[str, Any]:
    return dict(
        run_mlflow(
            kit.common + LGB_SAVES,
            str(work),
            kit.reqs("lightgbm", "scikit-learn", "skops", "cloudpickle"),
        )
    )


@pytest.mark.parametrize(
    "name",
    ["lgb_booster", "lgb_classifier_skops", "lgb_regressor_cloudpickle", "lgb_sklearn_proba"],
)
def test_satchel_loads_lightgbm_mlflow_saved(
    kit: Any, lgb_from_mlflow: dict[str, Any], work: Path, name: str
) -> None:
    entry = lgb_from_mlflow[name]
    path = Path(entry["path"])
    model = satchel.load_model(path)
    assert model.flavor.name == ("sklearn" if name == "lgb_sklearn_proba" else "lightgbm")
    assert model.signature is not None
    assert model.signature.to_dict() == kit.mlmodel(path)["signature"]
    assert kit.enc(model.predict(kit.frame(work, entry["data"])[0])) == entry["pred"]
    if name == "lgb_classifier_skops":
        # MLflow 3's default for estimators is skops: it loads with code execution off.
        assert kit.mlmodel(path)["flavors"]["lightgbm"]["serialization_format"] == "skops"
        satchel.load_model(path, allow_code=False)


LGB_LOADS = """
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


def test_mlflow_loads_lightgbm_satchel_saved(
    kit: Any, run_mlflow: Any, work: Path, tmp_path: Path
) -> None:
    import lightgbm as lgb

    iris, iris_y = kit.frame(work, "iris")
    cancer, cancer_y = kit.frame(work, "cancer")
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
        X = kit.frame(work, data)[0]
        satchel.save_model(obj, path, input_example=X.head(3), **kw)
        models[name] = {"path": str(path), "data": data}
        ours[name] = satchel.load_model(path).predict(X)
    got = run_mlflow(kit.common + LGB_LOADS, str(work), json.dumps(models))
    assert got["booster"]["native_class"] == "lightgbm.basic.Booster"
    assert got["classifier_skops"]["native_class"] == "lightgbm.sklearn.LGBMClassifier"
    for name in specs:
        assert got[name]["pred"] == kit.enc(ours[name]), name
        assert got[name]["native"] == kit.enc(ours[name]), name
