"""Managed signing: signing profiles, registry signing configurations, image signing statuses
(issue 18).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 03:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0017"  # the lead relinks the chain when merging
branch_labels = None
depends_on = None


def _name(length: int) -> sa.String:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "signing_profiles",
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("name", _name(64), nullable=False),
        sa.Column("version", sa.String(10), nullable=False),
        sa.Column("platform_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("validity_value", sa.Integer(), nullable=False),
        sa.Column("validity_type", sa.String(8), nullable=False),
        sa.Column("signing_parameters", sa.Text(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(36), nullable=False),
        sa.Column("certificate_chain", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("canceled_at", sa.Float()),
        sa.PrimaryKeyConstraint("account_id", "region", "name", name="pk_signing_profiles"),
    )
    op.create_table(
        "registry_signing_configurations",
        sa.Column("registry_id", sa.String(12), nullable=False),
        sa.Column("rules", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("registry_id", name="pk_registry_signing_configurations"),
    )
    op.create_table(
        "image_signing_statuses",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(200), nullable=False),
        sa.Column("profile_arn", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("failure_code", sa.String(64)),
        sa.Column("failure_reason", sa.Text()),
        sa.Column("signature_digest", sa.String(200)),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name="fk_image_signing_statuses_repository_id_repositories",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "repository_id", "digest", "profile_arn", name="pk_image_signing_statuses"
        ),
    )


def downgrade() -> None:
    op.drop_table("image_signing_statuses")
    op.drop_table("registry_signing_configurations")
    op.drop_table("signing_profiles")
