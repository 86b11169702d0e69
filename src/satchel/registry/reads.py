"""The SQL store's plumbing and reads (writes are in :mod:`satchel.registry.sqlstore`).

Every write runs in one transaction that first locks the audit head (so writers are
serialised and the audit chain stays linear), reads the current state, lets policy
guards see the change, applies it and appends its audit entry. Reads never lock.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from satchel.errors import RegistryNotFoundError
from satchel.registry import audit, convert
from satchel.registry import validate as check
from satchel.registry.artifacts import ArtifactStore, Tree
from satchel.registry.entities import AuditEntry, AuditReport, ModelVersion, RegisteredModel
from satchel.registry.hooks import Change, Guard
from satchel.registry.probe import HeadProbe
from satchel.registry.schema import create_engine, ensure_schema, refresh_statistics
from satchel.registry.search import Searches
from satchel.registry.tables import AuditHeadRow, Setting

V = convert.V
M = convert.M
A = convert.A
_SHOW_AVAILABLE = 10


def now_ms() -> int:
    return int(time.time() * 1000)


def _listing(values: list[str], noun: str) -> str:
    if not values:
        return f"there are no {noun}"
    more = f" (and {len(values) - _SHOW_AVAILABLE} more)" if len(values) > _SHOW_AVAILABLE else ""
    return f"{noun}: {', '.join(values[:_SHOW_AVAILABLE])}{more}"


class StoreBase(Searches):
    """Registered models, versions, aliases, stages, tags and audit in one SQL database.

    Args:
        url: a SQLAlchemy database URL (``sqlite:///PATH``, ``postgresql://...``).
        artifact_root: where version files live; fixed in the database when it is
            created (default: ``artifacts/`` beside a SQLite file, else
            ``~/.satchel/artifacts``). An explicit value overrides the stored one.
    """

    def __init__(self, url: str, artifact_root: str | os.PathLike[str] | None = None) -> None:
        self.url = url
        self.engine = create_engine(url)
        ensure_schema(self.engine)
        refresh_statistics(self.engine)
        self.guards: list[Guard] = []
        self._read_cache: dict[tuple[str, ...], tuple[int, Any]] = {}
        self._probe = HeadProbe(self.engine)
        self.artifacts = ArtifactStore(self._artifact_root(artifact_root))

    # ------------------------------------------------------------------ plumbing

    def _artifact_root(self, explicit: str | os.PathLike[str] | None) -> Path:
        with self.write() as s:
            row = s.get(Setting, "artifact_root")
            if row is not None and explicit is None:
                return Path(row.value)
            if explicit is not None:
                root = Path(explicit).expanduser().absolute()
            elif self.engine.dialect.name == "sqlite" and self.engine.url.database not in (
                None, "", ":memory:"
            ):
                root = Path(str(self.engine.url.database)).absolute().parent / "artifacts"
            else:
                root = Path("~/.satchel/artifacts").expanduser().absolute()
            if row is None:
                s.add(Setting(key="artifact_root", value=str(root)))
            return root

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only ORM session (no locks taken), for extensions' own tables."""
        with Session(self.engine) as s:
            yield s

    @contextmanager
    def _reader(self) -> Iterator[Any]:
        # The store's own reads use a Core connection: they are a few selects each, and
        # an ORM session costs more than the selects themselves.
        with self.engine.connect() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction holding the registry's write lock (the audit head row).

        Extensions (e.g. governance) use this for their own tables so their changes and
        audit entries commit atomically with the registry's.
        """
        with self.engine.connect().execution_options(satchel_write=True) as conn:
            with Session(bind=conn) as s:
                yield s
                s.commit()

    def _apply(
        self,
        s: Session,
        *,
        actor: str,
        action: str,
        model: str,
        version: int | None,
        before: Any,
        after: Any,
        context: Mapping[str, Any] | None,
        head: Any,
    ) -> None:
        """Run the guards, then append the audit entry (the caller mutates rows after)."""
        change = Change(action, actor, model, version, before, after, dict(context or {}), s)
        for guard in self.guards:
            guard(change)
        audit.append(
            s, head, at=now_ms(), actor=actor, action=action, model=model, version=version,
            before=before, after=after,
        )

    def record(
        self, s: Session, *, actor: str, action: str, model: str, version: int | None,
        before: Any, after: Any,
    ) -> None:
        """Append an audit entry for an extension's own change inside ``write()``."""
        head = audit.lock_head(s)
        audit.append(
            s, head, at=now_ms(), actor=actor, action=action, model=model, version=version,
            before=before, after=after,
        )

    # ------------------------------------------------------------------ lookups

    def _model_row(self, s: Session, name: str) -> Any:
        row = s.execute(select(M).where(M.c.name == name)).first()
        if row is None:
            names = [r[0] for r in s.execute(select(M.c.name).order_by(M.c.name).limit(50))]
            raise RegistryNotFoundError(
                f"no registered model named {name!r}; {_listing(names, 'registered models')}",
                kind="model",
                name=name,
                available=names,
            )
        return row

    def _version_row(self, s: Session, model: Any, version: int) -> Any:
        row = s.execute(
            select(V, convert.T.c.size_bytes)
            .join(convert.T, convert.T.c.digest == V.c.digest)
            .where(V.c.model_id == model.id, V.c.version == version)
        ).first()
        if row is None:
            have = [str(r[0]) for r in s.execute(
                select(V.c.version).where(V.c.model_id == model.id).order_by(V.c.version)
            )]
            raise RegistryNotFoundError(
                f"model {model.name!r} has no version {version}; "
                f"{_listing(have, 'versions')}",
                kind="version",
                name=model.name,
                available=have,
            )
        return row

    def _one_version(self, s: Session, model: Any, version: int) -> ModelVersion:
        row = self._version_row(s, model, version)
        return convert.versions(s, [row], {model.id: model.name})[0]

    def get_model(self, name: str) -> RegisteredModel:
        check.name(name)
        with self._reader() as s:
            return convert.models(s, [self._model_row(s, name)])[0]

    def generation(self) -> int:
        """The registry's generation: a number that changes with every change.

        It is the audit head's sequence number, which every write advances in its own
        transaction (a write always appends an audit entry; a no-op is not a write), so
        it is the same for every process and worker on the database. A value computed
        after reading generation ``g`` is current for as long as the generation stays
        ``g`` (it may include a change that landed meanwhile: then the generation has
        moved, and the next read recomputes).
        """
        seq = self._probe.seq()
        if seq is None:
            with self._reader() as s:
                seq = s.execute(_HEAD_SEQ).scalar()
        return int(seq or 0)

    def _cached(self, key: tuple[str, ...], validate: Any, compute: Any) -> Any:
        """``compute(connection)``, or its earlier value while the audit head has not
        moved.

        Every change appends an audit entry and so advances the head in the same
        transaction: an unchanged head sequence number means nothing a read returns has
        changed. One primary-key lookup (on the probe's own connection) then replaces a
        resolve's joins, and the arguments, validated when the value was computed, are
        not validated again. Values are frozen entities, shared between callers.
        """
        seq = self._probe.seq()
        hit = self._read_cache.get(key)
        if seq is not None and hit is not None and hit[0] == seq:
            return hit[1]
        validate()
        with self._reader() as s:
            if seq is None:
                seq = s.execute(_HEAD_SEQ).scalar()
            # Computed after the probe: a change landing in between is stored under the
            # older number, so the next read recomputes.
            value = compute(s)
        if len(self._read_cache) >= _CACHE_MAX:
            self._read_cache.clear()
        self._read_cache[key] = (seq, value)
        return value

    def get_version(self, name: str, version: int | str) -> ModelVersion:
        number: list[int] = []

        def validate() -> None:
            check.name(name)
            number.append(check.version(version))

        found: ModelVersion = self._cached(
            ("version", name, str(version)), validate,
            lambda s: self._one_version(s, self._model_row(s, name), number[0]))
        return found

    def get_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        def validate() -> None:
            check.name(name)
            check.alias(alias)

        found: ModelVersion = self._cached(
            ("alias", name, alias), validate, lambda s: self._by_alias(s, name, alias))
        return found

    def _by_alias(self, s: Any, name: str, alias: str) -> ModelVersion:
        # One query for the common case (model, alias and version all exist).
        hit = s.execute(_BY_ALIAS, {"name": name, "alias": alias}).first()
        if hit is not None:
            found: ModelVersion = convert.versions(
                s, [hit], {hit.model_id: hit.model_name})[0]
            return found
        model = self._model_row(s, name)
        row = s.execute(
            select(A.c.version).where(A.c.model_id == model.id, A.c.alias == alias)
        ).first()
        if row is None:
            have = [r[0] for r in s.execute(
                select(A.c.alias).where(A.c.model_id == model.id).order_by(A.c.alias)
            )]
            raise RegistryNotFoundError(
                f"model {name!r} has no alias {alias!r}; {_listing(have, 'aliases')}",
                kind="alias",
                name=name,
                available=have,
            )
        return self._one_version(s, model, row[0])

    def get_latest_version(self, name: str, stage: str | None = None) -> ModelVersion:
        check.name(name)
        stage = check.stage(stage) if stage is not None else None
        with self._reader() as s:
            model = self._model_row(s, name)
            query = select(func.max(V.c.version)).where(V.c.model_id == model.id)
            if stage is not None:
                query = query.where(V.c.stage == stage)
            latest = s.execute(query).scalar()
            if latest is None:
                where = f" in stage {stage}" if stage else ""
                raise RegistryNotFoundError(
                    f"model {name!r} has no versions{where}", kind="version", name=name
                )
            return self._one_version(s, model, int(latest))

    def tree(self, digest: str) -> Tree:
        """The file listing of a version's tree."""
        with self._reader() as s:
            row = s.execute(select(convert.T).where(convert.T.c.digest == digest)).first()
            if row is None:
                raise RegistryNotFoundError(
                    f"no version files with digest {digest[:12]}", kind="version", name=digest
                )
            return Tree.from_json(row.files)

    def local_path(self, version: ModelVersion) -> Path:
        """The version's directory in the artifact root (built from blobs if needed).

        A built tree is never changed (read-only files, content-addressed), so an
        existing one is used as it is; loading verifies the MLmodel's digests anyway.
        """
        built = self.artifacts.tree_path(version.digest)
        if built.is_dir():
            return built
        return self.artifacts.materialize(self.tree(version.digest))

    # ------------------------------------------------------------------ audit

    def audit(self, name: str | None = None, limit: int | None = None) -> list[AuditEntry]:
        """Audit entries (oldest first) for ``name``, or for everything."""
        if name is not None:
            check.name(name)
        with self._reader() as s:
            return audit.entries(s, name, limit)

    def verify_audit(self, name: str | None = None) -> AuditReport:
        """Check the audit hash chain; see :func:`satchel.registry.audit.verify`."""
        if name is not None:
            check.name(name)
        with self._reader() as s:
            return audit.verify(s, name)

    def dispose(self) -> None:
        """Close the database connections (this thread's probe connection too)."""
        self._probe.reset()
        self.engine.dispose()


_CACHE_MAX = 4096
_HEAD_SEQ = select(AuditHeadRow.__table__.c.seq).where(AuditHeadRow.__table__.c.id == 1)

# Built once: the hot read (resolve NAME@ALIAS) then skips statement construction.
_BY_ALIAS = (
    select(V, M.c.name.label("model_name"), convert.T.c.size_bytes)
    .join(M, M.c.id == V.c.model_id)
    .join(A, (A.c.model_id == V.c.model_id) & (A.c.version == V.c.version))
    .join(convert.T, convert.T.c.digest == V.c.digest)
    .where(M.c.name == bindparam("name"), A.c.alias == bindparam("alias"))
)
