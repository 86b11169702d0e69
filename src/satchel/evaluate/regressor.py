"""A regressor's evaluation, batch by batch, in memory independent of the rows.

The point figures are scikit-learn's: ``mean_absolute_error``, ``mean_squared_error`` and
``mean_absolute_percentage_error`` on each batch's rows of each scope, multiplied back by
the rows and summed (:mod:`satchel.evaluate.exact`); R² is 1 - SSE/SST with SST from the
truth's moments merged by Chan's formula.

For the intervals: errors are real numbers, so no cell of rows shares one: for the
bootstrap the rows are spread over ``GROUPS`` random groups per scope (a row's group is a
hash of its position and the seed, so the batch size changes nothing), each group keeps
its sums, and a resample gives each group one Poisson(1) weight. For ratios of sums this
has the row bootstrap's variance times (1 - 1/GROUPS) in expectation; with fewer rows
than groups nearly every row is its own group, which is the row bootstrap itself.

For the report's residual plots a fixed-size uniform sample of rows is kept (the rows
with the smallest hash keys, again independent of the batch size).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from satchel.evaluate import bootstrap, task
from satchel.evaluate.cells import CellTable, Packing
from satchel.evaluate.exact import (
    Moments,
    ScopeSums,
    regression_point,
    regression_sums,
    scope_rows,
)
from satchel.evaluate.metrics import EPS, regression_figures

GROUPS = 1024  # per scope: the width varies ~2% with the grouping, under B=1000's noise
PACK = Packing((24, 12))  # scope, group
SAMPLE_ROWS = 1500


def row_hash(index: np.ndarray, seed: int) -> np.ndarray:
    """splitmix64 of (row position, seed): a fixed pseudo-random uint64 per row."""
    with np.errstate(over="ignore"):
        z = index.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15) * np.uint64(seed + 1)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return np.asarray(z ^ (z >> np.uint64(31)))


class RegressorStream:
    """Per-group sums of the model's (and baseline's) errors, per scope."""

    def __init__(self, target: str, seed: int) -> None:
        self.target = target
        self.seed = seed
        self.table = CellTable(9)
        self.rows = 0
        self.centre: float | None = None
        self.sample = (np.zeros(0, dtype=np.uint64), np.zeros(0), np.zeros(0))
        # scikit-learn's figures per scope: [rows, n*MAE, n*MSE, n*MAPE]; the baseline's
        self.exact, self.base_exact = ScopeSums(4), ScopeSums(4)
        self.moments = Moments()

    def add(self, y: np.ndarray, pred: np.ndarray, bpred: np.ndarray | None,
            scopes: Sequence[np.ndarray], first_row: int | None = None) -> None:
        """One batch: truth, predictions, the baseline's, each slice column's scopes;
        ``first_row``: the table position of its first row (default: the rows so far),
        which seeds the rows' bootstrap groups."""
        at = self.rows if first_row is None else first_row
        yf, pf = task.check_regression_target(self.target, y, pred, first_row=at)
        bf = task.check_regression_target(self.target, y, bpred, first_row=at)[1] \
            if bpred is not None else pf
        if self.centre is None:
            self.centre = float(yf.mean())
        for scope, rows in scope_rows(scopes):
            self.exact.add(scope, regression_sums(yf[rows], pf[rows]))
            self.moments.add(scope, yf[rows])
        if bpred is not None:
            self.base_exact.add(0, regression_sums(yf, bf))
        n = len(yf)
        h = row_hash(np.arange(at, at + n), self.seed)
        group = (h % np.uint64(GROUPS)).astype(np.int64)
        e, eb, yc = yf - pf, yf - bf, yf - self.centre
        scale = np.maximum(np.abs(yf), EPS)
        v = np.column_stack([np.ones(n), np.abs(e), e * e, yc, yc * yc, np.abs(e) / scale,
                             np.abs(eb), eb * eb, np.abs(eb) / scale])
        zero = np.zeros(n, dtype=np.int64)
        self.table.add(np.concatenate([PACK.pack(sc, group) for sc in (zero, *scopes)]),
                       np.vstack([v] * (1 + len(scopes))))
        self._keep_sample(h, yf, pf)
        self.rows += n

    def _keep_sample(self, h: np.ndarray, y: np.ndarray, p: np.ndarray) -> None:
        keys, ys, ps = (np.r_[a, b] for a, b in zip(self.sample, (h, y, p)))
        if len(keys) > SAMPLE_ROWS:
            keep = np.argpartition(keys, SAMPLE_ROWS - 1)[:SAMPLE_ROWS]
            keys, ys, ps = keys[keep], ys[keep], ps[keep]
        self.sample = (keys, ys, ps)

    def merge(self, other: RegressorStream, remap: np.ndarray) -> None:
        """Add another partition's sums (``remap``: its scopes in this numbering)."""
        if other.centre is None:
            return
        sc, group = PACK.unpack(other.table.keys)
        sums = other.table.sums.copy()
        if self.centre is None:
            self.centre = other.centre
        # the other's Σ(y-c') and Σ(y-c')² moved to this centre c: y-c = (y-c') + d
        d, n, sy = other.centre - self.centre, sums[:, 0], sums[:, 3].copy()
        sums[:, 3] = sy + n * d
        sums[:, 4] = sums[:, 4] + 2 * d * sy + n * d * d
        self.table.add(PACK.pack(remap[sc], group), sums)
        self.exact.merge(other.exact, remap)
        self.base_exact.merge(other.base_exact, remap)
        self.moments.merge(other.moments, remap)
        self._keep_sample(*other.sample)
        self.rows += other.rows

    def point(self, scope: int, baseline: bool = False) -> dict[str, float]:
        """scikit-learn's MAE, RMSE, R², MAPE of a scope's rows."""
        return regression_point((self.base_exact if baseline else self.exact).get(scope),
                                self.moments.get(scope))

    def residual_sample(self) -> tuple[np.ndarray, np.ndarray]:
        """(truth, prediction) of the kept rows, in row-hash order (stable across runs)."""
        order = np.argsort(self.sample[0], kind="stable")
        return self.sample[1][order], self.sample[2][order]

    def figures(self, plan: bootstrap.Plan, scope: int, baseline: bool) -> dict[str, Any]:
        """Point figures and draws for one scope (and the baseline's, paired)."""
        self.table.sort()
        sc, _ = PACK.unpack(self.table.keys)
        sums = self.table.sums[sc == scope]
        model_cols, base_cols = [0, 1, 2, 3, 4, 5], [0, 6, 7, 3, 4, 8]
        out: dict[str, Any] = {"point": self.point(scope)}
        if baseline:
            out["base_point"] = self.point(scope, baseline=True)

        def draw(w: np.ndarray) -> dict[str, np.ndarray]:
            t = w @ sums
            got = {f"m:{k}": v for k, v in regression_figures(t[:, model_cols]).items()}
            if baseline:
                got.update({f"b:{k}": v
                            for k, v in regression_figures(t[:, base_cols]).items()})
            return got

        out["draws"] = bootstrap.resample(plan, np.ones(len(sums)), (3, scope), draw)
        return out
