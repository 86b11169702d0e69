"""JSON-ready values: numpy scalars to Python, NaN to null, bytes to base64, dates to ISO."""

from __future__ import annotations

import base64
import datetime as _dt
import json
import math
from typing import Any

import numpy as np


def jsonable(obj: Any) -> Any:
    """A structure of plain Python values that ``json.dumps`` accepts, in MLflow's encoding."""
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, np.ndarray):
        return array_jsonable(obj)
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (bytes, bytearray)):
        return base64.b64encode(bytes(obj)).decode("ascii")
    if isinstance(obj, np.datetime64):
        return None if np.isnat(obj) else str(np.datetime_as_string(obj))
    if isinstance(obj, (_dt.datetime, _dt.date, _dt.time)):
        if type(obj).__name__ == "NaTType":
            return None
        return obj.isoformat()
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if _is_na(obj):
        return None
    tolist = getattr(obj, "tolist", None)
    if tolist is not None:
        return jsonable(tolist())
    raise TypeError(f"values of type {type(obj).__name__} cannot be written as JSON")


def _is_na(obj: Any) -> bool:
    return type(obj).__name__ in ("NAType", "NaTType")


def array_jsonable(arr: np.ndarray) -> Any:
    """An ndarray as nested lists, fast for plain numeric arrays."""
    kind = arr.dtype.kind
    if kind in "biu":
        return arr.tolist()
    if kind == "f":
        if np.isfinite(arr).all():
            return arr.tolist()
        obj = arr.astype(object)
        obj[~np.isfinite(arr)] = None
        return obj.tolist()
    if kind == "M":
        out = np.datetime_as_string(arr).astype(object)
        out[np.isnat(arr)] = None
        return out.tolist()
    return jsonable(arr.tolist())


def dumps(obj: Any) -> str:
    """JSON text of ``obj`` after :func:`jsonable`."""
    return json.dumps(jsonable(obj), allow_nan=False)
