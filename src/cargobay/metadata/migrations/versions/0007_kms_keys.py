"""KMS keys, their sealed material versions, and aliases (issue 13).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 00:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _name(length: int) -> sa.String:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "kms_keys",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("key_usage", sa.String(32), nullable=False),
        sa.Column("key_spec", sa.String(32), nullable=False),
        sa.Column("key_manager", sa.String(8), nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("deletion_date", sa.Float(), nullable=True),
        sa.Column("pending_window_days", sa.Integer(), nullable=True),
        sa.Column("rotation_enabled", sa.Boolean(), nullable=False),
        sa.Column("rotation_period_days", sa.Integer(), nullable=True),
        sa.Column("next_rotation_at", sa.Float(), nullable=True),
        sa.Column("on_demand_rotations", sa.Integer(), nullable=False),
        sa.Column("on_demand_rotation_at", sa.Float(), nullable=True),
        sa.Column("policy_text", sa.Text(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kms_keys")),
    )
    op.create_index("ix_kms_keys_account", "kms_keys", ["account_id", "region", "id"])
    op.create_table(
        "kms_key_materials",
        sa.Column("key_id", sa.String(36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("material_id", sa.String(64), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=True),
        sa.Column("rotation_type", sa.String(16), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["kms_keys.id"],
            name=op.f("fk_kms_key_materials_key_id_kms_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key_id", "version", name=op.f("pk_kms_key_materials")),
    )
    op.create_table(
        "kms_aliases",
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("name", _name(256), nullable=False),
        sa.Column("key_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["kms_keys.id"],
            name=op.f("fk_kms_aliases_key_id_kms_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "region", "name", name=op.f("pk_kms_aliases")),
    )
    op.create_index("ix_kms_aliases_key", "kms_aliases", ["key_id"])


def downgrade() -> None:
    op.drop_index("ix_kms_aliases_key", table_name="kms_aliases")
    op.drop_table("kms_aliases")
    op.drop_table("kms_key_materials")
    op.drop_index("ix_kms_keys_account", table_name="kms_keys")
    op.drop_table("kms_keys")
