"""Rendered replies of the registry's read routes, kept while the registry is unchanged.

A reply is stored with the registry generation it was computed at (the audit head's
sequence number, read from the database: :meth:`SqlStore.generation`), and served again
only while the database still reports that generation. Every write advances it in the
write's own transaction, so a change made through another worker, another server or the
Python API on the same database is seen by the next read here: no process-local
invalidation is involved.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

DEFAULT_MAX_BYTES = 64 << 20


def _orjson() -> Any:
    try:
        import orjson
    except ImportError:  # optional: the json module renders the same document
        return None
    return orjson


_ORJSON = _orjson()


def render(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON (orjson when installed: a listing of 10,000
    versions renders in a fraction of the json module's time)."""
    if _ORJSON is not None:
        try:
            return bytes(_ORJSON.dumps(value))
        except (TypeError, ValueError):
            pass  # e.g. a lone surrogate in a string: the json module escapes it
    return json.dumps(value, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode("utf-8", "surrogatepass")


class ResponseCache:
    """Reply bodies by request key, each valid for one registry generation.

    Bounded by the total size of the bodies (least recently used first out); a body
    larger than a quarter of the bound is not kept.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[int, bytes]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, generation: int) -> bytes | None:
        """The body stored for ``key`` at ``generation``, else None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != generation:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[1]

    def put(self, key: Hashable, generation: int, body: bytes) -> None:
        """Keep ``body`` for ``key``, computed at ``generation``."""
        if len(body) > self.max_bytes // 4:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._size -= len(old[1])
            self._entries[key] = (generation, body)
            self._size += len(body)
            while self._size > self.max_bytes and self._entries:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._size -= len(dropped)

    def __len__(self) -> int:
        return len(self._entries)


def request_key(route: str, params: dict[str, Any]) -> Hashable:
    """A hashable key for a read: the route and its parameters (lists as tuples)."""
    return (route, tuple(sorted(
        (k, tuple(map(str, v)) if isinstance(v, list) else str(v)) for k, v in params.items()
    )))
