"""``satchel evaluate`` on the command line: outputs, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from satchel.cli import main


def test_report_json_and_passing_gates(iris_model_dir: Path, weak_iris_dir: Path,
                                       iris_table: pd.DataFrame, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "iris.parquet"
    iris_table.to_parquet(data)
    gates = tmp_path / "gates.yaml"
    gates.write_text("metrics:\n  accuracy: {min: 0.9}\nno_significant_regression: true\n")
    code = main(["evaluate", str(iris_model_dir), "--data", str(data), "--target", "species",
                 "--baseline", str(weak_iris_dir), "--slice-by", "site", "--resamples", "100",
                 "--report", str(tmp_path / "r.html"), "--json", str(tmp_path / "r.json"),
                 "--thresholds", str(gates), "--dataset-name", "holdout"])
    out = capsys.readouterr().out
    assert code == 0
    assert "accuracy" in out and "gate PASS metric accuracy" in out
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["dataset"]["name"] == "holdout" and result["comparison"]["accuracy"]
    # every slice figure has its interval in the JSON
    for s in result["slices"]:
        assert set(s["low"]) == set(s["high"]) == set(s["metrics"])
        for name, value in s["metrics"].items():
            assert s["low"][name] <= value <= s["high"][name], (s["value"], name)
        assert s["high"]["log_loss"] > s["low"]["log_loss"]  # (accuracy may be 1 throughout)
    html = (tmp_path / "r.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html


def test_failing_gate_exits_3_and_names_it(iris_model_dir: Path, iris_table: pd.DataFrame,
                                           tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "iris.csv"
    iris_table.to_csv(data, index=False)
    gates = tmp_path / "gates.yaml"
    gates.write_text("metrics:\n  accuracy: {min: 0.999}\n")
    code = main(["evaluate", str(iris_model_dir), "--data", str(data), "--target", "species",
                 "--resamples", "0", "--thresholds", str(gates), "-q"])
    err = capsys.readouterr().err
    assert code == 3
    assert "1 gate(s) failed: metric accuracy: accuracy 0.9733 < 0.999" in err


def test_errors_are_one_line_and_nothing_is_written(iris_model_dir: Path,
                                                    iris_table: pd.DataFrame, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "iris.csv"
    iris_table.to_csv(data, index=False)
    code = main(["evaluate", str(iris_model_dir), "--data", str(data), "--target", "label",
                 "--report", str(tmp_path / "r.html"), "--json", str(tmp_path / "r.json")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert err.startswith("satchel: error: target column 'label' is not in the data")
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "r.json").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("metrics:\n  speed: {min: 1}\n")
    code = main(["evaluate", str(iris_model_dir), "--data", str(data), "--target", "species",
                 "--thresholds", str(bad)])
    assert code == 1 and "unknown metric 'speed'" in capsys.readouterr().err


def test_a_histogram_auc_says_so_with_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    from satchel.cli.evaluate import summary
    from satchel.evaluate import exact, report
    from satchel.evaluate.collect import Collected
    from satchel.evaluate.engine import compute
    from satchel.evaluate.result import ModelInfo

    # past the cap of distinct scores (lowered here, 4 million by default)
    monkeypatch.setattr(exact, "SCORE_CAP", 20_000)
    monkeypatch.setattr(exact, "_CONSOLIDATE_FROM", 5_000)
    n = 30_000
    rng = np.random.default_rng(2)
    p1 = rng.random(n)
    y = (rng.random(n) < p1).astype(np.int64)
    got = Collected(y=y, pred=(p1 > 0.5).astype(np.int64),
                    proba=np.column_stack([1 - p1, p1]), classes=[0, 1], slices={})
    info = ModelInfo("m", "sklearn", None, None, {})
    r = compute(got, target="y", task_type=None, model=info, baseline=None,
                estimator_type="classifier", slice_specs=[], resamples=0, confidence=0.95,
                seed=0, source="t", dataset_name=None)
    assert 0 < r.roc_auc_tie_bound < 1e-3
    assert f"within {r.roc_auc_tie_bound:.1g} of the exact figure" in summary(r, [])
    assert "from a score histogram" in report.render(r)
    # under the cap, the figure is exact and nothing is said
    small = compute(Collected(y=y[:1000], pred=got.pred[:1000], proba=got.proba[:1000],
                              classes=[0, 1], slices={}),
                    target="y", task_type=None, model=info, baseline=None,
                    estimator_type="classifier", slice_specs=[], resamples=0,
                    confidence=0.95, seed=0, source="t", dataset_name=None)
    assert small.roc_auc_tie_bound == 0 and "score histogram" not in summary(small, [])
