"""The streaming figures (scikit-learn's functions on cells, batches and distinct scores,
fed batch by batch and merged across partitions) equal scikit-learn's functions on the
whole data to 1e-12 relative, and the Poisson bootstrap over cells agrees with the
textbook bootstrap over rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

from satchel.evaluate import bootstrap, exact
from satchel.evaluate.metrics import auc, confusion_figures
from satchel.evaluate.stream import Evaluation
from tests.evaluate.sklearn_check import check_classifier, check_regressor


def _classifier(n: int, k: int, seed: int, decimals: int | None = 2
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    if decimals is not None:
        # rounded so that ties occur: the AUC must count them as scikit-learn does
        proba = np.round(proba, decimals)
        proba = proba / proba.sum(axis=1, keepdims=True)
    return y, proba.argmax(axis=1), proba


def _new(proba: np.ndarray | None, task: str, groups: np.ndarray | None,
         classes: list[Any] | None, seed: int) -> Evaluation:
    return Evaluation(target="y", task_type=task, estimator_type=None,
                      classes=classes if classes is not None else (
                          list(range(proba.shape[1])) if proba is not None else None),
                      base_classes=None, baseline=False,
                      slice_specs=[("g", None)] if groups is not None else [], seed=seed)


def _run(y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None, *, batch: int,
         resamples: int = 0, seed: int = 0, task: str = "classifier",
         groups: np.ndarray | None = None, classes: list[Any] | None = None,
         parts: int = 1) -> Any:
    """Fed in batches of ``batch`` rows; with ``parts`` > 1 the rows are cut into that many
    contiguous parts, each folded on its own (as a Spark executor folds a partition) and
    merged in order, as the Spark driver does."""
    whole = _new(proba, task, groups, classes, seed)
    bounds = np.linspace(0, len(y), parts + 1).astype(int)
    for a, b in zip(bounds[:-1], bounds[1:]):
        ev = _new(proba, task, groups, classes, seed) if parts > 1 else whole
        ev.offset = int(a)
        for i in range(a, b, batch):
            r = slice(i, min(i + batch, b))
            ev.add(y[r], pred[r], None if proba is None else proba[r], None, None,
                   {} if groups is None else {"g": groups[r]})
        if parts > 1:
            whole.merge(ev)
    return whole.figures(bootstrap.plan(resamples=resamples, seed=seed), "test")


@pytest.mark.parametrize("k", [2, 3, 5])
def test_confusion_figures_equal_sklearn(k: int) -> None:
    y, pred, _ = _classifier(400, k, k)
    present = np.unique(np.r_[y, pred])
    conf = skm.confusion_matrix(y, pred, labels=list(range(k))).astype(float)
    got = confusion_figures(conf[None], present)
    assert got["accuracy"][0] == skm.accuracy_score(y, pred)
    for avg in ("precision", "recall", "f1"):
        fn = getattr(skm, f"{avg}_score")
        assert got[f"{avg}_macro"][0] == pytest.approx(
            fn(y, pred, average="macro", zero_division=0), rel=1e-12)
        np.testing.assert_allclose(got[avg][0], fn(y, pred, average=None, labels=list(range(k)),
                                                   zero_division=0), atol=1e-12)


def test_histogram_auc_with_one_bin_per_score_is_sklearns_with_ties() -> None:
    y, _, proba = _classifier(500, 2, 4, decimals=2)
    values, inverse = np.unique(proba[:, 1], return_inverse=True)
    pos = np.bincount(inverse, weights=y == 1, minlength=len(values))
    neg = np.bincount(inverse, weights=y == 0, minlength=len(values))
    assert auc(pos[None], neg[None])[0] == pytest.approx(skm.roc_auc_score(y, proba[:, 1]),
                                                         rel=1e-12)


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("parts", [1, 3])
def test_streamed_classifier_equals_sklearn_on_the_whole_data(k: int, parts: int) -> None:
    y, pred, proba = _classifier(5000, k, 10 + k)
    groups = np.array(["a", "b", "c", "d"], dtype=object)[np.arange(5000) * 7 % 4]
    got = _run(y, pred, proba, batch=777, groups=groups, parts=parts)
    check_classifier(got, y, pred, proba, list(range(k)), {"g": groups})


@pytest.mark.parametrize("k", [2, 3])
def test_continuous_scores_past_the_old_histogram_bound_are_exact(k: int) -> None:
    # 150,000 rows of distinct scores: ROC AUC is scikit-learn's on the distinct scores,
    # not a histogram's, for every row and every slice, in memory and merged from parts
    n = 150_000
    y, pred, proba = _classifier(n, k, 40 + k, decimals=None)
    groups = np.array(["north", "south", "east"], dtype=object)[np.arange(n) % 3]
    for parts in (1, 4):
        got = _run(y, pred, proba, batch=65_536, groups=groups, parts=parts)
        check_classifier(got, y, pred, proba, list(range(k)), {"g": groups})


def test_past_the_score_cap_auc_comes_from_the_histogram_within_its_bound(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exact, "SCORE_CAP", 30_000)
    monkeypatch.setattr(exact, "_CONSOLIDATE_FROM", 10_000)
    n = 60_000
    y, pred, proba = _classifier(n, 2, 21, decimals=None)
    groups = np.where(np.arange(n) < 3000, "small", "large")
    got = _run(y, pred, proba, batch=16_384, groups=groups)
    want = skm.roc_auc_score(y, proba[:, 1])
    bound = got["roc_auc_tie_bound"]
    assert 0 < bound < 1e-2
    assert abs(got["metrics"]["roc_auc"].value - want) <= bound
    assert got["metrics"]["roc_auc"].value != want
    # the bound covers the slices' histogram AUCs too
    for s in got["slices"]:
        rows = groups == s.value
        assert abs(s.metrics["roc_auc"] - skm.roc_auc_score(y[rows], proba[rows, 1])) <= bound
    # log loss and the count figures stay scikit-learn's
    assert got["metrics"]["log_loss"].value == pytest.approx(skm.log_loss(y, proba), rel=1e-12)
    assert got["metrics"]["accuracy"].value == skm.accuracy_score(y, pred)


@pytest.mark.parametrize("parts", [1, 5])
def test_streamed_regressor_equals_sklearn(parts: int) -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(1e4, 10, 30_000)  # far from 0: the variance must not cancel away
    pred = y + rng.normal(0, 3, 30_000)
    groups = np.array(["a", "b", "c"], dtype=object)[rng.integers(0, 3, 30_000)]
    got = _run(y, pred, None, batch=4096, task="regressor", groups=groups, parts=parts)
    check_regressor(got, y, pred, {"g": groups})


def test_parts_merged_give_the_same_intervals_as_one_stream() -> None:
    y, pred, proba = _classifier(6000, 3, 8)
    groups = np.array(["a", "b"], dtype=object)[np.arange(6000) % 2]
    one = _run(y, pred, proba, batch=1000, groups=groups, resamples=100)
    three = _run(y, pred, proba, batch=1000, groups=groups, resamples=100, parts=3)
    for name, m in one["metrics"].items():
        assert three["metrics"][name].low == pytest.approx(m.low, rel=1e-9), name
        assert three["metrics"][name].high == pytest.approx(m.high, rel=1e-9), name
    rng = np.random.default_rng(1)
    yr = rng.normal(50, 5, 9000)
    pr = yr + rng.normal(0, 2, 9000)
    one = _run(yr, pr, None, batch=1000, task="regressor", resamples=100)
    three = _run(yr, pr, None, batch=1000, task="regressor", resamples=100, parts=3)
    for name, m in one["metrics"].items():
        assert three["metrics"][name].low == pytest.approx(m.low, rel=1e-9), name
        assert three["metrics"][name].high == pytest.approx(m.high, rel=1e-9), name


def test_r2_of_constant_truth_follows_sklearn() -> None:
    y, pred = np.full(5, 2.0), np.array([2.0, 2.0, 2.0, 2.0, 3.0])
    m = _run(y, pred, None, batch=2, task="regressor")["metrics"]
    assert m["r2"].value == skm.r2_score(y, pred) == 0.0


def _textbook(y: np.ndarray, pred: np.ndarray, fn: Any, b: int = 400) -> float:
    """Width of the ordinary bootstrap's 95% interval: resample rows, recompute."""
    rng = np.random.default_rng(0)
    draws = [fn(y[i], pred[i]) for i in (rng.integers(0, len(y), len(y)) for _ in range(b))]
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return float(hi - lo)


