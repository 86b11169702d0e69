"""The one coercion policy: fit input data and params to a signature, or fail clearly.

Every entry point (Python ``predict``, REST JSON/CSV/Parquet, the V2 protocol, Spark,
``satchel batch``) calls :func:`enforce_input` and :func:`enforce_params`; nothing else
converts types. The rules are tabulated in docs/coercion.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from satchel import _fits, _normalize
from satchel._cast import cast_numeric, describe
from satchel.errors import SignatureError
from satchel.schema import (
    AnyType,
    Array,
    ColSpec,
    DataType,
    Map,
    Object,
    ParamSchema,
    ParamSpec,
    Schema,
    SparkVector,
    TensorSpec,
    ValueType,
)


@dataclass(frozen=True)
class Enforced:
    """Input fitted to a schema, and the names of the columns that were dropped."""

    data: Any
    dropped: tuple[str, ...] = ()


def enforce_input(data: Any, schema: Schema | None) -> Enforced:
    """Fit ``data`` to ``schema`` by the rules of docs/coercion.md.

    Column schemas yield a DataFrame with the schema's columns in order; tensor schemas
    yield an ndarray (one unnamed tensor) or a dict of ndarrays (named tensors).

    Raises:
        SignatureError: a required input is missing or null, or a value cannot be
            converted without changing it. The message names the column, the expected
            and the given type, never the data.
    """
    if schema is None:
        return Enforced(_normalize.without_schema(data))
    if schema.is_tensor:
        return _enforce_tensors(data, schema)
    try:
        return _enforce_columns(data, schema)
    except UnicodeEncodeError as exc:
        # A Python str may hold a lone surrogate ("\ud800"), which no UTF-8 text holds:
        # pandas 3 keeps text as Arrow (UTF-8) strings and refuses it while the frame is
        # built or converted. The same refusal for every entry point, never a bare
        # UnicodeEncodeError.
        raise SignatureError(
            f"the input holds text that is not valid Unicode ({exc.reason}, character "
            f"{exc.start} of a string): give text without lone surrogates",
            expected="valid Unicode text",
            given="a lone surrogate",
        ) from None


# --- columns -------------------------------------------------------------------------


def _enforce_columns(data: Any, schema: Schema) -> Enforced:
    plan = _fits.plan(schema)
    if _normalize.pandas_kind(data) == "frame":
        df = data
    else:
        df = _normalize.to_frame(data, plan.names, _fits.column_index(plan))
    if _fits.same_columns(df.columns, plan):
        # the common case: a frame of the signature's columns, and usually of its types
        if _fits.fits(df, plan):
            return Enforced(df)
        columns = plan.name_list
    else:
        columns = df.columns.tolist()
        if len(columns) == len(plan.names) and not schema.has_names:
            # An unnamed schema takes a frame's columns by position, whatever their
            # names (MLflow's rule; e.g. a text model's one string column called "text").
            df = df.set_axis(plan.name_list, axis=1)
            columns = plan.name_list
            if _fits.fits(df, plan):
                return Enforced(df)
    if not schema.has_names and columns != plan.name_list and len(columns) >= len(plan.names):
        # An unnamed schema matches columns by position, whatever they are called (as
        # MLflow does); extra columns on the right are dropped and reported.
        dropped_right = tuple(str(c) for c in columns[len(plan.names) :])
        df = df.iloc[:, : len(plan.names)].set_axis(plan.name_list, axis=1)
        inner = _enforce_columns(df, schema)
        return Enforced(inner.data, dropped_right + inner.dropped)
    present = set(columns)
    missing = [n for n, s in zip(plan.names, plan.specs) if s.required and n not in present]
    if missing:
        raise SignatureError(
            f"missing required column{'s' if len(missing) > 1 else ''} {missing}; "
            f"the model expects {plan.name_list}",
            column=missing[0],
        )
    wanted = set(plan.names)
    dropped = tuple(str(c) for c in columns if c not in wanted)
    out = {}
    for name, spec in zip(plan.names, plan.specs):
        if name in present:
            out[name] = coerce_column(df[name], spec, name)
    pd = _normalize.pandas()
    return Enforced(pd.DataFrame(out, index=df.index), dropped)


def coerce_column(col: Any, spec: ColSpec, name: str) -> Any:
    """Fit one pandas Series to one column spec; raises SignatureError naming ``name``."""
    pd = _normalize.pandas()
    nulls = col.isna()
    n_null = int(nulls.sum()) if len(col) else 0
    if n_null and spec.required:
        raise SignatureError(
            f"column '{name}' is required but has {n_null} null value{'s' if n_null > 1 else ''}",
            column=name,
            expected=spec.type_name,
            given=f"{n_null} nulls",
        )
    label = f"column '{name}'"
    t = spec.type
    if isinstance(t, (AnyType, SparkVector)):
        return col
    if isinstance(t, DataType):
        if n_null:
            kept = coerce_values(col[~nulls].to_numpy(), t, label)
            return _with_nulls(pd, col, nulls, kept, t)
        return pd.Series(coerce_values(_series_values(col), t, label), index=col.index, name=name)
    for i, v in enumerate(col.tolist()):
        if v is not None and not (isinstance(v, float) and v != v):
            check_value(v, t, f"{label} row {i}")
    return col


def _series_values(col: Any) -> np.ndarray:
    dt = col.dtype
    if isinstance(dt, np.dtype):
        return np.asarray(col.to_numpy())
    # pandas extension dtypes (Int64, boolean, string[python], ...) without nulls
    kind = getattr(dt, "kind", "O")
    if kind in "iufb":
        return np.asarray(col.to_numpy(dtype=dt.numpy_dtype))
    return np.asarray(col.to_numpy(dtype=object))


def _with_nulls(pd: Any, col: Any, nulls: Any, kept: np.ndarray, t: DataType) -> Any:
    # Optional columns keep their nulls: floats as NaN, ints and bools as pandas' nullable
    # dtypes (a float would lose int64 precision), everything else as None in objects.
    if t in (DataType.float, DataType.double):
        out = np.full(len(col), np.nan, dtype=kept.dtype)
        out[~nulls.to_numpy()] = kept
        return pd.Series(out, index=col.index, name=col.name)
    if t in (DataType.integer, DataType.long, DataType.boolean):
        dtype = {"integer": "Int32", "long": "Int64", "boolean": "boolean"}[t.value]
        out_s = pd.Series(pd.NA, index=col.index, name=col.name, dtype=dtype)
        out_s[~nulls] = kept
        return out_s
    if t is DataType.datetime:
        out_dt = np.full(len(col), np.datetime64("NaT"), dtype="datetime64[ns]")
        out_dt[~nulls.to_numpy()] = kept
        return pd.Series(out_dt, index=col.index, name=col.name)
    obj = np.full(len(col), None, dtype=object)
    obj[~nulls.to_numpy()] = kept
    return pd.Series(obj, index=col.index, name=col.name)


def coerce_values(arr: np.ndarray, t: DataType, label: str) -> np.ndarray:
    """Fit a flat array of non-null values to a scalar type by the coercion table."""
    if t is DataType.string:
        if arr.dtype.kind == "U":
            return arr.astype(object)
        if arr.dtype == object and all(isinstance(v, str) for v in arr.tolist()):
            return arr
        raise SignatureError(
            f"{label}: expected string, given {describe(arr)}",
            column=_col(label),
            expected="string",
            given=describe(arr),
        )
    if t is DataType.binary:
        if arr.dtype.kind == "S":
            return arr.astype(object)
        if arr.dtype == object and all(isinstance(v, (bytes, bytearray)) for v in arr.tolist()):
            return arr
        raise SignatureError(
            f"{label}: expected binary, given {describe(arr)}",
            column=_col(label),
            expected="binary",
            given=describe(arr),
        )
    if t is DataType.datetime:
        return _to_datetime(arr, label)
    return cast_numeric(arr, np.dtype(t.numpy_dtype), label, t.value)


def _to_datetime(arr: np.ndarray, label: str) -> np.ndarray:
    if arr.dtype.kind == "M":
        if arr.dtype == np.dtype("datetime64[ns]"):
            return arr
        out = arr.astype("datetime64[ns]")
        if not np.array_equal(out.astype(arr.dtype), arr):
            raise SignatureError(
                f"{label}: expected datetime, given {arr.dtype} outside the nanosecond range",
                column=_col(label),
                expected="datetime",
                given=str(arr.dtype),
            )
        return out
    pd = _normalize.pandas()
    values = arr.tolist()
    import datetime as _dt

    if not all(isinstance(v, (str, _dt.date, _dt.datetime, np.datetime64)) for v in values):
        raise SignatureError(
            f"{label}: expected datetime, given {describe(arr)}",
            column=_col(label),
            expected="datetime",
            given=describe(arr),
        )
    try:
        parsed = pd.to_datetime(pd.Series(values, dtype=object), format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        raise SignatureError(
            f"{label}: expected datetime, given strings that are not ISO 8601 dates",
            column=_col(label),
            expected="datetime",
            given=describe(arr),
        ) from None
    if getattr(parsed.dtype, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return np.asarray(parsed.to_numpy(dtype="datetime64[ns]"))


def _col(label: str) -> str | None:
    return label.split("'")[1] if "'" in label else None


_PY_SCALARS: dict[DataType, tuple[type, ...]] = {
    DataType.boolean: (bool, np.bool_),
    DataType.integer: (int, np.integer),
    DataType.long: (int, np.integer),
    DataType.float: (float, int, np.floating, np.integer),
    DataType.double: (float, int, np.floating, np.integer),
    DataType.string: (str,),
    DataType.binary: (bytes, bytearray),
}


def check_value(v: Any, t: ValueType, where: str) -> None:
    """Check one nested value (array item, object property, map value) against its type."""
    if isinstance(t, (AnyType, SparkVector)):
        return
    if isinstance(t, Array):
        if not isinstance(v, (list, tuple, np.ndarray)):
            raise SignatureError(
                f"{where}: expected {t}, given {type(v).__name__}",
                column=_col(where),
                expected=str(t),
                given=type(v).__name__,
            )
        for i, item in enumerate(v):
            check_value(item, t.items, f"{where}[{i}]")
        return
    if isinstance(t, (Object, Map)):
        if not isinstance(v, dict):
            raise SignatureError(
                f"{where}: expected {t}, given {type(v).__name__}",
                column=_col(where),
                expected=str(t),
                given=type(v).__name__,
            )
        if isinstance(t, Map):
            for k, item in v.items():
                if not isinstance(k, str):
                    raise SignatureError(
                        f"{where}: map keys must be strings, given {type(k).__name__}",
                        column=_col(where),
                    )
                check_value(item, t.values, f"{where}[{k!r}]")
            return
        known = {p.name: p for p in t.properties}
        unknown = sorted(set(v) - set(known))
        if unknown:
            raise SignatureError(f"{where}: unknown properties {unknown}", column=_col(where))
        for p in t.properties:
            if p.name not in v or v[p.name] is None:
                if p.required:
                    raise SignatureError(
                        f"{where}: missing required property '{p.name}'", column=_col(where)
                    )
                continue
            check_value(v[p.name], p.dtype, f"{where}.{p.name}")
        return
    if t is DataType.datetime:
        import datetime as _dt

        if isinstance(v, (_dt.date, np.datetime64, str)):
            return
    else:
        ok = _PY_SCALARS[t]
        if isinstance(v, ok) and not (
            t is not DataType.boolean and isinstance(v, (bool, np.bool_))
        ):
            return
    raise SignatureError(
        f"{where}: expected {t.value}, given {type(v).__name__}",
        column=_col(where),
        expected=t.value,
        given=type(v).__name__,
    )


# --- tensors -------------------------------------------------------------------------


def _enforce_tensors(data: Any, schema: Schema) -> Enforced:
    specs = [s for s in schema.inputs if isinstance(s, TensorSpec)]
    if len(specs) == 1 and specs[0].name is None:
        return Enforced(coerce_tensor(_normalize.to_array(data, specs[0]), specs[0], "input"))
    if len(specs) == 1 and _normalize._is_frame(data) and specs[0].name not in data.columns:
        # One named tensor and a table without that column: the table's values are the
        # tensor (as for an unnamed one), e.g. an ONNX graph with a single [-1, n] input.
        spec = specs[0]
        arr = coerce_tensor(_normalize.to_array(data, spec), spec, f"input '{spec.name}'")
        return Enforced({str(spec.name): arr})
    feeds = _normalize.to_tensor_dict(data, specs)
    wanted = {s.name for s in specs}
    missing = [s.name for s in specs if s.name not in feeds]
    if missing:
        given = [str(k) for k in feeds][:20]
        raise SignatureError(
            f"missing required input{'s' if len(missing) > 1 else ''} "
            f"{missing}; the model expects {[s.name for s in specs]}, "
            f"given {given}",
            column=missing[0],
        )
    dropped = tuple(k for k in feeds if k not in wanted)
    out = {
        s.name: coerce_tensor(np.asarray(feeds[s.name]), s, f"input '{s.name}'")
        for s in specs
        if s.name is not None
    }
    return Enforced(out, dropped)


def coerce_tensor(arr: np.ndarray, spec: TensorSpec, label: str) -> np.ndarray:
    """Fit one array to a tensor spec: lossless dtype casts, rank and fixed dims checked."""
    want = spec.shape
    if len(want) != arr.ndim and not (arr.dtype == object and arr.ndim == 1):
        raise SignatureError(
            f"{label}: expected shape {list(want)}, given shape {list(arr.shape)}"
            f" (rank {len(want)} vs {arr.ndim})",
            column=_col(label),
            expected=str(list(want)),
            given=str(list(arr.shape)),
        )
    for w, g in zip(want, arr.shape):
        if w != -1 and w != g:
            raise SignatureError(
                f"{label}: expected shape {list(want)}, given shape {list(arr.shape)}",
                column=_col(label),
                expected=str(list(want)),
                given=str(list(arr.shape)),
            )
    target = np.dtype(spec.dtype)
    if target.kind in "biuf":
        return cast_numeric(arr, target, label, spec.dtype)
    if target.kind == "M":
        return _to_datetime(arr.ravel(), label).reshape(arr.shape)
    if target.kind in "OUS" and arr.dtype.kind in "OUS":
        return arr
    raise SignatureError(
        f"{label}: expected {spec.dtype}, given {describe(arr)}",
        column=_col(label),
        expected=spec.dtype,
        given=describe(arr),
    )


# --- params --------------------------------------------------------------------------


def enforce_params(
    params: dict[str, Any] | None,
    schema: ParamSchema | None,
) -> tuple[dict[str, Any] | None, list[str]]:
    """Validate params against the param schema and fill in defaults.

    Returns the params to pass to the model and the names of unknown params, which are
    ignored (callers report them). Raises SignatureError for a param of the wrong type.
    """
    given = dict(params or {})
    if schema is None:
        return None, sorted(given)
    out: dict[str, Any] = {}
    for spec in schema:
        out[spec.name] = (
            _check_param(given.pop(spec.name), spec) if spec.name in given else spec.default
        )
    return out, sorted(given)


def _check_param(value: Any, spec: ParamSpec) -> Any:
    where = f"param '{spec.name}'"
    if value is None:
        return spec.default
    if spec.shape is not None:
        if not isinstance(value, (list, tuple, np.ndarray)):
            raise SignatureError(
                f"{where}: expected {spec.type_name}, given {type(value).__name__}",
                column=spec.name,
                expected=spec.type_name,
                given=type(value).__name__,
            )
        return [_check_scalar_param(v, spec, f"{where}[{i}]") for i, v in enumerate(value)]
    return _check_scalar_param(value, spec, where)


def _check_scalar_param(value: Any, spec: ParamSpec, where: str) -> Any:
    t = spec.dtype
    if isinstance(t, Object):
        check_value(value, t, where)
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if t is DataType.datetime and isinstance(value, str):
        return _to_datetime(np.asarray([value], dtype=object), where)[0]
    arr = np.asarray([value], dtype=object if isinstance(value, (str, bytes)) else None)
    coerced = coerce_values(arr, t, where)
    item = coerced[0]
    return item.item() if isinstance(item, np.generic) else item
