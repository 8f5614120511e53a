"""The last two registry-level settings become per account and region, as in ECR: the signing
configuration (PutSigningConfiguration) and the pull-time update exclusions
(RegisterPullTimeUpdateExclusion) gain a `region` column in their primary keys, "" for the
deployment's default region (as 0029 did for the others), so existing rows are the default
region's.

Revision ID: 0030
Revises: 0029
Create Date: 2026-11-30 15:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None

# Each table and the primary key it had before this revision.
_KEYS = {
    "registry_signing_configurations": ["registry_id"],
    "pull_time_update_exclusions": ["registry_id", "principal_arn"],
}


def upgrade() -> None:
    for table, key in _KEYS.items():
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("region", sa.String(32), nullable=False, server_default=sa.text("''"))
            )
            batch.drop_constraint(f"pk_{table}", type_="primary")
            batch.create_primary_key(f"pk_{table}", [*key, "region"])


def downgrade() -> None:
    # Rows of other regions would collide with the default region's: refuse rather than lose
    # them.
    bind = op.get_bind()
    for table in _KEYS:
        others = bind.execute(sa.text(f"SELECT count(*) FROM {table} WHERE region <> ''"))
        if others.scalar():
            raise RuntimeError(f"{table} has rows of other regions; delete them to downgrade")
    for table, key in _KEYS.items():
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"pk_{table}", type_="primary")
            batch.create_primary_key(f"pk_{table}", key)
            batch.drop_column("region")
