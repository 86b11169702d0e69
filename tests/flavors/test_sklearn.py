"""The sklearn flavor, through the conformance suite and end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import satchel
from satchel.flavors import sklearn as sk_flavor
from satchel.testing import check_flavor


def test_conformance_logistic_regression(iris: Any, iris_logreg: Any) -> None:
    passed = check_flavor("sklearn", iris_logreg, iris[0].head(10))
    assert "predict_matches_native" in passed and "tamper_detected" in passed


@pytest.mark.parametrize("fmt", ["cloudpickle", "pickle"])
def test_conformance_formats(iris: Any, iris_logreg: Any, fmt: str) -> None:
    check_flavor(
        "sklearn", iris_logreg, iris[0].head(5), save_options={"serialization_format": fmt}
    )


@pytest.fixture(scope="module")
def mixed_frame() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 200
    df = pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "income": rng.normal(50_000, 15_000, n),
            "city": rng.choice(["paris", "lima", "oslo"], n),
            "plan": rng.choice(["free", "pro"], n),
        }
    )
    y = ((df["income"] > 50_000) ^ (df["city"] == "oslo")).to_numpy().astype(int)
    return df, y


@pytest.fixture(scope="module")
def mixed_pipeline(mixed_frame: tuple[pd.DataFrame, np.ndarray]) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city", "plan"]),
        ]
    )
    pipe = Pipeline([("pre", pre), ("rf", RandomForestClassifier(n_estimators=10, random_state=0))])
    return pipe.fit(*mixed_frame)


def test_pipeline_with_column_transformer_end_to_end(
    tmp_path: Path, mixed_frame: Any, mixed_pipeline: Any
) -> None:
    df, _ = mixed_frame
    check_flavor("sklearn", mixed_pipeline, df.head(20))
    sk_flavor.save_model(mixed_pipeline, tmp_path / "m", input_example=df.head(3))
    model = satchel.load_model(tmp_path / "m")
    types = {s.name: s.type.value for s in model.signature.inputs}  # type: ignore[union-attr]
    assert types == {"age": "long", "income": "double", "city": "string", "plan": "string"}
    # JSON-like records (ints for the long column, in another order) give the same answer
    records = df.head(4)[["plan", "city", "income", "age"]].to_dict("records")
    np.testing.assert_array_equal(model.predict(records), mixed_pipeline.predict(df.head(4)))


def test_predict_proba(tmp_path: Path, iris: Any, iris_logreg: Any) -> None:
    X = iris[0]
    sk_flavor.save_model(
        iris_logreg, tmp_path / "m", predict_fn="predict_proba", input_example=X.head(3)
    )
    model = satchel.load_model(tmp_path / "m")
    np.testing.assert_allclose(model.predict(X.head(4)), iris_logreg.predict_proba(X.head(4)))
    out = model.signature.outputs.inputs[0]  # type: ignore[union-attr]
    assert out.shape == (-1, 3) and out.dtype == "float64"


def test_predict_fn_must_exist(tmp_path: Path, iris_logreg: Any) -> None:
    from sklearn.linear_model import LinearRegression

    with pytest.raises(ValueError, match="no method predict_proba"):
        sk_flavor.save_model(
            LinearRegression().fit([[1.0]], [1.0]), tmp_path / "m", predict_fn="predict_proba"
        )
    with pytest.raises(ValueError, match="predict_fn must be one of"):
        sk_flavor.save_model(iris_logreg, tmp_path / "m", predict_fn="fit")
    assert not (tmp_path / "m").exists()


def test_load_model_helper_returns_estimator(iris_model_dir: Path) -> None:
    assert type(sk_flavor.load_model(iris_model_dir)).__name__ == "LogisticRegression"
