"""The statsmodels flavor: regression and time-series results, pickle refusal, bad input."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from statsmodels.tsa.arima.model import ARIMA

import satchel
from satchel.errors import (
    CodeNotAllowedError,
    LibraryVersionWarning,
    ModelFormatError,
    SignatureError,
    UnsupportedModelError,
)
from satchel.flavors import statsmodels as sm_flavor
from satchel.testing import check_flavor


@pytest.fixture(scope="module")
def exog(iris: tuple[pd.DataFrame, Any]) -> pd.DataFrame:
    return sm.add_constant(iris[0][["sepal_length", "sepal_width", "petal_length"]])


@pytest.fixture(scope="module")
def ols(iris: Any, exog: pd.DataFrame) -> Any:
    return sm.OLS(iris[0]["petal_width"], exog).fit()


@pytest.fixture(scope="module")
def arima(iris: Any) -> Any:
    return ARIMA(iris[0]["sepal_length"].to_numpy(), order=(2, 0, 0)).fit()


RANGE = pd.DataFrame({"start": [150], "end": [159]})


def test_conformance_ols(exog: pd.DataFrame, ols: Any) -> None:
    passed = check_flavor("statsmodels", ols, exog.head(10))
    assert "allow_code_false_refuses" in passed and "predict_matches_native" in passed


def test_conformance_formula_glm(iris: Any) -> None:
    X = iris[0]
    glm = smf.glm("petal_width ~ sepal_length + np.log(sepal_width)", data=X).fit()
    check_flavor("statsmodels", glm, X.head(10))


def test_conformance_arima(arima: Any) -> None:
    check_flavor(
        "statsmodels",
        arima,
        RANGE,
        native_predict=lambda r, x: r.predict(start=150, end=159),
    )


def test_save_picks_statsmodels_and_writes_mlflows_layout(
    tmp_path: Path, exog: pd.DataFrame, ols: Any
) -> None:
    manifest = satchel.save_model(ols, tmp_path / "m", input_example=exog.head(3))
    assert manifest.flavors["statsmodels"]["data"] == "model.statsmodels"
    assert manifest.flavors["python_function"]["loader_module"] == "mlflow.statsmodels"
    model = satchel.load_model(tmp_path / "m")
    assert model.row_independent
    got = model.predict(exog)
    assert isinstance(got, pd.Series)
    pd.testing.assert_series_equal(got, ols.predict(exog))


def test_pickle_is_refused_without_allow_code(tmp_path: Path, ols: Any) -> None:
    sm_flavor.save_model(ols, tmp_path / "m")
    with pytest.raises(CodeNotAllowedError, match="pickle"):
        satchel.load_model(tmp_path / "m", allow_code=False)


def test_remove_data_keeps_predictions(tmp_path: Path, exog: pd.DataFrame, ols: Any) -> None:
    sm_flavor.save_model(ols, tmp_path / "small", remove_data=True)
    sm_flavor.save_model(ols, tmp_path / "full")
    small = (tmp_path / "small" / "model.statsmodels").stat().st_size
    assert small < (tmp_path / "full" / "model.statsmodels").stat().st_size
    native = sm_flavor.load_model(tmp_path / "small")
    np.testing.assert_allclose(native.predict(exog.head(5)), ols.predict(exog.head(5)))
    # The caller's results object keeps its data.
    assert ols.model.exog is not None and len(ols.model.exog) == len(exog)


def test_time_series_forecasts_a_range_and_is_not_batched(tmp_path: Path, arima: Any) -> None:
    sm_flavor.save_model(arima, tmp_path / "ts", input_example=RANGE)
    model = satchel.load_model(tmp_path / "ts")
    assert model.row_independent is False
    np.testing.assert_allclose(
        model.predict({"start": 150, "end": 152}), arima.predict(start=150, end=152)
    )
    assert len(model.predict(RANGE)) == 10


@pytest.mark.parametrize(
    "bad",
    [
        pd.DataFrame({"start": [150, 151], "end": [155, 156]}),
        pd.DataFrame({"start": pd.Series([], dtype="int64"), "end": pd.Series([], dtype="int64")}),
    ],
)
def test_time_series_wants_exactly_one_range(tmp_path: Path, arima: Any, bad: Any) -> None:
    sm_flavor.save_model(arima, tmp_path / "ts", input_example=RANGE)
    model = satchel.load_model(tmp_path / "ts")
    with pytest.raises(SignatureError, match="exactly one row"):
        model.predict(bad)


def test_time_series_without_signature_names_the_columns(tmp_path: Path, arima: Any) -> None:
    sm_flavor.save_model(arima, tmp_path / "ts")
    model = satchel.load_model(tmp_path / "ts")
    with pytest.raises(SignatureError, match="'start' and 'end'"):
        model.predict(pd.DataFrame({"from": [1], "to": [2]}))


def test_unfitted_model_is_refused(tmp_path: Path, iris: Any, exog: pd.DataFrame) -> None:
    with pytest.raises(UnsupportedModelError, match="OLS"):
        satchel.save_model(sm.OLS(iris[0]["petal_width"], exog), tmp_path / "m")
    with pytest.raises(ModelFormatError, match="fitted results"):
        sm_flavor.save_model(sm.OLS(iris[0]["petal_width"], exog), tmp_path / "m")


# --- bad input ----------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path: Path, ols: Any, exog: pd.DataFrame) -> Path:
    path = tmp_path / "m"
    sm_flavor.save_model(ols, path, input_example=exog.head(3))
    return path


def test_newer_statsmodels_warns_naming_both(saved: Path, set_flavor_key: Any) -> None:
    import statsmodels

    set_flavor_key(saved, "statsmodels", "statsmodels_version", "1.0.0")
    with pytest.warns(LibraryVersionWarning) as rec:
        satchel.load_model(saved)
    msg = str(rec[0].message)
    assert "statsmodels 1.0.0" in msg and f"statsmodels {statsmodels.__version__}" in msg


def test_corrupt_file_is_one_line_error(saved: Path) -> None:
    (saved / "model.statsmodels").write_bytes(b"\x80\x04 truncated pickle")
    with pytest.raises(ModelFormatError) as info:
        satchel.load_model(saved, verify=False)
    assert "model.statsmodels" in str(info.value) and "\n" not in str(info.value)


def test_a_pickle_of_something_else_is_refused(saved: Path) -> None:
    (saved / "model.statsmodels").write_bytes(pickle.dumps({"not": "results"}))
    with pytest.raises(ModelFormatError, match="holds a dict"):
        satchel.load_model(saved, verify=False)


def test_data_path_outside_is_refused(saved: Path, set_flavor_key: Any) -> None:
    set_flavor_key(saved, "statsmodels", "data", "../outside.pkl")
    with pytest.raises(ModelFormatError, match="outside"):
        satchel.load_model(saved)


def test_missing_statsmodels_names_the_extra(saved: Path, load_without: Any) -> None:
    got = load_without(saved, "statsmodels")
    assert got["error"] == "MissingLibraryError"
    assert "pip install 'satchel[statsmodels]'" in got["message"]


@pytest.mark.filterwarnings("ignore::statsmodels.tools.sm_exceptions.EstimationWarning")
def test_time_series_on_dates_takes_date_strings(tmp_path: Path) -> None:
    idx = pd.date_range("2020-01-01", periods=120, freq="MS")
    y = pd.Series(np.sin(np.arange(120) / 6) + np.arange(120) / 50, index=idx)
    results = ARIMA(y, order=(1, 0, 0)).fit()
    example = pd.DataFrame({"start": ["2030-01-01"], "end": ["2030-06-01"]})
    sm_flavor.save_model(results, tmp_path / "ts", input_example=example)
    model = satchel.load_model(tmp_path / "ts")
    got = model.predict({"start": "2030-01-01", "end": "2030-03-01"})
    want = results.predict(start="2030-01-01", end="2030-03-01")
    pd.testing.assert_series_equal(got, want)
    assert list(got.index.strftime("%Y-%m")) == ["2030-01", "2030-02", "2030-03"]


def _fits(y: pd.Series, X: pd.DataFrame) -> dict[str, Any]:
    yb = (y > y.median()).astype(float)
    return {
        "ols": sm.OLS(y, X).fit(),
        "wls": sm.WLS(y, X, weights=np.arange(1, len(X) + 1)).fit(),
        "glm": sm.GLM(yb, X, family=sm.families.Binomial()).fit(),
        "logit": sm.Logit(yb, X).fit(disp=0),
        "mnlogit": sm.MNLogit(np.digitize(y, [0.5, 1.5]), X).fit(disp=0),  # a 2-D answer
        "rlm": sm.RLM(y, X).fit(),
    }


def _frames(exog: pd.DataFrame) -> dict[str, pd.DataFrame]:
    head = exog.head(6)
    return {
        "as fitted": head,
        "one row": exog.iloc[[7]],
        "no rows": exog.iloc[:0],
        "text index": head.set_axis(list("uvwxyz")),
        "row MultiIndex": head.set_axis(pd.MultiIndex.from_product([[1, 2], list("abc")])),
        "one block": pd.DataFrame(head.to_numpy(), columns=head.columns, index=head.index),
        "int and float blocks": head.assign(sepal_length=np.arange(6)),
        "a NaN": head.assign(sepal_width=[np.nan, 1, 2, 3, 4, 5.0]),
        "a bool column": head.assign(sepal_length=[True, False] * 3),  # statsmodels' own path
        "an inf": head.assign(petal_length=[np.inf, -np.inf, 1, 2, 3, 4.0]),
    }


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # MNLogit on an inf
def test_array_path_gives_exactly_what_statsmodels_gives_for_the_frame(
    iris: Any, exog: pd.DataFrame
) -> None:
    """The predictor hands statsmodels the frame's array (its own conversion of the frame
    costs ~20 us of pandas overhead at 1,000 rows) and puts the index back: the answer
    must be the one ``results.predict(frame)`` gives, bit for bit, or the same error."""
    for name, results in _fits(iris[0]["petal_width"], exog).items():
        predictor = sm_flavor.StatsmodelsPredictor(results)
        assert predictor._array_path, name
        for label, frame in _frames(exog).items():
            taken = sm_flavor._numeric_values(frame) is not None
            assert taken == (label != "a bool column"), label
            try:
                want = results.predict(frame)
            except Exception as exc:
                with pytest.raises(type(exc)):
                    predictor.predict(frame)
                continue
            got = predictor.predict(frame)
            assert type(got) is type(want), (name, label)
            if isinstance(want, pd.Series):
                pd.testing.assert_series_equal(got, want, check_exact=True)
            else:
                pd.testing.assert_frame_equal(got, want, check_exact=True)
            if np.asarray(want).dtype.kind == "f":  # the same bits, NaN and inf included
                assert np.asarray(got).tobytes() == np.asarray(want).tobytes(), (name, label)


def test_formula_and_time_series_models_keep_statsmodels_own_path(iris: Any, arima: Any) -> None:
    X = iris[0]
    glm = smf.glm("petal_width ~ sepal_length + np.log(sepal_width)", data=X).fit()
    assert not sm_flavor.StatsmodelsPredictor(glm)._array_path  # the formula needs names
    assert not sm_flavor.StatsmodelsPredictor(arima)._array_path
    got = sm_flavor.StatsmodelsPredictor(glm).predict(X.head(4).set_axis(list("abcd")))
    pd.testing.assert_series_equal(got, glm.predict(X.head(4).set_axis(list("abcd"))))
