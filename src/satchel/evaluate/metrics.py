"""The metrics: point figures from scikit-learn's metric functions, and the same figures
under bootstrap weights, vectorised.

Point figures (what a user reads and a gate compares) come from ``sklearn.metrics``. The
bootstrap needs each figure a thousand times; calling scikit-learn a thousand times on a
large table would dominate the run, so :func:`classifier_weighted` and
:func:`regressor_weighted` compute the same definitions for a matrix of row weights
(one row of weights per resample) with a few matrix products. The tests check that the
weighted forms with unit weights equal scikit-learn's figures, and with integer weights
equal scikit-learn on rows repeated that many times.

numpy is imported at module level (this module is only imported by an evaluation);
scikit-learn and scipy inside functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

_EPS = float(np.finfo(np.float64).eps)


@dataclass
class ClassifierData:
    """Labels as codes into ``classes`` (the model's classes, or those seen)."""

    y: np.ndarray  # int codes, shape (n,)
    pred: np.ndarray  # int codes, shape (n,)
    proba: np.ndarray | None  # (n, k) aligned with classes, or None
    k: int

    def take(self, rows: np.ndarray | None) -> ClassifierData:
        if rows is None:
            return self
        return ClassifierData(self.y[rows], self.pred[rows],
                              None if self.proba is None else self.proba[rows], self.k)


@dataclass
class RegressorData:
    y: np.ndarray  # float64, shape (n,)
    pred: np.ndarray  # float64, shape (n,)

    def take(self, rows: np.ndarray | None) -> RegressorData:
        return self if rows is None else RegressorData(self.y[rows], self.pred[rows])


# --- point figures, scikit-learn ------------------------------------------------------


def classifier_point(d: ClassifierData, present: np.ndarray) -> dict[str, Any]:
    """accuracy, precision/recall/F1 macro (over ``present`` labels, scikit-learn's default
    set: those in the truth or the predictions), per-class arrays, ROC AUC (one-vs-rest,
    macro over classes with both outcomes in the truth) and log loss when ``proba`` is
    given, and the confusion matrix over all ``k`` classes."""
    from sklearn import metrics as skm

    labels = present.tolist()
    p, r, f, _ = skm.precision_recall_fscore_support(d.y, d.pred, labels=list(range(d.k)),
                                                     average=None, zero_division=0)
    out: dict[str, Any] = {
        "accuracy": float(skm.accuracy_score(d.y, d.pred)),
        "precision_macro": float(skm.precision_score(d.y, d.pred, labels=labels,
                                                     average="macro", zero_division=0)),
        "recall_macro": float(skm.recall_score(d.y, d.pred, labels=labels, average="macro",
                                               zero_division=0)),
        "f1_macro": float(skm.f1_score(d.y, d.pred, labels=labels, average="macro",
                                       zero_division=0)),
        "precision": np.asarray(p, dtype=float),
        "recall": np.asarray(r, dtype=float),
        "f1": np.asarray(f, dtype=float),
        "confusion": skm.confusion_matrix(d.y, d.pred, labels=list(range(d.k))),
    }
    if d.proba is not None:
        aucs = [float(skm.roc_auc_score(d.y == c, d.proba[:, c])) for c in _auc_classes(d)]
        out["roc_auc"] = float(np.mean(aucs)) if aucs else float("nan")
        out["log_loss"] = float(skm.log_loss(d.y, _clip(d.proba), labels=list(range(d.k))))
    return out


def regressor_point(d: RegressorData) -> dict[str, float]:
    """MAE, RMSE, R² and MAPE with scikit-learn."""
    from sklearn import metrics as skm

    return {
        "mae": float(skm.mean_absolute_error(d.y, d.pred)),
        "rmse": float(np.sqrt(skm.mean_squared_error(d.y, d.pred))),
        "r2": float(skm.r2_score(d.y, d.pred)) if len(d.y) > 1 else float("nan"),
        "mape": float(skm.mean_absolute_percentage_error(d.y, d.pred)),
    }


def _auc_classes(d: ClassifierData) -> list[int]:
    """Classes whose one-vs-rest AUC is defined: present in the truth, and not all of it."""
    if d.k == 2:
        has = np.bincount(d.y, minlength=2)
        return [1] if has[0] and has[1] else []
    counts = np.bincount(d.y, minlength=d.k)
    return [c for c in range(d.k) if 0 < counts[c] < len(d.y)]


def _clip(proba: np.ndarray) -> np.ndarray:
    # rows may miss summing to one by rounding; renormalise so log_loss accepts them
    s = proba.sum(axis=1, keepdims=True)
    return np.asarray(proba / np.where(s > 0, s, 1.0))


# --- the same definitions under bootstrap weights -------------------------------------


class ClassifierWeighted:
    """Precomputed pieces (one-hot cells, per-class score orders, per-row log loss) so that
    each block of resample weights costs a few matrix products."""

    def __init__(self, d: ClassifierData, present: np.ndarray) -> None:
        from scipy import sparse

        n, k = len(d.y), d.k
        self.k, self.present = k, present
        cells = d.y.astype(np.int64) * k + d.pred.astype(np.int64)
        self.onehot = sparse.csr_matrix((np.ones(n), (np.arange(n), cells)), shape=(n, k * k))
        self.auc: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.loss: np.ndarray | None = None
        if d.proba is not None:
            for c in _auc_classes(d):
                order = np.argsort(d.proba[:, c], kind="stable")
                s = d.proba[order, c]
                starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
                self.auc.append((order, (d.y[order] == c).astype(np.float64), starts))
            p = _clip(d.proba)[np.arange(n), d.y]
            eps = float(np.finfo(d.proba.dtype).eps)
            self.loss = -np.log(np.clip(p, eps, 1 - eps))

    def __call__(self, w: np.ndarray) -> dict[str, np.ndarray]:
        """Figures for each row of ``w`` (shape (m, n)); per-class ones have shape (m, k)."""
        m, k = w.shape[0], self.k
        conf = np.asarray((self.onehot.T @ w.T).T).reshape(m, k, k)
        tp = np.diagonal(conf, axis1=1, axis2=2)
        true_n, pred_n = conf.sum(axis=2), conf.sum(axis=1)
        total = w.sum(axis=1)
        prec = _div(tp, pred_n)
        rec = _div(tp, true_n)
        f1 = _div(2 * tp, pred_n + true_n)
        out = {
            "accuracy": tp.sum(axis=1) / total,
            "precision_macro": prec[:, self.present].mean(axis=1),
            "recall_macro": rec[:, self.present].mean(axis=1),
            "f1_macro": f1[:, self.present].mean(axis=1),
            "precision": prec, "recall": rec, "f1": f1,
        }
        if self.loss is not None:
            aucs = [_weighted_auc(w, *parts) for parts in self.auc]
            out["roc_auc"] = np.mean(aucs, axis=0) if aucs else np.full(m, np.nan)
            out["log_loss"] = (w @ self.loss) / total
        return out


def _weighted_auc(w: np.ndarray, order: np.ndarray, pos: np.ndarray,
                  starts: np.ndarray) -> np.ndarray:
    """The Mann-Whitney AUC with row weights: each positive scores the weight of negatives
    below it plus half of those tied with it (scikit-learn's ROC AUC, ties included)."""
    wo = w[:, order]
    wp = np.add.reduceat(wo * pos, starts, axis=1)
    wn = np.add.reduceat(wo * (1.0 - pos), starts, axis=1)
    below = np.cumsum(wn, axis=1) - wn
    num = (wp * (below + 0.5 * wn)).sum(axis=1)
    den = wp.sum(axis=1) * wn.sum(axis=1)
    return np.asarray(np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan))


class RegressorWeighted:
    """Sums of per-row pieces; each figure is a ratio of weighted sums."""

    def __init__(self, d: RegressorData) -> None:
        e = d.y - d.pred
        yc = d.y - d.y.mean()  # centred: the weighted variance is shift-invariant and exact
        self.stats = np.column_stack([np.abs(e), e * e, yc, yc * yc,
                                      np.abs(e) / np.maximum(np.abs(d.y), _EPS)])

    def __call__(self, w: np.ndarray) -> dict[str, np.ndarray]:
        t = w @ self.stats
        total = w.sum(axis=1)
        sse = t[:, 1]
        sst = t[:, 3] - t[:, 2] ** 2 / total
        # scikit-learn's convention for a constant truth: 1 when perfect, else 0
        r2 = np.where(sst > 0, 1 - sse / np.where(sst > 0, sst, 1.0),
                      np.where(sse == 0, 1.0, 0.0))
        return {"mae": t[:, 0] / total, "rmse": np.sqrt(sse / total), "r2": r2,
                "mape": t[:, 4] / total}


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # zero_division=0, as in the point figures
    return np.asarray(np.where(b > 0, a / np.where(b > 0, b, 1.0), 0.0))
