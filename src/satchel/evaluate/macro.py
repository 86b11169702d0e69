"""Resamples of a multi-class macro ROC AUC that keep the correlation between classes.

A row enters every class's one-vs-rest table, so the per-class AUCs of one resample must
weigh each row the same in every table. Cells of (scope, class, outcome, score bin) merge
rows whose scores in *other* classes differ, so a Poisson draw per cell cannot do that:
resampling each class's cells on their own left out the (positive) covariance between
the class AUCs and gave intervals ~20% narrower than the row bootstrap on 3-5 classes.

Here the rows are spread over ``GROUPS`` random groups (a hash of the row's table position
and the seed, as for regression; see :mod:`satchel.evaluate.regressor`), cells are (scope,
class, outcome, coarse score bin, group), and a resample draws one Poisson(1) weight per
group, shared by every class's table. The macro AUC is asymptotically a mean of per-row
terms (its Hajek projection), so, as for the regression figures, this has the row
bootstrap's variance times (1 - 1/GROUPS) in expectation, correlation between classes
included. A baseline's tables hashed from the same row positions and weighed by the same
draws give the paired difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from satchel.evaluate import bootstrap, metrics
from satchel.evaluate.cells import CellTable, Packing

GROUPS = 256
BIN_BITS = 10  # the score bins the resamples use (1/16 logit; see scores.BOOT_SHIFT)
PACK = Packing((24, 12, 1, BIN_BITS, 10))  # scope, class, positive, coarse bin, group


def row_groups(first_row: int, n: int, seed: int) -> np.ndarray:
    """Each row's group, from its table position and the seed."""
    from satchel.evaluate.regressor import row_hash

    h = row_hash(np.arange(first_row, first_row + n), seed + 7919)  # apart from regression's
    return np.asarray((h % np.uint64(GROUPS)).astype(np.int64))


class GroupHistograms:
    """Row counts per (scope, class, outcome, coarse bin, group)."""

    def __init__(self, classes: Sequence[int]) -> None:
        self.classes = list(classes)
        self.table = CellTable(1)

    def add(self, y: np.ndarray, coarse: dict[int, np.ndarray], group: np.ndarray,
            scopes: Sequence[np.ndarray]) -> None:
        """One batch: true codes, each class's coarse score bins, row groups, scopes."""
        keys = []
        for j in self.classes:
            pos = (y == j).astype(np.int64)
            for sc in (np.zeros(len(y), dtype=np.int64), *scopes):
                keys.append(PACK.pack(sc, np.full(len(y), j), pos, coarse[j], group))
        k = np.concatenate(keys)
        self.table.add(k, np.ones((len(k), 1)))

    def merge(self, other: GroupHistograms, remap: np.ndarray) -> None:
        sc, c, pos, b, g = PACK.unpack(other.table.keys)
        self.table.add(PACK.pack(remap[sc], c, pos, b, g), other.table.sums)

    def matrices(self, scope: int, classes: Sequence[int]) -> list[tuple[Any, Any]]:
        """Per class: (positives, negatives) as sparse (GROUPS x occupied bins) counts,
        bins in ascending order."""
        from scipy import sparse

        self.table.sort()
        sc, c, pos, b, g = PACK.unpack(self.table.keys)
        counts = self.table.sums[:, 0]
        out = []
        for cls in classes:
            mine = (sc == scope) & (c == cls)
            used = np.unique(b[mine])
            pair = []
            for want in (1, 0):
                m = mine & (pos == want)
                pair.append(sparse.csr_matrix(
                    (counts[m], (g[m], np.searchsorted(used, b[m]))),
                    shape=(GROUPS, len(used))))
            out.append((pair[0], pair[1]))
        return out


def _macro(mats: list[tuple[Any, Any]], w: np.ndarray) -> np.ndarray:
    """Macro AUC for each row of group weights ``w`` (m, GROUPS)."""
    aucs = [metrics.auc(np.asarray((hp.T @ w.T).T), np.asarray((hn.T @ w.T).T))
            for hp, hn in mats]
    return np.mean(aucs, axis=0) if aucs else np.full(len(w), np.nan)


def draws(plan: bootstrap.Plan, tables: Sequence[GroupHistograms], points: Sequence[float],
          scope: int, classes: Sequence[int], stream: Sequence[int]) -> list[np.ndarray]:
    """Macro AUC draws of each table, all weighed by the same group draws (so the
    difference of two tables' draws is paired); each shifted so that the unweighted
    coarse figure sits at its point figure."""
    mats = [t.matrices(scope, classes) for t in tables]
    ones = np.ones((1, GROUPS))
    shifts = [p - float(_macro(m, ones)[0]) for m, p in zip(mats, points)]
    parts: list[list[np.ndarray]] = [[] for _ in tables]
    for w in bootstrap.draws(plan, np.ones(GROUPS), stream):
        for i, m in enumerate(mats):
            parts[i].append(_macro(m, w) + shifts[i])
    return [np.concatenate(p) if p else np.zeros(0) for p in parts]
