"""Predictions (and class probabilities) of a model for one batch of rows.

Probabilities come from the model's own output when it is a probability table, or from
the native object's ``predict_proba`` (duck-typed, as scikit-learn, XGBoost and LightGBM
estimators have it), called on the same signature-fitted input ``predict`` sees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from satchel.coercion import enforce_input
from satchel.errors import EvaluationError
from satchel.model import Model


@dataclass
class Collected:
    """Whole arrays of what the evaluation reads per row (the Spark path collects these on
    the driver; the in-memory path streams batches and never builds one)."""

    y: np.ndarray
    pred: np.ndarray
    proba: np.ndarray | None
    classes: list[Any] | None  # the model's classes (columns of proba), when it says
    slices: dict[str, np.ndarray]
    base_pred: np.ndarray | None = None
    base_proba: np.ndarray | None = None
    base_classes: list[Any] | None = None


class Predictor:
    """Predictions (and probabilities, when the model gives them) for one model."""

    def __init__(self, model: Model) -> None:
        self.model = model
        native = _native(model)
        self.classes: list[Any] | None = None
        self._proba: Callable[[Any], Any] | None = None
        classes = getattr(native, "classes_", None)
        if classes is not None and callable(getattr(native, "predict_proba", None)):
            self.classes = list(np.asarray(classes).tolist())
            self._proba = native.predict_proba
        self.estimator_type = _estimator_type(native)

    def __call__(self, frame: Any) -> tuple[np.ndarray, np.ndarray | None]:
        out = self.model.predict_detailed(frame).output
        pred, proba = split_output(out, len(frame))
        if proba is None and self._proba is not None:
            schema = self.model.signature.inputs if self.model.signature else None
            proba = np.asarray(self._proba(enforce_input(frame, schema).data), dtype=np.float64)
        if pred is None:
            if proba is None:
                raise EvaluationError("the model's output is neither predictions nor a "
                                      "probability table")
            labels = np.asarray(self.classes if self.classes is not None
                                else np.arange(proba.shape[1]))
            pred = labels[np.argmax(proba, axis=1)]
        return pred, proba


def split_output(out: Any, rows: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(predictions, probabilities) from a model output.

    A 1-D array or one column: predictions. A 2-D float table whose rows sum to one:
    probabilities. A dict or DataFrame with ``label``/``prediction`` and
    ``probabilities``/``probability`` entries (ONNX classifiers): both.
    """
    import pandas as pd

    if isinstance(out, dict):
        pred = next((out[k] for k in ("label", "output_label", "prediction", "predictions")
                     if k in out), None)
        proba = next((out[k] for k in ("probabilities", "output_probability", "probability")
                      if k in out), None)
        if pred is None and proba is None and len(out) == 1:
            pred = next(iter(out.values()))
        return (None if pred is None else _column(np.asarray(pred), rows),
                None if proba is None else _table(proba, rows))
    if isinstance(out, pd.DataFrame):
        if out.shape[1] == 1:
            return _column(out.iloc[:, 0].to_numpy(), rows), None
        named = [c for c in ("label", "prediction", "predicted_label") if c in out.columns]
        if named:
            return _column(out[named[0]].to_numpy(), rows), None
        return None, _table(out.to_numpy(), rows)
    if isinstance(out, pd.Series):
        return _column(out.to_numpy(), rows), None
    arr = np.asarray(out)
    if arr.ndim == 2 and arr.shape[1] == 1:
        return _column(arr[:, 0], rows), None
    if arr.ndim == 2 and arr.shape[1] > 1:
        return None, _table(arr, rows)
    return _column(arr, rows), None


def _column(a: np.ndarray, rows: int) -> np.ndarray:
    a = a.reshape(-1)
    if len(a) != rows:
        raise EvaluationError(f"the model returned {len(a)} predictions for {rows} rows")
    return a


def _table(value: Any, rows: int) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise EvaluationError("the model's multi-column output is not numeric; it is neither "
                              "predictions nor probabilities") from None
    if arr.ndim != 2 or arr.shape[0] != rows:
        raise EvaluationError(f"the model returned an output of shape {arr.shape} for {rows} "
                              "rows; expected one prediction per row")
    if arr.size and (arr.min() < -1e-6 or arr.max() > 1 + 1e-6):
        raise EvaluationError(f"the model returned {arr.shape[1]} columns per row with values "
                              f"outside [0, 1] (from {arr.min():.4g} to {arr.max():.4g}); "
                              "they are not probabilities, and evaluate needs one "
                              "prediction per row")
    if not np.allclose(arr.sum(axis=1), 1.0, atol=1e-3):
        raise EvaluationError(f"the model returned {arr.shape[1]} columns per row that are not "
                              "probabilities (rows do not sum to 1); evaluate needs one "
                              "prediction per row")
    return arr


def _native(model: Model) -> Any:
    try:
        return model.unwrap()
    except Exception:  # noqa: BLE001 - a flavor without a native object: no probabilities
        return None


def _estimator_type(native: Any) -> str | None:
    tags = getattr(native, "__sklearn_tags__", None)
    if callable(tags):
        try:
            kind = getattr(tags(), "estimator_type", None)
        except Exception:  # noqa: BLE001 - third-party tag implementations
            kind = None
        if kind in ("classifier", "regressor"):
            return str(kind)
    kind = getattr(native, "_estimator_type", None)
    return str(kind) if kind in ("classifier", "regressor") else None
