"""Arrow columns in, model input out; model output in, Arrow arrays out.

``satchel batch`` and the Spark UDF both receive Arrow arrays, and both hand them to
``Model.predict_detailed`` through the functions here, so one file read by ``satchel
batch`` and the same rows scored in Spark meet the coercion policy identically. This
module converts layout only (Arrow to pandas, list columns to tensors, output arrays to
Arrow); every type decision is the policy's (``satchel.coercion``).

pyarrow and pandas are imported on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from satchel import _normalize
from satchel.errors import OutputError, SignatureError
from satchel.schema import ColSpec, Object, Schema, TensorSpec


def _pa() -> Any:
    import pyarrow as pa

    return pa


# --- Arrow -> model input -------------------------------------------------------------


def to_series(arr: Any, name: str) -> Any:
    """One Arrow array as the pandas Series the coercion policy reads.

    Integers and booleans with nulls become pandas' nullable dtypes (Arrow's default,
    float64 with NaN, would round integers beyond 2**53); maps become dicts; everything
    else is pyarrow's default (floats with NaN, strings and bytes as objects, dates as
    ``datetime.date``, timestamps as datetime64, lists as ndarrays).
    """
    pa = _pa()
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
        t = arr.type
    if arr.null_count and (pa.types.is_integer(t) or pa.types.is_boolean(t)):
        pd = _normalize.pandas()
        # "int64" -> "Int64", "uint8" -> "UInt8", bool -> "boolean"
        name_ = "boolean" if pa.types.is_boolean(t) else str(t).replace("uint", "UInt").replace(
            "int", "Int")
        dtype = pd.api.types.pandas_dtype(name_)
        out = arr.to_pandas(types_mapper=lambda _: dtype)
    elif pa.types.is_map(t):
        out = arr.to_pandas(maps_as_pydicts="strict")
    else:
        out = arr.to_pandas()
    out.name = name
    return out


def expand_struct(arrays: Sequence[Any], names: Sequence[str] | None,
                  schema: Schema | None) -> tuple[list[Any], list[str] | None]:
    """A single struct column stands for its fields, named by the struct's field names.

    Not when the model's one input is itself an object column: then the struct is the value.
    """
    pa = _pa()
    if len(arrays) != 1 or not pa.types.is_struct(arrays[0].type):
        return list(arrays), None if names is None else list(names)
    if schema is not None and len(schema) == 1 and isinstance(schema.inputs[0], ColSpec) \
            and isinstance(schema.inputs[0].type, Object):
        return list(arrays), None if names is None else list(names)
    struct = arrays[0]
    # flatten() applies the struct's own null mask to every field
    fields = [struct.type.field(i).name for i in range(struct.type.num_fields)]
    return list(struct.flatten()), fields


def model_input(arrays: Sequence[Any], names: Sequence[str], schema: Schema | None) -> Any:
    """What ``predict_detailed`` gets for Arrow columns ``arrays`` named ``names``.

    Column schemas (and no schema) get a DataFrame. Tensor schemas get ndarrays: a list
    column is stacked into ``(rows, ...)`` and reshaped (C order) to the TensorSpec's
    fixed trailing dimensions; several scalar columns feeding one unnamed tensor become
    a DataFrame, which the policy reads as a 2-D array.
    """
    if schema is not None and schema.is_tensor:
        specs = {s.name: s for s in schema.inputs if isinstance(s, TensorSpec)}
        if None in specs:
            spec = specs[None]
            if len(arrays) == 1 and _is_list(arrays[0].type):
                return stack(arrays[0], spec, "input")
        else:
            return {n: stack(a, specs[n], f"input '{n}'") if n in specs and _is_list(a.type)
                    else to_series(a, n).to_numpy() for a, n in zip(arrays, names)}
    pd = _normalize.pandas()
    return pd.DataFrame({n: to_series(a, n) for a, n in zip(arrays, names)}, copy=False)


def _is_list(t: Any) -> bool:
    pa = _pa()
    return bool(pa.types.is_list(t) or pa.types.is_large_list(t)
                or pa.types.is_fixed_size_list(t))


def stack(arr: Any, spec: TensorSpec, label: str) -> np.ndarray:
    """An Arrow list column (rows of equal-length lists, nested for rank > 2) as one ndarray."""
    pa = _pa()
    import pyarrow.compute as pc

    if arr.null_count:
        raise SignatureError(f"{label} is required but has {arr.null_count} null "
                             f"row{'s' if arr.null_count > 1 else ''}", column=spec.name,
                             expected=spec.type_name, given=f"{arr.null_count} nulls")
    shape = [len(arr)]
    values = arr
    while _is_list(values.type):
        if pa.types.is_fixed_size_list(values.type):
            width = values.type.list_size
        else:
            lengths = pc.list_value_length(values)
            lo_hi = pc.min_max(lengths).as_py()
            if lo_hi["min"] != lo_hi["max"]:
                raise SignatureError(f"{label}: rows hold lists of different lengths "
                                     f"({lo_hi['min']} to {lo_hi['max']}); a tensor needs one "
                                     "shape", column=spec.name, expected=spec.type_name,
                                     given="ragged lists")
            width = lo_hi["min"] or 0
        values = values.flatten()
        shape.append(int(width))
    flat = values.to_numpy(zero_copy_only=False)
    out: np.ndarray = flat.reshape(shape)
    trailing = spec.shape[1:]
    if len(trailing) != len(shape) - 1 and trailing and -1 not in trailing:
        try:
            out = out.reshape((shape[0], *trailing))
        except ValueError:
            raise SignatureError(f"{label}: rows of shape {shape[1:]} do not reshape to "
                                 f"{list(spec.shape)}", column=spec.name,
                                 expected=str(list(spec.shape)), given=str(shape[1:])) from None
    return out


# --- model output -> Arrow ------------------------------------------------------------


def output_items(output: Any) -> list[tuple[str | None, Any]]:
    """A normalised output as ``(name, values)`` pairs; ndarrays and Series are unnamed."""
    pd = _normalize.pandas()
    if isinstance(output, pd.DataFrame):
        return [(str(c), output[c]) for c in output.columns]
    if isinstance(output, dict):
        return [(str(k), v) for k, v in output.items()]
    return [(None, output)]


def values_of(values: Any) -> np.ndarray:
    """An output column as an ndarray; pandas' NA becomes None in an object array."""
    pd = _normalize.pandas()
    if isinstance(values, (pd.Series, pd.DataFrame)):
        if isinstance(values, pd.Series) and not isinstance(values.dtype, np.dtype):
            return np.asarray(values.astype(object).where(values.notna(), None))
        return np.asarray(values.to_numpy())
    return np.asarray(values)


def nested_lists(arr: np.ndarray, value_type: Any = None) -> Any:
    """An ndarray of rank >= 2 as an Arrow list column (rank - 1 levels of lists), no copy
    of the values."""
    pa = _pa()
    flat = np.ascontiguousarray(arr).reshape(-1)
    out = pa.array(flat, type=value_type) if value_type is not None else pa.array(flat)
    for level in range(arr.ndim - 1, 0, -1):
        # level L groups arr.shape[L] items into each of prod(shape[:L]) lists
        lists = int(np.prod(arr.shape[:level]))
        offsets = pa.array(np.arange(lists + 1, dtype=np.int64) * arr.shape[level],
                           type=pa.int32())
        out = pa.ListArray.from_arrays(offsets, out)
    return out


def check_rows(output: Any, rows: int) -> None:
    """Raise OutputError unless every output column has one value per input row."""
    for name, values in output_items(output):
        n = len(values)
        if n != rows:
            what = f"output '{name}'" if name is not None else "output"
            raise OutputError(f"the model returned {n} rows in its {what} for {rows} input "
                              "rows; a batch scorer needs one prediction per row",
                              expected=f"{rows} rows", given=f"{n} rows")
