"""Slices (the metrics per value of a column) and the bias figures across them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

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


def labels_of(values: np.ndarray) -> np.ndarray:
    """Each value as its text; missing ones as ``(missing)``."""
    import pandas as pd

    text = pd.Series(values, dtype=object).astype(str).to_numpy(dtype=object)
    text[pd.isna(values)] = MISSING
    return np.asarray(text)


def compute(column: str, values: np.ndarray, wanted: list[str] | None,
            figures: Callable[[np.ndarray], dict[str, float]],
            selection: Callable[[np.ndarray], dict[str, float]] | None) -> list[SliceResult]:
    """One result per slice value, in order of size (largest first)."""
    text = labels_of(values)
    present, counts = np.unique(text, return_counts=True)
    if wanted is None:
        if len(present) == 1 and present[0] == MISSING:
            raise EvaluationError(f"slice column '{column}' has no values (every row is "
                                  "missing)", column=column)
        chosen = [str(v) for v, _ in sorted(zip(present, counts), key=lambda t: -t[1])]
    else:
        absent = [v for v in wanted if v not in set(present.tolist())]
        if absent:
            shown = ", ".join(map(str, present[:20]))
            raise EvaluationError(f"slice {column}={','.join(absent)} is empty: no rows have "
                                  f"that value (values present: {shown})", column=column)
        chosen = wanted
    out = []
    for value in chosen:
        mask = text == value
        out.append(SliceResult(column, value, int(mask.sum()), figures(mask),
                               selection(mask) if selection is not None else {}))
    return out


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


def selection_rates(pred: np.ndarray, classes: list[str], k: int,
                    binary: bool) -> Callable[[np.ndarray], dict[str, float]]:
    """Share of a slice's rows predicted as each class (binary: the positive class only)."""
    wanted = [1] if binary else list(range(k))

    def rates(mask: np.ndarray) -> dict[str, float]:
        counts = np.bincount(pred[mask], minlength=k)
        total = max(int(mask.sum()), 1)
        return {classes[c]: float(counts[c] / total) for c in wanted}

    return rates


def as_floats(d: dict[str, Any]) -> dict[str, float]:
    """Scalar figures only (per-class arrays and the confusion matrix stay out of slices)."""
    return {k: float(v) for k, v in d.items() if np.ndim(v) == 0}
