"""Encrypted copies of blobs, one per (digest, KMS key), for reads and GC (issue 13).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 01:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
# The newest migration on the kmswire branch (0007_kms_keys); the lead relinks the chain.
down_revision = "0013"
branch_labels = None
depends_on = None


def _name(length: int) -> sa.String:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "blob_copies",
        sa.Column("digest", _name(200), nullable=False),
        sa.Column("key_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("digest", "key_id", name=op.f("pk_blob_copies")),
    )
    op.create_index("ix_blob_copies_key", "blob_copies", ["key_id"])


def downgrade() -> None:
    op.drop_index("ix_blob_copies_key", table_name="blob_copies")
    op.drop_table("blob_copies")
