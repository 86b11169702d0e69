"""The detail fields of a version listing, read once for the whole listing on first use.

A listing (:mod:`satchel.registry.search`) selects only what it shows; the signature,
metadata and the rest of :data:`~satchel.registry.entities.DETAILS` are read when one
of them is first used, in one query for every version of the listing.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from sqlalchemy import select

from satchel.errors import RegistryNotFoundError
from satchel.registry import convert
from satchel.registry.entities import DETAILS, ModelVersion

V = convert.V
VERSIONS_JOIN = V.join(convert.M, convert.M.c.id == V.c.model_id)


_DETAIL_COLUMNS = (V.c.id, V.c.model_uuid, V.c.signature, V.c.flavors, V.c.git_commit,
                   V.c.training_data_digest, V.c.metadata, convert.T.c.size_bytes)


class Details:
    """Reads the detail fields of one listing's versions, once, on first use.

    It holds the versions weakly: a listing dropped before its details are used is
    freed at once (a version refers to its loader, so a strong reference back would
    make every listing a reference cycle, left to the cyclic collector).
    """

    def __init__(self, store: Any, matching: list[Any] | None) -> None:
        self._store = store
        # The listing's filters when it was read with them (a long or complete listing):
        # its details are then one query over the same filters, not one per 900 ids.
        self._matching = matching
        self._lock = threading.Lock()
        self._ids: list[int] = []
        self._refs: list[weakref.ReferenceType[ModelVersion]] = []

    def listed(self, ids: list[int], versions: list[ModelVersion]) -> None:
        self._ids = ids
        self._refs = [weakref.ref(v) for v in versions]

    def load(self) -> None:
        with self._lock:
            if not self._refs:
                return  # another thread loaded them
            found: dict[int, tuple[Any, ...]] = {}
            parsed: dict[str, Any] = {}
            with self._store._reader() as s:
                if self._matching is not None and len(self._ids) > convert.IN_CHUNK:
                    # Versions registered since match too: only listed ids are used.
                    result = s.execute(select(*_DETAIL_COLUMNS).select_from(
                        VERSIONS_JOIN.join(convert.T, convert.T.c.digest == V.c.digest))
                        .where(*self._matching))
                    rows = result.cursor.fetchall() if result.cursor is not None else []
                    result.close()
                    found = {row[0]: row for row in rows}
                else:
                    for chunk in convert._chunks(self._ids):
                        for row in s.execute(
                            select(*_DETAIL_COLUMNS)
                            .join(convert.T, convert.T.c.digest == V.c.digest)
                            .where(V.c.id.in_(chunk))
                        ):
                            found[row[0]] = tuple(row)
            for vid, ref in zip(self._ids, self._refs):
                version = ref()
                if version is None:
                    continue
                values = version.__dict__
                row = found.get(vid)
                if row is None:
                    values["_details"] = _Deleted(version.name, version.version)
                    continue
                values["model_uuid"] = row[1]
                values["signature"] = convert.parsed_once(parsed, row[2])
                values["flavors"] = tuple(convert.parsed_once(parsed, row[3]) or ())
                values["git_commit"] = row[4]
                values["training_data_digest"] = row[5]
                meta = convert.parsed_once(parsed, row[6])
                values["metadata"] = dict(meta) if meta else {}
                values["size_bytes"] = row[7] or 0
                del values["_details"]
            self._ids, self._refs = [], []


class _Deleted:
    """The loader of a listed version deleted before its details were read."""

    def __init__(self, name: str, version: int) -> None:
        self.name, self.version = name, version

    def load(self) -> None:
        raise RegistryNotFoundError(
            f"version {self.version} of {self.name!r} was deleted after it was listed; "
            f"its details ({', '.join(DETAILS)}) are gone", kind="version", name=self.name)
