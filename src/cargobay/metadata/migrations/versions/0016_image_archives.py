"""Archive storage class: each archived (or restored) image's status and times (issue 18).

Revision ID: 0016
Revises: 0014
Create Date: 2026-11-30 03:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
# The lead relinks the chain when merging.
down_revision = "0014"
branch_labels = None
depends_on = None


def _name(length: int) -> sa.String:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "image_archives",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("digest", _name(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("archived_at", sa.Float(), nullable=False),
        sa.Column("activated_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["repository_id", "digest"],
            ["manifests.repository_id", "manifests.digest"],
            name=op.f("fk_image_archives_repository_id_manifests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("repository_id", "digest", name=op.f("pk_image_archives")),
    )


def downgrade() -> None:
    op.drop_table("image_archives")
