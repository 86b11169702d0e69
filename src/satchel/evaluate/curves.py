"""Points of the report's figures, computed with scikit-learn and thinned to a few hundred.

Classifier with probabilities: ROC and precision-recall curves (the positive class of a
binary model, else one-vs-rest per class, at most ``MAX_CLASSES``), and a calibration
curve. Regressor: residuals against predictions and actual against predicted, on a fixed
sample of rows.
"""

from __future__ import annotations

import numpy as np

from satchel.evaluate.result import Curve

MAX_POINTS = 200
MAX_CLASSES = 8
SAMPLE_ROWS = 1500


def classifier(y: np.ndarray, proba: np.ndarray | None, classes: list[str]) -> list[Curve]:
    if proba is None:
        return []
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    k = proba.shape[1]
    which = [1] if k == 2 else list(range(min(k, MAX_CLASSES)))
    out: list[Curve] = []
    for c in which:
        truth = y == c
        if truth.all() or not truth.any():
            continue
        fpr, tpr, _ = roc_curve(truth, proba[:, c])
        out.append(Curve("roc", classes[c], *_thin(fpr, tpr), score=float(auc(fpr, tpr))))
        prec, rec, _ = precision_recall_curve(truth, proba[:, c])
        out.append(Curve("pr", classes[c], *_thin(rec[::-1], prec[::-1]),
                         score=float(average_precision_score(truth, proba[:, c]))))
        frac, mean = calibration_curve(truth, proba[:, c], n_bins=10, strategy="quantile")
        out.append(Curve("calibration", classes[c], mean.tolist(), frac.tolist()))
    return out


def regressor(y: np.ndarray, pred: np.ndarray) -> list[Curve]:
    rows = _sample(len(y))
    ys, ps = y[rows], pred[rows]
    return [Curve("residuals", "residual", ps.tolist(), (ys - ps).tolist()),
            Curve("actual_vs_predicted", "actual", ps.tolist(), ys.tolist())]


def _thin(x: np.ndarray, y: np.ndarray) -> tuple[list[float], list[float]]:
    if len(x) > MAX_POINTS:
        keep = np.unique(np.r_[np.linspace(0, len(x) - 1, MAX_POINTS).astype(int)])
        x, y = x[keep], y[keep]
    return [float(v) for v in x], [float(v) for v in y]


def _sample(n: int) -> np.ndarray:
    if n <= SAMPLE_ROWS:
        return np.arange(n)
    # a fixed seed: the same data draws the same figure every run
    return np.sort(np.random.default_rng(0).choice(n, SAMPLE_ROWS, replace=False))
