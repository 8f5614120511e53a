"""Pull-through cache: rules, tag re-check times and upstream fill leases.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 01:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _name(length: int) -> sa.types.TypeEngine:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "pull_through_cache_rules",
        sa.Column("registry_id", sa.String(length=12), nullable=False),
        sa.Column("prefix", _name(30), nullable=False),
        sa.Column("upstream_url", sa.String(length=512), nullable=False),
        sa.Column("upstream_registry", sa.String(length=64), nullable=False),
        sa.Column("upstream_prefix", sa.String(length=30), nullable=True),
        sa.Column("credential_arn", sa.String(length=612), nullable=True),
        sa.Column("custom_role_arn", sa.String(length=2048), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("registry_id", "prefix", name=op.f("pk_pull_through_cache_rules")),
    )
    op.create_table(
        "pull_through_tags",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("tag", _name(300), nullable=False),
        sa.Column("checked_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_pull_through_tags_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("repository_id", "tag", name=op.f("pk_pull_through_tags")),
    )
    op.create_table(
        "pull_through_fills",
        sa.Column("registry_id", sa.String(length=12), nullable=False),
        sa.Column("digest", _name(200), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("lease_expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("registry_id", "digest", name=op.f("pk_pull_through_fills")),
    )


def downgrade() -> None:
    op.drop_table("pull_through_fills")
    op.drop_table("pull_through_tags")
    op.drop_table("pull_through_cache_rules")
