"""The task (classifier or regressor), and the target checked against it.

Every refusal here names the column, what was expected and what was found.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from satchel.errors import EvaluationError

TASKS = ("classifier", "regressor")


def infer(task: str | None, target: str, y: np.ndarray, pred: np.ndarray,
          estimator_type: str | None, has_classes: bool) -> str:
    """The task given, else the model's own (scikit-learn-style tags, a ``classes_``
    attribute), else the target's type: labels (text, booleans) mean a classifier,
    fractional numbers a regressor. Whole numbers with a model that does not say are
    ambiguous: the error asks for ``--task``."""
    if task is not None:
        if task not in TASKS:
            raise EvaluationError(f"task must be one of {list(TASKS)}, not {task!r}")
        return task
    if estimator_type is not None:
        return estimator_type
    if has_classes:
        return "classifier"
    kind = _kind(y)
    if kind in ("text", "bool"):
        return "classifier"
    if kind == "float" and not _whole(y):
        return "regressor"
    if kind in ("int", "float") and _kind(pred) == "float" and not _whole(pred):
        return "regressor"
    raise EvaluationError(f"cannot tell whether this is a classifier or a regressor: target "
                          f"column '{target}' holds whole numbers and the model does not say; "
                          "pass --task classifier or --task regressor (task= in Python)",
                          column=target)


def check_regression_target(target: str, y: np.ndarray, pred: np.ndarray,
                            first_row: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Target and predictions as float64; a non-numeric or missing target is an error
    (``first_row``: the position of ``y[0]`` in the table, for the message)."""
    kind = _kind(y)
    if kind not in ("int", "float"):
        raise EvaluationError(f"target column '{target}' holds {_describe(y)}; a regressor "
                              "needs numbers (pass --task classifier for labels)", column=target)
    yf = y.astype(np.float64)
    missing = int(np.isnan(yf).sum())
    if missing:
        raise EvaluationError(f"target column '{target}' has {missing} missing values in rows "
                              f"{first_row:,} to {first_row + len(y) - 1:,}; drop those rows "
                              "or fill them", column=target)
    try:
        pf = np.asarray(pred, dtype=np.float64)
    except (TypeError, ValueError):
        raise EvaluationError(f"the model's predictions are {_describe(pred)}, not numbers; "
                              "a regressor's must be (pass --task classifier?)") from None
    return yf, pf


def check_labels(target: str, y: np.ndarray) -> None:
    """A classifier's target may hold any labels but no missing values."""
    import pandas as pd

    missing = int(pd.isna(y).sum())
    if missing:
        raise EvaluationError(f"target column '{target}' has {missing} missing labels; drop "
                              "those rows or fill them", column=target)
    if _kind(y) == "float" and not _whole(y):
        raise EvaluationError(f"target column '{target}' holds fractional numbers; a classifier "
                              "needs labels (pass --task regressor?)", column=target)


def codes(classes: list[Any], values: np.ndarray) -> np.ndarray:
    """Index of each value in ``classes`` (-1 for a value not among them)."""
    import pandas as pd

    return np.asarray(pd.Index(classes).get_indexer(_plain(values)), dtype=np.int64)


def sorted_labels(*arrays: np.ndarray) -> list[Any]:
    """The distinct labels of several arrays, sorted (by text when types are mixed)."""
    seen: set[Any] = set()
    for a in arrays:
        seen.update(_plain(a).tolist())
    try:
        return sorted(seen)
    except TypeError:
        return sorted(seen, key=str)


def _plain(a: np.ndarray) -> np.ndarray:
    # pandas' nullable or categorical columns arrive as object arrays of numpy scalars
    return np.asarray(a.tolist() if a.dtype == object else a)


def _kind(a: np.ndarray) -> str:
    if a.dtype == bool:
        return "bool"
    if np.issubdtype(a.dtype, np.integer):
        return "int"
    if np.issubdtype(a.dtype, np.floating):
        return "float"
    if a.dtype == object:
        sample = [v for v in a[:1000].tolist() if v is not None and v == v]
        if sample and all(isinstance(v, bool) for v in sample):
            return "bool"
        if sample and all(isinstance(v, int) and not isinstance(v, bool) for v in sample):
            return "int"
        if sample and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                          for v in sample):
            return "float"
    return "text"


def _whole(a: np.ndarray) -> bool:
    f = a.astype(np.float64)
    f = f[~np.isnan(f)]
    return bool(np.all(f == np.round(f)))


def _describe(a: np.ndarray) -> str:
    kind = _kind(a)
    return {"text": "text", "bool": "booleans", "int": "integers", "float": "numbers"}[kind] + \
        f" ({a.dtype})"
