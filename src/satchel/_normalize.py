"""Turn the input shapes ``predict`` accepts into the shape a schema needs, and outputs
into one of DataFrame, Series, ndarray or dict of ndarrays.

pandas is imported on first use so that ``import satchel`` and ``load_model`` stay
light for models that never see a DataFrame.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from satchel.errors import SignatureError
from satchel.schema import TensorSpec


def pandas() -> Any:
    """The pandas module, imported on first use."""
    import pandas as pd

    return pd


def pandas_kind(obj: Any) -> str | None:
    """``"frame"`` for a DataFrame, ``"series"`` for a Series, else None.

    The one pandas probe: it never imports pandas (an object can only be a DataFrame
    when pandas is already loaded), so callers on light paths stay light.
    """
    pd = sys.modules.get("pandas")
    if pd is None:
        return None
    if isinstance(obj, pd.DataFrame):
        return "frame"
    if isinstance(obj, pd.Series):
        return "series"
    return None


def _is_frame(data: Any) -> bool:
    return pandas_kind(data) == "frame"


def _is_series(data: Any) -> bool:
    return pandas_kind(data) == "series"


def to_frame(data: Any, names: Sequence[str], columns: Any = None) -> Any:
    """A DataFrame from any accepted input, for a column schema with ``names``.

    ``columns``: a pandas Index of ``names`` to reuse for a one-column frame (building
    the labels is a third of a one-row frame's cost under pandas 3, and a frame that
    carries the plan's own Index passes the column check by identity).
    """
    if _is_frame(data):
        return data
    pd = pandas()
    if isinstance(data, pd.Series):
        if len(names) == 1:
            return data.to_frame(name=names[0])
        # A Series with named entries is one row (MLflow and pandas both read it so).
        return data.to_frame().T.reset_index(drop=True)
    if isinstance(data, str) and len(names) == 1:
        # one text for a one-column model (MLflow too)
        return _one_column(pd, np.array([data], dtype=object), names, columns)
    if isinstance(data, dict):
        if data and all(np.ndim(v) == 0 for v in data.values()):
            return pd.DataFrame([data])
        return pd.DataFrame(data)
    if isinstance(data, list):
        if not data:
            # object columns: an empty list says nothing about types, and pandas would make
            # each column float64 (which a string column refuses)
            return pd.DataFrame({n: pd.Series([], dtype=object) for n in names})
        if all(isinstance(r, dict) for r in data):
            return pd.DataFrame.from_records(data)
        data = _list_array(data)
    if isinstance(data, np.ndarray):
        if data.ndim == 1 and len(names) == 1:
            return _one_column(pd, data, names, columns)
        if data.ndim == 2 and data.shape[1] == len(names):
            # Positional: an array's columns are taken in the signature's order.
            return pd.DataFrame({n: data[:, i] for i, n in enumerate(names)})
        raise SignatureError(
            f"input is an array of shape {list(data.shape)}; the model expects "
            f"{len(names)} columns {list(names)}",
            expected=f"{len(names)} columns",
            given=f"shape {list(data.shape)}",
        )
    raise SignatureError(
        f"input of type {type(data).__name__} is not supported; give a DataFrame, "
        "a dict of columns, a list of records or a 2-D array",
        given=type(data).__name__,
    )


def _list_array(items: list[Any]) -> np.ndarray:
    """A list's values (or rows) as an array, every value as it was given."""
    # numpy's fixed-width text drops trailing NULs and turns numbers given beside texts
    # into texts (["a", 1] -> ["a", "1"]): the policy must see the values as given, as it
    # does in a DataFrame, so texts stay Python objects. A list that starts with a text
    # goes straight to object (no fixed-width array built and thrown away).
    if isinstance(items[0], (str, bytes)) or _ragged(items):
        return np.asarray(items, dtype=object)
    arr = np.asarray(items)
    return np.asarray(items, dtype=object) if arr.dtype.kind in "US" else arr


def _ragged(rows: list[Any]) -> bool:
    lengths = {len(r) if isinstance(r, (list, tuple)) else -1 for r in rows}
    return len(lengths) > 1


def to_array(data: Any, spec: TensorSpec) -> np.ndarray:
    """An ndarray for a single unnamed tensor input."""
    if _is_frame(data):
        arr = data.to_numpy()
        if len(spec.shape) > 2 and arr.ndim == 2:
            # C-order reshape of flattened rows into the tensor's trailing dims, as MLflow.
            trailing = [d for d in spec.shape[1:]]
            if -1 not in trailing:
                arr = arr.reshape((arr.shape[0], *trailing))
        return np.asarray(arr)
    if _is_series(data):
        return np.asarray(data.to_numpy())
    if isinstance(data, dict):
        if len(data) == 1:
            return np.asarray(next(iter(data.values())))
        raise SignatureError(
            f"input has {len(data)} named arrays; the model takes one tensor",
            given=f"{len(data)} arrays",
        )
    return np.asarray(data)


def to_tensor_dict(data: Any, specs: Sequence[TensorSpec]) -> dict[str, Any]:
    """A dict name -> array for named tensor inputs."""
    if isinstance(data, dict):
        return data
    if _is_frame(data):
        out: dict[str, Any] = {}
        by_name = {s.name: s for s in specs}
        for c in data.columns:
            col = data[c]
            spec = by_name.get(c)
            if col.dtype == object and len(col) and isinstance(col.iloc[0], (list, np.ndarray)):
                arr = np.stack([np.asarray(v) for v in col.tolist()])
            else:
                arr = col.to_numpy()
            if spec is not None and len(spec.shape) != arr.ndim and -1 not in spec.shape[1:]:
                arr = arr.reshape((len(col), *spec.shape[1:]))
            out[str(c)] = arr
        return out
    if len(specs) == 1 and specs[0].name is not None:
        return {specs[0].name: np.asarray(data)}
    raise SignatureError(
        f"input of type {type(data).__name__} cannot feed named tensors "
        f"{[s.name for s in specs]}; give a dict of arrays",
        given=type(data).__name__,
    )


def without_schema(data: Any) -> Any:
    """Normalise input for a model with no input schema: records become a DataFrame."""
    if isinstance(data, list):
        if data and all(isinstance(r, dict) for r in data):
            return pandas().DataFrame.from_records(data)
        return np.asarray(data)
    return data


def _one_column(pd: Any, values: np.ndarray, names: Sequence[str], columns: Any) -> Any:
    # The same frame as pd.DataFrame({name: values}) (dtypes and values, pandas 2 and 3;
    # tests/test_coercion.py) in half the time: a 2-D array under a ready Index. copy=True
    # as a dict's values are copied: a model that writes to its input never reaches the
    # caller's array.
    labels = columns if columns is not None else [names[0]]
    return pd.DataFrame(values.reshape(-1, 1), columns=labels, copy=True)


def output(result: Any) -> Any:
    """Normalise a model's output to DataFrame, Series, ndarray or dict of ndarrays."""
    if type(result) in _AS_IS:
        return result  # the exact classes found below before: one set lookup
    if isinstance(result, np.ndarray) or _is_frame(result) or _is_series(result):
        if _exact(type(result)):
            _AS_IS.add(type(result))
        return result
    if isinstance(result, dict):
        return {k: v if _is_frame(v) or _is_series(v) else np.asarray(v) for k, v in result.items()}
    if isinstance(result, (list, tuple)):
        return np.asarray(result, dtype=object if _ragged(list(result)) else None)
    if np.ndim(result) == 0:
        return np.asarray([result])
    return np.asarray(result)


# Exact classes (ndarray, DataFrame, Series) seen to pass as they are: a model returns
# the same class every call, and one set lookup is cheaper than three isinstance probes.
_AS_IS: set[type] = set()


def _exact(cls: type) -> bool:
    if cls is np.ndarray:
        return True
    pd = sys.modules.get("pandas")
    return pd is not None and cls in (pd.DataFrame, pd.Series)


def num_rows(data: Any) -> int:
    """Rows in an input or output: its length, or the length of its first array (the one
    row-count helper; a scalar counts as one row)."""
    if isinstance(data, dict):
        first = next(iter(data.values()), None)
        return 0 if first is None else len(first)
    try:
        return len(data)
    except TypeError:
        return 1
