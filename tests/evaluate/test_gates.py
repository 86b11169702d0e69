"""Threshold gates: each verdict carries its figures; a bad file is refused when read."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import satchel
from satchel.errors import PolicyFormatError
from satchel.evaluate.gates import Thresholds


@pytest.fixture(scope="module")
def result(binary_dir: Path, binary_table: pd.DataFrame) -> satchel.evaluate.EvaluationResult:
    return satchel.evaluate(binary_dir, binary_table, "approved", slice_by=["group"],
                            resamples=200, dataset_name="holdout")


def test_passing_and_failing_gates_name_their_figures(result: object) -> None:
    t = Thresholds.from_dict({
        "dataset": "holdout",
        "metrics": {"accuracy": {"min": 0.5}, "log_loss": {"max": 0.01},
                    "recall[1]": {"min": 0.1, "max": 1.0}},
        "bias": {"max_gap": {"accuracy": 0.5}, "min_selection_rate_ratio": 0.95},
    })
    verdicts = {v.gate: v for v in t.check(result)}  # type: ignore[arg-type]
    assert verdicts["dataset"].passed
    assert verdicts["metric accuracy"].passed
    assert verdicts["metric accuracy"].detail.startswith("accuracy 0.")
    log_loss = verdicts["metric log_loss"]
    assert not log_loss.passed and log_loss.detail.endswith("> 0.01")
    assert verdicts["metric recall[1]"].passed
    assert verdicts["bias gap accuracy"].passed
    ratio = verdicts["selection rate ratio"]
    assert not ratio.passed and "class 1 (group: minority vs majority) < 0.95" in ratio.detail


def test_gates_on_figures_not_measured_fail_and_say_why(result: object) -> None:
    t = Thresholds.from_dict({"metrics": {"rmse": {"max": 1}}, "no_significant_regression": True,
                              "dataset": "other"})
    verdicts = {v.gate: v for v in t.check(result)}  # type: ignore[arg-type]
    assert not verdicts["metric rmse"].passed
    assert "not measured for this classifier" in verdicts["metric rmse"].detail
    assert "--baseline" in verdicts["no significant regression"].detail
    assert not verdicts["dataset"].passed and "'holdout'" in verdicts["dataset"].detail


def test_regression_gate_lists_the_worse_metrics(iris_model_dir: Path, weak_iris_dir: Path,
                                                 iris_table: pd.DataFrame) -> None:
    r = satchel.evaluate(weak_iris_dir, iris_table, "species", baseline=iris_model_dir,
                         resamples=200)
    (v,) = Thresholds.from_dict({"no_significant_regression": True}).check(r)
    assert not v.passed and "accuracy 0.6667 vs 0.9733" in v.detail and "interval" in v.detail


@pytest.mark.parametrize("data, message", [
    ({"metrics": {"acuracy": {"min": 0.9}}}, "unknown metric 'acuracy'"),
    ({"metrics": {"accuracy": 0.9}}, "metrics.accuracy must be a mapping with min and/or max"),
    ({"metrics": {"accuracy": {"min": "high"}}}, "metrics.accuracy.min must be a number, got str"),
    ({"metrics": {"accuracy": {"least": 1}}}, "min and/or max"),
    ({"bias": {"max_gap": {"speed": 0.1}}}, "unknown metric 'speed'"),
    ({"bias": {"max_gaps": {}}}, "unknown bias key"),
    ({"no_significant_regression": "yes"}, "must be true or false, got str"),
    ({"gates": {}}, r"unknown key\(s\) \['gates'\]"),
    ([1, 2], "expected a mapping, got list"),
    ({"metrics": {"accuracy": {"min": True}}}, "must be a number, got bool"),
])
def test_bad_threshold_files_are_refused(data: object, message: str) -> None:
    with pytest.raises(PolicyFormatError, match=message):
        Thresholds.from_dict(data)


def test_yaml_round_trip_and_bad_yaml(tmp_path: Path) -> None:
    f = tmp_path / "g.yaml"
    f.write_text("metrics:\n  accuracy: {min: 0.9}\nbias:\n  min_selection_rate_ratio: 0.8\n")
    t = Thresholds.load(f)
    assert Thresholds.from_dict(t.to_dict()) == t
    f.write_text("metrics: [unclosed\n")
    with pytest.raises(PolicyFormatError, match="is not valid YAML"):
        Thresholds.load(f)
