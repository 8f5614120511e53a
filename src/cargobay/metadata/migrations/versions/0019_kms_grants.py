"""KMS grants: a grantee principal's use of a key for some operations (issue 13).

Revision ID: 0019
Revises: 0014
Create Date: 2026-11-30 03:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0015"  # the lead relinks the chain when merging
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kms_grants",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(36), nullable=False),
        sa.Column("issuing_account", sa.String(12), nullable=False),
        sa.Column("name", sa.String(256)),
        sa.Column("grantee_principal", sa.String(256), nullable=False),
        sa.Column("retiring_principal", sa.String(256)),
        sa.Column("operations", sa.Text(), nullable=False),
        sa.Column("constraints", sa.Text()),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["kms_keys.id"],
            name=op.f("fk_kms_grants_key_id_kms_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kms_grants")),
    )
    op.create_index("ix_kms_grants_key", "kms_grants", ["key_id", "grantee_principal"])
    op.create_index("ix_kms_grants_retiring", "kms_grants", ["retiring_principal"])


def downgrade() -> None:
    op.drop_index("ix_kms_grants_retiring", table_name="kms_grants")
    op.drop_index("ix_kms_grants_key", table_name="kms_grants")
    op.drop_table("kms_grants")
