"""Governance tables (revision r0002), on the registry's declarative base."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from satchel.registry.tables import Base

NAME_MAX = 256


class PolicyRow(Base):
    """The promotion policy of one registered model: its YAML text."""

    __tablename__ = "governance_policies"
    model: Mapped[str] = mapped_column(String(NAME_MAX), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    updated_by: Mapped[str] = mapped_column(String(NAME_MAX))


class EvaluationRow(Base):
    """An evaluation result (``EvaluationResult.to_json``) attached to a version."""

    __tablename__ = "governance_evaluations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(NAME_MAX), index=True)
    version: Mapped[int] = mapped_column(Integer)
    dataset: Mapped[str | None] = mapped_column(String(NAME_MAX), nullable=True)
    result: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(NAME_MAX))


class RequestRow(Base):
    """A request to move a protected alias or stage, with its gate results and outcome.

    ``state``: ``pending`` (gates passed, awaiting approval), ``gates_failed``,
    ``approved`` (applied), ``rejected``.
    """

    __tablename__ = "governance_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(NAME_MAX), index=True)
    target_kind: Mapped[str] = mapped_column(String(16))  # alias | stage
    target: Mapped[str] = mapped_column(String(NAME_MAX))
    version: Mapped[int] = mapped_column(Integer)
    requested_by: Mapped[str] = mapped_column(String(NAME_MAX))
    requested_at: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))
    gates: Mapped[str] = mapped_column(Text)  # JSON list of {gate, passed, detail}
    holder: Mapped[int | None] = mapped_column(Integer, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(NAME_MAX), nullable=True)
    decided_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    override: Mapped[int] = mapped_column(Integer, default=0)
