"""Searching the registry: models and versions by name pattern, tag, alias and stage.

A version listing reads only what a listing shows (:data:`LISTED`); the signature,
metadata and other lineage (:data:`satchel.registry.entities.DETAILS`) are read on
first use, in one query for the whole listing (:mod:`satchel.registry.details`). Each
version is built from its row by a C-level ``dict(zip(...))`` instead of per-field
Python code; :meth:`Searches.version_rows` gives the rows themselves, for a caller that
renders them without entities.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, NamedTuple

from sqlalchemy import select

from satchel.errors import RegistryInputError
from satchel.registry import convert
from satchel.registry import validate as check
from satchel.registry.details import VERSIONS_JOIN, Details
from satchel.registry.entities import ModelVersion, RegisteredModel

V = convert.V
M = convert.M
A = convert.A

#: The entity fields a version listing selects, in the order of :data:`_LISTED_COLUMNS`.
LISTED = ("name", "version", "digest", "stage", "source", "created_by", "created_at",
          "updated_at", "run_id", "description")
# ... then the two ids the tags and aliases are matched by (not entity fields).
_LISTED_COLUMNS = (M.c.name, V.c.version, V.c.digest, V.c.stage, V.c.source, V.c.created_by,
                   V.c.created_at, V.c.updated_at, V.c.run_id, V.c.description, V.c.id,
                   V.c.model_id)

Tags = dict[int, dict[str, str]]
Aliases = dict[int, tuple[str, ...]]

_I_ID = len(LISTED)
#: Where a :class:`VersionRows` row holds the version's row id.
ROW_ID = _I_ID
_I_MODEL = _I_ID + 1


class Searches:
    """The search half of the SQL store (mixed into :class:`~satchel.registry.reads.StoreBase`,
    which provides ``_reader``)."""

    def _reader(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def search_models(
        self,
        name_like: str | None = None,
        *,
        tags: Mapping[str, str] | None = None,
        alias: str | None = None,
        max_results: int = 1000,
        offset: int = 0,
    ) -> list[RegisteredModel]:
        """Models whose name matches a SQL LIKE pattern (``%``/``_``), with all ``tags``
        and (optionally) an ``alias`` set, ordered by name."""
        query = select(M)
        if name_like is not None:
            query = query.where(M.c.name.like(like(name_like), escape="\\"))
        for key, value in check.tags(dict(tags or {})).items():
            mt = convert.MT.alias()
            query = query.where(
                select(mt.c.model_id)
                .where(mt.c.model_id == M.c.id, mt.c.key == key, mt.c.value == value)
                .exists()
            )
        if alias is not None:
            check.alias(alias)
            query = query.where(
                select(A.c.model_id).where(A.c.model_id == M.c.id, A.c.alias == alias).exists()
            )
        query = query.order_by(M.c.name).limit(limit(max_results)).offset(_offset(offset))
        with self._reader() as s:
            return convert.models(s, s.execute(query).all())

    def search_versions(
        self,
        name: str | None = None,
        *,
        name_like: str | None = None,
        stage: str | None = None,
        tags: Mapping[str, str] | None = None,
        alias: str | None = None,
        run_id: str | None = None,
        digest: str | None = None,
        max_results: int = 1000,
        offset: int = 0,
    ) -> list[ModelVersion]:
        """Versions filtered by model name (exact or LIKE pattern), stage, tags, alias,
        run id or digest; newest first within a model, models by name.

        The versions' :data:`~satchel.registry.entities.DETAILS` (signature, metadata,
        flavors, model uuid, git commit, training data digest, size) are read when one
        of them is first used, for every version of the listing at once.
        """
        found = self.version_rows(name, name_like=name_like, stage=stage, tags=tags,
                                  alias=alias, run_id=run_id, digest=digest,
                                  max_results=max_results, offset=offset)
        if not found.rows:
            return []
        return _build(found.rows, found.tags, found.aliases, Details(self, found.matching))

    def version_rows(
        self,
        name: str | None = None,
        *,
        name_like: str | None = None,
        stage: str | None = None,
        tags: Mapping[str, str] | None = None,
        alias: str | None = None,
        run_id: str | None = None,
        digest: str | None = None,
        max_results: int = 1000,
        offset: int = 0,
    ) -> VersionRows:
        """What :meth:`search_versions` lists, as the driver's plain tuples (no
        entities): for a caller that renders the listing itself (the registry server's
        search reply). Same arguments, checks and order; see :class:`VersionRows`."""
        where = _version_filters(name, name_like, stage, tags, alias, run_id, digest)
        size = limit(max_results)
        skip = _offset(offset)
        query = (
            select(*_LISTED_COLUMNS)
            .select_from(_VERSIONS_JOIN)
            .where(*where)
            .order_by(M.c.name, V.c.version.desc())
            .limit(size)
            .offset(skip)
        )
        with self._reader() as s:
            result = s.execute(query)
            # The driver's tuples as they are: no per-row Row objects (every listed
            # column is a plain int or str, with no result processing to skip).
            rows = result.cursor.fetchall() if result.cursor is not None else []
            result.close()
            if not rows:
                return VersionRows([], {}, {}, None)
            matching = None
            if (skip == 0 and len(rows) < size) or len(rows) > convert.IN_CHUNK:
                # The page is every match (or too long for IN lists): fetch the tags and
                # aliases of all matching versions with the same filters, one query each,
                # instead of one IN list per 900 ids. On a clipped page this may read a
                # few more tag rows than it returns (bounded by the page's first and last
                # model names, as the page is ordered by name); they are dropped by id.
                matching = [*where, M.c.name.between(rows[0][0], rows[-1][0])]
                found = _related(s, matching)
            else:
                found = _related_ids(s, rows)
        return VersionRows(rows, *found, matching)


class VersionRows(NamedTuple):
    """A version listing as plain values.

    ``rows``: one tuple per version, the :data:`LISTED` fields in that order, then the
    version's row id (:data:`ROW_ID`) and its model's row id. ``tags``: by version row
    id. ``aliases``: sorted alias names by version row id (absent: none). ``matching``:
    the filters the listing's related rows were read with (None: by id).
    """

    rows: Sequence[tuple[Any, ...]]
    tags: Tags
    aliases: Aliases
    matching: list[Any] | None


def _version_filters(
    name: str | None, name_like: str | None, stage: str | None,
    tags: Mapping[str, str] | None, alias: str | None, run_id: str | None,
    digest: str | None,
) -> list[Any]:
    """The WHERE clauses of a version search, every argument checked."""
    where = []
    if name is not None:
        where.append(M.c.name == check.name(name))
    if name_like is not None:
        where.append(M.c.name.like(like(name_like), escape="\\"))
    if stage is not None:
        where.append(V.c.stage == check.stage(stage))
    if run_id is not None:
        check.short_text(run_id, field="run_id")  # type and length only: "" matches
        where.append(V.c.run_id == run_id)         # nothing, as before
    if digest is not None:
        if not isinstance(digest, str) or len(digest) > 64:
            raise RegistryInputError("digest must be a sha256 hex string", field="digest")
        where.append(V.c.digest == digest)
    for key, value in check.tags(dict(tags or {})).items():
        vt = convert.VT.alias()
        where.append(
            select(vt.c.version_id)
            .where(vt.c.version_id == V.c.id, vt.c.key == key, vt.c.value == value)
            .exists()
        )
    if alias is not None:
        check.alias(alias)
        # An alias of the table: _related selects from the aliases table itself, and
        # the subquery must not correlate to it.
        at = A.alias()
        where.append(
            select(at.c.model_id)
            .where(at.c.model_id == V.c.model_id, at.c.version == V.c.version,
                   at.c.alias == alias)
            .exists()
        )
    return where


_VERSIONS_JOIN = VERSIONS_JOIN


# Past this many rows, building a listing's entities pauses the cyclic garbage collector
# (tens of thousands of acyclic objects: it would walk the growing heap several times
# during the loop). Pausing the fetch as well was measured: no difference (PostgreSQL,
# 10,000 versions, 53.7 against 53.0 ms), so it is not done.
_GC_PAUSE_ROWS = 1000


@contextmanager
def _gc_paused(pause: bool) -> Iterator[None]:
    # Only the call that disabled the collector enables it again (a concurrent listing
    # in another thread may have paused it first).
    paused = pause and gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _build(rows: Sequence[tuple[Any, ...]], tags: Tags, aliases: Aliases,
           details: Details) -> list[ModelVersion]:
    # ModelVersion._of inlined: a Python call per row is a tenth of the loop's time.
    new = object.__new__
    set_dict = object.__setattr__
    cls = ModelVersion
    keys = LISTED
    no_aliases: tuple[str, ...] = ()
    alias_of = aliases.get
    tags_of = tags.get
    out: list[ModelVersion] = []
    append = out.append
    with _gc_paused(len(rows) > _GC_PAUSE_ROWS):
        for r in rows:
            values = dict(zip(keys, r))  # stops at the last entity field
            vid = r[_I_ID]
            values["aliases"] = alias_of(vid, no_aliases)
            values["tags"] = tags_of(vid) or {}
            values["_details"] = details
            version = new(cls)
            set_dict(version, "__dict__", values)
            append(version)
        details.listed([r[_I_ID] for r in rows], out)
    return out


def _related(s: Any, where: list[Any]) -> tuple[Tags, Aliases]:
    """Tags and aliases (sorted) by version id of every version matching ``where``
    (one query each)."""
    tags: Tags = defaultdict(dict)
    vt = convert.VT
    for t in s.execute(
        select(vt.c.version_id, vt.c.key, vt.c.value)
        .select_from(vt.join(V, V.c.id == vt.c.version_id).join(M, M.c.id == V.c.model_id))
        .where(*where)
    ):
        tags[t[0]][t[1]] = t[2]
    return tags, _aliases(s.execute(
        select(V.c.id, A.c.alias)
        .select_from(A.join(V, (V.c.model_id == A.c.model_id) & (V.c.version == A.c.version))
                     .join(M, M.c.id == V.c.model_id))
        .where(*where)
        .order_by(V.c.id, A.c.alias)))


def _related_ids(s: Any, rows: Sequence[tuple[Any, ...]]) -> tuple[Tags, Aliases]:
    """Tags and aliases of a clipped page's versions, by id (at most 900 of them)."""
    tags: Tags = defaultdict(dict)
    ids = [r[_I_ID] for r in rows]
    vt = convert.VT
    for t in s.execute(select(vt.c.version_id, vt.c.key, vt.c.value)
                       .where(vt.c.version_id.in_(ids))):
        tags[t[0]][t[1]] = t[2]
    return tags, _aliases(s.execute(
        select(V.c.id, A.c.alias)
        .select_from(A.join(V, (V.c.model_id == A.c.model_id) & (V.c.version == A.c.version)))
        .where(V.c.id.in_(ids))
        .order_by(V.c.id, A.c.alias)))


