"""satchel.convert / ``satchel convert``: sklearn -> ONNX, checked before anything is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

import satchel
from satchel.cli import main
from satchel.errors import ConversionError, DestinationExistsError

pytest.importorskip("skl2onnx")


def _save(model: Any, path: Path, example: Any, **kw: Any) -> Path:
    satchel.save_model(model, path, input_example=example, **kw)
    return path


def _graph_inputs(path: Path) -> list[tuple[str, list[Any]]]:
    import onnx

    graph = onnx.load(str(path / "model.onnx")).graph
    return [
        (
            i.name,
            [
                d.dim_value if d.HasField("dim_value") else None
                for d in i.type.tensor_type.shape.dim
            ],
        )
        for i in graph.input
    ]


def test_classifier_converts_and_keeps_its_signature(
    iris: Any, iris_model_dir: Path, iris_logreg: Any, tmp_path: Path
) -> None:
    out = tmp_path / "onnx"
    manifest = satchel.convert(iris_model_dir, "onnx", out)
    assert "onnx" in manifest.flavors
    source = satchel.load_model(iris_model_dir)
    converted = satchel.load_model(out)
    assert converted.flavor.name == "onnx"
    assert converted.signature is not None and source.signature is not None
    assert converted.signature.inputs == source.signature.inputs  # names and types carried
    assert _graph_inputs(out) == [("input", [None, 4])]  # one column each, signature order
    X = iris[0]
    got = converted.predict(X)
    assert list(got.columns) == ["label", "probabilities"]
    np.testing.assert_array_equal(got["label"].to_numpy(), iris_logreg.predict(X))
    np.testing.assert_allclose(
        np.stack(got["probabilities"].to_numpy()), iris_logreg.predict_proba(X), atol=1e-5
    )
    assert converted.input_example() is not None  # the original example came along
    # columns in another order are matched by name, as for the sklearn model
    shuffled = X[list(reversed(X.columns))]
    np.testing.assert_array_equal(converted.predict(shuffled)["label"], got["label"])


def test_random_forest_with_sample(iris: Any, tmp_path: Path) -> None:
    from sklearn.ensemble import RandomForestClassifier

    X, y = iris
    rf = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    src = _save(rf, tmp_path / "rf", X.head(5))
    satchel.convert(src, "onnx", tmp_path / "out", sample=X)
    got = satchel.load_model(tmp_path / "out").predict(X)
    np.testing.assert_array_equal(got["label"].to_numpy(), rf.predict(X))


def test_regressor(tmp_path: Path) -> None:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    ridge = Ridge().fit(X, y)
    src = _save(ridge, tmp_path / "ridge", X.head(5))
    satchel.convert(src, "onnx", tmp_path / "out", sample=X)
    got = satchel.load_model(tmp_path / "out").predict(X)
    assert list(got.columns) == ["variable"]
    np.testing.assert_allclose(got["variable"].to_numpy(), ridge.predict(X), rtol=1e-5, atol=1e-3)


def test_mixed_columns_get_one_input_each(tmp_path: Path) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "color": rng.choice(["red", "green", "blue"], 200),
            "size": rng.normal(size=200),
            "n": rng.integers(0, 10, 200),
        }
    )
    y = np.where((df["size"] > 0) ^ (df["color"] == "red"), "yes", "no")
    pipe = Pipeline(
        [
            (
                "ct",
                ColumnTransformer(
                    [("oh", OneHotEncoder(), ["color"]), ("sc", StandardScaler(), ["size", "n"])]
                ),
            ),
            ("lr", LogisticRegression()),
        ]
    ).fit(df, y)
    src = _save(pipe, tmp_path / "pipe", df.head(5))
    satchel.convert(src, "onnx", tmp_path / "out", sample=df)
    assert _graph_inputs(tmp_path / "out") == [
        ("color", [None, 1]),
        ("size", [None, 1]),
        ("n", [None, 1]),
    ]
    got = satchel.load_model(tmp_path / "out").predict(df)
    assert got["label"].tolist() == pipe.predict(df).tolist()


def test_mismatch_refuses_and_writes_nothing(iris_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "onnx"
    with pytest.raises(ConversionError, match=r"probabilities differ .* by up to \d") as err:
        satchel.convert(iris_model_dir, "onnx", out, atol=1e-12)
    assert "tolerance 1e-12" in str(err.value) and "nothing was written" in str(err.value)
    assert list(tmp_path.iterdir()) == []  # neither the output nor a temporary directory


def test_regression_mismatch_names_the_difference(tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    X = pd.DataFrame({"a": np.linspace(0, 1, 20) + 1e6, "b": np.linspace(1, 2, 20)})
    lin = LinearRegression().fit(X, X["a"] * 3 + X["b"])
    src = _save(lin, tmp_path / "lin", X.head(5))
    # float32 inputs near 1e6 cannot hold these fractions (steps of 0.0625): within the
    # default relative tolerance, but not with rtol=0
    satchel.convert(src, "onnx", tmp_path / "ok", sample=X)
    with pytest.raises(ConversionError, match=r"predictions differ .* by up to") as err:
        satchel.convert(src, "onnx", tmp_path / "out", sample=X, rtol=0)
    assert "atol=1e-05, rtol=0" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_refusals(iris: Any, iris_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="supported targets"):
        satchel.convert(iris_model_dir, "tflite", tmp_path / "x")
    # nothing to compare on
    from sklearn.linear_model import LogisticRegression

    bare = tmp_path / "bare"
    satchel.save_model(LogisticRegression(max_iter=500).fit(*iris), bare)
    with pytest.raises(ConversionError, match="pass a sample"):
        satchel.convert(bare, "onnx", tmp_path / "x")
    # already ONNX
    satchel.convert(iris_model_dir, "onnx", tmp_path / "onnx")
    with pytest.raises(ConversionError, match="is a onnx model"):
        satchel.convert(tmp_path / "onnx", "onnx", tmp_path / "x")
    # an existing destination is kept unless overwrite
    with pytest.raises(DestinationExistsError):
        satchel.convert(iris_model_dir, "onnx", tmp_path / "onnx")
    satchel.convert(iris_model_dir, "onnx", tmp_path / "onnx", overwrite=True)
    assert not (tmp_path / "x").exists()


def test_unsupported_estimator(iris: Any, tmp_path: Path) -> None:
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Custom(ClassifierMixin, BaseEstimator):
        def fit(self, X: Any, y: Any) -> Any:
            self.n_features_in_ = X.shape[1]
            return self

        def predict(self, X: Any) -> Any:
            return np.zeros(len(X), dtype=np.int64)

    src = _save(Custom().fit(*iris), tmp_path / "custom", iris[0].head(3))
    with pytest.raises(ConversionError, match="skl2onnx cannot convert Custom"):
        satchel.convert(src, "onnx", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli(
    iris: Any, iris_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = tmp_path / "sample.csv"
    iris[0].iloc[::7].to_csv(sample, index=False)
    out = tmp_path / "cli_out"
    assert (
        main(
            [
                "convert",
                str(iris_model_dir),
                "--to",
                "onnx",
                "-o",
                str(out),
                "--sample",
                str(sample),
            ]
        )
        == 0
    )
    assert "ok: wrote" in capsys.readouterr().out
    doc = yaml.safe_load((out / "MLmodel").read_text())
    assert doc["flavors"]["python_function"]["loader_module"] == "mlflow.onnx"
    records = tmp_path / "sample.json"
    iris[0].head(6).to_json(records, orient="records")
    code = main(
        [
            "convert",
            str(iris_model_dir),
            "--to",
            "onnx",
            "-o",
            str(tmp_path / "bad"),
            "--sample",
            str(records),
            "--atol",
            "1e-12",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("satchel: error: the ONNX model's probabilities differ")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "bad").exists()
