"""satchel.evaluate end to end: figures equal scikit-learn's, every file format and batch
size agrees, baselines, slices and bias figures, and each bad input a clear error."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

import satchel
from satchel.errors import EvaluationError, InputFormatError
from satchel.evaluate import EvaluationResult
from tests.evaluate.sklearn_check import check_classifier, check_regressor, same_slices


def _fast(**kw: Any) -> dict[str, Any]:
    return {"resamples": 200, **kw}


def test_classifier_figures_are_sklearns(iris_model_dir: Path, iris_table: pd.DataFrame,
                                         iris_logreg: Any) -> None:
    r = satchel.evaluate(iris_model_dir, iris_table, "species", slice_by=["site"], **_fast())
    X = iris_table.drop(columns=["species", "site"])
    y = iris_table["species"]
    pred, proba = iris_logreg.predict(X), iris_logreg.predict_proba(X)
    # every figure, overall and per slice, to 1e-12 of scikit-learn on the rows
    check_classifier(r, y.to_numpy(), pred, proba, [0, 1, 2],
                     {"site": iris_table["site"].to_numpy()})
    assert r.task == "classifier" and r.dataset.rows == 150
    assert r.metrics["accuracy"].value == skm.accuracy_score(y, pred)
    assert r.metrics["f1_macro"].value == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert r.metrics["roc_auc"].value == pytest.approx(
        skm.roc_auc_score(y, proba, multi_class="ovr"))
    assert r.metrics["log_loss"].value == pytest.approx(skm.log_loss(y, proba))
    assert r.confusion == skm.confusion_matrix(y, pred).tolist()
    assert r.labels == ["0", "1", "2"]
    assert r.per_class["1"]["recall"].value == pytest.approx(
        skm.recall_score(y, pred, average=None)[1])
    for m in r.metrics.values():
        assert m.low <= m.value <= m.high, m
    assert r.bootstrap.method == "poisson bootstrap" and r.bootstrap.resamples == 200
    assert {c.kind for c in r.curves} == {"roc", "pr", "calibration"}


def test_every_format_and_batch_size_gives_the_same_figures(
        iris_model_dir: Path, iris_table: pd.DataFrame, tmp_path: Path) -> None:
    iris_table.to_parquet(tmp_path / "t.parquet")
    iris_table.to_csv(tmp_path / "t.csv", index=False)
    iris_table.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    want = satchel.evaluate(iris_model_dir, iris_table, "species", slice_by=["site"], **_fast())
    for source, rows in ((tmp_path / "t.parquet", 7), (tmp_path / "t.csv", 64),
                         (tmp_path / "t.jsonl", 1000), (iris_table, 11)):
        got = satchel.evaluate(iris_model_dir, source, "species", slice_by=["site"],
                               batch_rows=rows, **_fast())
        for name, m in want.metrics.items():
            for part in ("value", "low", "high"):
                assert getattr(got.metrics[name], part) == pytest.approx(
                    getattr(m, part), rel=1e-12), (source, name)
        same_slices(got.slices, want.slices)
    assert got.dataset.source == "DataFrame"


def test_baseline_comparison_is_paired_and_significant(
        iris_model_dir: Path, weak_iris_dir: Path, iris_table: pd.DataFrame) -> None:
    r = satchel.evaluate(iris_model_dir, iris_table, "species", baseline=weak_iris_dir,
                         **_fast())
    acc = r.comparison["accuracy"]
    assert acc.difference == pytest.approx(acc.model - acc.baseline)
    assert acc.baseline == pytest.approx(2 / 3)
    assert acc.significant and not acc.regression and acc.low > 0
    assert r.comparison["log_loss"].difference < 0 and not r.comparison["log_loss"].regression
    # the other way round, the same figures are a significant regression
    back = satchel.evaluate(weak_iris_dir, iris_table, "species", baseline=iris_model_dir,
                            **_fast())
    assert back.comparison["accuracy"].regression
    # a model against itself: zero difference, never significant
    same = satchel.evaluate(iris_model_dir, iris_table, "species", baseline=iris_model_dir,
                            **_fast())
    assert all(c.difference == 0 and not c.significant for c in same.comparison.values())


def test_slices_and_bias_figures(binary_dir: Path, binary_table: pd.DataFrame) -> None:
    r = satchel.evaluate(binary_dir, binary_table, "approved", slice_by=["group"], **_fast())
    by = {s.value: s for s in r.slices}
    assert set(by) == {"majority", "minority"}
    assert sum(s.rows for s in r.slices) == len(binary_table)
    sub = binary_table[binary_table.group == "minority"]
    from sklearn.linear_model import LogisticRegression  # noqa: F401 - the model's library

    model = satchel.load_model(binary_dir)
    pred = np.asarray(model.predict(sub[["x1", "x2"]]))
    assert by["minority"].metrics["accuracy"] == pytest.approx(
        skm.accuracy_score(sub.approved, pred))
    assert by["minority"].selection_rate["1"] == pytest.approx(float(np.mean(pred == 1)))
    gap = next(b for b in r.bias if b.kind == "gap" and b.metric == "accuracy")
    accs = [s.metrics["accuracy"] for s in r.slices]
    assert gap.value == pytest.approx(max(accs) - min(accs))
    ratio = next(b for b in r.bias if b.kind == "selection_rate_ratio")
    rates = [s.selection_rate["1"] for s in r.slices]
    assert ratio.value == pytest.approx(min(rates) / max(rates)) and ratio.value < 0.9
    assert ratio.worst == "minority"


def test_chosen_slice_values_and_empty_slices(binary_dir: Path,
                                              binary_table: pd.DataFrame) -> None:
    r = satchel.evaluate(binary_dir, binary_table, "approved", slice_by=["group=minority"],
                         resamples=0)
    assert [s.value for s in r.slices] == ["minority"]
    with pytest.raises(EvaluationError, match=r"slice group=elsewhere is empty.*majority"):
        satchel.evaluate(binary_dir, binary_table, "approved", slice_by=["group=elsewhere"])
    blank = binary_table.assign(region=None)
    with pytest.raises(EvaluationError, match="slice column 'region' has no values"):
        satchel.evaluate(binary_dir, blank, "approved", slice_by=["region"])
    with pytest.raises(EvaluationError, match="slice column 'nope' is not in the data"):
        satchel.evaluate(binary_dir, binary_table, "approved", slice_by=["nope"])
    with pytest.raises(EvaluationError, match="is the target"):
        satchel.evaluate(binary_dir, binary_table, "approved", slice_by=["approved"])


def test_regressor_figures_are_sklearns(ridge_dir: Path, diabetes: pd.DataFrame) -> None:
    r = satchel.evaluate(ridge_dir, diabetes, "progression", slice_by=["sex_group"], **_fast())
    model = satchel.load_model(ridge_dir)
    pred = model.predict(diabetes.drop(columns=["progression", "sex_group"]))
    y = diabetes["progression"]
    check_regressor(r, y.to_numpy(), np.asarray(pred),
                    {"sex_group": diabetes["sex_group"].to_numpy()})
    assert r.task == "regressor"
    assert r.metrics["mae"].value == pytest.approx(skm.mean_absolute_error(y, pred))
    assert r.metrics["rmse"].value == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert r.metrics["r2"].value == pytest.approx(skm.r2_score(y, pred))
    assert r.metrics["mape"].value == pytest.approx(skm.mean_absolute_percentage_error(y, pred))
    assert {c.kind for c in r.curves} == {"residuals", "actual_vs_predicted"}
    assert {s.value for s in r.slices} == {"m", "f"}
    assert not any(b.kind == "selection_rate_ratio" for b in r.bias)


def test_result_json_round_trip(iris_model_dir: Path, weak_iris_dir: Path,
                                iris_table: pd.DataFrame) -> None:
    r = satchel.evaluate(iris_model_dir, iris_table, "species", baseline=weak_iris_dir,
                         slice_by=["site"], dataset_name="holdout", **_fast())
    text = r.to_json()
    back = EvaluationResult.from_dict(json.loads(text))
    assert back.to_dict() == r.to_dict()
    assert back.dataset.name == "holdout" and back.metric("f1[2]") == r.metric("f1[2]")
    assert back.model.signature == r.model.signature and back.model.flavor == "sklearn"


def test_satchel_evaluate_stays_callable_after_the_package_is_imported() -> None:
    import satchel.evaluate.engine  # noqa: F401 - binds satchel.evaluate to the package

    assert callable(satchel.evaluate)
    assert satchel.evaluate.EvaluationResult is EvaluationResult


# --- bad input ------------------------------------------------------------------------


def test_missing_target_names_the_columns(iris_model_dir: Path,
                                          iris_table: pd.DataFrame) -> None:
    with pytest.raises(EvaluationError, match=r"target column 'label' is not in the data "
                       r"\(it has: sepal_length"):
        satchel.evaluate(iris_model_dir, iris_table, "label")


def test_wrong_type_targets(ridge_dir: Path, iris_model_dir: Path, diabetes: pd.DataFrame,
                            iris_table: pd.DataFrame) -> None:
    text = diabetes.assign(progression=diabetes["progression"].map(lambda v: f"v{v}"))
    with pytest.raises(EvaluationError, match="target column 'progression' holds text.*"
                       "regressor needs numbers"):
        satchel.evaluate(ridge_dir, text, "progression")
    holes = diabetes.assign(progression=diabetes["progression"].where(diabetes.index > 4))
    with pytest.raises(EvaluationError, match="has 5 missing values"):
        satchel.evaluate(ridge_dir, holes, "progression")
    frac = iris_table.assign(species=iris_table["species"] + 0.5)
    with pytest.raises(EvaluationError, match="never saw|fractional"):
        satchel.evaluate(iris_model_dir, frac, "species")


def test_labels_the_model_never_saw(iris_model_dir: Path, iris_table: pd.DataFrame) -> None:
    t = iris_table.copy()
    t.loc[:4, "species"] = 7
    with pytest.raises(EvaluationError, match=r"labels the model never saw: \['7'\] "
                       r"\(it knows \['0', '1', '2'\]\)"):
        satchel.evaluate(iris_model_dir, t, "species")


def test_task_that_cannot_be_inferred_asks_for_task(tmp_path: Path) -> None:
    from satchel.flavors import python as py_flavor

    def rounder(df: Any) -> Any:
        return (df["x"] > 0).astype("int64")

    df = pd.DataFrame({"x": [-1.0, 2.0, 3.0, -4.0], "y": [0, 1, 1, 1]})
    py_flavor.save_model(tmp_path / "m", rounder, input_example=df[["x"]])
    with pytest.raises(EvaluationError, match="pass --task classifier or --task regressor"):
        satchel.evaluate(tmp_path / "m", df, "y")
    r = satchel.evaluate(tmp_path / "m", df, "y", task_type="classifier", resamples=0)
    assert r.metrics["accuracy"].value == 0.75 and "roc_auc" not in r.metrics
    assert math.isnan(r.metrics["accuracy"].low)
    reg = satchel.evaluate(tmp_path / "m", df, "y", task_type="regressor", resamples=0)
    assert reg.metrics["mae"].value == 0.25
    with pytest.raises(EvaluationError, match="task must be one of"):
        satchel.evaluate(tmp_path / "m", df, "y", task_type="clustering")


def test_unreadable_data(iris_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match="does not exist"):
        satchel.evaluate(iris_model_dir, tmp_path / "none.parquet", "species")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(InputFormatError, match="cannot read bad.parquet"):
        satchel.evaluate(iris_model_dir, bad, "species")
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(InputFormatError, match="cannot tell the format of t.xlsx"):
        satchel.evaluate(iris_model_dir, tmp_path / "t.xlsx", "species")
    empty = tmp_path / "empty.csv"
    empty.write_text("sepal_length,sepal_width,petal_length,petal_width,species\n")
    with pytest.raises(EvaluationError, match="has no rows"):
        satchel.evaluate(iris_model_dir, empty, "species")
    with pytest.raises(InputFormatError, match="DataFrame or a file path"):
        satchel.evaluate(iris_model_dir, [1, 2, 3], "species")


def test_slice_figures_equal_sklearn_on_the_slice(iris_model_dir: Path, iris_table: pd.DataFrame,
                                                  iris_logreg: Any) -> None:
    r = satchel.evaluate(iris_model_dir, iris_table, "species", slice_by=["site"], resamples=0)
    for s in r.slices:
        rows = iris_table[iris_table.site == s.value]
        X = rows.drop(columns=["species", "site"])
        pred, proba = iris_logreg.predict(X), iris_logreg.predict_proba(X)
        assert list(s.metrics) == list(r.metrics)
        assert s.metrics["accuracy"] == pytest.approx(skm.accuracy_score(rows.species, pred))
        assert s.metrics["f1_macro"] == pytest.approx(
            skm.f1_score(rows.species, pred, average="macro"))
        assert s.metrics["roc_auc"] == pytest.approx(
            skm.roc_auc_score(rows.species, proba, multi_class="ovr"))
        assert s.metrics["log_loss"] == pytest.approx(
            skm.log_loss(rows.species, proba, labels=[0, 1, 2]))


def test_missing_slice_values_are_their_own_slice(binary_dir: Path,
                                                  binary_table: pd.DataFrame) -> None:
    t = binary_table.assign(group=binary_table["group"].where(binary_table.index % 10 != 0))
    r = satchel.evaluate(binary_dir, t, "approved", slice_by=["group"], resamples=0)
    by = {s.value: s.rows for s in r.slices}
    assert by["(missing)"] == 300 and sum(by.values()) == len(t)
    assert [s.value for s in r.slices] == sorted(by, key=lambda v: -by[v])


def test_a_large_parquet_file_streams_to_sklearns_figures(binary_dir: Path,
                                                           tmp_path: Path) -> None:
    # 150,000 rows of continuous scores, read from Parquet in batches: every figure of
    # every slice is scikit-learn's on the rows (ROC AUC included: no histogram)
    rng = np.random.default_rng(11)
    n = 150_000
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    t = pd.DataFrame({"x1": x1, "x2": x2,
                      "approved": ((x1 + 0.5 * x2 + rng.normal(scale=0.8, size=n)) > 0)
                      .astype(int),
                      "group": np.array(["a", "b", "c", "d"])[rng.integers(0, 4, n)]})
    t.to_parquet(tmp_path / "big.parquet", row_group_size=20_000)
    r = satchel.evaluate(binary_dir, tmp_path / "big.parquet", "approved",
                         slice_by=["group"], resamples=50, batch_rows=30_000)
    model = satchel.load_model(binary_dir).unwrap()
    X = t[["x1", "x2"]]
    check_classifier(r, t["approved"].to_numpy(), model.predict(X), model.predict_proba(X),
                     [0, 1], {"group": t["group"].to_numpy()})


def test_a_table_outside_0_1_is_not_taken_for_probabilities(tmp_path: Path) -> None:
    from satchel.flavors import python as py_flavor

    def scores(df: Any) -> Any:
        # rows sum to 1, but these are no probabilities
        return np.column_stack([df["x"].to_numpy() + 1.0, -df["x"].to_numpy()])

    df = pd.DataFrame({"x": [0.5, 2.0, 3.0, 0.25], "y": [0, 1, 1, 0]})
    py_flavor.save_model(tmp_path / "m", scores, input_example=df[["x"]])
    with pytest.raises(EvaluationError, match=r"values outside \[0, 1\] \(from -3 to 4\)"):
        satchel.evaluate(tmp_path / "m", df, "y", task_type="classifier")
