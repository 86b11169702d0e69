"""The point figures, computed by scikit-learn's own metric functions while the rows stream.

Three mergeable states, each independent of the number of rows (up to a cap for scores):

- :class:`ScopeSums`: figures that are means over rows (log loss, MAE, MSE, MAPE) are
  called on each batch's rows of each scope (every row, each slice value) with
  ``normalize=False`` or multiplied back by the row count, and the sums add up. The
  figure is the sum over the rows divided by their number: scikit-learn's own mean up to
  the order of the additions (about 1e-16 relative).
- :class:`Moments`: the truth's count, mean and sum of squared deviations per scope,
  merged by Chan's parallel formula: the denominator of R² without cancellation.
- :class:`DistinctScores`: per scope, class and outcome, the scores seen, merged into
  distinct scores with their row counts as they accumulate. ``roc_auc_score`` on those
  with ``sample_weight`` = the counts is the same computation as on the rows (its curve
  steps through distinct scores, adding weights).
  Continuous scores are mostly distinct, so this grows with the rows: past ``SCORE_CAP``
  entries it is dropped and ROC AUC falls back to the score histogram of
  :mod:`satchel.evaluate.scores`, and the result records the bound of that fallback.

Count figures (accuracy, precision, recall, F1, the confusion matrix) need no state here:
:func:`count_point` calls scikit-learn on the distinct (truth, prediction) cells with
their counts as ``sample_weight``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

# (scope, class, outcome, score) entries kept for the exact ROC AUC: 8 bytes each while
# every score is distinct, 16 with counts; at most ~64 MB past a merge, and up to twice
# that (plus a batch) before the next merge checks the cap
SCORE_CAP = 4_000_000
_CONSOLIDATE_FROM = 1_000_000


def scope_rows(scopes: Sequence[np.ndarray]) -> Iterator[tuple[int, Any]]:
    """(scope, rows) for every row (scope 0) and each value of each slice column; rows in
    their batch order, so a scope's rows reach scikit-learn as they lie in the table."""
    yield 0, slice(None)
    for codes in scopes:
        order = np.argsort(codes, kind="stable")
        ids, starts = np.unique(codes[order], return_index=True)
        ends = np.r_[starts[1:], len(order)]
        for sid, a, b in zip(ids.tolist(), starts.tolist(), ends.tolist()):
            yield int(sid), order[a:b]


def remap_scopes(scope: np.ndarray, remap: np.ndarray) -> np.ndarray:
    """Scope numbers of another evaluation's table in this one's numbering."""
    return np.asarray(remap[scope], dtype=np.int64)