def test_poisson_cells_match_the_row_bootstrap_for_counts_and_regression() -> None:
    y, pred, proba = _classifier(4000, 2, 30, decimals=None)
    got = _run(y, pred, proba, batch=1000, resamples=400)["metrics"]
    for name, fn in (("accuracy", skm.accuracy_score),
                     ("roc_auc", lambda a, i: skm.roc_auc_score(a, proba[i, 1])),
                     ("log_loss", lambda a, i: skm.log_loss(a, proba[i], labels=[0, 1]))):
        if name == "accuracy":
            want = _textbook(y, pred, fn)
        else:
            want = _textbook(y, np.arange(len(y)), fn)
        assert got[name].high - got[name].low == pytest.approx(want, rel=0.2), name
        assert got[name].low < got[name].value < got[name].high
    rng = np.random.default_rng(5)
    for n in (800, 60_000):  # fewer rows than groups, and many rows per group
        yr = rng.normal(0, 1, n)
        pr = yr + rng.normal(0, 1, n)
        m = _run(yr, pr, None, batch=4096, resamples=400, task="regressor")["metrics"]
        want = _textbook(yr, pr, skm.mean_absolute_error, 200)
        assert m["mae"].high - m["mae"].low == pytest.approx(want, rel=0.2), n
        assert m["mae"].low < np.sqrt(2 / np.pi) < m["mae"].high  # the true MAE of N(0, 1)