def _aliases(pairs: Any) -> Aliases:
    grouped: dict[int, list[str]] = defaultdict(list)
    for vid, alias in pairs:
        grouped[vid].append(alias)
    return {vid: tuple(names) for vid, names in grouped.items()}


def like(pattern: str) -> str:
    """A user pattern: ``*`` and ``%`` match any run, ``?`` and ``_`` one character."""
    if not isinstance(pattern, str) or len(pattern) > 1000:
        raise RegistryInputError("a name pattern is a string up to 1000 characters",
                                 field="name_like")
    return pattern.replace("*", "%").replace("?", "_")


def limit(n: int) -> int:
    """``max_results`` checked: an integer from 1 to 100,000."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or n > 100_000:
        raise RegistryInputError(
            "max_results must be an integer from 1 to 100000", field="max_results",
            limit="100000",
        )
    return n


OFFSET_MAX = 10**15


def _offset(n: Any) -> int:
    # Bounded: a number past the database's 64-bit OFFSET is a driver error, not an
    # answer (no registry holds 10**15 versions).
    if isinstance(n, bool) or not isinstance(n, int) or n > OFFSET_MAX:
        raise RegistryInputError("offset must be a non-negative integer up to 10**15",
                                 field="offset", limit=str(OFFSET_MAX))
    return max(0, n)