class ScopeSums:
    """Per scope, a vector of sums (added batch by batch and merge by merge)."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.sums: dict[int, np.ndarray] = {}

    def add(self, scope: int, values: Sequence[float] | np.ndarray) -> None:
        v = np.asarray(values, dtype=np.float64)
        got = self.sums.get(scope)
        self.sums[scope] = v if got is None else got + v

    def get(self, scope: int) -> np.ndarray:
        return self.sums.get(scope, np.zeros(self.width))

    def merge(self, other: ScopeSums, remap: np.ndarray) -> None:
        for scope, v in other.sums.items():
            self.add(int(remap[scope]), v)


class Moments:
    """Per scope: rows, mean and sum of squared deviations of the truth (Chan et al.)."""

    def __init__(self) -> None:
        self.stats: dict[int, tuple[float, float, float]] = {}

    def add(self, scope: int, y: np.ndarray) -> None:
        if len(y):
            mean = float(np.mean(y))
            self._combine(scope, (float(len(y)), mean, float(np.sum((y - mean) ** 2))))

    def _combine(self, scope: int, b: tuple[float, float, float]) -> None:
        a = self.stats.get(scope)
        if a is None:
            self.stats[scope] = b
            return
        n = a[0] + b[0]
        delta = b[1] - a[1]
        self.stats[scope] = (n, a[1] + delta * b[0] / n,
                             a[2] + b[2] + delta * delta * a[0] * b[0] / n)

    def get(self, scope: int) -> tuple[float, float, float]:
        return self.stats.get(scope, (0.0, 0.0, 0.0))

    def merge(self, other: Moments, remap: np.ndarray) -> None:
        for scope, v in sorted(other.stats.items()):
            self._combine(int(remap[scope]), v)


class DistinctScores:
    """Per (scope, class, is-positive): the scores seen, as chunks of (scores, counts or
    None for one row each); ``overflow`` once past ``SCORE_CAP`` (see the module
    docstring).

    A batch's scores are kept as they come (8 bytes a row: continuous scores are distinct,
    so counting them would only cost time). When the entries double, each group is
    merged into its distinct scores with their counts, which keeps repeated scores (a
    tree's leaves, rounded outputs) at one entry each.
    """

    def __init__(self, classes: Sequence[int]) -> None:
        self.classes = list(classes)
        self.groups: dict[tuple[int, int, int],
                          list[tuple[np.ndarray, np.ndarray | None]]] = {}
        self.entries = 0
        self.next_check = _CONSOLIDATE_FROM
        self.overflow = False

    def add(self, y: np.ndarray, p: np.ndarray, scopes: Sequence[np.ndarray]) -> None:
        """One batch: true class codes, aligned probabilities (n, k), slice scopes."""
        if self.overflow:
            return
        for j in self.classes:
            s, pos = p[:, j], y == j
            for scope, rows in scope_rows(scopes):
                sj, pj = s[rows], pos[rows]
                for want, v in ((1, sj[pj]), (0, sj[~pj])):
                    if len(v):
                        self._put((scope, j, want), np.asarray(v, dtype=np.float64), None)
        self._maybe_consolidate()

    def _put(self, key: tuple[int, int, int], u: np.ndarray, c: np.ndarray | None) -> None:
        self.groups.setdefault(key, []).append((u, c))
        self.entries += len(u)

    def _maybe_consolidate(self) -> None:
        if self.entries <= self.next_check:
            return
        self.consolidate()
        if self.entries > SCORE_CAP:
            self.overflow, self.groups, self.entries = True, {}, 0
            return
        self.next_check = max(2 * self.entries, _CONSOLIDATE_FROM)

    def consolidate(self) -> None:
        """Each group's chunks merged into its distinct scores and their counts."""
        total = 0
        for chunks in self.groups.values():
            if len(chunks) > 1 or chunks[0][1] is None:
                scores, weights = _joined(chunks)
                u, inv = np.unique(scores, return_inverse=True)
                if len(u) == len(scores) and weights is None:
                    chunks[:] = [(u, None)]  # all distinct, one row each: no counts needed
                else:
                    ones = np.ones(len(scores)) if weights is None else weights
                    chunks[:] = [(u, np.bincount(inv, weights=ones, minlength=len(u)))]
            total += len(chunks[0][0])
        self.entries = total

    def merge(self, other: DistinctScores, remap: np.ndarray) -> None:
        if other.overflow:
            self.overflow, self.groups, self.entries = True, {}, 0
        if self.overflow:
            return
        for (scope, j, want), chunks in other.groups.items():
            for u, c in chunks:
                self._put((int(remap[scope]), j, want), u, c)
        self._maybe_consolidate()

    def roc_auc(self, scope: int, c: int) -> float | None:
        """scikit-learn's one-vs-rest ROC AUC of class ``c`` in ``scope`` (None: past the
        cap, or one outcome absent)."""
        if self.overflow:
            return None
        pos, neg = self.groups.get((scope, c, 1)), self.groups.get((scope, c, 0))
        if not pos or not neg:
            return None
        from sklearn.metrics import roc_auc_score

        sp, wp = _joined(pos)
        sn, wn = _joined(neg)
        truth = np.r_[np.ones(len(sp)), np.zeros(len(sn))]
        weight = None if wp is None and wn is None else np.r_[
            np.ones(len(sp)) if wp is None else wp, np.ones(len(sn)) if wn is None else wn]
        return float(roc_auc_score(truth, np.r_[sp, sn], sample_weight=weight))


def _joined(chunks: list[tuple[np.ndarray, np.ndarray | None]]
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """One group's scores and counts (None: one row each)."""
    scores = np.concatenate([u for u, _ in chunks]) if len(chunks) > 1 else chunks[0][0]
    if all(c is None for _, c in chunks):
        return scores, None
    return scores, np.concatenate([np.ones(len(u)) if c is None else c for u, c in chunks])


def log_loss_sum(y: np.ndarray, p: np.ndarray) -> float:
    """scikit-learn's log loss of the rows, summed (``normalize=False``); class codes
    ``y`` index the columns of ``p``."""
    from sklearn.metrics import log_loss

    with warnings.catch_warnings():
        # rows summing to 1 only within the models' rounding: scikit-learn warns, and
        # computes the same figure either way
        warnings.simplefilter("ignore", UserWarning)
        # a probability off [0, 1] by rounding (1 - a - b = -3e-17) makes scikit-learn
        # refuse the batch; it clips to [eps, 1 - eps] itself, so clipping first changes
        # no figure (collect refuses values off by more)
        q = np.clip(p, 0.0, 1.0)
        return float(log_loss(y, q, normalize=False, labels=list(range(p.shape[1]))))


def regression_sums(y: np.ndarray, p: np.ndarray) -> list[float]:
    """[rows, n*MAE, n*MSE, n*MAPE] of the rows, each figure scikit-learn's."""
    from sklearn import metrics as skm

    n = float(len(y))
    return [n, n * skm.mean_absolute_error(y, p), n * skm.mean_squared_error(y, p),
            n * skm.mean_absolute_percentage_error(y, p)]


def regression_point(sums: np.ndarray, moments: tuple[float, float, float]
                     ) -> dict[str, float]:
    """MAE, RMSE, R², MAPE from :func:`regression_sums` totals and the truth's moments (R²
    as scikit-learn defines it: 1 - SSE/SST, 1 for a perfect fit of a constant truth,
    else 0 when SST is 0; undefined for fewer than two rows)."""
    n, abs_e, sq_e, ape = (float(v) for v in sums)
    if n == 0:
        return {"mae": np.nan, "rmse": np.nan, "r2": np.nan, "mape": np.nan}
    sst = moments[2]
    if n < 2:
        r2 = np.nan
    elif sst > 0:
        r2 = 1 - sq_e / sst
    else:
        r2 = 1.0 if sq_e == 0 else 0.0
    return {"mae": abs_e / n, "rmse": float(np.sqrt(sq_e / n)), "r2": float(r2),
            "mape": ape / n}


def count_point(truth: np.ndarray, pred: np.ndarray, counts: np.ndarray, k: int
                ) -> dict[str, Any]:
    """scikit-learn on the distinct (truth, prediction) cells weighted by their counts:
    the confusion matrix, accuracy, precision/recall/F1 macro (over the labels present in
    the truth or the predictions, as scikit-learn picks them) and per class (arrays of
    ``k``, zero for a class absent from both)."""
    from sklearn import metrics as skm

    conf = skm.confusion_matrix(truth, pred, labels=list(range(k)), sample_weight=counts)
    present = sorted(set(np.unique(truth).tolist()) | set(np.unique(pred).tolist()))
    out: dict[str, Any] = {"conf": np.rint(conf).astype(np.int64),
                           "accuracy": float(skm.accuracy_score(truth, pred,
                                                                sample_weight=counts))}
    prf = skm.precision_recall_fscore_support
    macro = prf(truth, pred, average="macro", sample_weight=counts, zero_division=0)
    per = prf(truth, pred, labels=present, average=None, sample_weight=counts,
              zero_division=0)
    for i, name in enumerate(("precision", "recall", "f1")):
        out[f"{name}_macro"] = float(macro[i])
        full = np.zeros(k)
        full[present] = per[i]
        out[name] = full
    return out
