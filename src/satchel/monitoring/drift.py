"""Drift of new data against a reference profile: counts in the reference's bins, and
the distances between the two histograms.

A :class:`ColumnCounts` is the whole state kept per column: one float per bin plus the
null, out-of-range and total counts. It merges by addition and decays by scaling, so the
server's sliding window, a worker's share and an offline file scan are the same object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from satchel.monitoring.profile import (
    NUMERIC,
    ColumnProfile,
    _category,
    bin_counts,
    numeric_values,
)

# Empty bins would make PSI infinite; this floor is the usual practice (a fraction of a
# percent) and keeps one stray value from dominating the figure.
_EPSILON = 1e-4


@dataclass
class ColumnCounts:
    """Counts of new data in one column's reference bins.

    Attributes:
        bins: weight per bin (numeric) or per kept category + "other" (categorical).
        nulls: null values seen.
        out_of_range: non-null values outside the reference's min/max, or categories the
            reference never had (only when it kept all of its categories).
        total: all values seen, nulls included.
    """

    bins: np.ndarray
    nulls: float = 0.0
    out_of_range: float = 0.0
    total: float = 0.0
    _lookup: dict[str, int] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def empty(cls, ref: ColumnProfile) -> ColumnCounts:
        return cls(np.zeros(ref.bins, dtype=np.float64))

    def add(self, ref: ColumnProfile, values: Any) -> None:
        """Count a batch of values of this column (a pandas Series or 1-D array)."""
        import pandas as pd

        series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
        dtype = series.dtype
        if ref.kind == NUMERIC and isinstance(dtype, np.dtype) and dtype.kind in "fiu":
            self._add_numbers(ref, series.to_numpy())
            return
        nulls = series.isna()
        n_null = int(nulls.sum())
        self.total += len(series)
        self.nulls += n_null
        present = series[~nulls] if n_null else series
        if not len(present):
            return
        if ref.kind == NUMERIC:
            try:
                arr = numeric_values(present)
            except (TypeError, ValueError):
                # Not numbers at all: every value is outside the reference's range.
                self.out_of_range += len(present)
                return
            self.bins += bin_counts(arr, ref.edges)
            if ref.minimum is not None and ref.maximum is not None:
                self.out_of_range += float(((arr < ref.minimum) | (arr > ref.maximum)).sum())
            return
        if self._lookup is None:
            self._lookup = {c: i for i, c in enumerate(ref.categories)}
        other = len(ref.categories)
        lookup = self._lookup
        if _distinct_keys(present.dtype):
            # Look each distinct value up once (a server's classes, a column's cities):
            # values equal as keys are equal as text for these dtypes, so this counts
            # exactly what the per-value loop below counts, in a fraction of the time.
            codes, uniques = pd.factorize(present)
            table = np.fromiter((lookup.get(_category(v), other) for v in uniques),
                                dtype=np.int64, count=len(uniques))
            idx = table[codes]
        else:
            idx = np.fromiter((lookup.get(_category(v), other) for v in present),
                              dtype=np.int64, count=len(present))
        self.bins += np.bincount(idx, minlength=other + 1)
        if not ref.truncated:
            self.out_of_range += float((idx == other).sum())

    def _add_numbers(self, ref: ColumnProfile, arr: np.ndarray) -> None:
        """:meth:`add` for a numpy number array, without pandas' per-call overhead (a
        null in such an array is a NaN, as ``isna`` says)."""
        self.total += len(arr)
        if arr.dtype.kind == "f":
            nulls = np.isnan(arr)
            n_null = int(nulls.sum())
            if n_null:
                self.nulls += n_null
                arr = arr[~nulls]
        if not arr.size:
            return
        arr = numeric_values(arr)
        self.bins += bin_counts(arr, ref.edges)
        if ref.minimum is not None and ref.maximum is not None:
            self.out_of_range += float(((arr < ref.minimum) | (arr > ref.maximum)).sum())

    def merge(self, other: ColumnCounts) -> None:
        """Add another share of counts (another worker's, another window bucket's)."""
        self.bins += other.bins
        self.nulls += other.nulls
        self.out_of_range += other.out_of_range
        self.total += other.total

    def scaled(self, factor: float) -> ColumnCounts:
        """A copy with every count multiplied (exponential decay of old buckets)."""
        return ColumnCounts(self.bins * factor, self.nulls * factor,
                            self.out_of_range * factor, self.total * factor)

    def to_dict(self) -> dict[str, Any]:
        return {"bins": [float(b) for b in self.bins], "nulls": self.nulls,
                "out_of_range": self.out_of_range, "total": self.total}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ColumnCounts:
        return cls(np.asarray(raw["bins"], dtype=np.float64), float(raw["nulls"]),
                   float(raw["out_of_range"]), float(raw["total"]))


def _distinct_keys(dtype: Any) -> bool:
    """Whether hashing values of ``dtype`` groups exactly the values with the same text:
    integers, booleans and strings do; floats (0.0 and -0.0) and mixed objects (1, 1.0
    and True are one key) do not."""
    import pandas as pd

    if isinstance(dtype, np.dtype):
        return dtype.kind in "iub"
    return isinstance(dtype, pd.StringDtype)


@dataclass(frozen=True)
class DriftFigures:
    """How far one column's current data is from its reference.

    ``psi`` and ``js_distance`` are None when no non-null value was seen.
    """

    column: str
    count: float
    psi: float | None
    js_distance: float | None
    null_rate: float | None
    reference_null_rate: float
    out_of_range_rate: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "count": self.count, "psi": self.psi,
                "js_distance": self.js_distance, "null_rate": self.null_rate,
                "reference_null_rate": self.reference_null_rate,
                "out_of_range_rate": self.out_of_range_rate}


def psi(reference: np.ndarray | list[float], current: np.ndarray | list[float]) -> float:
    """Population stability index between two histograms over the same bins.

    Both are normalised here; empty bins are floored at a small epsilon.
    """
    p = _normalised(reference)
    q = _normalised(current)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(reference: np.ndarray | list[float], current: np.ndarray | list[float]) -> float:
    """Jensen-Shannon distance (base 2, so in [0, 1]) between two histograms."""
    p = np.asarray(reference, dtype=np.float64)
    q = np.asarray(current, dtype=np.float64)
    p = p / p.sum() if p.sum() > 0 else p
    q = q / q.sum() if q.sum() > 0 else q
    m = (p + q) / 2
    div = 0.5 * (_kl(p, m) + _kl(q, m))
    return float(math.sqrt(max(div, 0.0)))


def _kl(a: np.ndarray, b: np.ndarray) -> float:
    mask = a > 0
    return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))


def _normalised(h: np.ndarray | list[float]) -> np.ndarray:
    arr = np.maximum(np.asarray(h, dtype=np.float64), 0.0)
    total = arr.sum()
    arr = arr / total if total > 0 else np.full(arr.shape, 1.0 / max(arr.size, 1))
    arr = np.maximum(arr, _EPSILON)
    return np.asarray(arr / arr.sum())


def figures(ref: ColumnProfile, counts: ColumnCounts) -> DriftFigures:
    """The drift figures of one column."""
    present = counts.total - counts.nulls
    have = present > 0 and counts.bins.sum() > 0
    return DriftFigures(
        column=ref.name,
        count=counts.total,
        psi=psi(ref.frequencies, counts.bins) if have else None,
        js_distance=js_distance(ref.frequencies, counts.bins) if have else None,
        null_rate=counts.nulls / counts.total if counts.total else None,
        reference_null_rate=ref.null_rate,
        out_of_range_rate=counts.out_of_range / present if present > 0 else None,
    )
