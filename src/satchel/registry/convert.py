"""Rows to entities, in bulk (one query per related table, not one per row)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

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
_IN_CHUNK = 900


def _chunks(ids: Sequence[int]) -> list[Sequence[int]]:
    return [ids[i : i + _IN_CHUNK] for i in range(0, len(ids), _IN_CHUNK)]


def versions(session: Session, rows: Sequence[Any], names: dict[int, str]) -> list[ModelVersion]:
    """ModelVersions for Core rows of ``registry_versions`` (``names``: model id -> name)."""
    if not rows:
        return []
    ids = [r.id for r in rows]
    tags: dict[int, dict[str, str]] = defaultdict(dict)
    for chunk in _chunks(ids):
        for t in session.execute(select(VT).where(VT.c.version_id.in_(chunk))):
            tags[t.version_id][t.key] = t.value
    aliases: dict[tuple[int, int], list[str]] = defaultdict(list)
    model_ids = sorted({r.model_id for r in rows})
    for chunk in _chunks(model_ids):
        for a in session.execute(select(A).where(A.c.model_id.in_(chunk))):
            aliases[(a.model_id, a.version)].append(a.alias)
    sizes: dict[str, int] = {}
    digests = sorted({r.digest for r in rows})
    for chunk in [digests[i : i + _IN_CHUNK] for i in range(0, len(digests), _IN_CHUNK)]:
        for t in session.execute(select(T.c.digest, T.c.size_bytes).where(T.c.digest.in_(chunk))):
            sizes[t.digest] = t.size_bytes
    return [
        ModelVersion(
            name=names[r.model_id],
            version=r.version,
            digest=r.digest,
            stage=r.stage,
            aliases=tuple(sorted(aliases.get((r.model_id, r.version), ()))),
            source=r.source,
            model_uuid=r.model_uuid,
            signature=json.loads(r.signature) if r.signature else None,
            flavors=tuple(json.loads(r.flavors)),
            created_by=r.created_by,
            created_at=r.created_at,
            updated_at=r.updated_at,
            run_id=r.run_id,
            git_commit=r.git_commit,
            training_data_digest=r.training_data_digest,
            metadata=json.loads(r.metadata),
            description=r.description,
            tags=tags.get(r.id, {}),
            size_bytes=sizes.get(r.digest, 0),
        )
        for r in rows
    ]


def models(session: Session, rows: Sequence[Any]) -> list[RegisteredModel]:
    """RegisteredModels for Core rows of ``registry_models``."""
    if not rows:
        return []
    ids = [r.id for r in rows]
    tags: dict[int, dict[str, str]] = defaultdict(dict)
    aliases: dict[int, dict[str, int]] = defaultdict(dict)
    counts: dict[int, tuple[int, int | None]] = {}
    from sqlalchemy import func

    for chunk in _chunks(ids):
        for t in session.execute(select(MT).where(MT.c.model_id.in_(chunk))):
            tags[t.model_id][t.key] = t.value
        for a in session.execute(select(A).where(A.c.model_id.in_(chunk))):
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
