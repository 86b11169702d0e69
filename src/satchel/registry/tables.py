"""The registry's tables, as SQLAlchemy 2 declarative models.

The schema changes only through Alembic migrations (``migrations/versions``); this
module must always describe the newest revision. Times are integer milliseconds since
the epoch (MLflow's convention), JSON columns are text written by :mod:`json`.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from satchel.registry.validate import KEY_MAX, NAME_MAX


class Base(DeclarativeBase):
    """Declarative base of every registry table."""


class Setting(Base):
    """Registry-wide settings fixed at creation (e.g. the artifact root)."""

    __tablename__ = "registry_settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RegisteredModelRow(Base):
    __tablename__ = "registry_models"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX), unique=True, index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    # Version numbers are never reused, even after a delete: the counter lives here.
    next_version: Mapped[int] = mapped_column(Integer, default=1)


class ModelTagRow(Base):
    __tablename__ = "registry_model_tags"
    model_id: Mapped[int] = mapped_column(
        ForeignKey("registry_models.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(KEY_MAX), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class TreeRow(Base):
    """A content-addressed file tree: digest -> {relative path: [sha256, size]}."""

    __tablename__ = "registry_trees"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    files: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger)


class VersionRow(Base):
    __tablename__ = "registry_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "version", name="uq_registry_version"),
        # r0003: a stage search reads one stage's versions per model, in version order
        Index("ix_registry_versions_model_stage", "model_id", "stage", "version"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(
        ForeignKey("registry_models.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(ForeignKey("registry_trees.digest"), index=True)
    stage: Mapped[str] = mapped_column(String(16), default="None", index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(Text, default="")
    model_uuid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    signature: Mapped[str | None] = mapped_column(Text, nullable=True)
    flavors: Mapped[str] = mapped_column(Text, default="[]")
    created_by: Mapped[str] = mapped_column(String(NAME_MAX))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    run_id: Mapped[str | None] = mapped_column(String(NAME_MAX), nullable=True, index=True)
    git_commit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    training_data_digest: Mapped[str | None] = mapped_column(String(NAME_MAX), nullable=True)
    metadata_json: Mapped[str] = mapped_column("metadata", Text, default="{}")


class VersionTagRow(Base):
    __tablename__ = "registry_version_tags"
    version_id: Mapped[int] = mapped_column(
        ForeignKey("registry_versions.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(KEY_MAX), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class AliasRow(Base):
    __tablename__ = "registry_aliases"
    model_id: Mapped[int] = mapped_column(
        ForeignKey("registry_models.id", ondelete="CASCADE"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(String(KEY_MAX), primary_key=True, index=True)
    version: Mapped[int] = mapped_column(Integer, index=True)


class AuditRow(Base):
    """One append-only audit entry; ``hash`` covers every other column and ``prev_hash``."""

    __tablename__ = "registry_audit"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(NAME_MAX))
    action: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(NAME_MAX), index=True)
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHeadRow(Base):
    """The chain's head (one row): every write locks it first, which both serialises
    writers and lets ``verify`` notice entries removed from the end of the chain."""

    __tablename__ = "registry_audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
