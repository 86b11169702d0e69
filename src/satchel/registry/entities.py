"""What the registry returns: plain frozen dataclasses, independent of the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

STAGES = ("None", "Staging", "Production", "Archived")

#: The fields a listing leaves out (the signature and metadata blobs, the lineage a
#: listing does not show); a listed version reads them on first use. They never change
#: after registration, so reading them later gives what the listing would have.
DETAILS = ("model_uuid", "signature", "flavors", "git_commit", "training_data_digest",
           "metadata", "size_bytes")


class DetailLoader(Protocol):
    """Fills the :data:`DETAILS` of every version of one listing (see ``_of``)."""

    def load(self) -> None:
        """Set the detail fields in each listed version's ``__dict__``."""


@dataclass(frozen=True)
class ModelVersion:
    """One immutable version of a registered model, with its lineage.

    Attributes:
        name: the registered model's name.
        version: 1, 2, 3... per name, never reused.
        digest: sha256 of the version's file tree (content address of its files).
        stage: ``None``, ``Staging``, ``Production`` or ``Archived``.
        aliases: aliases pointing at this version.
        source: where the files were registered from (path or URI).
        model_uuid: the MLmodel's ``model_uuid``.
        signature: the MLmodel signature as a dict, or None.
        flavors: flavor names in the MLmodel.
        created_by / created_at: who registered it, when (ms since the epoch).
        run_id / git_commit / training_data_digest: optional lineage.
        metadata: free lineage metadata given at registration.
        description / tags: editable.
        size_bytes: total size of the files.
    """

    name: str
    version: int
    digest: str
    stage: str = "None"
    aliases: tuple[str, ...] = ()
    source: str = ""
    model_uuid: str | None = None
    signature: dict[str, Any] | None = None
    flavors: tuple[str, ...] = ()
    created_by: str = ""
    created_at: int = 0
    updated_at: int = 0
    run_id: str | None = None
    git_commit: str | None = None
    training_data_digest: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    size_bytes: int = 0

    @classmethod
    def _of(cls, values: dict[str, Any]) -> ModelVersion:
        """An instance from a complete field dict, without the frozen ``__init__``.

        A frozen dataclass sets each of its 19 fields through ``object.__setattr__``;
        a listing of 10,000 versions spent more time there than in the database. The
        store passes every field, already typed, so the dict becomes the instance's.
        """
        self = object.__new__(cls)
        object.__setattr__(self, "__dict__", values)
        return self

    if not TYPE_CHECKING:  # hidden from mypy, which would otherwise allow any attribute

        def __getattr__(self, name: str) -> Any:
            # Only reached for a field missing from the instance (the detail fields have
            # no class-level defaults, see below): a listed version whose details are
            # not read yet. One query then fills them for the whole listing.
            values = self.__dict__
            loader = values.get("_details")
            if loader is None or name not in DETAILS:
                raise AttributeError(name)
            loader.load()
            if name not in values:  # deleted since it was listed: its loader says so
                values["_details"].load()
            return values[name]

    def __getstate__(self) -> dict[str, Any]:
        # Pickled or copied (a Spark closure, copy.copy): complete, without the loader
        # (it holds a database engine).
        if "_details" in self.__dict__:
            self.__dict__["_details"].load()
        return {k: v for k, v in self.__dict__.items() if k != "_details"}

    @property
    def uri(self) -> str:
        """``models:/NAME/VERSION``."""
        return f"models:/{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (CLI ``--json``, the server's native API)."""
        return {
            "name": self.name,
            "version": self.version,
            "digest": self.digest,
            "stage": self.stage,
            "aliases": list(self.aliases),
            "source": self.source,
            "model_uuid": self.model_uuid,
            "signature": self.signature,
            "flavors": list(self.flavors),
            "created_by": self.created_by,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "run_id": self.run_id,
            "git_commit": self.git_commit,
            "training_data_digest": self.training_data_digest,
            "metadata": self.metadata,
            "description": self.description,
            "tags": dict(self.tags),
            "size_bytes": self.size_bytes,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelVersion:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=str(d["name"]),
            version=int(d["version"]),
            digest=str(d["digest"]),
            stage=str(d.get("stage", "None")),
            aliases=tuple(d.get("aliases") or ()),
            source=str(d.get("source") or ""),
            model_uuid=d.get("model_uuid"),
            signature=d.get("signature"),
            flavors=tuple(d.get("flavors") or ()),
            created_by=str(d.get("created_by") or ""),
            created_at=int(d.get("created_at") or 0),
            updated_at=int(d.get("updated_at") or 0),
            run_id=d.get("run_id"),
            git_commit=d.get("git_commit"),
            training_data_digest=d.get("training_data_digest"),
            metadata=dict(d.get("metadata") or {}),
            description=str(d.get("description") or ""),
            tags={str(k): str(v) for k, v in (d.get("tags") or {}).items()},
            size_bytes=int(d.get("size_bytes") or 0),
        )


# The detail fields' class-level defaults would answer for a listed version that has
# not read its details yet; without them, such an access reaches __getattr__. The
# generated __init__ keeps its own copy of each default.
for _name in DETAILS:
    if _name in ModelVersion.__dict__:
        delattr(ModelVersion, _name)


@dataclass(frozen=True)
class RegisteredModel:
    """A registered model: a unique name, its description, tags, aliases and versions.

    ``aliases`` maps alias -> version; ``latest_version`` is the highest version number
    that exists (None when every version was deleted).
    """

    name: str
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    created_at: int = 0
    updated_at: int = 0
    latest_version: int | None = None
    versions: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "description": self.description,
            "tags": dict(self.tags),
            "aliases": dict(self.aliases),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "latest_version": self.latest_version,
            "versions": self.versions,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RegisteredModel:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=str(d["name"]),
            description=str(d.get("description") or ""),
            tags={str(k): str(v) for k, v in (d.get("tags") or {}).items()},
            aliases={str(k): int(v) for k, v in (d.get("aliases") or {}).items()},
            created_at=int(d.get("created_at") or 0),
            updated_at=int(d.get("updated_at") or 0),
            latest_version=d.get("latest_version"),
            versions=int(d.get("versions") or 0),
        )


@dataclass(frozen=True)
class AuditEntry:
    """One audit trail entry: who did what, when, to which model/version, before -> after."""

    seq: int
    at: int
    actor: str
    action: str
    model: str
    version: int | None
    before: Any
    after: Any
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "model": self.model,
            "version": self.version,
            "before": self.before,
            "after": self.after,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AuditEntry:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class AuditReport:
    """The result of verifying the audit chain: ``ok`` and one line per problem found."""

    ok: bool
    entries: int
    problems: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"ok": self.ok, "entries": self.entries, "problems": list(self.problems)}
