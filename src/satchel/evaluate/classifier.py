"""A classifier's evaluation, batch by batch, in memory independent of the rows.

Per batch the labels become codes into the classes, and the rows are counted into cells
of (scope, true, predicted, baseline's predicted) label: the confusion matrices of every
slice and of the baseline, and the joint counts a paired comparison resamples. Scores go
to :mod:`satchel.evaluate.scores` (histograms, for intervals and curves) and
:mod:`satchel.evaluate.exact` (log loss per scope by scikit-learn, distinct scores for its
ROC AUC). Nothing per row outlives its batch. Every state merges (:meth:`merge`), so
Spark executors can each fold a partition and the driver add them up.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from satchel.errors import EvaluationError
from satchel.evaluate import bootstrap, task
from satchel.evaluate.cells import CellTable, Packing
from satchel.evaluate.exact import (
    DistinctScores,
    ScopeSums,
    count_point,
    log_loss_sum,
    scope_rows,
)
from satchel.evaluate.metrics import confusion_figures
from satchel.evaluate.scores import PairTable, ScoreTables

PACK = Packing((24, 12, 12, 12))  # scope, truth, prediction, baseline's prediction
COUNT_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")


class ClassifierStream:
    """Counts and score histograms of a classifier (and its baseline)."""

    def __init__(self, target: str, classes: list[Any] | None, base_classes: list[Any] | None,
                 baseline: bool, seed: int = 0) -> None:
        self.target = target
        self.seed = seed
        self.at = 0  # table position of the current batch's first row
        self.classes = classes
        self.base_classes = base_classes
        self.baseline = baseline
        self.labels: list[Any] = []  # classes seen, when the model does not name them
        self.cells = CellTable(1)
        self.scores: ScoreTables | None = None
        self.base_scores: ScoreTables | None = None
        self.pair: PairTable | None = None
        # exact figures: log loss sums [Σ loss, rows] per scope, distinct scores per scope
        self.loss, self.base_loss = ScopeSums(2), ScopeSums(2)
        self.distinct: DistinctScores | None = None
        self.base_distinct: DistinctScores | None = None
        self.proba_ok = True  # every batch had probabilities (both models, with a baseline)

    @property
    def fixed(self) -> bool:
        return self.classes is not None

    def add(self, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None,
            bpred: np.ndarray | None, bproba: np.ndarray | None,
            scopes: Sequence[np.ndarray], first_row: int = 0) -> None:
        """One batch: truth, predictions and probabilities, each slice column's scopes
        (``first_row``: the table position of its first row)."""
        self.at = first_row
        task.check_labels(self.target, y)
        if not self.fixed and proba is not None and not self.labels:
            # a model that gives a probability table but no class names: its columns are
            # the labels of the first batch, sorted, when there are as many
            first = task.sorted_labels(y, pred, *([bpred] if bpred is not None else []))
            if len(first) == proba.shape[1]:
                self.classes = first
        yc = self._codes(y, truth=True)
        pc = self._codes(pred, what="the model predicted")
        bc = self._codes(bpred, what="the baseline predicts") if bpred is not None \
            else np.zeros(len(y), dtype=np.int64)
        zero = np.zeros(len(y), dtype=np.int64)
        keys = np.concatenate([PACK.pack(sc, yc, pc, bc) for sc in (zero, *scopes)])
        self.cells.add(keys, np.ones((len(keys), 1)))
        self._scores(yc, proba, bproba, scopes)

    def _codes(self, values: np.ndarray, truth: bool = False, what: str = "") -> np.ndarray:
        if self.fixed:
            assert self.classes is not None
            if len(self.classes) >= 1 << 12:  # the width of a label field in a cell key
                raise EvaluationError(f"the model has {len(self.classes)} classes; evaluate "
                                      "supports up to 4095")
            codes = task.codes(self.classes, values)
            if (codes < 0).any():
                bad = sorted({str(v) for v in np.asarray(values)[codes < 0].tolist()})[:10]
                known = [str(c) for c in self.classes][:20]
                if truth:
                    raise EvaluationError(f"target column '{self.target}' has labels the model "
                                          f"never saw: {bad} (it knows {known})",
                                          column=self.target)
                raise EvaluationError(f"{what} labels outside the model's classes: {bad}")
            return codes
        codes = task.codes(self.labels, values) if self.labels else \
            np.full(len(values), -1, dtype=np.int64)
        if (codes < 0).any():
            new = [v for v in task.sorted_labels(np.asarray(values)[codes < 0])
                   if v not in self.labels]
            self.labels += new
            if len(self.labels) >= 1 << 12:
                raise EvaluationError(f"target column '{self.target}' has more than 4095 "
                                      "labels; is this a regression (pass --task regressor)?",
                                      column=self.target)
            codes = task.codes(self.labels, values)
        return codes

    def _scores(self, yc: np.ndarray, proba: np.ndarray | None, bproba: np.ndarray | None,
                scopes: Sequence[np.ndarray]) -> None:
        if not self.proba_ok:
            return
        p = self._aligned(proba, self.classes)
        q = self._aligned(bproba, self.base_classes) if self.baseline else None
        if p is None or (self.baseline and q is None):
            # compare like with like: probability figures only when every batch (of both
            # models) gives them
            self._drop_scores()
            return
        k = p.shape[1]
        if self.scores is None:
            self.scores = ScoreTables(k, seed=self.seed)
            self.distinct = DistinctScores(self.scores.classes)
        assert self.distinct is not None
        self.scores.add(yc, p, scopes, self.at)
        self.distinct.add(yc, p, scopes)
        for scope, rows in scope_rows(scopes):
            self.loss.add(scope, [log_loss_sum(yc[rows], p[rows]), len(yc[rows])])
        if q is not None:
            if self.base_scores is None:
                self.base_scores = ScoreTables(k, table_id=4, seed=self.seed)
                self.pair = PairTable(k)
                self.base_distinct = DistinctScores(self.base_scores.classes)
            assert self.pair is not None and self.base_distinct is not None
            self.base_scores.add(yc, q, [], self.at)
            self.base_distinct.add(yc, q, [])
            self.base_loss.add(0, [log_loss_sum(yc, q), len(yc)])
            self.pair.add(yc, p, q)

    def _drop_scores(self) -> None:
        self.proba_ok = False
        self.scores = self.base_scores = self.pair = None
        self.distinct = self.base_distinct = None
        self.loss, self.base_loss = ScopeSums(2), ScopeSums(2)

    def log_loss(self, scope: int, baseline: bool = False) -> float:
        """scikit-learn's log loss of a scope's rows (summed per batch, divided once)."""
        total, rows = (self.base_loss if baseline else self.loss).get(scope)
        return float(total / rows) if rows else float("nan")

    def merge(self, other: ClassifierStream, remap: np.ndarray) -> None:
        """Add another stream of the same evaluation (another Spark partition);
        ``remap``: its scope numbers in this one's."""
        mine = self._label_map(other)
        sc, y, p, b = PACK.unpack(other.cells.keys)
        keys = PACK.pack(remap[sc], mine[y], mine[p], mine[b] if self.baseline else b)
        self.cells.add(keys, other.cells.sums)
        if not other.proba_ok or other.scores is None:
            if not other.proba_ok or other.cells.sums.size:
                self._drop_scores()
            return
        if not self.proba_ok:
            return
        if self.scores is None:
            self.scores = ScoreTables(other.scores.k, seed=self.seed)
            self.distinct = DistinctScores(other.scores.classes)
        assert self.distinct is not None and other.distinct is not None
        self.scores.merge(other.scores, remap)
        self.distinct.merge(other.distinct, remap)
        self.loss.merge(other.loss, remap)
        if other.base_scores is not None:
            assert other.pair is not None and other.base_distinct is not None
            if self.base_scores is None:
                k = other.base_scores.k
                self.base_scores = ScoreTables(k, table_id=4, seed=self.seed)
                self.pair = PairTable(k)
                self.base_distinct = DistinctScores(other.base_scores.classes)
            assert self.pair is not None and self.base_distinct is not None
            self.base_scores.merge(other.base_scores, remap)
            self.base_distinct.merge(other.base_distinct, remap)
            self.base_loss.merge(other.base_loss, remap)
            self.pair.table.add(other.pair.table.keys, other.pair.table.sums)

    def _label_map(self, other: ClassifierStream) -> np.ndarray:
        """Codes of ``other``'s labels among this stream's (learning new ones)."""
        theirs = other.classes if other.fixed else other.labels
        if not self.fixed and not self.cells.keys.size and other.fixed:
            self.classes = list(theirs or [])  # nothing counted yet: take the other's
        if self.fixed:
            assert self.classes is not None
            if other.scores is not None and list(self.classes) != list(theirs or []):
                raise EvaluationError("the partitions read the model's probability columns "
                                      f"as different classes ({self.classes} and {theirs}); "
                                      "give the model a classes_ attribute")
            mapped = task.codes(self.classes, np.asarray(theirs or [], dtype=object))
            if (mapped < 0).any():
                bad = sorted({str(v) for v, c in zip(theirs or [], mapped) if c < 0})[:10]
                raise EvaluationError(f"labels outside the model's classes: {bad}")
            return np.asarray(np.r_[mapped, 0], dtype=np.int64)
        if other.fixed:
            raise EvaluationError("the partitions disagree on the model's classes; give the "
                                  "model a classes_ attribute")
        return np.asarray(np.r_[self._codes(np.asarray(theirs, dtype=object)), 0],
                          dtype=np.int64)

    def _aligned(self, proba: np.ndarray | None, own: list[Any] | None) -> np.ndarray | None:
        """Probability columns in the order of the classes (zeros for one the model lacks)."""
        if proba is None or self.classes is None:
            return None
        if own is None:
            return proba if proba.shape[1] == len(self.classes) else None
        out = np.zeros((proba.shape[0], len(self.classes)))
        idx = task.codes(self.classes, np.asarray(own, dtype=object))
        out[:, idx[idx >= 0]] = proba[:, idx >= 0]
        return out

    # --- after the last batch -----------------------------------------------------------

    def finish(self) -> tuple[list[Any], np.ndarray, np.ndarray]:
        """The classes, and the cells' keys and counts with codes in sorted class order."""
        self.cells.sort()
        keys, counts = self.cells.keys, self.cells.sums[:, 0]
        if self.fixed:
            assert self.classes is not None
            return list(self.classes), keys, counts
        order = task.sorted_labels(np.asarray(self.labels, dtype=object))
        remap = task.codes(order, np.asarray(self.labels, dtype=object))
        sc, y, p, b = PACK.unpack(keys)
        has_base = self.baseline
        keys = PACK.pack(sc, remap[y], remap[p], remap[b] if has_base else b)
        from satchel.evaluate.cells import merge

        keys, sums = merge(keys, counts[:, None])
        ordered = np.argsort(keys, kind="stable")
        return order, keys[ordered], sums[ordered, 0]


