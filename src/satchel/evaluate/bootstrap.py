"""Poisson bootstrap intervals computed from cell counts, in time independent of the rows.

The Poisson bootstrap gives each row an independent Poisson(1) weight per resample
(Hanley and MacGibbon, 2006; Chamandy et al., 2012: the streaming form of the ordinary
bootstrap, which it matches as n grows). A sum of independent Poisson(1) weights is
Poisson(count), so for rows that share a cell (the same true label, predicted label and
score bin), drawing one Poisson(count) per cell is exactly the same distribution as
drawing a weight per row and adding up. So every resample costs one draw per occupied
cell, not per row, and the rows never have to be kept.

Where a figure needs a per-row value that a cell does not pin down (a regression error),
the rows are spread over random groups instead (see :mod:`satchel.evaluate.stream`), and
each group is a cell.

Draws come from a generator seeded with (seed, table, scope), so an interval depends on
the seed and the data only: not on the batch size, the order tables are resampled in, or
which other slices were asked for.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from satchel.evaluate.result import BootstrapInfo

METHOD = "poisson bootstrap"
_BLOCK_CELLS = 2_000_000  # draws held at once (resamples x cells): bounds the memory


@dataclass(frozen=True)
class Plan:
    """How many resamples, at what confidence, from which seed."""

    resamples: int
    confidence: float
    seed: int

    def info(self, groups: int = 0) -> BootstrapInfo:
        return BootstrapInfo(METHOD, self.resamples, self.confidence, self.seed,
                             subsets=1, subset_rows=0, groups=groups)


def plan(*, resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> Plan:
    """Check and hold the bootstrap's settings."""
    if resamples < 0:
        raise ValueError(f"resamples must be >= 0, not {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, not {confidence}")
    return Plan(resamples, confidence, seed)


def draws(p: Plan, counts: np.ndarray, stream: Sequence[int]) -> Iterator[np.ndarray]:
    """Blocks of resampled counts: arrays (m, cells) of Poisson(count) draws, ``resamples``
    rows in all. ``stream`` names the table and scope (seeds an independent generator)."""
    if p.resamples == 0 or not len(counts):
        return
    rng = np.random.default_rng([p.seed, *stream])
    per = max(1, _BLOCK_CELLS // len(counts))
    done = 0
    while done < p.resamples:
        m = min(per, p.resamples - done)
        yield rng.poisson(counts, size=(m, len(counts))).astype(np.float64)
        done += m


def resample(p: Plan, counts: np.ndarray, stream: Sequence[int],
             figures: Callable[[np.ndarray], dict[str, np.ndarray]]
             ) -> dict[str, np.ndarray]:
    """``figures`` of every resample, stacked: (resamples, ...) per figure."""
    parts = [figures(w) for w in draws(p, counts, stream)]
    if not parts:
        return {}
    return {k: np.concatenate([x[k] for x in parts]) for k in parts[0]}


def interval(p: Plan, draws_: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bounds over the first axis (NaN draws, e.g. an AUC on a resample with one
    class, are left out; no draws give NaN bounds)."""
    if draws_ is None or not len(draws_):
        return np.asarray(np.nan), np.asarray(np.nan)
    a = (1 - p.confidence) / 2 * 100
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN bounds
        low, high = np.nanpercentile(draws_, [a, 100 - a], axis=0)
    return np.asarray(low), np.asarray(high)
