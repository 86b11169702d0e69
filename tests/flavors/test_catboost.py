"""The catboost flavor: conformance, native storage, categorical input, and bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import catboost as cb
import numpy as np
import pandas as pd
import pytest

import satchel
from satchel.errors import LibraryVersionWarning, ModelFormatError, SignatureError
from satchel.flavors import catboost as cb_flavor
from satchel.testing import check_flavor


@pytest.fixture(scope="module")
def classifier(iris: tuple[pd.DataFrame, Any]) -> cb.CatBoostClassifier:
    return cb.CatBoostClassifier(
        iterations=10, depth=3, verbose=0, allow_writing_files=False, random_seed=0
    ).fit(*iris)


@pytest.fixture(scope="module")
def with_category(iris: tuple[pd.DataFrame, Any]) -> pd.DataFrame:
    X = iris[0].iloc[:, :3].copy()
    X["size"] = np.where(iris[0]["petal_width"] > 1.0, "big", "small")
    return X


@pytest.fixture(scope="module")
def regressor(iris: Any, with_category: pd.DataFrame) -> cb.CatBoostRegressor:
    reg = cb.CatBoostRegressor(
        iterations=10, depth=3, verbose=0, allow_writing_files=False, cat_features=["size"]
    )
    return reg.fit(with_category, iris[0]["petal_width"])


def test_conformance_classifier(iris: Any, classifier: cb.CatBoostClassifier) -> None:
    passed = check_flavor("catboost", classifier, iris[0].head(10))
    assert "predict_matches_native" in passed and "tamper_detected" in passed


def test_conformance_regressor_with_a_categorical_column(
    with_category: pd.DataFrame, regressor: cb.CatBoostRegressor
) -> None:
    check_flavor("catboost", regressor, with_category.head(10))


def test_conformance_json_and_ranker(iris: Any) -> None:
    X, y = iris
    ranker = cb.CatBoostRanker(
        iterations=5, verbose=0, allow_writing_files=False, bootstrap_type="No"
    )
    ranker.fit(X, y, group_id=np.arange(150) // 10)
    check_flavor("catboost", ranker, X.head(10), save_options={"save_format": "json"})


def test_save_picks_catboost_and_writes_mlflows_layout(
    tmp_path: Path, iris: Any, classifier: cb.CatBoostClassifier
) -> None:
    manifest = satchel.save_model(classifier, tmp_path / "m", input_example=iris[0].head(3))
    section = manifest.flavors["catboost"]
    assert section == {
        "catboost_version": cb.__version__,
        "code": None,
        "model_type": "CatBoostClassifier",
        "save_format": "cbm",
        "data": "model.cb",
    }
    pyfunc = manifest.flavors["python_function"]
    assert pyfunc["loader_module"] == "mlflow.catboost" and pyfunc["data"] == "model.cb"
    model = satchel.load_model(tmp_path / "m", allow_code=False)
    # MLflow's pyfunc gives the classifier's own (n, 1) label column.
    out = model.predict(iris[0])
    assert out.shape == (150, 1)
    np.testing.assert_array_equal(out, classifier.predict(iris[0]))
    assert isinstance(cb_flavor.load_model(tmp_path / "m"), cb.CatBoostClassifier)
    assert "catboost==" in (tmp_path / "m" / "requirements.txt").read_text()


def test_categorical_column_type_is_enforced(
    tmp_path: Path, with_category: pd.DataFrame, regressor: cb.CatBoostRegressor
) -> None:
    cb_flavor.save_model(regressor, tmp_path / "m", input_example=with_category.head(3))
    model = satchel.load_model(tmp_path / "m")
    records = with_category.head(4).to_dict("records")
    np.testing.assert_allclose(model.predict(records), regressor.predict(with_category.head(4)))
    bad = with_category.head(2).assign(size=[1.5, 2.5])
    with pytest.raises(SignatureError, match="size"):
        model.predict(bad)


def test_bad_save_format_and_typo(tmp_path: Path, classifier: Any) -> None:
    with pytest.raises(ValueError, match="save_format"):
        cb_flavor.save_model(classifier, tmp_path / "m", save_format="python")
    with pytest.raises(TypeError, match="saveformat"):
        cb_flavor.save_model(classifier, tmp_path / "m", saveformat="json")
    assert not (tmp_path / "m").exists()


# --- bad input ----------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path: Path, classifier: cb.CatBoostClassifier, iris: Any) -> Path:
    path = tmp_path / "m"
    cb_flavor.save_model(classifier, path, input_example=iris[0].head(3))
    return path


def test_newer_catboost_warns_naming_both(saved: Path, set_flavor_key: Any) -> None:
    set_flavor_key(saved, "catboost", "catboost_version", "3.0")
    with pytest.warns(LibraryVersionWarning) as rec:
        satchel.load_model(saved)
    msg = str(rec[0].message)
    assert "catboost 3.0" in msg and f"catboost {cb.__version__}" in msg


def test_corrupt_file_is_one_line_error(saved: Path) -> None:
    (saved / "model.cb").write_bytes(b"CBM1 this is not a model")
    with pytest.raises(ModelFormatError) as info:
        satchel.load_model(saved, verify=False)
    assert "model.cb" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("model_type", "EvalMetrics", "EvalMetrics"),
        ("save_format", "python", "python"),
        ("data", "../../../../etc/hosts", "outside"),
    ],
)
def test_hostile_manifest_values(
    saved: Path, set_flavor_key: Any, key: str, value: str, match: str
) -> None:
    set_flavor_key(saved, "catboost", key, value)
    with pytest.raises(ModelFormatError, match=match):
        satchel.load_model(saved)


def test_missing_catboost_names_the_extra(saved: Path, load_without: Any) -> None:
    got = load_without(saved, "catboost")
    assert got["error"] == "MissingLibraryError"
    assert "pip install 'satchel[catboost]'" in got["message"]