def test_intervals_depend_on_seed_and_data_not_on_batch_size() -> None:
    y, pred, proba = _classifier(3000, 3, 7)
    groups = np.array(["a", "b", "c"])[np.arange(3000) % 3]
    runs = [_run(y, pred, proba, batch=b, resamples=100, seed=4, groups=groups)
            for b in (100, 3000)]
    for name in runs[0]["metrics"]:
        assert runs[0]["metrics"][name].low == pytest.approx(runs[1]["metrics"][name].low,
                                                             rel=1e-9), name
    for a, b in zip(runs[0]["slices"], runs[1]["slices"]):
        for name in a.low:
            assert a.low[name] == pytest.approx(b.low[name], rel=1e-9)
            assert a.high[name] == pytest.approx(b.high[name], rel=1e-9)
    other = _run(y, pred, proba, batch=3000, resamples=100, seed=5, groups=groups)
    assert other["metrics"]["accuracy"].low != runs[0]["metrics"]["accuracy"].low
    with pytest.raises(ValueError, match="confidence"):
        bootstrap.plan(confidence=1.5)
    with pytest.raises(ValueError, match="resamples"):
        bootstrap.plan(resamples=-1)


def test_slice_intervals_cover_the_slice_figure_and_are_wider_than_all_rows() -> None:
    y, pred, proba = _classifier(6000, 2, 9, decimals=None)
    groups = np.where(np.arange(6000) < 600, "small", "large")
    got = _run(y, pred, proba, batch=1000, resamples=300, groups=groups)
    by = {s.value: s for s in got["slices"]}
    small = by["small"]
    rows = groups == "small"
    assert small.metrics["accuracy"] == skm.accuracy_score(y[rows], pred[rows])
    assert small.metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(y[rows], proba[rows, 1]))
    for name, value in small.metrics.items():
        assert small.low[name] < value < small.high[name], name
        # a tenth of the rows: about sqrt(10) times the overall interval's width
        overall = got["metrics"][name]
        ratio = (small.high[name] - small.low[name]) / (overall.high - overall.low)
        assert 2.0 < ratio < 4.5, (name, ratio)


def test_paired_comparison_on_continuous_scores() -> None:
    n = 120_000
    rng = np.random.default_rng(12)
    z = rng.normal(0, 1.5, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.int64)
    # the baseline sees the same signal with extra noise: correlated with the model
    zb = z + rng.normal(0, 0.5, n)
    proba = np.column_stack([1 / (1 + np.exp(z)), 1 / (1 + np.exp(-z))])
    bproba = np.column_stack([1 / (1 + np.exp(zb)), 1 / (1 + np.exp(-zb))])
    ev = Evaluation(target="y", task_type=None, estimator_type="classifier", classes=[0, 1],
                    base_classes=[0, 1], baseline=True, slice_specs=[], seed=0)
    for i in range(0, n, 50_000):
        r = slice(i, i + 50_000)
        ev.add(y[r], (proba[r, 1] > 0.5).astype(np.int64), proba[r],
               (bproba[r, 1] > 0.5).astype(np.int64), bproba[r], {})
    got = ev.figures(bootstrap.plan(resamples=200), "test")
    c = got["comparison"]["roc_auc"]
    want = skm.roc_auc_score(y, proba[:, 1]) - skm.roc_auc_score(y, bproba[:, 1])
    assert c.difference == pytest.approx(want, rel=1e-12)
    assert c.low < c.difference < c.high and c.significant and not c.regression
    # paired: the difference's interval is far narrower than the two intervals together
    m, b = got["metrics"]["roc_auc"], got["baseline_metrics"]["roc_auc"]
    assert c.high - c.low < 0.7 * ((m.high - m.low) + (b.high - b.low))
    ll = got["comparison"]["log_loss"]
    assert ll.difference == pytest.approx(
        skm.log_loss(y, proba) - skm.log_loss(y, bproba), rel=1e-9)
    assert ll.low < ll.difference < ll.high and ll.significant


