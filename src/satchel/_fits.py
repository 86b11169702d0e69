"""Whether a DataFrame already fits a column schema as it is: the coercion fast path.

Most calls send what the signature says, and at a fast model's budget (a 1,000-row
statsmodels OLS predicts in ~45 us) checking that must cost a few microseconds and copy
nothing. These checks only ever say "fits as it is" or "take the converting path" in
:mod:`satchel.coercion`, which applies the one policy and writes the error messages.
Where pandas' block manager is visible they read it (dtypes and 2-D blocks of
same-typed columns); otherwise they fall back to the public API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from satchel import _normalize
from satchel.schema import ColSpec, DataType, Schema


@dataclass(frozen=True)
class ColumnPlan:
    """What a column schema needs, worked out once per schema."""

    names: tuple[str, ...]
    name_list: list[str]
    specs: tuple[ColSpec, ...]
    # numpy dtype a column already has when no conversion is needed (None: no such dtype)
    exact: tuple[np.dtype[Any] | None, ...]
    # True for a string column: accepted as it is when it holds only str (docs/coercion.md)
    text: tuple[bool, ...]
    all_required: bool
    # the one dtype of every column when they all share it and all are required (the
    # common all-float model): then the frame's blocks alone say whether it fits
    uniform: np.dtype[Any] | None
    # The last column Index seen to equal ``names`` (one slot). pandas Indexes are
    # immutable, so the same object needs no second comparison: under pandas 3 a
    # ``tolist()`` of 21 text labels costs ~5 us, the whole budget of a fast model.
    seen: list[Any] = field(default_factory=lambda: [None], compare=False, hash=False)
    # the names as pandas 3 stores text labels (an Arrow array), built on first use
    arrow: list[Any] = field(default_factory=list, compare=False, hash=False)
    # a pandas Index of ``names`` for frames built here (column_index), built on first use
    index: list[Any] = field(default_factory=list, compare=False, hash=False)


def plan(schema: Schema) -> ColumnPlan:
    """The plan of a column schema (cached on it)."""
    # Cached on the schema itself: schemas are immutable and the plan derives from them
    # alone. An lru_cache would hash the whole schema on every call (~2 us at 21 columns,
    # a third of the 1,000-row budget of a fast model).
    cached: ColumnPlan | None = schema.__dict__.get("_coercion_plan")
    if cached is None:
        cached = _make_plan(schema)
        object.__setattr__(schema, "_coercion_plan", cached)
    return cached


def _make_plan(schema: Schema) -> ColumnPlan:
    specs = tuple(s for s in schema.inputs if isinstance(s, ColSpec))
    exact: list[np.dtype[Any] | None] = []
    for s in specs:
        if isinstance(s.type, DataType) and s.type not in (DataType.string, DataType.binary):
            exact.append(np.dtype(s.type.numpy_dtype))
        else:
            exact.append(None)
    names = tuple(schema.names())
    required = all(s.required for s in specs)
    same = set(exact)
    uniform = exact[0] if required and len(same) == 1 and exact[0] is not None else None
    return ColumnPlan(
        names,
        list(names),
        specs,
        tuple(exact),
        tuple(s.type is DataType.string for s in specs),
        required,
        uniform,
    )


def column_index(plan: ColumnPlan) -> Any:
    """A pandas Index of the plan's names, built once: frames built from non-frame input
    share it (an Index is immutable), and then pass :func:`same_columns` by identity."""
    if not plan.index:
        plan.index.append(_normalize.pandas().Index(plan.name_list))
    return plan.index[0]


def same_columns(columns: Any, plan: ColumnPlan) -> bool:
    """True when a frame's column Index holds exactly the plan's names, in order.

    Cheapest first: the Index last seen to match (identity), then under pandas 3 one
    comparison of its Arrow array, then the list. False only from the list comparison,
    so a "no" is always exact.
    """
    if columns is plan.seen[0]:
        return True
    pa_array = getattr(getattr(columns, "_values", None), "_pa_array", None)
    if pa_array is not None:
        if not plan.arrow:
            ref = _normalize.pandas().Index(plan.name_list)
            plan.arrow.append(getattr(getattr(ref, "_values", None), "_pa_array", None))
        ref_array = plan.arrow[0]
        try:
            equal = ref_array is not None and bool(pa_array.equals(ref_array))
        except Exception:  # pyarrow's comparison of unlike types; the list decides
            equal = False
        if equal:
            plan.seen[0] = columns
            return True
    if columns.tolist() == plan.name_list:
        plan.seen[0] = columns
        return True
    return False


def fits(df: Any, plan: ColumnPlan) -> bool:
    """True when every column is already what the table accepts as is: its exact dtype,
    or only ``str`` for a string column, and no required column has nulls.

    This is the common case (a client sends what the signature says) and must cost
    microseconds: it avoids building a new DataFrame. Anything else takes the slow path,
    which also produces the error messages.
    """
    if plan.uniform is not None:
        uniform = _uniform_ok(df, plan.uniform)
        if uniform is not None:
            return uniform
    dtypes = _dtypes(df)
    need_check: list[str] = []
    text: list[int] = []
    for i, (dt, want, spec) in enumerate(zip(dtypes, plan.exact, plan.specs)):
        if want is None:
            if not plan.text[i]:
                return False
            text.append(i)
        elif dt != want:
            return False
        elif spec.required and dt.kind in "fM":
            need_check.append(plan.names[i])
    if not len(df):
        return not text
    for i in text:
        if not _all_str(df, i):
            return False
    if not need_check:
        return True
    if plan.all_required:
        blocks = _float_blocks(df)
        if blocks is not None:
            # min() propagates NaN and allocates nothing: the cheapest "any NaN?" numpy
            # has, once per block of same-typed columns instead of per column (a
            # to_numpy() of a frame with several blocks copies all of it).
            return not any(np.isnan(_MIN(b, axis=None)) for b in blocks)
    for name in need_check:
        v = df[name].to_numpy()
        if np.isnan(_MIN(v, axis=None)) if v.dtype.kind == "f" else np.isnat(v).any():
            return False
    return True


# ndarray.min() without its Python wrapper (~0.5 us a call at this budget)
_MIN = np.minimum.reduce


def _uniform_ok(df: Any, want: np.dtype[Any]) -> bool | None:
    """For a schema whose columns are all required and of dtype ``want``: whether every
    block of the frame has that dtype and no NaN/NaT, or None when the blocks cannot be
    seen (then the column-wise check decides)."""
    arrays = getattr(getattr(df, "_mgr", None), "arrays", None)
    if arrays is None:
        return None
    for a in arrays:
        if not isinstance(a, np.ndarray) or a.dtype != want:
            return False
    if want.kind == "f":
        # One min() per block of same-typed columns: it propagates NaN and allocates
        # nothing (a to_numpy() of a frame with several blocks would copy it all first).
        # ``v != v`` is the NaN test on the scalar it returns, ~10x cheaper than isnan.
        for a in arrays:
            if a.size:
                v = _MIN(a, axis=None)
                if v != v:
                    return False
        return True
    if want.kind == "M":
        return None
    return True


def _float_blocks(df: Any) -> list[np.ndarray] | None:
    """The frame's float blocks (2-D arrays of same-typed columns), or None when that
    view is unavailable or a block needs a column-wise check (datetimes)."""
    arrays = getattr(getattr(df, "_mgr", None), "arrays", None)
    if arrays is None:
        return None
    out = []
    for a in arrays:
        kind = a.dtype.kind if isinstance(a, np.ndarray) else _TEXT_KINDS.get(str(a.dtype))
        if kind == "f":
            out.append(a)
        elif kind is None or kind not in "biuO":
            return None  # datetimes (NaT) are checked column by column
    return out


# Text blocks hold string columns, which _all_str has checked already.
_TEXT_KINDS = {"string": "O", "str": "O"}


def _all_str(df: Any, i: int) -> bool:
    # An object column of str, or pandas' string dtype, is accepted as is; nulls only in
    # an optional column, and there the slow path writes them as None (the table).
    get = getattr(getattr(df, "_mgr", None), "iget_values", None)
    # df.iloc[:, i] builds a Series (~15-35 us); the block manager hands out the values.
    values = get(i) if get is not None else df.iloc[:, i].array
    dt = values.dtype
    if dt.kind == "O" and isinstance(dt, np.dtype):
        if not _object_is_text():
            # pandas 3 keeps text as its "str" dtype: an object column goes through the
            # slow path and comes out as that, as a JSON or CSV body's does, so a model
            # sees one dtype for a string column whichever entry point fed it.
            return False
        infer = _normalize.pandas().api.types.infer_dtype
        return bool(infer(values, skipna=False) == "string")
    if str(dt) in _TEXT_KINDS:
        return not bool(values.isna().any())
    return False


def _dtypes(df: Any) -> list[Any]:
    # DataFrame.dtypes builds a Series (~15 us); pandas' block manager lists the
    # column dtypes in order in ~1 us. Fall back to the public API if that changes.
    get = getattr(getattr(df, "_mgr", None), "get_dtypes", None)
    return list(get()) if get is not None else list(df.dtypes.tolist())


_TEXT_IS_OBJECT: list[bool] = []


def _object_is_text() -> bool:
    """Whether the running pandas holds text in object columns (pandas 2) rather than
    its "str" dtype (pandas 3); asked once."""
    if not _TEXT_IS_OBJECT:
        pd = _normalize.pandas()
        _TEXT_IS_OBJECT.append(pd.Series(["a"]).dtype == object)
    return _TEXT_IS_OBJECT[0]
