"""Background job leases, transfer usage per day, lifecycle events and previews.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _repository_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["repository_id"],
        ["repositories.id"],
        name=op.f(f"fk_{table}_repository_id_repositories"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "job_leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(128), nullable=True),
        sa.Column("lease_expires_at", sa.Float(), nullable=False),
        sa.Column("last_started_at", sa.Float(), nullable=False),
        sa.Column("last_finished_at", sa.Float(), nullable=False),
        sa.Column("last_result", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_job_leases")),
    )
    op.create_table(
        "transfer_usage",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("principal_arn", sa.String(256), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        _repository_fk("transfer_usage"),
        sa.PrimaryKeyConstraint(
            "repository_id", "principal_arn", "day", name=op.f("pk_transfer_usage")
        ),
    )
    op.create_table(
        "lifecycle_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("repository_name", sa.String(256), nullable=False),
        sa.Column("registry_id", sa.String(12), nullable=False),
        sa.Column("image_digest", sa.String(200), nullable=False),
        sa.Column("image_tags", sa.Text(), nullable=True),
        sa.Column("rule_priority", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("occurred_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lifecycle_events")),
    )
    op.create_index(
        "ix_lifecycle_events_repository", "lifecycle_events", ["repository_id", "occurred_at"]
    )
    op.create_table(
        "lifecycle_previews",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("policy_text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("results", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        _repository_fk("lifecycle_previews"),
        sa.PrimaryKeyConstraint("repository_id", name=op.f("pk_lifecycle_previews")),
    )


def downgrade() -> None:
    for table in ("lifecycle_previews", "lifecycle_events", "transfer_usage", "job_leases"):
        op.drop_table(table)
