"""A classifier's evaluation, batch by batch, in memory independent of the rows.

Per batch the labels become codes into the classes, and the rows are counted into cells
of (scope, true, predicted, baseline's predicted) label: the confusion matrices of every
slice and of the baseline, and the joint counts a paired comparison resamples. Scores go
to :mod:`satchel.evaluate.scores`. Nothing per row outlives its batch (except up to
``scores.EXACT_ROWS`` rows of scores, for an exact ROC AUC on small tables).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from satchel.errors import EvaluationError
from satchel.evaluate import bootstrap, task
from satchel.evaluate.cells import CellTable, Packing
from satchel.evaluate.metrics import confusion_figures
from satchel.evaluate.scores import PairTable, ScoreTables

PACK = Packing((24, 12, 12, 12))  # scope, truth, prediction, baseline's prediction
COUNT_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")


class ClassifierStream:
    """Counts and score histograms of a classifier (and its baseline)."""

    def __init__(self, target: str, classes: list[Any] | None, base_classes: list[Any] | None,
                 baseline: bool) -> None:
        self.target = target
        self.classes = classes
        self.base_classes = base_classes
        self.baseline = baseline
        self.labels: list[Any] = []  # classes seen, when the model does not name them
        self.cells = CellTable(1)
        self.scores: ScoreTables | None = None
        self.base_scores: ScoreTables | None = None
        self.pair: PairTable | None = None
        self.proba_ok = True  # every batch had probabilities (both models, with a baseline)

    @property
    def fixed(self) -> bool:
        return self.classes is not None

    def add(self, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None,
            bpred: np.ndarray | None, bproba: np.ndarray | None,
            scopes: Sequence[np.ndarray]) -> None:
        """One batch: truth, predictions and probabilities, each slice column's scopes."""
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
            self.proba_ok = False
            self.scores = self.base_scores = self.pair = None
            return
        k = p.shape[1]
        if self.scores is None:
            self.scores = ScoreTables(k)
        self.scores.add(yc, p, scopes)
        if q is not None:
            if self.base_scores is None:
                self.base_scores, self.pair = ScoreTables(k, table_id=4), PairTable(k)
            assert self.pair is not None
            self.base_scores.add(yc, q, [])
            self.pair.add(yc, p, q)

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
                  base_cell: np.ndarray | None, k: int, present: np.ndarray, stream: int
                  ) -> dict[str, Any]:
    """Point figures and draws (model, baseline) from one scope's joint counts."""
    from scipy import sparse

    def to_conf(w: np.ndarray, cell: np.ndarray) -> np.ndarray:
        s = sparse.csr_matrix((np.ones(len(cell)), (np.arange(len(cell)), cell)),
                              shape=(len(cell), k * k))
        return np.asarray((s.T @ w.T).T).reshape(len(w), k, k)

    one = counts[None, :]
    out: dict[str, Any] = {"conf": to_conf(one, model_cell)[0],
                           "point": confusion_figures(to_conf(one, model_cell), present)}
    if base_cell is not None:
        out["base_point"] = confusion_figures(to_conf(one, base_cell), present)

    def draw(w: np.ndarray) -> dict[str, np.ndarray]:
        got = {f"m:{n}": v for n, v in confusion_figures(to_conf(w, model_cell),
                                                           present).items()}
        if base_cell is not None:
            got.update({f"b:{n}": v for n, v in confusion_figures(to_conf(w, base_cell),
                                                                    present).items()})
        return got

    out["draws"] = bootstrap.resample(plan, counts, (0, stream), draw)
    return out
