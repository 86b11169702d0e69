"""Bootstrap intervals, single and paired, in time independent of the table's size.

Up to ``max_rows`` rows this is the ordinary bootstrap: ``resamples`` draws of n rows
with replacement, each expressed as a weight (count) per row. Above it, the bag of little
bootstraps (Kleiner, Talwalkar, Sarkar and Jordan, 2014): ``subsets`` random subsets of
``max_rows`` rows, each resampled ``resamples / subsets`` times as multinomial counts
summing to n, the percentile bounds averaged over subsets. Its intervals have the
ordinary bootstrap's width for a sample of n (not of the subset), while each resample
costs O(subset) instead of O(n) — what keeps a 1M-row evaluation from spending minutes
resampling.

A paired comparison applies the same weights to the model and the baseline, so the
interval of their difference accounts for their errors being correlated on shared rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from satchel.evaluate.result import BootstrapInfo

Figures = dict[str, np.ndarray]
_BLOCK = 50  # resamples per weight matrix: bounds memory at _BLOCK x max_rows floats


@dataclass(frozen=True)
class Plan:
    """How to resample ``n`` rows."""

    n: int
    resamples: int
    confidence: float
    seed: int
    subsets: int
    subset_rows: int

    @property
    def method(self) -> str:
        return "bootstrap" if self.subsets == 1 and self.subset_rows == self.n \
            else "bag of little bootstraps"

    def info(self) -> BootstrapInfo:
        return BootstrapInfo(self.method, self.resamples, self.confidence, self.seed,
                             self.subsets, self.subset_rows)


def plan(n: int, *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
         max_rows: int = 20_000, subsets: int = 10) -> Plan:
    """Choose the ordinary bootstrap or the bag of little bootstraps for ``n`` rows."""
    if resamples < 0:
        raise ValueError(f"resamples must be >= 0, not {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, not {confidence}")
    if n <= max_rows:
        return Plan(n, resamples, confidence, seed, 1, n)
    return Plan(n, resamples, confidence, seed, max(1, min(subsets, resamples or 1)), max_rows)


def run(p: Plan, figures: Callable[[np.ndarray | None], Callable[[np.ndarray], Figures]]
        ) -> list[Figures]:
    """Resample figures, one dict of stacked arrays per subset.

    ``figures(rows)`` prepares the computation for a subset of rows (None: all) and returns
    a function from a weight matrix (resamples x rows) to figures per resample.
    """
    out: list[Figures] = []
    for rows, blocks in _draws(p):
        fn = figures(rows)
        parts = [fn(w) for w in blocks]
        if parts:
            out.append({k: np.concatenate([x[k] for x in parts]) for k in parts[0]})
    return out


def _draws(p: Plan) -> Iterator[tuple[np.ndarray | None, Iterator[np.ndarray]]]:
    rng = np.random.default_rng(p.seed)
    if p.resamples == 0 or p.n == 0:
        return
    per = [p.resamples // p.subsets + (1 if i < p.resamples % p.subsets else 0)
           for i in range(p.subsets)]
    for count in per:
        if p.subsets == 1 and p.subset_rows == p.n:
            rows = None
        else:
            rows = np.sort(rng.choice(p.n, size=p.subset_rows, replace=False))
        yield rows, _blocks(rng, p.n, p.subset_rows, count)


def _blocks(rng: np.random.Generator, n: int, b: int, count: int) -> Iterator[np.ndarray]:
    pvals = np.full(b, 1.0 / b)
    done = 0
    while done < count:
        m = min(_BLOCK, count - done)
        yield rng.multinomial(n, pvals, size=m).astype(np.float64)
        done += m


def interval(p: Plan, draws: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bounds of each subset's draws, averaged over subsets (NaN draws, e.g. an
    AUC on a resample with one class, are left out)."""
    if not draws:
        shape = ()
        return np.full(shape, np.nan), np.full(shape, np.nan)
    import warnings

    a = (1 - p.confidence) / 2 * 100
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN bounds
        bounds = [np.nanpercentile(d, [a, 100 - a], axis=0) for d in draws]
        low = np.nanmean(np.stack([b[0] for b in bounds]), axis=0)
        high = np.nanmean(np.stack([b[1] for b in bounds]), axis=0)
    return low, high