@pytest.mark.parametrize("parts", [1, 3])
def test_labels_first_seen_in_later_batches_are_remapped_to_sorted_order(parts: int) -> None:
    # a model that names no classes: labels are learnt as batches come, then sorted; in
    # parts, each part learns its own order and the merge renumbers them
    rng = np.random.default_rng(0)
    n = 3000
    names = np.array(["zebra", "apple", "mango", "kiwi"], dtype=object)
    y = names[np.minimum(rng.integers(0, 4, n), np.arange(n) // 800)]  # "kiwi" from row 2400
    pred = np.where(rng.random(n) < 0.7, y, names[rng.integers(0, 4, n)])
    groups = np.array(["a", "b"], dtype=object)[rng.integers(0, 2, n)]
    got = _run(y, pred, None, batch=500, groups=groups, classes=None, resamples=20,
               parts=parts)
    assert got["labels"] == ["apple", "kiwi", "mango", "zebra"]
    check_classifier(got, y, pred, None, got["labels"], {"g": groups})


@pytest.mark.parametrize(("k", "seed"), [(3, 16), (4, 13)])
def test_macro_auc_interval_keeps_the_correlation_between_classes(k: int, seed: int) -> None:
    # each class's table resampled on its own gave ~0.8 of the row bootstrap's width here
    # (the classes' AUCs covary); row groups shared by every class keep it
    y, pred, proba = _classifier(3000, k, seed, decimals=None)
    got = _run(y, pred, proba, batch=1000, resamples=1000, seed=seed)["metrics"]["roc_auc"]
    rng = np.random.default_rng(seed)
    draws = [skm.roc_auc_score(y[i], proba[i], multi_class="ovr")
             for i in (rng.integers(0, len(y), len(y)) for _ in range(600))]
    lo, hi = np.percentile(draws, [2.5, 97.5])
    assert got.high - got.low == pytest.approx(hi - lo, rel=0.15)
    assert got.low < got.value < got.high


def test_multiclass_auc_difference_is_paired() -> None:
    rng = np.random.default_rng(3)
    n, k = 20_000, 4
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.2 * np.eye(k)[y]
    blogits = logits + rng.normal(0, 0.4, (n, k))  # the same signal, a little noisier
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    bproba = np.exp(blogits) / np.exp(blogits).sum(axis=1, keepdims=True)
    ev = Evaluation(target="y", task_type=None, estimator_type="classifier",
                    classes=list(range(k)), base_classes=list(range(k)), baseline=True,
                    slice_specs=[], seed=0)
    for i in range(0, n, 5000):
        r = slice(i, i + 5000)
        ev.add(y[r], proba[r].argmax(axis=1), proba[r], bproba[r].argmax(axis=1), bproba[r],
               {})
    got = ev.figures(bootstrap.plan(resamples=300), "test")
    c = got["comparison"]["roc_auc"]
    want = (skm.roc_auc_score(y, proba, multi_class="ovr")
            - skm.roc_auc_score(y, bproba, multi_class="ovr"))
    assert c.difference == pytest.approx(want, rel=1e-12)
    assert c.low < c.difference < c.high and c.significant
    m, b = got["metrics"]["roc_auc"], got["baseline_metrics"]["roc_auc"]
    assert c.high - c.low < 0.5 * ((m.high - m.low) + (b.high - b.low))


@pytest.mark.parametrize("parts", [1, 3])
def test_repeated_scores_are_counted_once_and_stay_exact(monkeypatch: pytest.MonkeyPatch,
                                                         parts: int) -> None:
    # rounded scores (a tree's leaves, say) merge into distinct scores with counts: far
    # under a cap the raw rows would pass, and ROC AUC stays scikit-learn's, ties included
    monkeypatch.setattr(exact, "SCORE_CAP", 5_000)
    monkeypatch.setattr(exact, "_CONSOLIDATE_FROM", 2_000)
    y, pred, proba = _classifier(40_000, 3, 5, decimals=None)
    proba[:, :2] = np.round(proba[:, :2], 2)  # a few hundred distinct scores per class
    proba[:, 2] = np.clip(1 - proba[:, 0] - proba[:, 1], 0, 1)
    groups = np.array(["a", "b"], dtype=object)[np.arange(40_000) % 2]
    got = _run(y, pred, proba, batch=3000, groups=groups, parts=parts)
    check_classifier(got, y, pred, proba, [0, 1, 2], {"g": groups})
