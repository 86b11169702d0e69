"""What adaptive batching may merge, and how: a request's layout key (params, column
names and dtypes, or array dtype and trailing shape), the merged input of requests of one
layout, and the merged call's output cut back into each request's rows."""

from __future__ import annotations

import json
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from satchel import _normalize
from satchel.model import Prediction
from satchel.serving.protocols import frames


class OutputRowsError(ValueError):
    """A merged call's output does not hold one row per input row."""


def _params_key(params: dict[str, Any] | None) -> str | None:
    if not params:
        return ""
    try:
        return json.dumps(params, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return None


def batch_key(data: Any, params: dict[str, Any] | None) -> tuple[Hashable | None, int]:
    """(key, rows): requests with equal non-None keys may be merged into one call.

    The key holds the params and the input's layout: a DataFrame's column names and
    dtypes, an array's dtype and trailing shape, or each named array's. Anything else
    (lists, categoricals, duplicate columns, no rows) gets key None and runs alone.
    """
    pkey = _params_key(params)
    if isinstance(data, np.ndarray):
        if data.ndim == 0 or data.dtype.hasobject and data.ndim > 1 or pkey is None:
            return None, _normalize.num_rows(data)
        rows = int(data.shape[0])
        return (None if rows == 0 else ("nd", pkey, data.dtype.str, data.shape[1:])), rows
    if isinstance(data, dict):
        parts: list[Any] = []
        rows = -1
        for name, arr in data.items():
            if not isinstance(arr, np.ndarray) or arr.ndim == 0 or \
                    (rows >= 0 and arr.shape[0] != rows):
                return None, _normalize.num_rows(data)
            rows = int(arr.shape[0])
            parts.append((str(name), arr.dtype.str, arr.shape[1:]))
        if rows <= 0 or pkey is None:
            return None, max(rows, 0)
        return ("dict", pkey, tuple(parts)), rows
    pd = _normalize.pandas()
    if isinstance(data, pd.DataFrame):
        rows = len(data)
        cols = data.columns
        if rows == 0 or pkey is None or not cols.is_unique or isinstance(
                cols, pd.MultiIndex):
            return None, rows
        dtypes = _dtypes(data)
        if any(isinstance(t, pd.CategoricalDtype) for t in dtypes):
            return None, rows  # categories differ between requests
        return ("df", pkey, _names(cols), dtypes), rows
    return None, _normalize.num_rows(data)


# column Index object -> (that Index, its labels as a tuple). The decoders share one
# Index per set of names (protocols/frames.py), and listing an Arrow-backed pandas 3
# Index costs ~10 us a request; an Index is immutable, so its labels are listed once.
_LABELS: dict[int, tuple[Any, tuple[Any, ...]]] = {}


def _names(cols: Any) -> tuple[Any, ...]:
    hit = _LABELS.get(id(cols))
    if hit is not None and hit[0] is cols:
        return hit[1]
    labels = tuple(cols)
    # the reference to cols keeps its id from being reused; many or long names are not
    # held past the request (frames.keep)
    frames.keep(_LABELS, id(cols), (cols, labels), labels)
    return labels


def _dtypes(frame: Any) -> tuple[Any, ...]:
    # DataFrame.dtypes builds a Series (~15 us); pandas 2's block manager lists the
    # column dtypes in order in ~1 us. Fall back to the public API if that changes.
    get = getattr(getattr(frame, "_mgr", None), "get_dtypes", None)
    return tuple(get()) if get is not None else tuple(frame.dtypes.tolist())


def concat(parts: Sequence[Any]) -> Any:
    """Inputs of one layout (see :func:`batch_key`) as one input, rows in order."""
    first = parts[0]
    if isinstance(first, np.ndarray):
        return np.concatenate(parts)
    if isinstance(first, dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in first}
    pd = _normalize.pandas()
    dtypes = _dtypes(first)
    if len(set(dtypes)) == 1 and isinstance(dtypes[0], np.dtype) and dtypes[0].kind in "biuf":
        # One numeric block (the usual parsed JSON body): stack the values at once,
        # far cheaper than pd.concat for many small frames.
        values = np.concatenate([p.to_numpy() for p in parts])
        return pd.DataFrame(values, columns=first.columns)
    return pd.concat(parts, ignore_index=True)


def _out_rows(output: Any) -> int | None:
    if isinstance(output, dict):
        lengths = {_out_rows(v) for v in output.values()}
        return lengths.pop() if len(lengths) == 1 else None
    if isinstance(output, np.ndarray):
        return int(output.shape[0]) if output.ndim >= 1 else None
    try:
        return len(output)
    except TypeError:
        return None


def _slice(output: Any, start: int, stop: int) -> Any:
    if isinstance(output, dict):
        return {k: _slice(v, start, stop) for k, v in output.items()}
    if isinstance(output, np.ndarray):
        return output[start:stop]
    return output.iloc[start:stop]  # encoders ignore the index


def split(result: Prediction, counts: Sequence[int]) -> list[Prediction]:
    """A merged call's prediction cut back into one per request (``counts`` rows each).

    Raises:
        OutputRowsError: the output does not hold ``sum(counts)`` rows.
    """
    total = sum(counts)
    have = _out_rows(result.output)
    if have != total:
        raise OutputRowsError(f"the output holds {have} rows for {total} input rows")
    out: list[Prediction] = []
    start = 0
    for n in counts:
        out.append(Prediction(_slice(result.output, start, start + n), result.dropped_columns,
                              result.unknown_params, n))
        start += n
    return out
