"""Shared by the xgboost, lightgbm, catboost and statsmodels interop tests.

``work``: the arrays both sides read (iris, breast cancer). ``kit``: the script prelude
every MLflow-side script starts with (``kit.common``: loads the arrays, defines ``enc``
and ``done``), the same exact encoding for satchel's predictions (``kit.enc``: values,
dtype, shape, columns, index), and small helpers (``kit.frame``, ``kit.reqs``,
``kit.mlmodel``).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

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


@pytest.fixture(scope="package")
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


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    return SimpleNamespace(common=COMMON, enc=enc, frame=frame, reqs=reqs, mlmodel=mlmodel)
