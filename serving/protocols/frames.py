"""DataFrames built from decoded request values, shared by the JSON protocols.

Building a DataFrame's column labels is a third of a 1-row request's decode under
pandas 3 (its string index is Arrow-backed and built per call); the labels of the
column sets a server sees repeat request after request, so they are built once.
"""

from __future__ import annotations

import threading
from typing import Any

# Requests name their own columns: each cache of names (see keep) is bounded so made-up
# names cannot grow it.
_MAX_INDEXES = 256
# Longer lists of names are built each time (no common request has them; each cached
# list would be held as long as the server runs).
_MAX_NAMES = 1024
# Nor are names longer than this in all: 256 cached sets of names stay under 16 MiB
# however long the names a client makes up (a body may be 100 MiB of one name).
_MAX_NAME_CHARS = 65536
_indexes: dict[tuple[str, ...], Any] = {}
_lock = threading.Lock()


def column_index(names: list[str]) -> Any:
    """A ``pandas.Index`` of ``names`` (str labels), reused across requests.

    Only names that are all ``str`` are shared: ``1``, ``1.0`` and ``True`` are one dict
    key but three column labels. The drift monitor knows a set of columns by this
    object (listing an Arrow-backed Index costs it ~12 us a request).
    """
    import pandas as pd

    key = tuple(names)
    try:
        index = _indexes.get(key)
    except TypeError:  # an unhashable label
        return pd.Index(key)
    # A key found is all str: no value of another type equals a str, so a tuple equal
    # to a cached key holds the same labels. An Index is immutable but for its name,
    # which a model could set on its input's columns: one that was renamed is not
    # handed out again.
    if index is not None and index.name is None:
        return index
    index = pd.Index(key)
    with _lock:
        keep(_indexes, key, index, key)
    return index


def keep(cache: dict[Any, Any], key: Any, value: Any, names: tuple[Any, ...]) -> None:
    """Store ``value`` under ``key`` in a per-server cache of what clients name their
    columns, when ``names`` may be kept: all ``str``, at most 1,024 of them and 64 Ki
    characters in all. A full cache (256 entries) is emptied first. Every such cache
    goes through here, so what a server holds for made-up names is bounded in count
    and in bytes."""
    if (len(names) > _MAX_NAMES or not all(type(n) is str for n in names)
            or sum(map(len, names)) > _MAX_NAME_CHARS):
        return
    if len(cache) >= _MAX_INDEXES:
        cache.clear()
    cache[key] = value


def frame(block: Any, names: list[str], *, owned: bool = False) -> Any:
    """A DataFrame of a 2-D array (rows x columns) labelled ``names``.

    ``owned``: the caller built ``block`` for this frame alone, so the frame takes it
    as it is instead of the copy pandas 3 makes of an array by default (about 1 us of a
    1-row request). A block that is a view of other memory (a read-only message
    buffer) must be copied.
    """
    import pandas as pd

    return pd.DataFrame(block, columns=column_index(names), copy=False if owned else None)
