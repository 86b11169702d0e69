"""Models and tables for the evaluation tests (trained here, on data scikit-learn ships)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import satchel


@pytest.fixture(scope="session")
def iris_table(iris: tuple[Any, Any]) -> pd.DataFrame:
    """Iris features, the label ``species`` and a slice column ``site`` (a, b, c)."""
    X, y = iris
    df = X.copy()
    df["species"] = y.to_numpy()
    df["site"] = np.array(["a", "b", "c"])[np.arange(len(df)) % 3]
    return df


@pytest.fixture(scope="session")
def weak_iris_dir(tmp_path_factory: pytest.TempPathFactory, iris: tuple[Any, Any]) -> Path:
    """A depth-1 tree: clearly worse than the logistic regression."""
    from sklearn.tree import DecisionTreeClassifier

    X, y = iris
    path = tmp_path_factory.mktemp("models") / "weak"
    satchel.save_model(DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y), path,
                       input_example=X.head(3))
    return path


@pytest.fixture(scope="session")
def diabetes() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    df = X.copy()
    df["progression"] = y.to_numpy()
    df["sex_group"] = np.where(X["sex"] > 0, "m", "f")
    return df


@pytest.fixture(scope="session")
def ridge_dir(tmp_path_factory: pytest.TempPathFactory, diabetes: pd.DataFrame) -> Path:
    from sklearn.linear_model import Ridge

    X = diabetes.drop(columns=["progression", "sex_group"])
    path = tmp_path_factory.mktemp("models") / "ridge"
    satchel.save_model(Ridge(alpha=0.1).fit(X, diabetes["progression"]), path,
                       input_example=X.head(3))
    return path


@pytest.fixture(scope="session")
def binary_table() -> pd.DataFrame:
    """A binary task with a group column whose groups get different treatment."""
    rng = np.random.default_rng(0)
    n = 3000
    group = np.where(rng.random(n) < 0.3, "minority", "majority")
    # the minority's feature is shifted down, so the model approves it less often
    x1, x2 = rng.normal(size=n) - 0.8 * (group == "minority"), rng.normal(size=n)
    y = (x1 + 0.5 * x2 + rng.normal(scale=0.8, size=n)) > 0
    return pd.DataFrame({"x1": x1, "x2": x2, "group": group, "approved": y.astype(int)})


@pytest.fixture(scope="session")
def binary_dir(tmp_path_factory: pytest.TempPathFactory, binary_table: pd.DataFrame) -> Path:
    from sklearn.linear_model import LogisticRegression

    X = binary_table[["x1", "x2"]]
    path = tmp_path_factory.mktemp("models") / "binary"
    satchel.save_model(LogisticRegression().fit(X, binary_table["approved"]), path,
                       input_example=X.head(3))
    return path
