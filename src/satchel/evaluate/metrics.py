"""The metrics, computed from per-cell sums, for the data and for each bootstrap resample.

Every function takes counts or sums with a leading resample axis (m, ...): the point
figure is the same function on the data's own counts (m = 1), so a point figure and its
resamples share one definition. The definitions are scikit-learn's (zero_division=0,
macro averages over the labels present in the truth or the predictions, one-vs-rest ROC
AUC over classes with both outcomes, scikit-learn's clipping for log loss, its R²
convention for a constant truth); the tests hold them equal to ``sklearn.metrics`` on the
rows themselves.

ROC AUC from a score histogram counts a positive and a negative in the same bin as a tie
(half a pair): exact when no bin holds two distinct scores of opposite classes, otherwise
off by at most half the share of such pairs (:func:`auc_tie_share` gives that bound).
"""

from __future__ import annotations

import numpy as np

EPS = float(np.finfo(np.float64).eps)


def confusion_figures(conf: np.ndarray, present: np.ndarray) -> dict[str, np.ndarray]:
    """From confusion matrices (m, k, k) (truth by row): accuracy, precision/recall/F1 macro
    over ``present`` labels, and per-class precision, recall, F1 (m, k)."""
    tp = np.diagonal(conf, axis1=1, axis2=2)
    true_n, pred_n = conf.sum(axis=2), conf.sum(axis=1)
    total = true_n.sum(axis=1)
    prec, rec, f1 = _div(tp, pred_n), _div(tp, true_n), _div(2 * tp, pred_n + true_n)
    return {
        "accuracy": _div(tp.sum(axis=1), total, np.nan),
        "precision_macro": prec[:, present].mean(axis=1),
        "recall_macro": rec[:, present].mean(axis=1),
        "f1_macro": f1[:, present].mean(axis=1),
        "precision": prec, "recall": rec, "f1": f1,
    }


def auc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Mann-Whitney ROC AUC from per-bin counts (m, bins), bins in ascending score order:
    each positive scores the negatives below it plus half of those in its bin."""
    below = np.cumsum(neg, axis=1) - neg
    num = (pos * (below + 0.5 * neg)).sum(axis=1)
    den = pos.sum(axis=1) * neg.sum(axis=1)
    return _div(num, den, np.nan)


def auc_tie_share(pos: np.ndarray, neg: np.ndarray) -> float:
    """Bound on |binned AUC - exact AUC| for one histogram: half the share of
    positive-negative pairs that share a bin."""
    den = float(pos.sum() * neg.sum())
    return float((pos * neg).sum() / den / 2) if den > 0 else 0.0


def regression_figures(s: np.ndarray) -> dict[str, np.ndarray]:
    """From sums (m, 6): rows, Σ|e|, Σe², Σ(y-c), Σ(y-c)², Σ|e|/max(|y|, eps), with e the
    error and c any constant (the variance of y is shift-invariant; a c near the mean keeps
    it exact in floating point)."""
    n, abs_e, sq_e, sy, syy, ape = (s[:, j] for j in range(6))
    sst = syy - _div(sy * sy, n)
    # scikit-learn's convention for a constant truth: 1 when perfect, else 0
    r2 = np.where(sst > 0, 1 - sq_e / np.where(sst > 0, sst, 1.0), np.where(sq_e == 0, 1.0, 0.0))
    r2 = np.where(n > 1, r2, np.nan)
    return {"mae": _div(abs_e, n, np.nan), "rmse": np.sqrt(_div(sq_e, n, np.nan)), "r2": r2,
            "mape": _div(ape, n, np.nan)}


def _div(a: np.ndarray, b: np.ndarray, zero: float = 0.0) -> np.ndarray:
    # zero_division=0 (or NaN where a figure is undefined), without warnings
    return np.asarray(np.where(b > 0, a / np.where(b > 0, b, 1.0), zero))
