"""Replication backfills belong to the region they were started in, as in ECR: a
`source_region` key column ("" for the deployment's default region, so existing backfills are
its), which ListReplicationBackfills and the other backfill operations filter on. (`region`
stays the destination's region.)

Revision ID: 0031
Revises: 0030
Create Date: 2026-11-30 16:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("replication_backfills") as batch:
        batch.add_column(
            sa.Column("source_region", sa.String(32), nullable=False, server_default=sa.text("''"))
        )
    op.drop_index("ix_replication_backfills_registry", table_name="replication_backfills")
    op.create_index(
        "ix_replication_backfills_registry",
        "replication_backfills",
        ["registry_id", "source_region"],
    )


def downgrade() -> None:
    op.drop_index("ix_replication_backfills_registry", table_name="replication_backfills")
    op.create_index("ix_replication_backfills_registry", "replication_backfills", ["registry_id"])
    with op.batch_alter_table("replication_backfills") as batch:
        batch.drop_column("source_region")
