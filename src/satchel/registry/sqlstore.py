"""The registry store over SQL (SQLite or PostgreSQL) with a local artifact root: writes.

Each write is one transaction: lock the audit head, read the current state, let the
policy guards see the change (:mod:`satchel.registry.hooks`), apply it, append the audit
entry. A change that does nothing (an alias set to the version it already names) is
not recorded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from satchel._fs import MANIFEST_NAME, verify_digests
from satchel.errors import IntegrityError, RegistryConflictError, RegistryInputError
from satchel.manifest import Manifest
from satchel.registry import audit, convert
from satchel.registry import validate as check
from satchel.registry.artifacts import Tree
from satchel.registry.entities import ModelVersion, RegisteredModel
from satchel.registry.reads import A, M, StoreBase, V, now_ms
from satchel.registry.tables import TreeRow

MT = convert.MT
VT = convert.VT
Context = Mapping[str, Any] | None


class SqlStore(StoreBase):
    """Registered models, versions, aliases, stages, tags and audit in one SQL database.

    Args:
        url: a SQLAlchemy database URL (``sqlite:///PATH``, ``postgresql://...``).
        artifact_root: where version files live; fixed in the database when it is
            created (default: ``artifacts/`` beside a SQLite file, else
            ``~/.satchel/artifacts``). An explicit value overrides the stored one.
    """

    # ------------------------------------------------------------------ models

    def create_model(
        self,
        name: str,
        *,
        actor: str,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        context: Context = None,
    ) -> RegisteredModel:
        check.name(name)
        text = check.description(description)
        tag_map = check.tags(dict(tags) if tags is not None else None)
        with self.write() as s:
            head = audit.lock_head(s)
            self._create_model(s, head, name, actor, text, tag_map, context)
        return self.get_model(name)

    def _create_model(
        self, s: Session, head: Any, name: str, actor: str, description: str,
        tags: dict[str, str], context: Context,
    ) -> Any:
        if s.execute(select(M.c.id).where(M.c.name == name)).first() is not None:
            raise RegistryConflictError(f"a registered model named {name!r} already exists")
        after = {"description": description, "tags": tags}
        self._apply(s, actor=actor, action="create_model", model=name, version=None,
                    before=None, after=after, context=context, head=head)
        t = now_ms()
        s.execute(insert(M).values(name=name, description=description, created_at=t,
                                   updated_at=t, next_version=1))
        model = s.execute(select(M).where(M.c.name == name)).one()
        for key, value in tags.items():
            s.execute(insert(MT).values(model_id=model.id, key=key, value=value))
        return model

    def set_model_description(
        self, name: str, description: str, *, actor: str, context: Context = None
    ) -> RegisteredModel:
        check.name(name)
        text = check.description(description)
        with self.write() as s:
            head = audit.lock_head(s)
            model = self._model_row(s, name)
            if model.description != text:
                self._apply(s, actor=actor, action="set_model_description", model=name,
                            version=None, before=model.description, after=text,
                            context=context, head=head)
                s.execute(update(M).where(M.c.id == model.id)
                          .values(description=text, updated_at=now_ms()))
        return self.get_model(name)

    def set_model_tag(
        self, name: str, key: str, value: str, *, actor: str, context: Context = None
    ) -> None:
        check.name(name)
        key, value = check.tag(key, value)
        with self.write() as s:
            head = audit.lock_head(s)
            model = self._model_row(s, name)
            old = s.execute(select(MT.c.value).where(MT.c.model_id == model.id,
                                                     MT.c.key == key)).scalar()
            if old == value:
                return
            self._apply(s, actor=actor, action="set_model_tag", model=name, version=None,
                        before={key: old} if old is not None else None, after={key: value},
                        context=context, head=head)
            if old is None:
                s.execute(insert(MT).values(model_id=model.id, key=key, value=value))
            else:
                s.execute(update(MT).where(MT.c.model_id == model.id, MT.c.key == key)
                          .values(value=value))

    def delete_model_tag(self, name: str, key: str, *, actor: str,
                         context: Context = None) -> None:
        check.name(name)
        key, _ = check.tag(key, "")
        with self.write() as s:
            head = audit.lock_head(s)
            model = self._model_row(s, name)
            old = s.execute(select(MT.c.value).where(MT.c.model_id == model.id,
                                                     MT.c.key == key)).scalar()
            if old is None:
                raise RegistryInputError(f"model {name!r} has no tag {key!r}", field="tag")
            self._apply(s, actor=actor, action="delete_model_tag", model=name, version=None,
                        before={key: old}, after=None, context=context, head=head)
            s.execute(delete(MT).where(MT.c.model_id == model.id, MT.c.key == key))

    def rename_model(
        self, name: str, new_name: str, *, actor: str, context: Context = None
    ) -> RegisteredModel:
        """Give a registered model a new name; its versions, aliases, stages and tags
        follow it (they hang off the model's id), and the old name becomes free.

        Refused when ``new_name`` is taken. The audit entry is recorded under the new
        name with ``before={"name": old}``, and :meth:`audit` of the new name includes
        the entries written under the old one.
        """
        check.name(name)
        check.name(new_name, field="new_name")
        if new_name == name:
            raise RegistryInputError(f"model {name!r} is already named {new_name!r}",
                                     field="new_name")
        with self.write() as s:
            head = audit.lock_head(s)
            model = self._model_row(s, name)
            if s.execute(select(M.c.id).where(M.c.name == new_name)).first() is not None:
                raise RegistryConflictError(
                    f"cannot rename {name!r}: a registered model named {new_name!r} "
                    "already exists")
            self._apply(s, actor=actor, action="rename_model", model=new_name, version=None,
                        before={"name": name}, after={"name": new_name}, context=context,
                        head=head)
            s.execute(update(M).where(M.c.id == model.id)
                      .values(name=new_name, updated_at=now_ms()))
        return self.get_model(new_name)

    def delete_model(self, name: str, *, actor: str, context: Context = None) -> None:
        """Delete a model and its versions' records; refused while any alias exists."""
        check.name(name)
        with self.write() as s:
            head = audit.lock_head(s)
            model = self._model_row(s, name)
            aliases = {r.alias: r.version for r in s.execute(
                select(A).where(A.c.model_id == model.id))}
            if aliases:
                listed = ", ".join(f"{a} -> {v}" for a, v in sorted(aliases.items()))
                raise RegistryConflictError(
                    f"model {name!r} still has aliases ({listed}); delete them first"
                )
            versions = [r[0] for r in s.execute(
                select(V.c.version).where(V.c.model_id == model.id).order_by(V.c.version))]
            self._apply(s, actor=actor, action="delete_model", model=name, version=None,
                        before={"versions": versions, "description": model.description},
                        after=None, context=context, head=head)
            ids = select(V.c.id).where(V.c.model_id == model.id).scalar_subquery()
            s.execute(delete(VT).where(VT.c.version_id.in_(ids)))
            s.execute(delete(V).where(V.c.model_id == model.id))
            s.execute(delete(MT).where(MT.c.model_id == model.id))
            s.execute(delete(M).where(M.c.id == model.id))

    # ------------------------------------------------------------------ versions

    def register(
        self,
        path: str | os.PathLike[str],
        name: str,
        *,
        actor: str,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        run_id: str | None = None,
        git_commit: str | None = None,
        training_data_digest: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        source: str | None = None,
        context: Context = None,
    ) -> ModelVersion:
        """Copy a model directory into the artifact root and record a new version.

        The directory's ``artifact_digests`` are verified first and compared with the
        bytes actually stored, so a file changed during registration is refused.
        """
        check.name(name)
        root = Path(path).expanduser().absolute()
        manifest = Manifest.read(root)
        if manifest.artifact_digests:
            verify_digests(root, manifest.artifact_digests)
        tree = self.artifacts.ingest(root)
        if manifest.artifact_digests:
            stored = {k: v[0] for k, v in tree.files.items() if k != MANIFEST_NAME}
            changed = sorted(k for k in set(stored) | set(manifest.artifact_digests)
                             if stored.get(k) != manifest.artifact_digests.get(k))
            if changed:
                raise IntegrityError(
                    f"{changed[0]} changed while it was being registered", file=changed[0]
                )
        return self.register_tree(
            tree, name, actor=actor, description=description, tags=tags, run_id=run_id,
            git_commit=git_commit, training_data_digest=training_data_digest,
            metadata=metadata, source=source if source is not None else str(root),
            context=context,
        )

    def register_tree(
        self,
        tree: Tree,
        name: str,
        *,
        actor: str,
        source: str,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        run_id: str | None = None,
        git_commit: str | None = None,
        training_data_digest: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        context: Context = None,
    ) -> ModelVersion:
        """Record a version whose files are already blobs in the artifact root (the
        server's upload path); the tree is materialised and verified first."""
        check.name(name)
        text = check.description(description)
        tag_map = check.tags(dict(tags) if tags is not None else None)
        lineage = {
            "run_id": check.short_text(run_id, field="run_id"),
            "git_commit": check.short_text(git_commit, field="git_commit", limit=64),
            "training_data_digest": check.short_text(
                training_data_digest, field="training_data_digest"),
        }
        meta = _metadata(metadata)
        if not isinstance(source, str) or len(source) > 4096:
            raise RegistryInputError("source must be a string up to 4096 characters",
                                     field="source")
        directory = self.artifacts.materialize(tree)
        manifest = Manifest.read(directory)
        if manifest.artifact_digests:
            verify_digests(directory, manifest.artifact_digests)
        signature = manifest.signature.to_dict() if manifest.signature else None
        digest = tree.digest
        with self.write() as s:
            head = audit.lock_head(s)
            model = s.execute(select(M).where(M.c.name == name)).first()
            if model is None:
                model = self._create_model(s, head, name, actor, "", {}, context)
            number = int(model.next_version)
            after = {"digest": digest, "source": source, "model_uuid": manifest.model_uuid,
                     **lineage, "metadata": meta, "tags": tag_map, "description": text}
            self._apply(s, actor=actor, action="register", model=name, version=number,
                        before=None, after=after, context=context, head=head)
            if s.get(TreeRow, digest) is None:
                s.add(TreeRow(digest=digest, files=tree.to_json(), size_bytes=tree.size_bytes))
                s.flush()
            t = now_ms()
            s.execute(insert(V).values(
                model_id=model.id, version=number, digest=digest, stage="None",
                description=text, source=source, model_uuid=manifest.model_uuid,
                signature=json.dumps(signature) if signature else None,
                flavors=json.dumps(sorted(manifest.flavors)), created_by=actor,
                created_at=t, updated_at=t, metadata=json.dumps(meta, sort_keys=True),
                **lineage,
            ))
            vid = s.execute(select(V.c.id).where(V.c.model_id == model.id,
                                                 V.c.version == number)).scalar_one()
            for key, value in tag_map.items():
                s.execute(insert(VT).values(version_id=vid, key=key, value=value))
            s.execute(update(M).where(M.c.id == model.id)
                      .values(next_version=number + 1, updated_at=t))
        return self.get_version(name, number)

    def _version_for_write(self, s: Session, name: str, version: int | str) -> tuple[Any, Any]:
        model = self._model_row(s, name)
        return model, self._version_row(s, model, check.version(version))

    def set_version_description(
        self, name: str, version: int | str, description: str, *, actor: str,
        context: Context = None,
    ) -> ModelVersion:
        check.name(name)
        text = check.description(description)
        with self.write() as s:
            head = audit.lock_head(s)
            model, row = self._version_for_write(s, name, version)
            if row.description != text:
                self._apply(s, actor=actor, action="set_version_description", model=name,
                            version=row.version, before=row.description, after=text,
                            context=context, head=head)
                s.execute(update(V).where(V.c.id == row.id)
                          .values(description=text, updated_at=now_ms()))
        return self.get_version(name, version)

    def set_version_tag(
        self, name: str, version: int | str, key: str, value: str, *, actor: str,
        context: Context = None,
    ) -> None:
        check.name(name)
        key, value = check.tag(key, value)
        with self.write() as s:
            head = audit.lock_head(s)
            _, row = self._version_for_write(s, name, version)
            old = s.execute(select(VT.c.value).where(VT.c.version_id == row.id,
                                                     VT.c.key == key)).scalar()
            if old == value:
                return
            self._apply(s, actor=actor, action="set_version_tag", model=name,
                        version=row.version, before={key: old} if old is not None else None,
                        after={key: value}, context=context, head=head)
            if old is None:
                s.execute(insert(VT).values(version_id=row.id, key=key, value=value))
            else:
                s.execute(update(VT).where(VT.c.version_id == row.id, VT.c.key == key)
                          .values(value=value))

    def delete_version_tag(
        self, name: str, version: int | str, key: str, *, actor: str, context: Context = None
    ) -> None:
        check.name(name)
        key, _ = check.tag(key, "")
        with self.write() as s:
            head = audit.lock_head(s)
            _, row = self._version_for_write(s, name, version)
            old = s.execute(select(VT.c.value).where(VT.c.version_id == row.id,
                                                     VT.c.key == key)).scalar()
            if old is None:
                raise RegistryInputError(
                    f"version {row.version} of {name!r} has no tag {key!r}", field="tag")
            self._apply(s, actor=actor, action="delete_version_tag", model=name,
                        version=row.version, before={key: old}, after=None,
                        context=context, head=head)
            s.execute(delete(VT).where(VT.c.version_id == row.id, VT.c.key == key))

    def set_stage(
        self, name: str, version: int | str, stage: str, *, actor: str,
        archive_existing_versions: bool = False, context: Context = None,
    ) -> ModelVersion:
        """Move a version to a stage; with ``archive_existing_versions``, versions in that
        stage (Staging or Production) move to Archived, each change audited."""
        check.name(name)
        target = check.stage(stage)
        with self.write() as s:
            head = audit.lock_head(s)
            model, row = self._version_for_write(s, name, version)
            if row.stage != target:
                self._apply(s, actor=actor, action="set_stage", model=name, version=row.version,
                            before=row.stage, after=target, context=context, head=head)
                s.execute(update(V).where(V.c.id == row.id)
                          .values(stage=target, updated_at=now_ms()))
            if archive_existing_versions and target in ("Staging", "Production"):
                others = s.execute(select(V).where(
                    V.c.model_id == model.id, V.c.stage == target, V.c.id != row.id)).all()
                for other in others:
                    self._apply(s, actor=actor, action="set_stage", model=name,
                                version=other.version, before=target, after="Archived",
                                context={**dict(context or {}), "archived_by": row.version},
                                head=head)
                    s.execute(update(V).where(V.c.id == other.id)
                              .values(stage="Archived", updated_at=now_ms()))
        return self.get_version(name, version)

    def set_alias(
        self, name: str, alias: str, version: int | str, *, actor: str, context: Context = None
    ) -> ModelVersion:
        """Point ``alias`` at ``version`` (creating or moving it)."""
        check.name(name)
        check.alias(alias)
        with self.write() as s:
            head = audit.lock_head(s)
            model, row = self._version_for_write(s, name, version)
            old = s.execute(select(A.c.version).where(A.c.model_id == model.id,
                                                      A.c.alias == alias)).scalar()
            if old != row.version:
                self._apply(s, actor=actor, action="set_alias", model=name, version=row.version,
                            before={alias: old} if old is not None else None,
                            after={alias: row.version}, context=context, head=head)
                if old is None:
                    s.execute(insert(A).values(model_id=model.id, alias=alias,
                                               version=row.version))
                else:
                    s.execute(update(A).where(A.c.model_id == model.id, A.c.alias == alias)
                              .values(version=row.version))
        return self.get_version(name, version)

    def delete_alias(self, name: str, alias: str, *, actor: str, context: Context = None) -> None:
        check.name(name)
        check.alias(alias)
        with self.write() as s:
            head = audit.lock_head(s)
            model = self._model_row(s, name)
            old = s.execute(select(A.c.version).where(A.c.model_id == model.id,
                                                      A.c.alias == alias)).scalar()
            if old is None:
                have = [r[0] for r in s.execute(select(A.c.alias).where(
                    A.c.model_id == model.id).order_by(A.c.alias))]
                raise RegistryInputError(
                    f"model {name!r} has no alias {alias!r} (aliases: "
                    f"{', '.join(have) or 'none'})", field="alias")
            self._apply(s, actor=actor, action="delete_alias", model=name, version=old,
                        before={alias: old}, after=None, context=context, head=head)
            s.execute(delete(A).where(A.c.model_id == model.id, A.c.alias == alias))

    def delete_version(
        self, name: str, version: int | str, *, actor: str, context: Context = None
    ) -> None:
        """Delete a version's record (its files stay, content-addressed); refused while
        an alias points at it. Its number is never reused."""
        check.name(name)
        with self.write() as s:
            head = audit.lock_head(s)
            model, row = self._version_for_write(s, name, version)
            aliases = sorted(r[0] for r in s.execute(select(A.c.alias).where(
                A.c.model_id == model.id, A.c.version == row.version)))
            if aliases:
                raise RegistryConflictError(
                    f"version {row.version} of {name!r} is the target of alias(es) "
                    f"{', '.join(aliases)}; move or delete them first"
                )
            self._apply(s, actor=actor, action="delete_version", model=name,
                        version=row.version,
                        before={"digest": row.digest, "stage": row.stage, "source": row.source},
                        after=None, context=context, head=head)
            s.execute(delete(VT).where(VT.c.version_id == row.id))
            s.execute(delete(V).where(V.c.id == row.id))


def _metadata(value: Mapping[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RegistryInputError("metadata must be a mapping", field="metadata")
    try:
        text = json.dumps(dict(value), sort_keys=True)
    except (TypeError, ValueError):
        raise RegistryInputError("metadata must be JSON-serialisable", field="metadata") from None
    if len(text) > check.METADATA_MAX:
        raise RegistryInputError(
            f"metadata is {len(text)} characters as JSON; the limit is {check.METADATA_MAX}",
            field="metadata", limit=str(check.METADATA_MAX))
    result: dict[str, Any] = json.loads(text)
    return result
