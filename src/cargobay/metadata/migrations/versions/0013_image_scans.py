"""Image scans and their findings, registry scanning configurations and ECR account settings.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "image_scans",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(200), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("severity_counts", sa.Text()),
        sa.Column("finding_count", sa.Integer(), nullable=False),
        sa.Column("completed_at", sa.Float()),
        sa.Column("source_updated_at", sa.Float()),
        sa.Column("database_version", sa.Integer()),
        sa.Column("quota_started_at", sa.Float()),
        sa.Column("scans", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name="fk_image_scans_repository_id_repositories",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("repository_id", "digest", name="pk_image_scans"),
    )
    op.create_index("ix_image_scans_status", "image_scans", ["status"])
    op.create_table(
        "image_scan_findings",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("finding", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint(
            "repository_id", "digest", "position", name="pk_image_scan_findings"
        ),
    )
    op.create_table(
        "registry_scanning_configurations",
        sa.Column("registry_id", sa.String(12), nullable=False),
        sa.Column("scan_type", sa.String(16), nullable=False),
        sa.Column("rules", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("registry_id", name="pk_registry_scanning_configurations"),
    )
    op.create_table(
        "registry_account_settings",
        sa.Column("registry_id", sa.String(12), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("registry_id", "name", name="pk_registry_account_settings"),
    )


def downgrade() -> None:
    op.drop_table("registry_account_settings")
    op.drop_table("registry_scanning_configurations")
    op.drop_table("image_scan_findings")
    op.drop_index("ix_image_scans_status", table_name="image_scans")
    op.drop_table("image_scans")
