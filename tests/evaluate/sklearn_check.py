"""Every point figure of an evaluation result against scikit-learn's functions called on
the whole rows (and on each slice's rows), to 1e-12 relative: shared by the streaming,
in-memory and Spark tests."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

REL = 1e-12


def _get(result: Any, name: str) -> Any:
    return result[name] if isinstance(result, dict) else getattr(result, name)


def _value(m: Any) -> float:
    if isinstance(m, dict):  # a result read back from JSON
        return float(m["value"])
    return float(m if isinstance(m, (int, float)) else m.value)


def classifier_figures(y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None,
                       labels: list[Any]) -> dict[str, float]:
    """scikit-learn's figures on these rows (ROC AUC macro over classes with both
    outcomes, as satchel defines it for slices missing a class)."""
    out = {"accuracy": skm.accuracy_score(y, pred)}
    for avg in ("precision", "recall", "f1"):
        out[f"{avg}_macro"] = getattr(skm, f"{avg}_score")(y, pred, average="macro",
                                                           zero_division=0)
    if proba is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            out["log_loss"] = skm.log_loss(y, proba, labels=labels)
        which = [1] if len(labels) == 2 else range(len(labels))
        aucs = [skm.roc_auc_score(y == labels[c], proba[:, c]) for c in which
                if 0 < np.sum(y == labels[c]) < len(y)]
        out["roc_auc"] = float(np.mean(aucs))
        if len(labels) > 2 and len(aucs) == len(labels):
            # with every class present, scikit-learn's own multi-class call agrees
            assert out["roc_auc"] == pytest.approx(
                skm.roc_auc_score(y, proba, multi_class="ovr", labels=labels), rel=REL)
    return out


def check_classifier(result: Any, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None,
                     labels: list[Any], slices: dict[str, np.ndarray] | None = None) -> None:
    metrics = _get(result, "metrics")
    want = classifier_figures(y, pred, proba, labels)
    assert set(want) == set(metrics)
    for name, v in want.items():
        assert _value(metrics[name]) == pytest.approx(v, rel=REL, abs=0), name
    assert _get(result, "confusion") == skm.confusion_matrix(y, pred, labels=labels).tolist()
    per = skm.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    per_class = _get(result, "per_class")
    for i, label in enumerate(labels):
        if str(label) in per_class:
            for j, m in enumerate(("precision", "recall", "f1")):
                assert _value(per_class[str(label)][m]) == pytest.approx(per[j][i], rel=REL)
    assert _get(result, "roc_auc_tie_bound") == 0.0
    for s in _get(result, "slices"):
        rows = np.asarray([str(v) for v in slices[s.column]]) == s.value  # type: ignore[index]
        assert s.rows == int(rows.sum())
        want = classifier_figures(y[rows], pred[rows],
                                  None if proba is None else proba[rows], labels)
        for name, v in want.items():
            assert s.metrics[name] == pytest.approx(v, rel=REL, abs=0), (s.value, name)


def regressor_figures(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {"mae": skm.mean_absolute_error(y, pred),
            "rmse": float(np.sqrt(skm.mean_squared_error(y, pred))),
            "r2": skm.r2_score(y, pred),
            "mape": skm.mean_absolute_percentage_error(y, pred)}


def check_regressor(result: Any, y: np.ndarray, pred: np.ndarray,
                    slices: dict[str, np.ndarray] | None = None) -> None:
    metrics = _get(result, "metrics")
    for name, v in regressor_figures(y, pred).items():
        assert _value(metrics[name]) == pytest.approx(v, rel=REL, abs=0), name
    for s in _get(result, "slices"):
        rows = np.asarray([str(v) for v in slices[s.column]]) == s.value  # type: ignore[index]
        for name, v in regressor_figures(y[rows], pred[rows]).items():
            assert s.metrics[name] == pytest.approx(v, rel=REL, abs=0), (s.value, name)


def same_slices(a: list[Any], b: list[Any]) -> None:
    """Two runs' slices agree: rows and selection rates exactly, figures and interval
    bounds to 1e-12 relative (sums over batches of other sizes differ in the last bits)."""
    assert [(s.column, s.value, s.rows, s.selection_rate) for s in a] == \
        [(s.column, s.value, s.rows, s.selection_rate) for s in b]
    for x, y in zip(a, b):
        for part in ("metrics", "low", "high"):
            got, want = getattr(x, part), getattr(y, part)
            assert list(got) == list(want)
            for k in got:
                assert got[k] == pytest.approx(want[k], rel=REL, abs=0, nan_ok=True), \
                    (x.value, part, k)
