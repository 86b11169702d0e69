"""Slices (the metrics per value of a column) and the bias figures across them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from satchel.errors import EvaluationError
from satchel.evaluate.result import HIGHER_IS_BETTER, BiasFigure, SliceResult

MISSING = "(missing)"


def parse_spec(spec: str) -> tuple[str, list[str] | None]:
    """``region`` (every value) or ``region=EU,US`` (those values only)."""
    name, sep, values = spec.partition("=")
    name = name.strip()
    if not name:
        raise EvaluationError(f"slice {spec!r} names no column; write COL or COL=V1,V2")
    if not sep:
        return name, None
    wanted = [v.strip() for v in values.split(",") if v.strip()]
    if not wanted:
        raise EvaluationError(f"slice {spec!r} lists no values; write {name}=V1,V2")
    return name, wanted


class Scopes:
    """Numbers for the row sets figures are kept for: 0 is every row, and each value of
    each slice column gets its own, as it is first seen. A value is known by its text
    (1 and "1" are one slice), a missing value as ``(missing)``."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self.names: list[tuple[str, str]] = [("", "")]
        self._ids: dict[tuple[str, str], int] = {}

    def codes(self, column: str, values: np.ndarray) -> np.ndarray:
        """Each row's scope for ``column``: hash-based (``pandas.factorize``), so text
        conversion touches the distinct values of a batch only."""
        import pandas as pd

        codes, uniques = pd.factorize(values)
        ids = [self.id(column, str(u)) for u in uniques] + [self.id(column, MISSING)]
        return np.asarray(ids, dtype=np.int64)[np.where(codes < 0, len(uniques), codes)]

    def id(self, column: str, text: str) -> int:
        """The scope of ``column`` = ``text`` (a new one when first seen)."""
        key = (column, text)
        got = self._ids.get(key)
        if got is None:
            if len(self.names) >= 1 << 24:  # the width of the scope field in a cell key
                raise EvaluationError(f"slice column '{column}' has more than 16 million "
                                      "distinct values", column=column)
            got = self._ids[key] = len(self.names)
            self.names.append(key)
        return got

    def chosen(self, column: str, wanted: list[str] | None,
               rows: dict[int, int]) -> list[tuple[str, int]]:
        """(value, scope) of the slices to report, largest first (or as ``wanted``).

        Raises:
            EvaluationError: a column whose every row is missing, or a wanted value no
                row has.
        """
        present = sorted(((text, i) for i, (c, text) in enumerate(self.names)
                          if c == column and rows.get(i, 0) > 0), key=lambda t: t[0])
        if wanted is None:
            if [p for p, _ in present] == [MISSING]:
                raise EvaluationError(f"slice column '{column}' has no values (every row is "
                                      "missing)", column=column)
            return sorted(present, key=lambda t: -rows[t[1]])
        names = dict(present)
        absent = [v for v in wanted if v not in names]
        if absent:
            shown = ", ".join(p for p, _ in present[:20])
            raise EvaluationError(f"slice {column}={','.join(absent)} is empty: no rows have "
                                  f"that value (values present: {shown})", column=column)
        return [(v, names[v]) for v in wanted]


def bias(results: Sequence[SliceResult]) -> list[BiasFigure]:
    """For each column: the gap between the best and the worst slice of every metric, and
    for classifiers the lowest over the highest selection rate of each class (the
    "four-fifths rule" figure)."""
    out: list[BiasFigure] = []
    columns: dict[str, list[SliceResult]] = {}
    for r in results:
        columns.setdefault(r.column, []).append(r)
    for column, group in columns.items():
        if len(group) < 2:
            continue
        for metric in group[0].metrics:
            pairs = [(s.metrics[metric], s.value) for s in group
                     if np.isfinite(s.metrics.get(metric, np.nan))]
            if len(pairs) < 2:
                continue
            hi, lo = max(pairs), min(pairs)
            best, worst = (hi, lo) if HIGHER_IS_BETTER.get(metric, True) else (lo, hi)
            out.append(BiasFigure(column, metric, "gap", float(hi[0] - lo[0]), best[1],
                                  worst[1]))
        for label in group[0].selection_rate:
            rates = [(s.selection_rate.get(label, 0.0), s.value) for s in group]
            hi, lo = max(rates), min(rates)
            ratio = lo[0] / hi[0] if hi[0] > 0 else float("nan")
            out.append(BiasFigure(column, label, "selection_rate_ratio", float(ratio), hi[1],
                                  lo[1]))
    return out
