"""Indexes for the search filters: stage within a model, run id, alias name.

- ``(model_id, stage, version)``: a stage search walks models in name order and reads
  only that stage's versions, already in version order (the single-column stage index
  is too unselective for the planner with four stages, so it scanned every version).
- ``run_id``: MLflow's clients search versions by run id.
- ``registry_aliases.alias``: a search by alias across models.

Revision ID: r0003
Revises: r0002
"""

from __future__ import annotations

from alembic import op

revision = "r0003"
down_revision = "r0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_registry_versions_model_stage", "registry_versions",
                    ["model_id", "stage", "version"])
    op.create_index("ix_registry_versions_run_id", "registry_versions", ["run_id"])
    op.create_index("ix_registry_aliases_alias", "registry_aliases", ["alias"])


def downgrade() -> None:
    op.drop_index("ix_registry_aliases_alias", "registry_aliases")
    op.drop_index("ix_registry_versions_run_id", "registry_versions")
    op.drop_index("ix_registry_versions_model_stage", "registry_versions")