def confusion(keys: np.ndarray, counts: np.ndarray, scope: int, k: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scope's joint cells: (cell counts, model's (cells,) flat cell index into k x k,
    baseline's)."""
    sc, y, p, b = PACK.unpack(keys)
    m = sc == scope
    return counts[m], y[m] * k + p[m], y[m] * k + b[m]


def count_figures(plan: bootstrap.Plan, counts: np.ndarray, model_cell: np.ndarray,
                  base_cell: np.ndarray | None, k: int, stream: int) -> dict[str, Any]:
    """Point figures (scikit-learn's functions on the cells, weighted by their counts) and
    draws (the same definitions vectorised over resamples) from one scope's joint counts,
    for the model and the baseline."""
    from scipy import sparse

    def to_conf(w: np.ndarray, cell: np.ndarray) -> np.ndarray:
        s = sparse.csr_matrix((np.ones(len(cell)), (np.arange(len(cell)), cell)),
                              shape=(len(cell), k * k))
        return np.asarray((s.T @ w.T).T).reshape(len(w), k, k)

    def present(conf: np.ndarray) -> np.ndarray:
        return np.flatnonzero(conf.sum(axis=0) + conf.sum(axis=1) > 0)

    point = count_point(model_cell // k, model_cell % k, counts, k)
    out: dict[str, Any] = {"conf": point["conf"], "point": point}
    mp = present(point["conf"])
    bp = mp
    if base_cell is not None:
        out["base_point"] = count_point(base_cell // k, base_cell % k, counts, k)
        bp = present(out["base_point"]["conf"])

    def draw(w: np.ndarray) -> dict[str, np.ndarray]:
        got = {f"m:{n}": v for n, v in confusion_figures(to_conf(w, model_cell), mp).items()}
        if base_cell is not None:
            got.update({f"b:{n}": v for n, v in confusion_figures(to_conf(w, base_cell),
                                                                    bp).items()})
        return got

    out["draws"] = bootstrap.resample(plan, counts, (0, stream), draw)
    return out
