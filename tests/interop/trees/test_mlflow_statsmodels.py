"""statsmodels both ways with real MLflow: OLS, a formula GLM saved without its data, and
ARIMA forecasts over a start/end range (the pickle is refused under allow_code=False).

See tests/interop/trees/conftest.py for the shared data and the exact encoding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import satchel

pytestmark = [pytest.mark.interop]

SM_SAVES = """
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


@pytest.fixture(scope="module")
def sm_from_mlflow(kit: Any, run_mlflow: Any, work: Path) -> dict[str, Any]:
    return dict(run_mlflow(kit.common + SM_SAVES, str(work), kit.reqs("statsmodels")))


@pytest.mark.parametrize("name", ["sm_ols", "sm_glm_formula", "sm_arima"])
def test_satchel_loads_statsmodels_mlflow_saved(
    kit: Any, sm_from_mlflow: dict[str, Any], work: Path, name: str
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
    assert model.signature.to_dict() == kit.mlmodel(path)["signature"]
    assert kit.enc(model.predict(kit.frame(work, entry["data"])[0])) == entry["pred"]


SM_LOADS = """
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


def test_mlflow_loads_statsmodels_satchel_saved(
    kit: Any, run_mlflow: Any, work: Path, tmp_path: Path
) -> None:
    import statsmodels.api as sm
    from statsmodels.tsa.arima.model import ARIMA

    iris, _ = kit.frame(work, "iris")
    exog, _ = kit.frame(work, "iris_const")
    specs: dict[str, tuple[Any, str]] = {
        "ols": (sm.OLS(iris.iloc[:, 3], exog).fit(), "iris_const"),
        "arima": (ARIMA(iris.iloc[:, 0].to_numpy(), order=(2, 0, 0)).fit(), "range"),
    }
    models: dict[str, dict[str, Any]] = {}
    ours: dict[str, Any] = {}
    for name, (obj, data) in specs.items():
        path = tmp_path / name
        X = kit.frame(work, data)[0]
        satchel.save_model(obj, path, input_example=X.head(3))
        models[name] = {"path": str(path), "data": data}
        ours[name] = satchel.load_model(path).predict(X)
    got = run_mlflow(kit.common + SM_LOADS, str(work), json.dumps(models))
    assert got["ols"]["native_class"] == "RegressionResultsWrapper"
    assert got["arima"]["native_class"] == "ARIMAResultsWrapper"
    for name in specs:
        assert got[name]["pred"] == kit.enc(ours[name]), name
