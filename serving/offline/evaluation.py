"""Executor side of ``satchel evaluate --spark``: each Arrow batch of feature columns
becomes what the evaluation keeps per row (prediction and class probabilities), through
the same ``Predictor`` the in-memory path uses (``satchel.evaluate.collect``), so both
paths predict identically. pyarrow is imported on first use; no pyspark here.

The prediction travels in one of three struct fields, so any label type round-trips:
``code`` (index into the model's classes, when it has them), ``value`` (a number),
``text`` (anything else, as text).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from satchel.evaluate import task
from satchel.evaluate.collect import Predictor
from satchel.model import Model

DDL = "struct<code:bigint,value:double,text:string,proba:array<double>>"
_PREDICTORS: dict[int, Predictor] = {}


def arrow_type() -> Any:
    import pyarrow as pa

    return pa.struct([("code", pa.int64()), ("value", pa.float64()), ("text", pa.string()),
                      ("proba", pa.list_(pa.float64()))])


def score(model: Model, data: Any) -> Any:
    """One batch (a DataFrame fitted by ``tabular.model_input``) -> Arrow struct array."""
    import pyarrow as pa

    predictor = _PREDICTORS.get(id(model))
    if predictor is None:
        predictor = _PREDICTORS.setdefault(id(model), Predictor(model))
    pred, proba = predictor(data)
    n = len(pred)
    code = value = text = None
    if predictor.classes is not None:
        code = pa.array(task.codes(predictor.classes, pred))
    elif pred.dtype.kind in "biuf":
        value = pa.array(pred.astype(np.float64))
    else:
        text = pa.array([None if v is None else str(v) for v in pred.tolist()], pa.string())
    probas = (pa.array(list(proba), pa.list_(pa.float64())) if proba is not None
              else pa.nulls(n, pa.list_(pa.float64())))
    return pa.StructArray.from_arrays(
        [code if code is not None else pa.nulls(n, pa.int64()),
         value if value is not None else pa.nulls(n, pa.float64()),
         text if text is not None else pa.nulls(n, pa.string()), probas],
        fields=list(arrow_type()))


def decode(frame: Any, column: str, classes: list[Any] | None
           ) -> tuple[np.ndarray, np.ndarray | None]:
    """Driver side: the collected struct column back to (predictions, probabilities)."""
    values = frame[column]
    codes = values.map(lambda r: r["code"] if r is not None else None)
    if classes is not None and codes.notna().all():
        pred = np.asarray(classes, dtype=object)[codes.to_numpy(dtype=np.int64)]
        pred = np.asarray(pred.tolist())
    else:
        nums = values.map(lambda r: r["value"])
        pred = (nums.to_numpy(dtype=np.float64) if nums.notna().all()
                else values.map(lambda r: r["text"]).to_numpy(dtype=object))
    probas = values.map(lambda r: r["proba"])
    proba = None
    if len(probas) and all(p is not None for p in probas):
        proba = np.stack([np.asarray(p, dtype=np.float64) for p in probas])
    return pred, proba
