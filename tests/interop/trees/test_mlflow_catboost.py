"""catboost both ways with real MLflow: classifier (cbm), regressor with a categorical
column (cbm and json).

See tests/interop/trees/conftest.py for the shared data and the exact encoding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import satchel

pytestmark = [pytest.mark.interop]

CB_SAVES = """
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


@pytest.fixture(scope="module")
def cb_from_mlflow(kit: Any, run_mlflow: Any, work: Path) -> dict[str, Any]:
    return dict(run_mlflow(kit.common + CB_SAVES, str(work), kit.reqs("catboost")))


@pytest.mark.parametrize("name", ["cb_classifier", "cb_regressor_categorical"])
def test_satchel_loads_catboost_mlflow_saved(
    kit: Any, cb_from_mlflow: dict[str, Any], work: Path, name: str
) -> None:
    entry = cb_from_mlflow[name]
    path = Path(entry["path"])
    model = satchel.load_model(path, allow_code=False)
    assert model.flavor.name == "catboost"
    assert model.signature is not None
    assert model.signature.to_dict() == kit.mlmodel(path)["signature"]
    assert kit.enc(model.predict(kit.frame(work, entry["data"])[0])) == entry["pred"]


CB_LOADS = """
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


def test_mlflow_loads_catboost_satchel_saved(
    kit: Any, run_mlflow: Any, work: Path, tmp_path: Path
) -> None:
    import catboost as cb

    iris, iris_y = kit.frame(work, "iris")
    iris_cat, _ = kit.frame(work, "iris_cat")
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
        X = kit.frame(work, data)[0]
        satchel.save_model(obj, path, input_example=X.head(3), **kw)
        models[name] = {"path": str(path), "data": data}
        ours[name] = satchel.load_model(path).predict(X)
    got = run_mlflow(kit.common + CB_LOADS, str(work), json.dumps(models))
    assert got["classifier"]["native_class"] == "CatBoostClassifier"
    assert got["regressor_json"]["native_class"] == "CatBoostRegressor"
    for name in specs:
        assert got[name]["pred"] == kit.enc(ours[name]), name
        assert got[name]["native"] == kit.enc(ours[name]), name
