"""Secrets Manager: secrets, their sealed versions, staging labels and tags.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 00:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "secrets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("arn", sa.String(length=700), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("kms_key_id", sa.String(length=2048), nullable=True),
        sa.Column("resource_policy", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("last_changed_at", sa.Float(), nullable=False),
        sa.Column("last_accessed_at", sa.Float(), nullable=True),
        sa.Column("deleted_at", sa.Float(), nullable=True),
        sa.Column("deletion_date", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secrets")),
        sa.UniqueConstraint("arn", name=op.f("uq_secrets_arn")),
        sa.UniqueConstraint("account_id", "region", "name", name="uq_secrets_account_region_name"),
    )
    op.create_table(
        "secret_versions",
        sa.Column("secret_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("sealed_value", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("last_accessed_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["secret_id"],
            ["secrets.id"],
            name=op.f("fk_secret_versions_secret_id_secrets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("secret_id", "version_id", name=op.f("pk_secret_versions")),
    )
    op.create_table(
        "secret_version_stages",
        sa.Column("secret_id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=256), nullable=False),
        sa.Column("version_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["secret_id"],
            ["secrets.id"],
            name=op.f("fk_secret_version_stages_secret_id_secrets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("secret_id", "stage", name=op.f("pk_secret_version_stages")),
    )
    op.create_table(
        "secret_tags",
        sa.Column("secret_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["secret_id"],
            ["secrets.id"],
            name=op.f("fk_secret_tags_secret_id_secrets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("secret_id", "key", name=op.f("pk_secret_tags")),
    )


def downgrade() -> None:
    op.drop_table("secret_tags")
    op.drop_table("secret_version_stages")
    op.drop_table("secret_versions")
    op.drop_table("secrets")
