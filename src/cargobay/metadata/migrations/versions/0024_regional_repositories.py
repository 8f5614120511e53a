"""Regional repositories (issue 18, `regions_served`): a `region` column on repositories, ""
for the deployment's default region (every existing row), and names unique per registry and
region instead of per registry.

Revision ID: 0024
Revises: 0018
Create Date: 2026-11-30 06:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
# The lead relinks the chain when merging.
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("repositories") as batch:
        batch.add_column(
            sa.Column("region", sa.String(32), nullable=False, server_default=sa.text("''"))
        )
        batch.drop_constraint("uq_repositories_registry_name", type_="unique")
        batch.create_unique_constraint(
            "uq_repositories_region_name", ["registry_id", "region", "name"]
        )


def downgrade() -> None:
    # Repositories of other regions would collide by name: refuse rather than lose them.
    bind = op.get_bind()
    others = bind.execute(sa.text("SELECT count(*) FROM repositories WHERE region <> ''"))
    if others.scalar():
        raise RuntimeError("repositories of other regions exist; delete them to downgrade")
    with op.batch_alter_table("repositories") as batch:
        batch.drop_constraint("uq_repositories_region_name", type_="unique")
        batch.create_unique_constraint("uq_repositories_registry_name", ["registry_id", "name"])
        batch.drop_column("region")
