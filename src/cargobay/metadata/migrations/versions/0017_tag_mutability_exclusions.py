"""Tag mutability exclusions on repositories and pull-time update exclusions (issue 18).

Revision ID: 0017
Revises: 0014
Create Date: 2026-11-30 03:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
# The lead relinks the chain when merging.
down_revision = "0016"
branch_labels = None
depends_on = None


def _name(length: int) -> sa.String:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    # IMMUTABLE_WITH_EXCLUSION is 24 characters: the column grows from 16 to 32.
    with op.batch_alter_table("repositories") as batch:
        batch.alter_column(
            "tag_mutability",
            existing_type=sa.String(16),
            type_=sa.String(32),
            existing_nullable=False,
        )
        batch.add_column(sa.Column("mutability_exclusions", sa.Text(), nullable=True))
    op.create_table(
        "pull_time_update_exclusions",
        sa.Column("registry_id", sa.String(12), nullable=False),
        sa.Column("principal_arn", _name(200), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "registry_id", "principal_arn", name=op.f("pk_pull_time_update_exclusions")
        ),
    )


def downgrade() -> None:
    op.drop_table("pull_time_update_exclusions")
    with op.batch_alter_table("repositories") as batch:
        batch.drop_column("mutability_exclusions")
        batch.alter_column(
            "tag_mutability",
            existing_type=sa.String(32),
            type_=sa.String(16),
            existing_nullable=False,
        )
