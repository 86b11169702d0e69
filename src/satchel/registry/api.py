"""``satchel.registry.Registry``: the Python API over a local database or a server."""

from __future__ import annotations

import getpass
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from satchel.registry import uri as uris
from satchel.registry.entities import AuditEntry, AuditReport, ModelVersion, RegisteredModel
from satchel.registry.hooks import Guard

if TYPE_CHECKING:
    from satchel.registry.sqlstore import SqlStore

_STORES: dict[tuple[str, str | None], Any] = {}
_LOCK = threading.Lock()


def default_actor() -> str:
    """``$SATCHEL_USER``, else the login name."""
    env = os.environ.get("SATCHEL_USER")
    if env:
        return env
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def open_store(uri: str, artifact_root: str | os.PathLike[str] | None = None) -> Any:
    """The store for ``uri``, shared within the process (opening checks the schema once)."""
    key = (uri, None if artifact_root is None else str(artifact_root))
    with _LOCK:
        store = _STORES.get(key)
        if store is None:
            if uris.is_http(uri):
                from satchel.registry.client import HttpStore

                store = HttpStore(uri)
            else:
                from satchel.registry.governance.guard import install
                from satchel.registry.sqlstore import SqlStore

                store = SqlStore(uri, artifact_root)
                # protected aliases and stages hold from every entry point
                install(store)
            _STORES[key] = store
        return store


def close_all() -> None:
    """Dispose of every store this process opened (tests, long-lived servers)."""
    with _LOCK:
        for store in _STORES.values():
            store.dispose()
        _STORES.clear()


