"""Score histograms kept per batch: the bootstrap draws of ROC AUC and log loss, the
report's curves, and ROC AUC itself past the exact bound.

For each class ``j`` whose one-vs-rest AUC is wanted (the positive class of a binary
model, else every class) and each scope (all rows, each slice), a cell per (is the row of
class ``j``, bin of the score ``p_j``) holds the row count, the sum of ``p_j`` and the rows'
log loss. Bins are 1/256 wide in logit space over [-32, 32] (16,384 bins; the two ends
take everything beyond), so scores near 0 and 1 keep their resolution.

- The point figures are scikit-learn's (:mod:`satchel.evaluate.exact`): log loss summed
  per batch, ROC AUC on the distinct scores with their counts. Only when the distinct
  scores pass ``exact.SCORE_CAP`` does ROC AUC come from the fine histogram, off by at
  most half the share of positive-negative pairs sharing a bin (``roc_auc_tie_bound``).
- Resamples use bins 16x coarser (1/16 logit), each AUC draw shifted by the point AUC minus
  the coarse-binned AUC, so the interval is centred as the point figure is.
- A comparison with a baseline needs both models' scores on the same rows: a joint
  table at 1/4 logit per model holds them, and the difference's draws are shifted the
  same way.
- With more than two classes the macro AUC's resamples weigh random row groups shared by
  every class's table (:mod:`satchel.evaluate.macro`), so the correlation between the
  classes' AUCs is kept; binary AUC, log loss and every count figure resample rows
  exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from satchel.evaluate import bootstrap, macro, metrics
from satchel.evaluate.cells import CellTable, Packing, regroup
from satchel.evaluate.exact import DistinctScores

BINS_PER_UNIT = 256
LOGIT_RANGE = 32.0
BIN_BITS = 14  # 64 * 256 bins
BOOT_SHIFT = 4  # resamples on bins 16x coarser
PAIR_SHIFT = 6  # the joint table of two models: 1/4 logit
PACK = Packing((24, 12, 1, BIN_BITS))  # scope, class, positive, bin
PAIR = Packing((12, 1, BIN_BITS - PAIR_SHIFT, BIN_BITS - PAIR_SHIFT))  # class, pos, m, b


def bins(p: np.ndarray) -> np.ndarray:
    """Logit bin of each score, 0 .. 2**BIN_BITS - 1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.log(p) - np.log1p(-p)
    z = np.clip(np.nan_to_num(z, nan=0.0), -LOGIT_RANGE, LOGIT_RANGE - 1.0 / BINS_PER_UNIT)
    return np.asarray(((z + LOGIT_RANGE) * BINS_PER_UNIT).astype(np.int64))


def row_loss(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each row's log loss as scikit-learn (1.5+) takes it, for the resamples: the true
    class's probability clipped to [eps, 1-eps] (the point figure is scikit-learn's own)."""
    q = p[np.arange(len(y)), y]
    eps = float(np.finfo(p.dtype).eps)
    return np.asarray(-np.log(np.clip(q, eps, 1 - eps)))


@dataclass
class ScoreFigures:
    """One scope's probability figures: point values, draws, and per-class histograms."""

    roc_auc: float
    log_loss: float
    tie_bound: float
    auc_draws: np.ndarray | None
    loss_draws: np.ndarray | None
    per_class_auc: dict[int, float]


