"""Each version's rendered JSON in a search reply, reused while its row is unchanged.

The whole-reply cache (:mod:`satchel.serving.registry.response_cache`) is emptied by
any write; the next search of thousands of versions then rendered every one of them
again (about 90 % of a cold search of 10,000). Here a version's JSON fragment is kept
with the exact values it was rendered from: the listed row as the database returned
it, its tags and its aliases. A search still reads every matching row from the
database (so any change is seen, including an edit made behind the registry's back,
without the audit trail), builds no entities, and renders only the versions whose
values differ from the kept ones; the others' bytes are joined as they are.

Rows come from :meth:`satchel.registry.search.Searches.version_rows`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from satchel.registry.search import ROW_ID, Aliases, Tags
from satchel.serving.registry.response_cache import render

#: At most this many versions' fragments are kept (about 1 kB each with their row);
#: past it, the cache starts again empty.
DEFAULT_MAX_ENTRIES = 50_000

# Positions of the listed fields in a row (satchel.registry.search.LISTED).
_NAME, _VERSION, _STAGE, _SOURCE, _BY, _CREATED, _UPDATED, _RUN, _DESCRIPTION = (
    0, 1, 3, 4, 5, 6, 7, 8, 9)
_NO_ALIASES: tuple[str, ...] = ()


def version_document(row: Sequence[Any], tags: dict[str, str] | None,
                     aliases: Sequence[str]) -> dict[str, Any]:
    """A listed version in MLflow's JSON form (the same document as
    :func:`satchel.serving.registry.app_mlflow.version_json` of its entity)."""
    return {
        "name": row[_NAME],
        "version": str(row[_VERSION]),
        "creation_timestamp": row[_CREATED],
        "last_updated_timestamp": row[_UPDATED],
        "user_id": row[_BY],
        "current_stage": row[_STAGE],
        "description": row[_DESCRIPTION],
        "source": row[_SOURCE],
        "run_id": row[_RUN] or "",
        "status": "READY",
        "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()],
        "aliases": list(aliases),
        "run_link": "",
    }


class VersionFragments:
    """Rendered versions by row id, each with the values it was rendered from.

    Safe to share between the server's threads: a fragment is replaced whole, and two
    threads rendering the same changed version at once both render it (same bytes).
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._kept: dict[int, tuple[Sequence[Any], dict[str, str] | None,
                                    tuple[str, ...], bytes]] = {}
        self._lock = threading.Lock()
        self.rendered = 0
        self.reused = 0

    def array(self, rows: Sequence[Sequence[Any]], tags: Tags, aliases: Aliases) -> bytes:
        """The JSON array of ``rows`` (with their ``tags`` and ``aliases`` by row id)."""
        kept = self._kept
        get = kept.get
        tags_of = tags.get
        aliases_of = aliases.get
        out: list[bytes] = []
        append = out.append
        fresh = 0
        for row in rows:
            vid = row[ROW_ID]
            tg = tags_of(vid)
            al = aliases_of(vid, _NO_ALIASES)
            hit = get(vid)
            # Every rendered value is compared, not a version counter: a row edited
            # without an audit entry differs here too.
            if hit is not None and hit[0] == row and hit[1] == tg and hit[2] == al:
                append(hit[3])
                continue
            body = render(version_document(row, tg, al))
            fresh += 1
            # Copies: the caller's tag dict is its own; a later change to it must not
            # change what this fragment is compared with.
            kept[vid] = (tuple(row), dict(tg) if tg is not None else None, tuple(al), body)
            append(body)
        with self._lock:
            self.rendered += fresh
            self.reused += len(out) - fresh
            if len(kept) > self.max_entries:
                kept.clear()
        return b"[" + b",".join(out) + b"]"

    def __len__(self) -> int:
        return len(self._kept)
