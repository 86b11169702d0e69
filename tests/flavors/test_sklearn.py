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


# --- a table of one numeric dtype reaches scikit-learn as its array ----------------------


def _frame20(n: int = 300) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, 20))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1).astype(int)
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(20)]), y


@pytest.mark.parametrize("kind", ["logreg", "forest"])
def test_numeric_table_predicts_as_the_table_does_and_warns_nothing(
        tmp_path: Path, kind: str) -> None:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    frame, y = _frame20()
    est = (LogisticRegression(max_iter=500) if kind == "logreg"
           else RandomForestClassifier(n_estimators=5, random_state=0)).fit(frame, y)
    satchel.save_model(est, tmp_path / "m", input_example=frame.head(3),
                       predict_fn="predict_proba")
    model = satchel.load_model(tmp_path / "m")
    predictor = sk_flavor.SklearnPredictor(est, "predict_proba")
    assert predictor._array_fn is not None  # the array path is taken
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "X does not have valid feature names" would raise
        got = model.predict(frame.head(50))
        direct = predictor.predict(frame.head(50))
    want = est.predict_proba(frame.head(50))
    assert np.array_equal(np.asarray(got), want) and np.array_equal(direct, want)
    # the estimator itself keeps its names: the twin is a copy
    assert list(est.feature_names_in_) == list(frame.columns)


def test_table_path_kept_where_names_matter() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame, y = _frame20()
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(frame, y)
    assert sk_flavor.SklearnPredictor(pipe, "predict")._array_fn is None  # steps hold names
    est = LogisticRegression().fit(frame, y)
    predictor = sk_flavor.SklearnPredictor(est, "predict")
    # columns in another order, an int column among floats: the table goes as it is
    swapped = frame[list(reversed(frame.columns))]
    assert sk_flavor._numeric_block(swapped, predictor._names) is None
    with pytest.raises(ValueError, match="feature names"):
        predictor.predict(swapped)  # scikit-learn's own check still runs
    mixed = frame.head(5).astype({"f3": "int64"})
    assert sk_flavor._numeric_block(mixed, predictor._names) is None
    assert np.array_equal(predictor.predict(mixed), est.predict(mixed))


def test_estimator_fitted_on_an_array_takes_a_table_without_warning() -> None:
    import warnings

    from sklearn.linear_model import LogisticRegression

    frame, y = _frame20()
    est = LogisticRegression().fit(frame.to_numpy(), y)
    predictor = sk_flavor.SklearnPredictor(est, "predict")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "X has feature names, but ..." would raise
        assert np.array_equal(predictor.predict(frame.head(9)),
                              est.predict(frame.head(9).to_numpy()))
