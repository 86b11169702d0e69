"""Example bodies for ``/openapi.json``: from the model's saved input example, or, lacking
one, values made up from its signature, in each ``/invocations`` format and as a V2
``infer`` request."""

from __future__ import annotations

from typing import Any

import numpy as np

from satchel import _json
from satchel.schema import ColSpec, DataType, Schema, TensorSpec
from satchel.serving.protocols import v2
from satchel.serving.server.repository import ServedModel


def _example(served: ServedModel) -> tuple[Any, dict[str, Any] | None, bool]:
    """(data, params, saved): the saved input example, or values made up from the signature."""
    model = served.model
    if model is not None:
        try:
            example = model.input_example()
        except Exception:  # noqa: BLE001 - a broken example must not break the docs
            example = None
        if example is not None:
            return example.data, example.params, True
    sig = model.signature if model is not None else None
    return _made_up(sig.inputs if sig is not None else None), None, False


_SAMPLE = {DataType.boolean: True, DataType.integer: 1, DataType.long: 1, DataType.float: 0.5,
           DataType.double: 0.5, DataType.string: "text", DataType.binary: "AA==",
           DataType.datetime: "2024-01-01T00:00:00"}


def _made_up(schema: Schema | None) -> Any:
    import pandas as pd

    if schema is None:
        return None
    if not schema.is_tensor:
        return pd.DataFrame({n: [_SAMPLE.get(s.type) if isinstance(s, ColSpec) and
                                  isinstance(s.type, DataType) else None]
                             for n, s in zip(schema.names(), schema.inputs)})
    arrays = {}
    for s in schema.inputs:
        assert isinstance(s, TensorSpec)
        shape = tuple(1 if d < 0 else d for d in s.shape)
        arrays[s.name] = np.ones(shape, dtype=s.dtype if np.dtype(s.dtype).kind in "biuf"
                                 else np.float64)
    return arrays[None] if None in arrays else arrays


def invocation_examples(served: ServedModel) -> dict[str, Any]:
    """Named OpenAPI examples of ``/invocations`` JSON bodies for each format."""
    import pandas as pd

    data, params, saved = _example(served)
    if data is None:
        return {}
    where = "the model's saved input example" if saved else "values made up from the signature"
    bodies: dict[str, Any] = {}
    if isinstance(data, pd.DataFrame):
        cols = [str(c) for c in data.columns]
        rows = _json.jsonable(data.to_numpy(dtype=object))
        records = [dict(zip(cols, r)) for r in rows]
        bodies = {"dataframe_split": {"dataframe_split": {"columns": cols, "data": rows}},
                  "dataframe_records": {"dataframe_records": records},
                  "inputs": {"inputs": {c: [r[i] for r in rows] for i, c in enumerate(cols)}}}
    elif isinstance(data, dict):
        bodies = {"inputs": {"inputs": {str(k): _json.jsonable(np.asarray(v))
                                        for k, v in data.items()}}}
    else:
        bodies = {"inputs": {"inputs": _json.jsonable(np.asarray(data))}}
    if params:
        for body in bodies.values():
            body["params"] = _json.jsonable(params)
    return {k: {"summary": f"{k} ({where})", "value": v} for k, v in bodies.items()}


def csv_example(served: ServedModel) -> str | None:
    """The example as a CSV body, when it is a DataFrame."""
    import pandas as pd

    data, _, _ = _example(served)
    return str(data.to_csv(index=False)) if isinstance(data, pd.DataFrame) else None


def infer_example(served: ServedModel) -> dict[str, Any] | None:
    """A V2 inference request built from the example: one tensor per column or array."""
    import pandas as pd

    data, params, _ = _example(served)
    if data is None:
        return None
    if isinstance(data, pd.DataFrame):
        items = [(str(c), data[c].to_numpy()) for c in data.columns]
    elif isinstance(data, dict):
        items = [(str(k), np.asarray(v)) for k, v in data.items()]
    else:
        sig = served.model.signature if served.model is not None else None
        meta = v2.tensor_metadata(sig.inputs if sig else None, "input")
        items = [(meta[0]["name"] if meta else "input-0", np.asarray(data))]
    inputs = []
    for name, arr in items:
        if arr.dtype == object:
            datatype = "BYTES"
        else:
            datatype = v2.wire_datatype(arr.dtype)
        inputs.append({"name": name, "shape": list(arr.shape), "datatype": datatype,
                       "data": _json.jsonable(arr.reshape(-1))})
    body: dict[str, Any] = {"inputs": inputs}
    if params:
        body["parameters"] = _json.jsonable(params)
    return body
