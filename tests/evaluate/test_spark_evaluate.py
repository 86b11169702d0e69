"""``satchel evaluate --spark``: the same figures as the in-memory path (real local Spark)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from satchel.cli import main

pytestmark = pytest.mark.spark


@pytest.fixture(autouse=True)
def _spark_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    pytest.importorskip("pyspark")


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
    spark = _run([*args, "--spark", "local[2]"], tmp_path / "s.json")
    assert spark == memory
    assert memory["metrics"]["roc_auc"]["value"] > 0.99 and memory["comparison"]


def test_regressor_on_spark_equals_in_memory(ridge_dir: Path, diabetes: pd.DataFrame,
                                             tmp_path: Path) -> None:
    data = tmp_path / "diabetes.csv"
    diabetes.to_csv(data, index=False)
    args = ["evaluate", str(ridge_dir), "--data", str(data), "--target", "progression",
            "--slice-by", "sex_group"]
    memory = _run(args, tmp_path / "m.json")
    spark = _run([*args, "--spark", "local[2]"], tmp_path / "s.json")
    for name, m in memory["metrics"].items():
        for key in ("value", "low", "high"):
            assert spark["metrics"][name][key] == pytest.approx(m[key], rel=1e-12), name
    assert spark["slices"] == memory["slices"]
    assert os.path.basename(spark["dataset"]["source"]) == "diabetes.csv"
