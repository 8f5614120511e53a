"""Background tasks (an outbox claimed row by row), replication configurations, statuses and
backfills, and repository creation templates.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _name(length: int) -> sa.String:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("dedupe_key", sa.String(512)),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("run_after", sa.Float(), nullable=False),
        sa.Column("give_up_at", sa.Float(), nullable=False),
        sa.Column("holder", sa.String(128)),
        sa.Column("lease_expires_at", sa.Float(), nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
        sa.UniqueConstraint("kind", "dedupe_key", name="uq_tasks_kind_key"),
    )
    op.create_index("ix_tasks_due", "tasks", ["status", "run_after"])
    op.create_table(
        "replication_configurations",
        sa.Column("registry_id", sa.String(12), nullable=False),
        sa.Column("configuration", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("registry_id", name="pk_replication_configurations"),
    )
    op.create_table(
        "replication_statuses",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(200), nullable=False),
        sa.Column("region", sa.String(25), nullable=False),
        sa.Column("destination_registry_id", sa.String(12), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("failure_code", sa.String(64)),
        sa.Column("failure_reason", sa.Text()),
        sa.Column("bytes_sent", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name="fk_replication_statuses_repository_id_repositories",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "repository_id",
            "digest",
            "region",
            "destination_registry_id",
            name="pk_replication_statuses",
        ),
    )
    op.create_table(
        "repository_creation_templates",
        sa.Column("registry_id", sa.String(12), nullable=False),
        sa.Column("prefix", _name(256), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("encryption_type", sa.String(16), nullable=False),
        sa.Column("kms_key", sa.String(2048)),
        sa.Column("resource_tags", sa.Text()),
        sa.Column("image_tag_mutability", sa.String(32), nullable=False),
        sa.Column("mutability_exclusions", sa.Text()),
        sa.Column("repository_policy", sa.Text()),
        sa.Column("lifecycle_policy", sa.Text()),
        sa.Column("applied_for", sa.Text(), nullable=False),
        sa.Column("custom_role_arn", sa.String(2048)),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("registry_id", "prefix", name="pk_repository_creation_templates"),
    )
    op.create_table(
        "replication_backfills",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("registry_id", sa.String(12), nullable=False),
        sa.Column("region", sa.String(25), nullable=False),
        sa.Column("destination_registry_id", sa.String(12), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("failure_code", sa.String(64)),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float()),
        sa.PrimaryKeyConstraint("id", name="pk_replication_backfills"),
    )
    op.create_index("ix_replication_backfills_registry", "replication_backfills", ["registry_id"])
    op.create_table(
        "replication_backfill_results",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("backfill_id", sa.String(36), nullable=False),
        sa.Column("repository_name", sa.String(256), nullable=False),
        sa.Column("digest", sa.String(200), nullable=False),
        sa.Column("tag", sa.String(300)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("failure_code", sa.String(64)),
        sa.PrimaryKeyConstraint("id", name="pk_replication_backfill_results"),
    )
    op.create_index(
        "ix_replication_backfill_results", "replication_backfill_results", ["backfill_id"]
    )


def downgrade() -> None:
    op.drop_table("replication_backfill_results")
    op.drop_table("replication_backfills")
    op.drop_table("repository_creation_templates")
    op.drop_table("replication_statuses")
    op.drop_table("replication_configurations")
    op.drop_index("ix_tasks_due", table_name="tasks")
    op.drop_table("tasks")
