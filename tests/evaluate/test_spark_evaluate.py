"""``satchel evaluate --spark``: executors fold their partitions, the driver merges them,
and the figures are the in-memory path's and scikit-learn's (real local Spark)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from satchel.cli import main
from tests.evaluate.sklearn_check import REL, check_classifier, check_regressor

pytestmark = pytest.mark.spark


@pytest.fixture(autouse=True)
def _spark_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    pytest.importorskip("pyspark")


def _same(a: Any, b: Any, where: str = "") -> None:
    """Equal JSON results: numbers to 1e-12 relative (sums over partitions instead of
    batches differ in the last bits), everything else exactly."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and not isinstance(b, bool):
        assert b == pytest.approx(a, rel=REL, abs=1e-15, nan_ok=True), where
    else:
        assert a == b, where


class _Slice:
    def __init__(self, d: dict[str, Any]) -> None:
        self.__dict__.update(d)


def _as_result(d: dict[str, Any]) -> dict[str, Any]:
    return {**d, "slices": [_Slice(s) for s in d["slices"]]}


def _run(args: list[str], out: Path) -> dict[str, Any]:
    assert main([*args, "--json", str(out), "-q", "--resamples", "300"]) == 0
    result = json.loads(out.read_text())
    result.pop("seconds")
    return result  # type: ignore[no-any-return]


def test_classifier_on_spark_equals_in_memory(iris_model_dir: Path, weak_iris_dir: Path,
                                              iris_table: pd.DataFrame, tmp_path: Path) -> None:
    data = tmp_path / "iris.parquet"
    # several row groups, so Spark reads the file in more than one partition
    iris_table.to_parquet(data, row_group_size=40)
    args = ["evaluate", str(iris_model_dir), "--data", str(data), "--target", "species",
            "--baseline", str(weak_iris_dir), "--slice-by", "site"]
    memory = _run(args, tmp_path / "m.json")
    # partitions of a few row groups: three classes, so the macro AUC's resamples hash the
    # rows' table positions, which each executor must know
    spark = _run_in_small_splits([*args, "--spark", "local[2]"], data, tmp_path / "s.json",
                                 split=2048)
    _same(memory, spark)
    assert memory["metrics"]["roc_auc"]["value"] > 0.99 and memory["comparison"]


def _run_in_small_splits(args: list[str], data: Path, out: Path,
                         split: int = 256 * 1024) -> dict[str, Any]:
    """The CLI's run in an active session with small splits (the CLI uses it): several
    partitions, each folded by an executor and merged on the driver."""
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]")
               .config("spark.sql.files.maxPartitionBytes", str(split))
               .config("spark.sql.files.openCostInBytes", "0")
               .config("spark.ui.enabled", "false").getOrCreate())
    try:
        assert session.read.parquet(str(data)).rdd.getNumPartitions() >= 3
        return _run(args, out)
    finally:
        session.stop()


def test_regressor_partitions_keep_the_rows_positions(ridge_dir: Path, diabetes: pd.DataFrame,
                                                      tmp_path: Path) -> None:
    # the bootstrap groups hash each row's table position: executors learn where their
    # partition starts, so the intervals are the in-memory run's
    rng = np.random.default_rng(2)
    t = diabetes.sample(60_000, replace=True, random_state=1).reset_index(drop=True)
    t["progression"] = t["progression"] + rng.normal(0, 5, len(t))
    data = tmp_path / "reg.parquet"
    t.to_parquet(data, row_group_size=5_000)
    args = ["evaluate", str(ridge_dir), "--data", str(data), "--target", "progression",
            "--slice-by", "sex_group", "--spark", "local[2]"]
    spark = _run_in_small_splits(args, data, tmp_path / "s.json")
    memory = _run(args[:-2], tmp_path / "m.json")
    _same(memory, spark)
    import satchel

    pred = satchel.load_model(ridge_dir).predict(t.drop(columns=["progression", "sex_group"]))
    check_regressor(_as_result(spark), t["progression"].to_numpy(), np.asarray(pred),
                    {"sex_group": t["sex_group"].to_numpy()})


def test_executors_fold_a_large_table_to_sklearns_figures(binary_dir: Path,
                                                          tmp_path: Path) -> None:
    # 120,000 rows of continuous scores in several partitions: every figure, overall and
    # per slice, is scikit-learn's on the rows and the in-memory path's
    rng = np.random.default_rng(4)
    n = 120_000
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    t = pd.DataFrame({"x1": x1, "x2": x2,
                      "approved": ((x1 + 0.5 * x2 + rng.normal(scale=0.8, size=n)) > 0)
                      .astype(int),
                      "group": np.array(["a", "b", "c"])[rng.integers(0, 3, n)]})
    data = tmp_path / "big.parquet"
    t.to_parquet(data, row_group_size=15_000)
    args = ["evaluate", str(binary_dir), "--data", str(data), "--target", "approved",
            "--slice-by", "group", "--spark", "local[2]"]
    spark = _run_in_small_splits(args, data, tmp_path / "s.json")
    memory = _run(args[:-2], tmp_path / "m.json")
    _same(memory, spark)
    import satchel

    model = satchel.load_model(binary_dir).unwrap()
    X = t[["x1", "x2"]]
    check_classifier(_as_result(spark), t["approved"].to_numpy(), model.predict(X),
                     model.predict_proba(X), [0, 1], {"group": t["group"].to_numpy()})


def test_an_executor_error_is_the_in_memory_error(iris_model_dir: Path,
                                                  iris_table: pd.DataFrame, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    t = iris_table.copy()
    t.loc[140:, "species"] = 7  # in the last partition only
    data = tmp_path / "bad.parquet"
    t.to_parquet(data, row_group_size=40)
    code = main(["evaluate", str(iris_model_dir), "--data", str(data), "--target", "species",
                 "--spark", "local[2]", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1].startswith("satchel: error: target column 'species' has labels the model "
                              "never saw: ['7']"), err[-1]


def test_regressor_on_spark_equals_in_memory(ridge_dir: Path, diabetes: pd.DataFrame,
                                             tmp_path: Path) -> None:
    data = tmp_path / "diabetes.csv"
    diabetes.to_csv(data, index=False)
    args = ["evaluate", str(ridge_dir), "--data", str(data), "--target", "progression",
            "--slice-by", "sex_group"]
    memory = _run(args, tmp_path / "m.json")
    spark = _run([*args, "--spark", "local[2]"], tmp_path / "s.json")
    _same(memory, spark)
    assert os.path.basename(spark["dataset"]["source"]) == "diabetes.csv"
    import satchel

    pred = satchel.load_model(ridge_dir).predict(
        diabetes.drop(columns=["progression", "sex_group"]))
    check_regressor(_as_result(spark), diabetes["progression"].to_numpy(), np.asarray(pred),
                    {"sex_group": diabetes["sex_group"].to_numpy()})
