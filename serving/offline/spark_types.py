"""Spark result types, without pyspark: inferred from an output signature, and a model's
output fitted to one as the Arrow array Spark expects.

Inference yields DDL text (``bigint``, ``array<double>``, ``struct<`a`:string,...>``),
which ``satchel.serving.offline.spark`` parses with pyspark. Fitting casts by the coercion
table's rules (lossless; float64 -> float rounds) and names the result type and the
output on any misfit. See docs/spark.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from satchel._cast import cast_numeric
from satchel.errors import OutputError, SignatureError
from satchel.schema import Array, ColSpec, DataType, Object, Schema, TensorSpec
from satchel.serving.offline import tabular

ALLOWED = ("boolean, tinyint, smallint, int, bigint, float, double, string, binary, "
           "array<...> of these, or struct<...> of these")

# --- inference ------------------------------------------------------------------------

_NUMPY_DDL = {"bool": "boolean", "int8": "tinyint", "int16": "smallint", "uint8": "smallint",
              "int32": "int", "uint16": "int", "int64": "bigint", "uint32": "bigint",
              "float16": "float", "float32": "float", "float64": "double", "object": "string",
              "str": "string", "bytes": "binary"}
_DATATYPE_DDL = {DataType.boolean: "boolean", DataType.integer: "int", DataType.long: "bigint",
                 DataType.float: "float", DataType.double: "double",
                 DataType.string: "string", DataType.binary: "binary"}


def infer_ddl(outputs: Schema | None) -> str:
    """The result type for an output schema: one output is its own type, several a struct.

    Raises OutputError when there is no output schema or a type has no Spark result type.
    """
    if outputs is None:
        raise OutputError("the model has no output signature, so the result type cannot be "
                          "inferred; pass result_type (for example 'double')",
                          expected="result_type")
    types = [_spec_ddl(s, len(outputs) == 1) for s in outputs.inputs]
    if len(types) == 1:
        return types[0]
    return "struct<" + ",".join(f"{_quote(n)}:{t}" for n, t in zip(outputs.names(), types)) + ">"


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _spec_ddl(spec: ColSpec | TensorSpec, top: bool) -> str:
    if isinstance(spec, TensorSpec):
        try:
            name = spec.dtype if spec.dtype in ("str", "bytes") else np.dtype(spec.dtype).name
        except TypeError:
            name = spec.dtype
        base = _NUMPY_DDL.get(name)
        if base is None:
            raise OutputError(f"output tensor dtype {spec.dtype} has no Spark type; pass "
                              "result_type", given=spec.dtype)
        for _ in spec.shape[1:]:
            base = f"array<{base}>"
        return base
    return _value_ddl(spec.type, top)


def _value_ddl(t: Any, top: bool) -> str:
    if isinstance(t, DataType) and t in _DATATYPE_DDL:
        return _DATATYPE_DDL[t]
    if isinstance(t, Array):
        return f"array<{_value_ddl(t.items, False)}>"
    if isinstance(t, Object) and top:
        return "struct<" + ",".join(f"{_quote(p.name)}:{_value_ddl(p.dtype, False)}"
                                    for p in t.properties) + ">"
    raise OutputError(f"output type {t} has no Spark result type satchel infers; pass "
                      f"result_type ({ALLOWED})", given=str(t))


# --- output -> Arrow of the result type -----------------------------------------------

_SPARK_NAMES = {"bool": "boolean", "int8": "tinyint", "int16": "smallint", "int32": "int",
                "int64": "bigint", "float": "float", "double": "double"}


def fit(output: Any, arrow_type: Any, type_name: str, rows: int) -> Any:
    """A model's normalised output as an Arrow array of ``arrow_type``, or OutputError.

    Values cast losslessly by the coercion table (float64 -> float rounds). A struct
    takes the output's columns (or dict keys) by field name, or the columns of a 2-D
    array in order; any other type takes the output's single column (a DataFrame whose
    columns all fit an ``array<...>`` is read row by row).
    """
    import pyarrow as pa

    tabular.check_rows(output, rows)
    items = tabular.output_items(output)
    if pa.types.is_struct(arrow_type):
        fields = list(arrow_type)
        named = {n: v for n, v in items if n is not None}
        if not named:
            arr = tabular.values_of(items[0][1])
            if arr.ndim != 2 or arr.shape[1] != len(fields):
                raise OutputError(f"result type {type_name} has {len(fields)} fields; the model "
                                  f"returns an unnamed array of shape {list(arr.shape)}",
                                  expected=type_name, given=f"shape {list(arr.shape)}")
            named = {f.name: arr[:, i] for i, f in enumerate(fields)}
        missing = [f.name for f in fields if f.name not in named]
        if missing:
            raise OutputError(f"result type {type_name} has fields {missing} that the model's "
                              f"output does not have (it returns {list(named)})",
                              expected=type_name, given=str(list(named)))
        children = [_fit_values(named[f.name], f.type, f"output '{f.name}'", type_name)
                    for f in fields]
        return pa.StructArray.from_arrays(children, fields=fields)
    if len(items) > 1:
        if pa.types.is_list(arrow_type):
            return _fit_values(np.column_stack([tabular.values_of(v) for _, v in items]),
                               arrow_type, "output", type_name)
        raise OutputError(f"the model returns {len(items)} outputs {[n for n, _ in items]}; "
                          f"result type {type_name} holds one: use a struct such as "
                          f"'{items[0][0]} double, {items[1][0]} double'",
                          expected=type_name, given=f"{len(items)} outputs")
    name = items[0][0]
    return _fit_values(items[0][1], arrow_type,
                       f"output '{name}'" if name is not None else "output", type_name)


def _fit_values(values: Any, arrow_type: Any, label: str, type_name: str) -> Any:
    import pyarrow as pa

    arr = tabular.values_of(values)
    depth, leaf = 0, arrow_type
    while pa.types.is_list(leaf):
        depth, leaf = depth + 1, leaf.value_type
    if depth and arr.dtype == object and arr.ndim == 1:
        # rows of lists (ragged, or a Series of arrays): Arrow checks every item's type
        try:
            return pa.array(list(arr), type=arrow_type, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
            raise OutputError(f"the model's {label} does not fit result type {type_name}: "
                              f"{str(exc).splitlines()[0]}", expected=type_name,
                              given="lists of other types") from None
    if not depth and arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != depth + 1:
        hint = " (use array<...> or a struct)" if not depth else ""
        raise OutputError(f"the model's {label} has shape {list(arr.shape)}; result type "
                          f"{type_name} needs {depth + 1}-D values{hint}", expected=type_name,
                          given=f"shape {list(arr.shape)}")
    mask = None
    if arr.dtype == object and not depth:
        nulls = np.fromiter((v is None for v in arr), bool, len(arr))
        if nulls.any():
            mask, arr = nulls, arr[~nulls]
    leaf_values = _fit_leaf(arr, leaf, label, type_name)
    if depth:
        return tabular.nested_lists(leaf_values, leaf).cast(arrow_type)
    if mask is None:
        return pa.array(leaf_values, type=leaf)
    full = np.zeros(len(mask), dtype=leaf_values.dtype) if leaf_values.dtype != object \
        else np.full(len(mask), None, dtype=object)
    full[~mask] = leaf_values
    return pa.array(full, type=leaf, mask=mask)


def _fit_leaf(arr: np.ndarray, leaf: Any, label: str, type_name: str) -> np.ndarray:
    import pyarrow as pa

    if pa.types.is_string(leaf) or pa.types.is_binary(leaf):
        want = str if pa.types.is_string(leaf) else (bytes, bytearray)
        if arr.dtype.kind in ("U" if want is str else "S"):
            return arr.astype(object)
        if arr.dtype == object and all(isinstance(v, want) for v in arr.ravel().tolist()):
            return arr
        given = str(arr.dtype) if arr.dtype != object else "objects of other types"
        raise OutputError(f"the model's {label} ({given}) does not fit result type "
                          f"{type_name}: expected {leaf}", expected=type_name, given=given)
    try:
        return cast_numeric(arr, np.dtype(leaf.to_pandas_dtype()), label,
                            _SPARK_NAMES.get(str(leaf), str(leaf)))
    except SignatureError as exc:
        raise OutputError(f"result type {type_name}: {exc}", expected=type_name,
                          given=exc.given) from None
