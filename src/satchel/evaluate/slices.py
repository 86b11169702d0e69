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


def labels_of(values: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The distinct labels (each value as its text, missing ones as ``(missing)``), sorted,
    and each row's index into them. Hash-based (``pandas.factorize``): text conversion
    and sorting touch the distinct values only, not a million rows."""
    import pandas as pd

    codes, uniques = pd.factorize(values)
    names = [str(u) for u in uniques] + [MISSING]
    codes = np.where(codes < 0, len(uniques), codes)
    # distinct raw values with the same text (1 and "1") are one slice
    labels, remap = np.unique(np.asarray(names, dtype=object), return_inverse=True)
    return [str(v) for v in labels], np.asarray(remap)[codes]


def compute(column: str, values: np.ndarray, wanted: list[str] | None,
            figures: Callable[[np.ndarray], dict[str, float]],
            selection: Callable[[np.ndarray], dict[str, float]] | None) -> list[SliceResult]:
    """One result per slice value, in order of size (largest first)."""
    labels, codes = labels_of(values)
    counts = np.bincount(codes, minlength=len(labels))
    present = [(name, int(c)) for name, c in zip(labels, counts) if c > 0]
    if wanted is None:
        if [p for p, _ in present] == [MISSING]:
            raise EvaluationError(f"slice column '{column}' has no values (every row is "
                                  "missing)", column=column)
        chosen = [name for name, _ in sorted(present, key=lambda t: -t[1])]
    else:
        names = {p for p, _ in present}
        absent = [v for v in wanted if v not in names]
        if absent:
            shown = ", ".join(p for p, _ in present[:20])
            raise EvaluationError(f"slice {column}={','.join(absent)} is empty: no rows have "
                                  f"that value (values present: {shown})", column=column)
        chosen = wanted
    index = {name: i for i, name in enumerate(labels)}
    out = []
    for value in chosen:
        mask = codes == index[value]
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
