"""The xgboost flavor: conformance, native storage, params, and bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

import satchel
from satchel.errors import LibraryVersionWarning, ModelFormatError
from satchel.flavors import xgboost as xgb_flavor
from satchel.schema import DataType, ParamSchema, ParamSpec
from satchel.signature import infer_signature
from satchel.testing import check_flavor


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, np.ndarray]:
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X.columns = [c.replace(" ", "_") for c in X.columns]
    return X, y.to_numpy()


@pytest.fixture(scope="module")
def classifier(iris: tuple[pd.DataFrame, Any]) -> xgb.XGBClassifier:
    X, y = iris
    return xgb.XGBClassifier(n_estimators=8, max_depth=3, random_state=0).fit(X, y)


@pytest.fixture(scope="module")
def booster(cancer: tuple[pd.DataFrame, np.ndarray]) -> xgb.Booster:
    X, y = cancer
    dtrain = xgb.DMatrix(X, label=y)
    return xgb.train({"objective": "binary:logistic", "max_depth": 3}, dtrain, num_boost_round=10)


def test_conformance_classifier(iris: Any, classifier: xgb.XGBClassifier) -> None:
    passed = check_flavor("xgboost", classifier, iris[0].head(10))
    assert "predict_matches_native" in passed and "tamper_detected" in passed


def test_conformance_regressor_json(iris: Any) -> None:
    X = iris[0]
    reg = xgb.XGBRegressor(n_estimators=5).fit(X.iloc[:, :3], X.iloc[:, 3])
    check_flavor("xgboost", reg, X.iloc[:10, :3], save_options={"model_format": "json"})


def test_conformance_booster(cancer: Any, booster: xgb.Booster) -> None:
    X = cancer[0]
    check_flavor(
        "xgboost",
        booster,
        X.head(10),
        native_predict=lambda b, x: b.predict(xgb.DMatrix(x)),
    )


def test_save_picks_xgboost_over_sklearn_and_stores_no_pickle(
    tmp_path: Path, iris: Any, classifier: xgb.XGBClassifier
) -> None:
    # XGBClassifier is an sklearn BaseEstimator too; its own flavor must win.
    manifest = satchel.save_model(classifier, tmp_path / "m", input_example=iris[0].head(3))
    assert set(manifest.flavors) == {"python_function", "xgboost"}
    section = manifest.flavors["xgboost"]
    assert section["model_class"] == "xgboost.sklearn.XGBClassifier"
    assert section["model_format"] == "ubj" and section["xgb_version"] == xgb.__version__
    assert manifest.flavors["python_function"]["loader_module"] == "mlflow.xgboost"
    files = {p.name for p in (tmp_path / "m").iterdir()}
    assert "model.ubj" in files and not any(f.endswith(".pkl") for f in files)
    # A format that runs no code loads under allow_code=False.
    model = satchel.load_model(tmp_path / "m", allow_code=False)
    np.testing.assert_array_equal(model.predict(iris[0]), classifier.predict(iris[0]))
    assert model.row_independent
    assert "xgboost==" in (tmp_path / "m" / "requirements.txt").read_text()


def test_booster_is_picked_from_its_type(tmp_path: Path, booster: xgb.Booster, cancer: Any) -> None:
    manifest = satchel.save_model(booster, tmp_path / "b")
    assert manifest.flavors["xgboost"]["model_class"] == "xgboost.core.Booster"
    out = xgb_flavor.load_model(tmp_path / "b")
    assert isinstance(out, xgb.Booster)
    X = cancer[0].head(7)
    np.testing.assert_array_equal(out.predict(xgb.DMatrix(X)), booster.predict(xgb.DMatrix(X)))


def test_named_save_and_native_load(tmp_path: Path, classifier: xgb.XGBClassifier) -> None:
    xgb_flavor.save_model(classifier, tmp_path / "m", model_format="json")
    assert (tmp_path / "m" / "model.json").is_file()
    native = xgb_flavor.load_model(tmp_path / "m")
    assert isinstance(native, xgb.XGBClassifier)


def test_params_reach_predict(tmp_path: Path, cancer: Any, booster: xgb.Booster) -> None:
    X = cancer[0].head(20)
    params = ParamSchema(
        [
            ParamSpec("output_margin", DataType.boolean, False),
            ParamSpec("iteration_range", DataType.long, [0, 0], shape=(-1,)),
        ]
    )
    sig = infer_signature(X, booster.predict(xgb.DMatrix(X)))
    sig = type(sig)(sig.inputs, sig.outputs, params)
    xgb_flavor.save_model(booster, tmp_path / "m", signature=sig)
    model = satchel.load_model(tmp_path / "m")
    margin = model.predict(X, params={"output_margin": True})
    np.testing.assert_allclose(margin, booster.predict(xgb.DMatrix(X), output_margin=True))
    first3 = model.predict(X, params={"iteration_range": [0, 3]})
    np.testing.assert_allclose(first3, booster.predict(xgb.DMatrix(X), iteration_range=(0, 3)))
    assert not np.allclose(first3, model.predict(X))


def test_feature_names_are_validated(tmp_path: Path, booster: xgb.Booster, cancer: Any) -> None:
    # Saved without a signature: the Booster's own feature-name check still applies.
    xgb_flavor.save_model(booster, tmp_path / "m")
    model = satchel.load_model(tmp_path / "m")
    wrong = cancer[0].head(3).rename(columns={"mean_radius": "radius"})
    with pytest.raises(satchel.PredictionError, match="feature_names mismatch"):
        model.predict(wrong)


def test_unknown_save_option_is_a_type_error(tmp_path: Path, classifier: Any) -> None:
    with pytest.raises(TypeError, match="model_fromat"):
        xgb_flavor.save_model(classifier, tmp_path / "m", model_fromat="json")
    assert not (tmp_path / "m").exists()


def test_bad_model_format_is_refused(tmp_path: Path, classifier: Any) -> None:
    with pytest.raises(ValueError, match="model_format"):
        xgb_flavor.save_model(classifier, tmp_path / "m", model_format="pickle")
    assert not (tmp_path / "m").exists()


def test_subclass_is_refused_not_pickled(tmp_path: Path, iris: Any) -> None:
    class MyClassifier(xgb.XGBClassifier):
        pass

    clf = MyClassifier(n_estimators=2).fit(*iris)
    with pytest.raises(ModelFormatError, match="MyClassifier"):
        xgb_flavor.save_model(clf, tmp_path / "m")


# --- bad input ----------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path: Path, classifier: xgb.XGBClassifier, iris: Any) -> Path:
    path = tmp_path / "m"
    xgb_flavor.save_model(classifier, path, input_example=iris[0].head(3))
    return path


def test_newer_xgboost_warns_naming_both_versions(saved: Path, set_flavor_key: Any) -> None:
    set_flavor_key(saved, "xgboost", "xgb_version", "99.1.0")
    with pytest.warns(LibraryVersionWarning) as rec:
        satchel.load_model(saved)
    msg = str(rec[0].message)
    assert "xgboost 99.1.0" in msg and f"xgboost {xgb.__version__}" in msg


def test_corrupt_file_is_one_line_error_naming_it(saved: Path) -> None:
    (saved / "model.ubj").write_bytes(b"{not a model")
    with pytest.raises(ModelFormatError) as info:
        satchel.load_model(saved, verify=False)
    assert "model.ubj" in str(info.value) and "\n" not in str(info.value)


def test_tampered_file_is_caught_before_xgboost_reads_it(saved: Path) -> None:
    (saved / "model.ubj").write_bytes(b"{not a model")
    with pytest.raises(satchel.IntegrityError, match="model.ubj"):
        satchel.load_model(saved)


def test_missing_file_is_named(saved: Path) -> None:
    (saved / "model.ubj").unlink()
    with pytest.raises(ModelFormatError, match="model.ubj"):
        satchel.load_model(saved, verify=False)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("model_class", "os.system", "os.system"),
        ("model_class", "xgboost.dask.DaskXGBClassifier", "DaskXGBClassifier"),
        ("model_format", "pickle", "pickle"),
        ("data", "../../etc/passwd", "outside"),
    ],
)
def test_hostile_manifest_values_are_refused(
    saved: Path, set_flavor_key: Any, key: str, value: str, match: str
) -> None:
    set_flavor_key(saved, "xgboost", key, value)
    with pytest.raises(ModelFormatError, match=match):
        satchel.load_model(saved)


def test_missing_xgboost_names_the_extra(saved: Path, load_without: Any) -> None:
    got = load_without(saved, "xgboost")
    assert got["error"] == "MissingLibraryError" and got["import_error"]
    assert "pip install 'satchel[xgboost]'" in got["message"]


def test_saving_other_models_does_not_import_xgboost(iris_model_dir: Path, tmp_path: Path) -> None:
    code = (
        "import sys, satchel; m = satchel.load_model(sys.argv[1]); "
        "satchel.save_model(m.unwrap(), sys.argv[2]); "
        "print(','.join(x for x in ('xgboost', 'lightgbm', 'catboost', 'statsmodels') "
        "if x in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(iris_model_dir), str(tmp_path / "again")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == ""
