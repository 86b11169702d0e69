"""Rows to entities, in bulk (one query per related table, not one per row)."""

from __future__ import annotations

import gc
import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, bindparam, select

from satchel.registry.entities import ModelVersion, RegisteredModel
from satchel.registry.tables import (
    AliasRow,
    ModelTagRow,
    RegisteredModelRow,
    TreeRow,
    VersionRow,
    VersionTagRow,
)

V: Table = VersionRow.__table__  # type: ignore[assignment]
M: Table = RegisteredModelRow.__table__  # type: ignore[assignment]
A: Table = AliasRow.__table__  # type: ignore[assignment]
VT: Table = VersionTagRow.__table__  # type: ignore[assignment]
MT: Table = ModelTagRow.__table__  # type: ignore[assignment]
T: Table = TreeRow.__table__  # type: ignore[assignment]

# SQL engines limit bound parameters per statement; chunk IN lists below that.
IN_CHUNK = 900


_TAGS_OF = select(VT).where(VT.c.version_id == bindparam("vid"))
_ALIASES_OF = select(A).where(A.c.model_id == bindparam("mid"))


def _chunks(ids: Sequence[int]) -> list[Sequence[int]]:
    return [ids[i : i + IN_CHUNK] for i in range(0, len(ids), IN_CHUNK)]


Tags = dict[int, dict[str, str]]
Aliases = dict[tuple[int, int], list[str]]


def related(session: Any, rows: Sequence[Any]) -> tuple[Tags, Aliases]:
    """The tags (by version id) and aliases (by model id and version) of ``rows``."""
    tags: Tags = defaultdict(dict)
    aliases: Aliases = defaultdict(list)
    ids = [r.id for r in rows]
    model_ids = sorted({r.model_id for r in rows})
    if len(rows) == 1:
        # One version (a resolve): prebuilt statements, no IN lists to build.
        for t in session.execute(_TAGS_OF, {"vid": ids[0]}).all():
            tags[t.version_id][t.key] = t.value
        for a in session.execute(_ALIASES_OF, {"mid": model_ids[0]}).all():
            aliases[(a.model_id, a.version)].append(a.alias)
        return tags, aliases
    for chunk in _chunks(ids):
        for t in session.execute(select(VT).where(VT.c.version_id.in_(chunk))).all():
            tags[t.version_id][t.key] = t.value
    for chunk in _chunks(model_ids):
        for a in session.execute(select(A).where(A.c.model_id.in_(chunk))).all():
            aliases[(a.model_id, a.version)].append(a.alias)
    return tags, aliases


def versions(
    session: Any,
    rows: Sequence[Any],
    names: dict[int, str] | None,
    found: tuple[Tags, Aliases] | None = None,
) -> list[ModelVersion]:
    """ModelVersions for Core rows of ``registry_versions`` (``names``: model id -> name,
    or None when the rows carry the name as ``model_name``).

    ``found`` is the rows' tags and aliases when the caller already fetched them (a
    search fetches them in one query each); otherwise they are looked up here. Rows
    must carry ``size_bytes`` (joined from ``registry_trees``).
    """
    if not rows:
        return []
    tags, aliases = found if found is not None else related(session, rows)
    # A long listing allocates tens of thousands of acyclic objects; the cyclic
    # collector would walk the whole heap several times meanwhile (a third of the
    # conversion's time at 10,000 versions). Pause it for the loop only.
    pause = len(rows) > 1000 and gc.isenabled()
    if pause:
        gc.disable()
    try:
        return _build(rows, names, tags, aliases)
    finally:
        if pause:
            gc.enable()


_COLUMNS = ("id", "model_id", "version", "digest", "stage", "source", "model_uuid",
            "signature", "flavors", "created_by", "created_at", "updated_at", "run_id",
            "git_commit", "training_data_digest", "metadata", "description", "size_bytes")


def parsed_once(cache: dict[str, Any], text: str | None) -> Any:
    """``json.loads(text)`` (None for no text), each distinct text parsed once per
    ``cache``: versions of one model usually share a signature, flavors and metadata.
    The value is shared: a caller copies what it hands out mutable."""
    if not text:
        return None
    value = cache.get(text)
    if value is None:
        value = cache[text] = json.loads(text)
    return value


def _build(rows: Sequence[Any], names: dict[int, str] | None, tags: Tags,
           aliases: Aliases) -> list[ModelVersion]:
    parsed: dict[str, Any] = {}

    def decoded(text: str | None) -> Any:
        return parsed_once(parsed, text)  # metadata is copied per version below

    # Rows by position: attribute access on SQLAlchemy rows costs more than the rest of
    # the conversion at 10,000 versions.
    at = {k: i for i, k in enumerate(rows[0]._fields)}
    (i_id, i_model, i_version, i_digest, i_stage, i_source, i_uuid, i_sig, i_flavors,
     i_by, i_at, i_upd, i_run, i_git, i_data, i_meta, i_desc, i_size) = (
        at[k] for k in _COLUMNS)
    i_name = at["model_name"] if names is None else -1
    no_aliases: tuple[str, ...] = ()
    of = ModelVersion._of
    out = []
    for r in map(tuple, rows):
        found_aliases = aliases.get((r[i_model], r[i_version]))
        meta = decoded(r[i_meta])
        out.append(of({
            "name": r[i_name] if names is None else names[r[i_model]],
            "version": r[i_version],
            "digest": r[i_digest],
            "stage": r[i_stage],
            "aliases": tuple(sorted(found_aliases)) if found_aliases else no_aliases,
            "source": r[i_source],
            "model_uuid": r[i_uuid],
            "signature": decoded(r[i_sig]),
            "flavors": tuple(decoded(r[i_flavors]) or ()),
            "created_by": r[i_by],
            "created_at": r[i_at],
            "updated_at": r[i_upd],
            "run_id": r[i_run],
            "git_commit": r[i_git],
            "training_data_digest": r[i_data],
            "metadata": dict(meta) if meta else {},
            "description": r[i_desc],
            "tags": tags.get(r[i_id]) or {},
            "size_bytes": r[i_size] or 0,
        }))
    return out


def models(session: Any, rows: Sequence[Any]) -> list[RegisteredModel]:
    """RegisteredModels for Core rows of ``registry_models``."""
    if not rows:
        return []
    ids = [r.id for r in rows]
    tags: dict[int, dict[str, str]] = defaultdict(dict)
    aliases: dict[int, dict[str, int]] = defaultdict(dict)
    counts: dict[int, tuple[int, int | None]] = {}
    from sqlalchemy import func

    for chunk in _chunks(ids):
        for t in session.execute(select(MT).where(MT.c.model_id.in_(chunk))).all():
            tags[t.model_id][t.key] = t.value
        for a in session.execute(select(A).where(A.c.model_id.in_(chunk))).all():
            aliases[a.model_id][a.alias] = a.version
        for c in session.execute(
            select(V.c.model_id, func.count(), func.max(V.c.version))
            .where(V.c.model_id.in_(chunk))
            .group_by(V.c.model_id)
        ):
            counts[c[0]] = (int(c[1]), c[2])
    return [
        RegisteredModel(
            name=r.name,
            description=r.description,
            tags=tags.get(r.id, {}),
            aliases=dict(sorted(aliases.get(r.id, {}).items())),
            created_at=r.created_at,
            updated_at=r.updated_at,
            latest_version=counts.get(r.id, (0, None))[1],
            versions=counts.get(r.id, (0, None))[0],
        )
        for r in rows
    ]
