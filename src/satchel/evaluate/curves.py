"""Points of the report's figures, thinned to a few hundred.

Classifier with probabilities: ROC and precision-recall curves (the positive class of a
binary model, else one-vs-rest per class, at most ``MAX_CLASSES``) and a calibration
curve, read off the score histograms of :mod:`satchel.evaluate.scores` (each bin edge is
a threshold; scikit-learn's curves on the rows step through every distinct score
instead, so these are the same curves at the histogram's resolution). Regressor:
residuals against predictions and actual against predicted, on the fixed sample of rows
the regressor's stream keeps.
"""

from __future__ import annotations

import numpy as np

from satchel.evaluate.result import Curve
from satchel.evaluate.scores import ScoreTables

MAX_POINTS = 200
MAX_CLASSES = 8
CALIBRATION_BINS = 10


def classifier(scores: ScoreTables | None, classes: list[str],
               auc: dict[int, float]) -> list[Curve]:
    if scores is None:
        return []
    which = [1] if scores.k == 2 else list(range(min(scores.k, MAX_CLASSES)))
    out: list[Curve] = []
    for c in which:
        pos, neg, psum = scores.curve_hist(c)
        if not pos.sum() or not neg.sum():
            continue
        # thresholds from the highest bin down
        tp, fp = np.cumsum(pos[::-1]), np.cumsum(neg[::-1])
        used = np.flatnonzero((pos + neg)[::-1] > 0)
        tp, fp = tp[used], fp[used]
        fpr, tpr = np.r_[0.0, fp / fp[-1]], np.r_[0.0, tp / tp[-1]]
        out.append(Curve("roc", classes[c], *_thin(fpr, tpr), score=auc.get(c)))
        precision = tp / (tp + fp)
        recall = tp / tp[-1]
        ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
        out.append(Curve("pr", classes[c], *_thin(np.r_[0.0, recall], np.r_[1.0, precision]),
                         score=ap))
        out.append(_calibration(pos, neg, psum, classes[c]))
    return out


def _calibration(pos: np.ndarray, neg: np.ndarray, psum: np.ndarray, label: str) -> Curve:
    """Mean score against the share of positives, in groups of about equal row counts."""
    n = pos + neg
    used = np.flatnonzero(n > 0)
    before = np.cumsum(n[used]) - n[used]
    group = np.minimum((before / n.sum() * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    rows = np.bincount(group, weights=n[used])
    mean = np.bincount(group, weights=psum[used]) / np.where(rows > 0, rows, 1)
    frac = np.bincount(group, weights=pos[used]) / np.where(rows > 0, rows, 1)
    keep = rows > 0
    return Curve("calibration", label, mean[keep].tolist(), frac[keep].tolist())


def regressor(y: np.ndarray, pred: np.ndarray) -> list[Curve]:
    return [Curve("residuals", "residual", pred.tolist(), (y - pred).tolist()),
            Curve("actual_vs_predicted", "actual", pred.tolist(), y.tolist())]


def _thin(x: np.ndarray, y: np.ndarray) -> tuple[list[float], list[float]]:
    if len(x) > MAX_POINTS:
        keep = np.unique(np.r_[np.linspace(0, len(x) - 1, MAX_POINTS).astype(int)])
        x, y = x[keep], y[keep]
    return [float(v) for v in x], [float(v) for v in y]
