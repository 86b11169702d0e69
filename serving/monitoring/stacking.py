"""Many small scored requests stacked into few batches before drift counting.

The monitor's thread stacks what it queued so each column is counted in one vectorised
pass over many requests instead of one pass per request. A frame of one number dtype is
staged as a bare rows tuple (cheaper to keep and to stack than the frame itself).
"""

from __future__ import annotations

from typing import Any

# A staged frame of one number dtype: (ROWS, column names, 2-D values).
ROWS = "satchel-monitor-rows"


def is_rows(value: Any) -> bool:
    """Whether ``value`` is a staged rows tuple (see :data:`ROWS`)."""
    return type(value) is tuple and len(value) == 3 and value[0] is ROWS


def as_frame(value: Any) -> Any:
    """A staged rows tuple as the DataFrame it was; anything else as it is."""
    if is_rows(value):
        import pandas as pd

        return pd.DataFrame(value[2], columns=list(value[1]))
    return value


def number_dtype(frame: Any) -> Any:
    """The frame's dtype when all its columns have one numpy number or bool dtype."""
    import numpy as np

    dtypes = set(frame.dtypes) if len(frame.columns) else set()
    if len(dtypes) != 1:
        return None
    (dtype,) = dtypes
    return dtype if isinstance(dtype, np.dtype) and dtype.kind in "iufb" else None


def stack(items: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Many small requests as few batches (one pass over each column instead of one per
    request): requests with the same columns are stacked together, so a column one
    request lacks is not counted as nulls of another; what does not stack stays as it
    came."""
    if len(items) < 2:
        return items
    import numpy as np
    import pandas as pd

    def layout(value: Any) -> Any:
        """What must match for values to stack: a frame's columns, an array's row
        shape (isinstance first: a missing attribute costs an exception)."""
        if isinstance(value, np.ndarray):
            return value.shape[1:]
        if is_rows(value):
            return ("frame", *value[1])
        if isinstance(value, pd.DataFrame):
            return ("frame", *value.columns.tolist())
        if isinstance(value, pd.Series):
            return ("series", value.name)
        return type(value).__name__

    groups: dict[tuple[Any, Any], list[tuple[Any, Any]]] = {}
    for item in items:
        groups.setdefault((layout(item[0]), layout(item[1])), []).append(item)
    out: list[tuple[Any, Any]] = []
    for group in groups.values():
        out += _stack_group(group)
    return out


def _stack_group(items: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    if len(items) < 2:
        return items
    try:
        data = _concat([d for d, _ in items])
        output = _concat([o for _, o in items])
    except (ValueError, TypeError):
        return items
    if data is _UNSTACKABLE or output is _UNSTACKABLE:
        return items
    return [(data, output)]


_UNSTACKABLE = object()


def _concat(parts: list[Any]) -> Any:
    """``parts`` end to end, or ``_UNSTACKABLE`` (mixed kinds)."""
    import numpy as np
    import pandas as pd

    if all(p is None for p in parts):
        return None
    if any(is_rows(p) for p in parts):
        if all(is_rows(p) for p in parts):  # staged with one dtype per set of columns
            return pd.DataFrame(np.concatenate([p[2] for p in parts]), columns=list(parts[0][1]))
        parts = [as_frame(p) for p in parts]
    if all(isinstance(p, pd.DataFrame) for p in parts):
        fast = _uniform_frames(parts)
        return fast if fast is not None else pd.concat(parts, ignore_index=True, copy=False)
    if all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts)
    if all(isinstance(p, pd.Series) for p in parts):
        first = parts[0]
        if isinstance(first.dtype, np.dtype) and all(
                p.dtype == first.dtype and p.name == first.name for p in parts):
            return pd.Series(np.concatenate([p.to_numpy() for p in parts]), name=first.name)
        return pd.concat(parts, ignore_index=True, copy=False)
    if all(isinstance(p, (pd.DataFrame, pd.Series)) for p in parts):
        return pd.concat(parts, ignore_index=True, copy=False)
    return _UNSTACKABLE


def _uniform_frames(frames: list[Any]) -> Any:
    """Frames with the same columns (see :func:`stack`), all of one numpy number or bool
    dtype, stacked as one 2-D array (about 2 us a frame; ``pd.concat`` takes 4-40 us per
    1-row frame, the more the more blocks it has). None when they are not like that
    (then ``pd.concat`` does it, column by column)."""
    import numpy as np
    import pandas as pd

    first = frames[0]
    dtype = number_dtype(first)  # once per batch: ~50 us
    if dtype is None:
        return None
    arrays = []
    for frame in frames:
        # A different array dtype sends the batch to pd.concat. A frame of several
        # number dtypes converts to their common one, as pd.concat would upcast it too:
        # numeric bins see the same float64 values either way.
        arr = frame.values  # as to_numpy(), a microsecond sooner
        if arr.dtype != dtype:
            return None
        arrays.append(arr)
    return pd.DataFrame(np.concatenate(arrays), columns=first.columns)
