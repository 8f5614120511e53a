"""The offline vulnerability database: versions, the current-version row, advisories and the
packages they affect.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 00:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _name(length: int) -> sa.String:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "vulndb_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("sources", sa.Text(), nullable=False),
        sa.Column("advisories", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("completed_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vulndb_versions")),
    )
    op.create_table(
        "vulndb_current",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vulndb_current")),
    )
    op.create_table(
        "vulndb_advisories",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("cvss_version", sa.String(length=4), nullable=True),
        sa.Column("cvss_vector", sa.String(length=256), nullable=True),
        sa.Column("cvss_score", sa.Float(), nullable=True),
        sa.Column("modified", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("version", "id", name=op.f("pk_vulndb_advisories")),
    )
    op.create_table(
        "vulndb_affected",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("advisory_id", sa.String(length=128), nullable=False),
        sa.Column("ecosystem", _name(128), nullable=False),
        sa.Column("package", _name(512), nullable=False),
        sa.Column("ranges", sa.Text(), nullable=False),
        sa.Column("versions", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vulndb_affected")),
    )
    op.create_index(
        "ix_vulndb_affected_lookup",
        "vulndb_affected",
        ["version", "ecosystem", "package"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_vulndb_affected_lookup", table_name="vulndb_affected")
    op.drop_table("vulndb_affected")
    op.drop_table("vulndb_advisories")
    op.drop_table("vulndb_current")
    op.drop_table("vulndb_versions")
