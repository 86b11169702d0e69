"""The lightgbm flavor: conformance, storage, skops trust, and bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

import satchel
from satchel.errors import (
    CodeNotAllowedError,
    LibraryVersionWarning,
    ModelFormatError,
    UntrustedTypeError,
)
from satchel.flavors import lightgbm as lgb_flavor
from satchel.testing import check_flavor

pytestmark = pytest.mark.filterwarnings("ignore:X does not have valid feature names")


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, np.ndarray]:
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X.columns = [c.replace(" ", "_") for c in X.columns]
    return X, y.to_numpy()


@pytest.fixture(scope="module")
def classifier(iris: tuple[pd.DataFrame, Any]) -> lgb.LGBMClassifier:
    return lgb.LGBMClassifier(n_estimators=8, num_leaves=7, verbose=-1).fit(*iris)


@pytest.fixture(scope="module")
def booster(cancer: tuple[pd.DataFrame, np.ndarray]) -> lgb.Booster:
    X, y = cancer
    params = {"objective": "binary", "num_leaves": 7, "verbose": -1}
    return lgb.train(params, lgb.Dataset(X, y), num_boost_round=10)


def test_conformance_classifier_skops(iris: Any, classifier: lgb.LGBMClassifier) -> None:
    passed = check_flavor("lightgbm", classifier, iris[0].head(10))
    assert "predict_matches_native" in passed and "tamper_detected" in passed


def test_conformance_booster_text(cancer: Any, booster: lgb.Booster) -> None:
    check_flavor("lightgbm", booster, cancer[0].head(10))


@pytest.mark.parametrize("fmt", ["cloudpickle", "pickle"])
def test_conformance_pickled_regressor(iris: Any, fmt: str) -> None:
    X = iris[0]
    reg = lgb.LGBMRegressor(n_estimators=5, verbose=-1).fit(X.iloc[:, :3], X.iloc[:, 3])
    passed = check_flavor(
        "lightgbm", reg, X.iloc[:10, :3], save_options={"serialization_format": fmt}
    )
    assert "allow_code_false_refuses" in passed


def test_ranker(tmp_path: Path, iris: Any) -> None:
    X, y = iris
    ranker = lgb.LGBMRanker(n_estimators=4, verbose=-1).fit(X, y, group=[50, 50, 50])
    check_flavor("lightgbm", ranker, X.head(10))


def test_booster_is_stored_as_lightgbm_text(
    tmp_path: Path, booster: lgb.Booster, cancer: Any
) -> None:
    manifest = satchel.save_model(booster, tmp_path / "b", input_example=cancer[0].head(2))
    section = manifest.flavors["lightgbm"]
    assert section["model_class"] == "lightgbm.basic.Booster" and section["data"] == "model.lgb"
    assert section["lgb_version"] == lgb.__version__
    assert (tmp_path / "b" / "model.lgb").read_text().startswith("tree\n")
    model = satchel.load_model(tmp_path / "b", allow_code=False)
    X = cancer[0]
    np.testing.assert_array_equal(model.predict(X), booster.predict(X))
    assert model.row_independent


def test_estimator_picked_over_sklearn_and_stored_as_skops(
    tmp_path: Path, iris: Any, classifier: lgb.LGBMClassifier
) -> None:
    manifest = satchel.save_model(classifier, tmp_path / "m")
    assert set(manifest.flavors) == {"python_function", "lightgbm"}
    section = manifest.flavors["lightgbm"]
    assert section["serialization_format"] == "skops" and section["data"] == "model.skops"
    # MLflow's loader trusts exactly this list, so it names every type in the file.
    assert "lightgbm.sklearn.LGBMClassifier" in section["skops_trusted_types"]
    assert manifest.flavors["python_function"]["loader_module"] == "mlflow.lightgbm"
    native = lgb_flavor.load_model(tmp_path / "m", allow_code=False)
    assert isinstance(native, lgb.LGBMClassifier)
    np.testing.assert_array_equal(native.predict(iris[0]), classifier.predict(iris[0]))
    reqs = (tmp_path / "m" / "requirements.txt").read_text()
    assert "lightgbm==" in reqs and "skops==" in reqs


def test_pickled_estimator_is_refused_without_allow_code(
    tmp_path: Path, classifier: lgb.LGBMClassifier
) -> None:
    lgb_flavor.save_model(classifier, tmp_path / "m", serialization_format="cloudpickle")
    with pytest.raises(CodeNotAllowedError, match="cloudpickle"):
        satchel.load_model(tmp_path / "m", allow_code=False)


def _custom_objective(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[Any, Any]:
    grad = y_pred - y_true
    return grad, np.ones_like(grad)


def test_foreign_types_need_the_savers_and_the_loaders_trust(tmp_path: Path, iris: Any) -> None:
    X = iris[0]
    reg = lgb.LGBMRegressor(n_estimators=3, objective=_custom_objective, verbose=-1)
    reg.fit(X.iloc[:, :3], X.iloc[:, 3])
    with pytest.raises(UntrustedTypeError, match="_custom_objective") as info:
        lgb_flavor.save_model(reg, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    (name,) = info.value.types
    lgb_flavor.save_model(reg, tmp_path / "m", skops_trusted_types=[name])
    # The manifest lists the type for MLflow; satchel still wants the caller's word.
    with pytest.raises(UntrustedTypeError, match="_custom_objective"):
        satchel.load_model(tmp_path / "m")
    model = satchel.load_model(tmp_path / "m", trusted_types=[name])
    np.testing.assert_allclose(model.predict(X.iloc[:5, :3]), reg.predict(X.iloc[:5, :3]))


def test_bad_serialization_format(tmp_path: Path, classifier: Any) -> None:
    with pytest.raises(ValueError, match="serialization_format"):
        lgb_flavor.save_model(classifier, tmp_path / "m", serialization_format="joblib")
    with pytest.raises(TypeError, match="serialisation_format"):
        lgb_flavor.save_model(classifier, tmp_path / "m", serialisation_format="skops")
    assert not (tmp_path / "m").exists()


# --- bad input ----------------------------------------------------------------------------


@pytest.fixture
def saved_booster(tmp_path: Path, booster: lgb.Booster, cancer: Any) -> Path:
    path = tmp_path / "b"
    lgb_flavor.save_model(booster, path, input_example=cancer[0].head(2))
    return path


def test_newer_lightgbm_warns_naming_both(saved_booster: Path, set_flavor_key: Any) -> None:
    set_flavor_key(saved_booster, "lightgbm", "lgb_version", "12.0.0")
    with pytest.warns(LibraryVersionWarning) as rec:
        satchel.load_model(saved_booster)
    msg = str(rec[0].message)
    assert "lightgbm 12.0.0" in msg and f"lightgbm {lgb.__version__}" in msg


def test_corrupt_text_model_is_one_line_error(saved_booster: Path) -> None:
    (saved_booster / "model.lgb").write_text("tree\nversion=v4\nnum_class=oops\n")
    with pytest.raises(ModelFormatError) as info:
        satchel.load_model(saved_booster, verify=False)
    assert "model.lgb" in str(info.value) and "\n" not in str(info.value)


def test_corrupt_skops_is_one_line_error(tmp_path: Path, classifier: Any) -> None:
    lgb_flavor.save_model(classifier, tmp_path / "m")
    (tmp_path / "m" / "model.skops").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ModelFormatError) as info:
        satchel.load_model(tmp_path / "m", verify=False)
    assert "model.skops" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("model_class", "subprocess.Popen", "subprocess.Popen"),
        ("model_class", "lightgbm.sklearn.LGBMRegressor", "holds a lightgbm.sklearn"),
        ("serialization_format", "joblib", "joblib"),
        ("data", "/etc/passwd", "outside"),
    ],
)
def test_hostile_manifest_values(
    tmp_path: Path, classifier: Any, set_flavor_key: Any, key: str, value: str, match: str
) -> None:
    lgb_flavor.save_model(classifier, tmp_path / "m")
    set_flavor_key(tmp_path / "m", "lightgbm", key, value)
    with pytest.raises(ModelFormatError, match=match):
        satchel.load_model(tmp_path / "m")


def test_missing_lightgbm_names_the_extra(saved_booster: Path, load_without: Any) -> None:
    got = load_without(saved_booster, "lightgbm")
    assert got["error"] == "MissingLibraryError"
    assert "pip install 'satchel[lightgbm]'" in got["message"]


def test_missing_skops_names_the_lightgbm_extra(
    tmp_path: Path, classifier: Any, load_without: Any
) -> None:
    lgb_flavor.save_model(classifier, tmp_path / "m")
    got = load_without(tmp_path / "m", "skops", "skops.io")
    assert got["error"] == "MissingLibraryError"
    assert "skops" in got["message"] and "pip install 'satchel[lightgbm]'" in got["message"]
