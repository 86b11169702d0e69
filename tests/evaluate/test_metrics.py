"""The weighted (bootstrap) metric forms agree with scikit-learn's functions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from satchel.evaluate import bootstrap
from satchel.evaluate.metrics import (
    ClassifierData,
    ClassifierWeighted,
    RegressorData,
    RegressorWeighted,
    classifier_point,
    regressor_point,
)


def _classifier(n: int, k: int, seed: int) -> ClassifierData:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 2.0 * np.eye(k)[y]
    # round so that ties occur: the AUC must count them as scikit-learn does
    proba = np.round(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), 2)
    proba = proba / proba.sum(axis=1, keepdims=True)
    return ClassifierData(y, proba.argmax(axis=1), proba, k)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_classifier_weighted_with_unit_weights_equals_sklearn(k: int) -> None:
    d = _classifier(400, k, k)
    present = np.unique(np.r_[d.y, d.pred])
    point = classifier_point(d, present)
    w = ClassifierWeighted(d, present)(np.ones((1, len(d.y))))
    for name in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc",
                 "log_loss"):
        assert w[name][0] == pytest.approx(point[name], rel=1e-9, abs=1e-12), name
    for name in ("precision", "recall", "f1"):
        np.testing.assert_allclose(w[name][0], point[name], atol=1e-12)
    # the point figures are scikit-learn's own
    assert point["accuracy"] == skm.accuracy_score(d.y, d.pred)
    if k == 2:
        assert point["roc_auc"] == pytest.approx(skm.roc_auc_score(d.y, d.proba[:, 1]))
    else:
        assert point["roc_auc"] == pytest.approx(
            skm.roc_auc_score(d.y, d.proba, multi_class="ovr", average="macro"))


@pytest.mark.parametrize("k", [2, 4])
def test_classifier_integer_weights_equal_sklearn_on_repeated_rows(k: int) -> None:
    d = _classifier(300, k, 10 + k)
    counts = np.random.default_rng(1).integers(0, 4, len(d.y))
    rows = np.repeat(np.arange(len(d.y)), counts)
    rep = d.take(rows)
    present = np.unique(np.r_[d.y, d.pred])
    want = classifier_point(rep, present)
    got = ClassifierWeighted(d, present)(counts[None, :].astype(float))
    for name in ("accuracy", "f1_macro", "recall_macro", "roc_auc", "log_loss"):
        assert got[name][0] == pytest.approx(want[name], rel=1e-9), name


def test_regressor_weighted_equals_sklearn() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(50, 10, 500)
    d = RegressorData(y, y + rng.normal(0, 3, 500))
    point = regressor_point(d)
    assert point["mae"] == skm.mean_absolute_error(d.y, d.pred)
    assert point["r2"] == skm.r2_score(d.y, d.pred)
    w = RegressorWeighted(d)(np.ones((1, 500)))
    for name in point:
        assert w[name][0] == pytest.approx(point[name], rel=1e-9), name
    counts = rng.integers(0, 3, 500)
    rep = d.take(np.repeat(np.arange(500), counts))
    got = RegressorWeighted(d)(counts[None, :].astype(float))
    for name, value in regressor_point(rep).items():
        assert got[name][0] == pytest.approx(value, rel=1e-9), name


def test_r2_of_constant_truth_follows_sklearn() -> None:
    d = RegressorData(np.full(5, 2.0), np.array([2.0, 2.0, 2.0, 2.0, 3.0]))
    w = RegressorWeighted(d)(np.ones((1, 5)))
    assert w["r2"][0] == skm.r2_score(d.y, d.pred) == 0.0


def test_bootstrap_interval_covers_the_truth_and_narrows_with_n() -> None:
    rng = np.random.default_rng(5)
    widths = []
    for n in (2_000, 50_000):
        y = rng.normal(0, 1, n)
        d = RegressorData(y, np.zeros(n))
        p = bootstrap.plan(n, resamples=400, seed=1)
        draws = bootstrap.run(p, lambda r, d=d: RegressorWeighted(d.take(r)))
        lo, hi = bootstrap.interval(p, [x["mae"] for x in draws])
        true_mae = np.sqrt(2 / np.pi)
        assert lo < true_mae < hi
        widths.append(hi - lo)
    # 25x the rows: about 5x narrower (the little bootstraps keep n's width, not the subset's)
    assert 3.5 < widths[0] / widths[1] < 7


def test_bag_of_little_bootstraps_matches_plain_bootstrap_width() -> None:
    rng = np.random.default_rng(8)
    n = 60_000
    y = rng.normal(0, 1, n)
    d = RegressorData(y, np.zeros(n))
    plain = bootstrap.plan(n, resamples=300, seed=2, max_rows=n)
    little = bootstrap.plan(n, resamples=300, seed=2)
    assert plain.method == "bootstrap" and little.method == "bag of little bootstraps"
    w = {}
    for name, p in (("plain", plain), ("little", little)):
        draws = bootstrap.run(p, lambda r: RegressorWeighted(d.take(r)))
        lo, hi = bootstrap.interval(p, [x["rmse"] for x in draws])
        w[name] = hi - lo
    assert w["little"] == pytest.approx(w["plain"], rel=0.25)


def test_same_seed_same_interval_and_bad_plans() -> None:
    d = RegressorData(np.arange(100.0), np.arange(100.0) + 1)
    outs = []
    for _ in range(2):
        p = bootstrap.plan(100, resamples=50, seed=9)
        outs.append(bootstrap.interval(p, [x["mae"] for x in bootstrap.run(
            p, lambda r: RegressorWeighted(d.take(r)))]))
    assert outs[0] == outs[1]
    with pytest.raises(ValueError, match="confidence"):
        bootstrap.plan(10, confidence=1.5)
    with pytest.raises(ValueError, match="resamples"):
        bootstrap.plan(10, resamples=-1)
