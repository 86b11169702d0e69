"""Infer a signature from example data: pandas, numpy, dicts or lists."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np

from satchel import _normalize
from satchel.errors import SignatureError
from satchel.schema import (
    Array,
    ColSpec,
    DataType,
    Map,
    Object,
    ParamSchema,
    ParamSpec,
    Property,
    Schema,
    Signature,
    TensorSpec,
    ValueType,
)

_DTYPE_TO_TYPE = {
    "bool": DataType.boolean,
    "int8": DataType.integer,
    "int16": DataType.integer,
    "int32": DataType.integer,
    "uint8": DataType.integer,
    "uint16": DataType.integer,
    "int64": DataType.long,
    "uint32": DataType.long,
    "uint64": DataType.long,
    "float16": DataType.float,
    "float32": DataType.float,
    "float64": DataType.double,
}

_EXTENSION_TO_TYPE = {
    "boolean": DataType.boolean,
    "Int8": DataType.integer,
    "Int16": DataType.integer,
    "Int32": DataType.integer,
    "UInt8": DataType.integer,
    "UInt16": DataType.integer,
    "Int64": DataType.long,
    "UInt32": DataType.long,
    "UInt64": DataType.long,
    "Float32": DataType.float,
    "Float64": DataType.double,
    "string": DataType.string,
}


def infer_signature(
    model_input: Any, model_output: Any = None, params: dict[str, Any] | None = None
) -> Signature:
    """Build a signature from an example input, optionally the model's output on it, and params.

    Args:
        model_input: DataFrame, Series, ndarray, dict of arrays, or list of records.
        model_output: the model's prediction on ``model_input`` (any of the same forms).
        params: example params; each becomes a ParamSpec whose default is the given value.

    Raises:
        SignatureError: a column holds values of mixed or unsupported types.
    """
    return Signature(
        inputs=infer_schema(model_input) if model_input is not None else None,
        outputs=infer_schema(model_output) if model_output is not None else None,
        params=infer_param_schema(params) if params else None,
    )


def infer_schema(data: Any) -> Schema:
    """A Schema describing ``data``."""
    pd = _normalize.pandas()
    if isinstance(data, pd.DataFrame):
        return Schema([_colspec(data[c], str(c)) for c in data.columns])
    if isinstance(data, pd.Series):
        return Schema(
            [
                _colspec(
                    data, None if data.name is None else str(data.name), named=data.name is not None
                )
            ]
        )
    if isinstance(data, dict):
        if data and all(isinstance(v, np.ndarray) for v in data.values()):
            return Schema([_tensorspec(v, str(k)) for k, v in data.items()])
        return infer_schema(_normalize.to_frame(data, [str(k) for k in data]))
    if isinstance(data, list):
        if data and all(isinstance(r, dict) for r in data):
            return infer_schema(pd.DataFrame.from_records(data))
        arr = np.asarray(data)
        if arr.dtype.kind in "US" or arr.dtype == object:
            return infer_schema(pd.Series(list(data)))
        data = arr
    if isinstance(data, np.ndarray):
        return Schema([_tensorspec(data, None)])
    if np.ndim(data) == 0 and data is not None:
        return infer_schema(pd.Series([data]))
    raise SignatureError(
        f"cannot infer a schema from {type(data).__name__}", given=type(data).__name__
    )


def _tensorspec(arr: np.ndarray, name: str | None) -> TensorSpec:
    dtype = arr.dtype
    if dtype.kind in "US":
        dtype = np.dtype(object)
    shape = (-1, *arr.shape[1:]) if arr.ndim else (-1,)
    return TensorSpec(str(dtype), shape, name)


def _colspec(col: Any, name: str | None, named: bool = True) -> ColSpec:
    required = not bool(col.isna().any()) if len(col) else True
    if not named:
        # Unnamed columns cannot be optional (MLflow's rule).
        required = True
    return ColSpec(_column_type(col, name), name, required)


def _column_type(col: Any, name: str | None) -> ValueType:
    dt = col.dtype
    label = f"column '{name}'" if name is not None else "column"
    if isinstance(dt, np.dtype):
        if dt.kind == "M":
            return DataType.datetime
        if dt.name in _DTYPE_TO_TYPE:
            return _DTYPE_TO_TYPE[dt.name]
        if dt.kind != "O":
            raise SignatureError(
                f"{label}: dtype {dt} has no signature type", column=name, given=str(dt)
            )
        return _object_type(col.dropna().tolist(), label, name)
    if str(dt) in _EXTENSION_TO_TYPE:
        return _EXTENSION_TO_TYPE[str(dt)]
    # pandas 3's default string dtype prints as "str"; pandas 2's opt-in one as "string".
    if str(dt) == "str" or str(dt).startswith("string"):
        return DataType.string
    if str(dt).startswith("datetime64"):
        return DataType.datetime
    if str(dt) == "category":
        return _object_type(col.dropna().astype(object).tolist(), label, name)
    raise SignatureError(f"{label}: dtype {dt} has no signature type", column=name, given=str(dt))


def _object_type(values: list[Any], label: str, name: str | None) -> ValueType:
    if not values:
        # An all-null example column: string is MLflow's choice too.
        return DataType.string
    types = {_value_type(v, label, name) for v in values}
    if len(types) == 1:
        return types.pop()
    numeric = {DataType.integer, DataType.long, DataType.double}
    if types <= numeric:
        return DataType.double if DataType.double in types else DataType.long
    raise SignatureError(
        f"{label}: values of mixed types {sorted(str(t) for t in types)}",
        column=name,
        given="mixed",
    )


def _value_type(v: Any, label: str, name: str | None) -> ValueType:
    if isinstance(v, (bool, np.bool_)):
        return DataType.boolean
    if isinstance(v, (int, np.integer)):
        return DataType.long
    if isinstance(v, (float, np.floating)):
        return DataType.double
    if isinstance(v, str):
        return DataType.string
    if isinstance(v, (bytes, bytearray)):
        return DataType.binary
    if isinstance(v, (_dt.date, np.datetime64)):
        return DataType.datetime
    if isinstance(v, (list, tuple, np.ndarray)):
        items = [x for x in v if x is not None]
        return Array(_object_type(list(items), label, name) if items else DataType.string)
    if isinstance(v, dict):
        if not v:
            return Map(DataType.string)
        return Object(tuple(Property(str(k), _value_type(x, label, name)) for k, x in v.items()))
    raise SignatureError(
        f"{label}: values of type {type(v).__name__} have no signature type",
        column=name,
        given=type(v).__name__,
    )


def infer_param_schema(params: dict[str, Any]) -> ParamSchema:
    """A ParamSchema whose defaults are the given values."""
    specs = []
    for name, value in params.items():
        if isinstance(value, (list, tuple)):
            if not value:
                raise SignatureError(
                    f"param '{name}': cannot infer a type from an empty list", column=name
                )
            t = _value_type(value[0], f"param '{name}'", name)
            specs.append(ParamSpec(name, _param_type(t, name), list(value), (-1,)))
        else:
            t = _value_type(value, f"param '{name}'", name)
            specs.append(ParamSpec(name, _param_type(t, name), value, None))
    return ParamSchema(specs)


def _param_type(t: ValueType, name: str) -> DataType | Object:
    if isinstance(t, (DataType, Object)) and t is not DataType.binary:
        return t
    raise SignatureError(f"param '{name}': type {t} is not allowed for params", column=name)