class Registry:
    """A model registry: registered models, versions, aliases, stages, tags, audit.

    Args:
        uri: a database URL (``sqlite:///PATH``, ``postgresql://user@host/db``) or a
            registry server (``http(s)://host:port``). Default: ``$SATCHEL_REGISTRY_URI``,
            else ``sqlite:///~/.satchel/registry.db``.
        actor: the identity recorded in the audit trail (default ``$SATCHEL_USER`` or the
            login name). Against a server, the server's token decides the identity.
        artifact_root: where a database registry keeps version files (see
            :class:`~satchel.registry.sqlstore.SqlStore`).
        token: bearer token for a registry server (default ``$SATCHEL_REGISTRY_TOKEN``).

    Every method raises :class:`~satchel.errors.RegistryNotFoundError` for an unknown
    model, version or alias (naming what exists), :class:`~satchel.errors.RegistryInputError`
    for a bad argument and :class:`~satchel.errors.RegistryConflictError` for a change
    the current state forbids.
    """

    def __init__(
        self,
        uri: str | None = None,
        *,
        actor: str | None = None,
        artifact_root: str | os.PathLike[str] | None = None,
        token: str | None = None,
    ) -> None:
        self.uri = uri or uris.default_registry_uri()
        self._actor = actor
        if uris.is_http(self.uri):
            from satchel.registry.client import HttpStore

            self._store: Any = HttpStore(self.uri, token=token)
        else:
            self._store = open_store(self.uri, artifact_root)

    @property
    def actor(self) -> str:
        """The identity recorded for this registry's changes (looked up on first use)."""
        if self._actor is None:
            self._actor = default_actor()
        return self._actor

    @classmethod
    def _from_store(cls, store: Any, actor: str) -> Registry:
        self = cls.__new__(cls)
        self.uri = getattr(store, "url", "")
        self._actor = actor
        self._store = store
        return self

    def with_actor(self, actor: str) -> Registry:
        """The same registry, recording changes as ``actor`` (used by the server)."""
        return Registry._from_store(self._store, actor)

    @property
    def store(self) -> SqlStore:
        """The underlying store (a SqlStore for database URIs)."""
        return self._store  # type: ignore[no-any-return]

    def add_guard(self, guard: Guard) -> None:
        """Register a policy hook called before every change (see :mod:`satchel.registry.hooks`)."""
        self._store.guards.append(guard)

    # ----------------------------------------------------------------- models

    def create_model(
        self, name: str, *, description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> RegisteredModel:
        """Create an empty registered model (``register`` creates one when missing)."""
        return self._store.create_model(  # type: ignore[no-any-return]
            name, actor=self.actor, description=description, tags=tags)

    def get_model(self, name: str) -> RegisteredModel:
        """A registered model with its tags and aliases."""
        return self._store.get_model(name)  # type: ignore[no-any-return]

    def search_models(
        self, name_like: str | None = None, *, tags: Mapping[str, str] | None = None,
        alias: str | None = None, max_results: int = 1000, offset: int = 0,
    ) -> list[RegisteredModel]:
        """Models by name pattern (``*``/``%`` any run, ``?``/``_`` one character), tags
        (all must match) and alias, ordered by name."""
        return self._store.search_models(  # type: ignore[no-any-return]
            name_like, tags=tags, alias=alias, max_results=max_results, offset=offset)

    def set_model_description(self, name: str, description: str) -> RegisteredModel:
        """Replace a model's description."""
        return self._store.set_model_description(  # type: ignore[no-any-return]
            name, description, actor=self.actor)

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        """Set (or change) a model tag."""
        self._store.set_model_tag(name, key, value, actor=self.actor)

    def delete_model_tag(self, name: str, key: str) -> None:
        """Remove a model tag."""
        self._store.delete_model_tag(name, key, actor=self.actor)

    def rename_model(self, name: str, new_name: str) -> RegisteredModel:
        """Rename a model; its versions, aliases, stages, tags and governance policy
        follow it, the old name becomes free (``models:/OLD...`` stops resolving), and
        the audit trail of the new name includes the old name's entries."""
        return self._store.rename_model(  # type: ignore[no-any-return]
            name, new_name, actor=self.actor)

    def delete_model(self, name: str) -> None:
        """Delete a model and its versions; refused while it has aliases."""
        self._store.delete_model(name, actor=self.actor)

    # ----------------------------------------------------------------- versions

    def register(
        self, path: str | os.PathLike[str], name: str, *, description: str | None = None,
        tags: Mapping[str, str] | None = None, run_id: str | None = None,
        git_commit: str | None = None, training_data_digest: str | None = None,
        metadata: Mapping[str, Any] | None = None, source: str | None = None,
        mlflow_tracking_uri: str | None = None,
    ) -> ModelVersion:
        """Register a model directory as the next version of ``name``.

        The files are verified against their ``artifact_digests`` and copied into the
        registry's content-addressed artifact store; the version never changes after.

        ``path`` may be ``runs:/RUN_ID/PATH``: it is read from the local MLflow file
        store ``mlflow_tracking_uri`` (default ``$MLFLOW_TRACKING_URI``, e.g.
        ``file:./mlruns``; see :mod:`satchel.registry.runs`), the run id is recorded as
        lineage and the URI as the source.
        """
        from satchel.registry import runs

        if runs.is_runs_uri(path):
            found = runs.resolve(str(path), mlflow_tracking_uri)
            if run_id is not None and run_id != found.run_id:
                from satchel.errors import RegistryInputError

                raise RegistryInputError(
                    f"run_id {run_id[:80]!r} differs from the run of {found.uri[:120]!r}",
                    field="run_id")
            run_id, path = found.run_id, found.directory
            source = source if source is not None else found.uri
            extra = {"mlflow_experiment_id": found.experiment_id}
            if found.logged_model_id:
                extra["mlflow_logged_model_id"] = found.logged_model_id
            metadata = {**extra, **dict(metadata or {})}
        return self._store.register(  # type: ignore[no-any-return]
            path, name, actor=self.actor, description=description, tags=tags, run_id=run_id,
            git_commit=git_commit, training_data_digest=training_data_digest,
            metadata=metadata, source=source)

    def get_version(self, name: str, version: int | str) -> ModelVersion:
        """One version by number."""
        return self._store.get_version(name, version)  # type: ignore[no-any-return]

    def get_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        """The version an alias points at."""
        return self._store.get_version_by_alias(name, alias)  # type: ignore[no-any-return]

    def get_latest_version(self, name: str, stage: str | None = None) -> ModelVersion:
        """The highest version number (in ``stage`` when given)."""
        return self._store.get_latest_version(name, stage)  # type: ignore[no-any-return]

    def search_versions(
        self, name: str | None = None, *, name_like: str | None = None,
        stage: str | None = None, tags: Mapping[str, str] | None = None,
        alias: str | None = None, run_id: str | None = None, digest: str | None = None,
        max_results: int = 1000, offset: int = 0,
    ) -> list[ModelVersion]:
        """Versions by model name or pattern, stage, tags, alias, run id or digest."""
        return self._store.search_versions(  # type: ignore[no-any-return]
            name, name_like=name_like, stage=stage, tags=tags, alias=alias, run_id=run_id,
            digest=digest, max_results=max_results, offset=offset)

    def set_alias(self, name: str, alias: str, version: int | str) -> ModelVersion:
        """Point ``alias`` at ``version`` (every move passes the policy guards)."""
        return self._store.set_alias(  # type: ignore[no-any-return]
            name, alias, version, actor=self.actor)

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove an alias."""
        self._store.delete_alias(name, alias, actor=self.actor)

    def set_stage(
        self, name: str, version: int | str, stage: str, *,
        archive_existing_versions: bool = False,
    ) -> ModelVersion:
        """Move a version to None, Staging, Production or Archived."""
        return self._store.set_stage(  # type: ignore[no-any-return]
            name, version, stage, actor=self.actor,
            archive_existing_versions=archive_existing_versions)

    def set_version_description(
        self, name: str, version: int | str, description: str
    ) -> ModelVersion:
        """Replace a version's description."""
        return self._store.set_version_description(  # type: ignore[no-any-return]
            name, version, description, actor=self.actor)

    def set_version_tag(self, name: str, version: int | str, key: str, value: str) -> None:
        """Set (or change) a version tag."""
        self._store.set_version_tag(name, version, key, value, actor=self.actor)

    def delete_version_tag(self, name: str, version: int | str, key: str) -> None:
        """Remove a version tag."""
        self._store.delete_version_tag(name, version, key, actor=self.actor)

    def delete_version(self, name: str, version: int | str) -> None:
        """Delete a version; refused while an alias points at it."""
        self._store.delete_version(name, version, actor=self.actor)

    # ----------------------------------------------------------------- resolution

    def resolve(self, ref: str) -> ModelVersion:
        """The version a ``models:/`` URI names (or ``NAME/VERSION``, ``NAME@ALIAS``)."""
        parsed = uris.parse(ref if uris.is_models_uri(ref) else f"models:/{ref}")
        if parsed.alias is not None:
            return self.get_version_by_alias(parsed.name, parsed.alias)
        if parsed.version is not None:
            return self.get_version(parsed.name, parsed.version)
        return self.get_latest_version(parsed.name, parsed.stage)

    def local_path(self, version: ModelVersion) -> Path:
        """A local directory holding the version's verified files (downloaded and cached
        by digest for a server registry)."""
        return self._store.local_path(version)  # type: ignore[no-any-return]

    def download(self, ref: str) -> tuple[ModelVersion, Path]:
        """Resolve ``ref`` and return the version and its local directory."""
        version = self.resolve(ref)
        return version, self.local_path(version)

    # ----------------------------------------------------------------- audit

    def audit(self, name: str | None = None, limit: int | None = None) -> list[AuditEntry]:
        """Audit entries for ``name`` (or all), oldest first."""
        return self._store.audit(name, limit)  # type: ignore[no-any-return]

    def verify_audit(self, name: str | None = None) -> AuditReport:
        """Verify the audit hash chain; problems name the entries edited or removed."""
        return self._store.verify_audit(name)  # type: ignore[no-any-return]

    def close(self) -> None:
        """Release connections (a shared local store stays open for the process)."""
        if uris.is_http(self.uri):
            self._store.dispose()


def fetch(ref: str, registry_uri: str | None = None) -> tuple[ModelVersion, Path]:
    """Resolve a ``models:/`` URI through the default (or given) registry; return the
    version and a local directory with its files. Used by ``satchel.load_model``."""
    return Registry(registry_uri).download(ref)


def model_dir(ref: str | os.PathLike[str]) -> tuple[Path, ModelVersion | None]:
    """A local model directory for a path or a ``models:/`` URI (and its version)."""
    if isinstance(ref, str) and uris.is_models_uri(ref):
        version, path = fetch(ref)
        return path, version
    return Path(ref).expanduser(), None