class ScoreTables:
    """The histograms of one model's scores (see the module docstring)."""

    def __init__(self, k: int, table_id: int = 1, seed: int = 0) -> None:
        self.k = k
        self.table_id = table_id  # seeds this table's resamples apart from the others'
        self.seed = seed
        self.classes = [1] if k == 2 else list(range(k))
        self.table = CellTable(4)  # rows, Σp, Σloss, rows whose loss is here
        self.rows = 0
        # more than two classes: the macro AUC's resamples weigh row groups (macro.py)
        self.groups = macro.GroupHistograms(self.classes) if k > 2 else None

    def add(self, y: np.ndarray, p: np.ndarray, scopes: Sequence[np.ndarray],
            first_row: int = 0) -> None:
        """One batch: true codes, aligned probabilities (n, k), each slice column's scopes
        (``first_row``: the table position of the batch's first row)."""
        loss = row_loss(p, y)
        keys, values = [], []
        coarse = {}
        for j in self.classes:
            b, pos = bins(p[:, j]), (y == j).astype(np.int64)
            coarse[j] = b >> BOOT_SHIFT
            owner = np.ones(len(y)) if self.k == 2 else pos.astype(np.float64)
            v = np.column_stack([np.ones(len(y)), p[:, j], loss * owner, owner])
            for sc in (np.zeros(len(y), dtype=np.int64), *scopes):
                keys.append(PACK.pack(sc, np.full(len(y), j), pos, b))
                values.append(v)
        self.table.add(np.concatenate(keys), np.vstack(values))
        if self.groups is not None:
            self.groups.add(y, coarse, macro.row_groups(first_row, len(y), self.seed), scopes)
        self.rows += len(y)

    def merge(self, other: ScoreTables, remap: np.ndarray) -> None:
        """Add another partition's histograms (``remap``: its scopes in this numbering)."""
        sc, cls, pos, b = PACK.unpack(other.table.keys)
        self.table.add(PACK.pack(remap[sc], cls, pos, b), other.table.sums)
        if self.groups is not None and other.groups is not None:
            self.groups.merge(other.groups, remap)
        self.rows += other.rows

    def _scope(self, scope: int) -> tuple[np.ndarray, np.ndarray]:
        self.table.sort()
        sc = PACK.unpack(self.table.keys)[0]
        return self.table.select(sc == scope)

    def figures(self, plan: bootstrap.Plan, scope: int, stream: int,
                exact: DistinctScores | None, loss: float) -> ScoreFigures:
        """Point figures and resamples for ``scope``: ROC AUC from ``exact`` (scikit-learn
        on the distinct scores) unless it overflowed, ``loss`` the point log loss."""
        keys, sums = self._scope(scope)
        _, cls, pos, b = PACK.unpack(keys)
        classes = [c for c in self.classes
                   if sums[(cls == c) & (pos == 1), 0].sum() > 0
                   and sums[(cls == c) & (pos == 0), 0].sum() > 0]
        per_class, bound = {}, 0.0
        for c in classes:
            got = exact.roc_auc(scope, c) if exact is not None else None
            if got is None:
                hp, hn = _hist(keys, sums[:, 0], c, 1), _hist(keys, sums[:, 0], c, 0)
                got = float(metrics.auc(hp[None], hn[None])[0])
                bound = max(bound, metrics.auc_tie_share(hp, hn))
            per_class[c] = got
        point = float(np.mean(list(per_class.values()))) if per_class else np.nan
        auc_d = loss_d = None
        if plan.resamples:
            ck, cs = regroup(keys, sums, PACK, (0, 0, 0, BOOT_SHIFT))
            coarse = _auc_of(ck, cs[None, :, 0], classes)
            shift = point - float(coarse[0]) if classes else 0.0

            def draw(w: np.ndarray) -> dict[str, np.ndarray]:
                out = {"loss": _div(w @ (cs[:, 2] / cs[:, 0]), w @ (cs[:, 3] / cs[:, 0]))}
                if classes and self.groups is None:
                    out["auc"] = _auc_of(ck, w, classes) + shift
                return out

            drawn = bootstrap.resample(plan, cs[:, 0], (self.table_id, stream), draw)
            loss_d, auc_d = drawn.get("loss"), drawn.get("auc")
            if classes and self.groups is not None:
                auc_d = macro.draws(plan, [self.groups], [point], scope, classes,
                                    (self.table_id, stream, 1))[0]
        return ScoreFigures(point, loss, bound, auc_d, loss_d, per_class)

    def curve_hist(self, c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All rows' fine histogram for class ``c``: positives, negatives, Σp per bin."""
        keys, sums = self._scope(0)
        _, cls, pos, b = PACK.unpack(keys)
        size = 1 << BIN_BITS
        out = []
        for want, col in ((1, 0), (0, 0)):
            m = (cls == c) & (pos == want)
            out.append(np.bincount(b[m], weights=sums[m, col], minlength=size))
        m = cls == c
        out.append(np.bincount(b[m], weights=sums[m, 1], minlength=size))
        return out[0], out[1], out[2]


class PairTable:
    """Both models' scores on the same rows, for the paired AUC and log-loss differences."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.classes = [1] if k == 2 else list(range(k))
        self.table = CellTable(4)  # rows, Σ model loss, Σ baseline loss, loss rows

    def add(self, y: np.ndarray, p: np.ndarray, q: np.ndarray) -> None:
        lm, lb = row_loss(p, y), row_loss(q, y)
        keys, values = [], []
        for j in self.classes:
            pos = (y == j).astype(np.int64)
            owner = np.ones(len(y)) if self.k == 2 else pos.astype(np.float64)
            keys.append(PAIR.pack(np.full(len(y), j), pos, bins(p[:, j]) >> PAIR_SHIFT,
                                  bins(q[:, j]) >> PAIR_SHIFT))
            values.append(np.column_stack([np.ones(len(y)), lm * owner, lb * owner, owner]))
        self.table.add(np.concatenate(keys), np.vstack(values))

    def differences(self, plan: bootstrap.Plan, auc_diff: float, classes: list[int]
                    ) -> dict[str, np.ndarray]:
        """Draws of (model - baseline) ROC AUC (shifted to ``auc_diff``) and log loss."""
        self.table.sort()
        keys, sums = self.table.keys, self.table.sums
        cls, pos, bm, bb = PAIR.unpack(keys)
        as_model = PACK.pack(np.zeros_like(cls), cls, pos, bm)
        as_base = PACK.pack(np.zeros_like(cls), cls, pos, bb)
        m_keys, m_to = _indicator(as_model)
        b_keys, b_to = _indicator(as_base)

        def both(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            # per-cell counts summed into each model's own bins: (cells x bins)^T @ w^T
            wm, wb = np.asarray((m_to.T @ w.T).T), np.asarray((b_to.T @ w.T).T)
            return _auc_of(m_keys, wm, classes), _auc_of(b_keys, wb, classes)

        ones = sums[None, :, 0]
        am, ab = both(ones)
        shift = auc_diff - float(am[0] - ab[0]) if classes else 0.0

        def draw(w: np.ndarray) -> dict[str, np.ndarray]:
            n = w @ (sums[:, 3] / sums[:, 0])
            out = {"log_loss": _div(w @ ((sums[:, 1] - sums[:, 2]) / sums[:, 0]), n)}
            if classes:
                m, b = both(w)
                out["roc_auc"] = m - b + shift
            return out

        return bootstrap.resample(plan, sums[:, 0], (2, 0), draw)


def _indicator(keys: np.ndarray) -> tuple[np.ndarray, Any]:
    """Unique keys and a sparse (cells x unique keys) 0/1 matrix mapping each cell to its."""
    from scipy import sparse

    uniq, index = np.unique(keys, return_inverse=True)
    n = len(keys)
    return uniq, sparse.csr_matrix((np.ones(n), (np.arange(n), index)), shape=(n, len(uniq)))


def _hist(keys: np.ndarray, counts: np.ndarray, c: int, want: int) -> np.ndarray:
    _, cls, pos, b = PACK.unpack(keys)
    m = (cls == c) & (pos == want)
    return np.bincount(b[m], weights=counts[m], minlength=1 << BIN_BITS)


def _auc_of(keys: np.ndarray, w: np.ndarray, classes: list[int]) -> np.ndarray:
    """Macro AUC over ``classes`` for each row of per-cell counts ``w`` (m, cells)."""
    _, cls, pos, b = PACK.unpack(keys)
    aucs = []
    for c in classes:
        mine = cls == c
        # only the bins this class occupies, in ascending order
        used = np.unique(b[mine])
        hp = np.zeros((len(w), len(used)))
        hn = np.zeros((len(w), len(used)))
        mp, mn = mine & (pos == 1), mine & (pos == 0)
        hp[:, np.searchsorted(used, b[mp])] = w[:, mp]
        hn[:, np.searchsorted(used, b[mn])] = w[:, mn]
        aucs.append(metrics.auc(hp, hn))
    return np.mean(aucs, axis=0) if aucs else np.full(len(w), np.nan)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan))
