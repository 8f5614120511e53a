"""Drop `pull_through_fills`: a pull-through blob fetch is now a lease in `resource_leases`
(metadata/leases.py), like the manifest fetches and the uploads (issue 14).

Revision ID: 0018
Revises: 0022
Create Date: 2026-11-30 04:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
# The lead relinks the chain when merging.
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Its rows were leases of fetches in flight: a fetch running across the upgrade keeps
    # going; at worst one more puller fetches the same blob once.
    op.drop_table("pull_through_fills")


def downgrade() -> None:
    op.create_table(
        "pull_through_fills",
        sa.Column("registry_id", sa.String(length=12), nullable=False),
        sa.Column(
            "digest",
            sa.String(length=200).with_variant(sa.String(200, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("lease_expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("registry_id", "digest", name=op.f("pk_pull_through_fills")),
    )
