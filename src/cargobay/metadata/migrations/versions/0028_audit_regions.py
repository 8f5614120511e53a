"""The region of each audit record as a column (issue 18's `regions_served`): CloudTrail's
LookupEvents answers the events of the region it is called in, which needs a column to filter
on. Existing records take the `awsRegion` their JSON already carries.

Revision ID: 0028
Revises: 0023
Create Date: 2026-11-30 12:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0023"  # the lead relinks the chain when merging
branch_labels = None
depends_on = None

_BACKFILL = {
    "sqlite": "UPDATE audit_records SET region = COALESCE(json_extract(record, '$.awsRegion'), '')",
    "postgresql": "UPDATE audit_records SET region = COALESCE(record::json ->> 'awsRegion', '')",
}


def upgrade() -> None:
    with op.batch_alter_table("audit_records") as batch:
        batch.add_column(
            sa.Column("region", sa.String(32), nullable=False, server_default=sa.text("''"))
        )
    bind = op.get_bind()
    op.execute(_BACKFILL[bind.dialect.name])
    op.create_index(
        "ix_audit_records_region", "audit_records", ["account_id", "region", "event_time"]
    )


def downgrade() -> None:
    op.drop_index("ix_audit_records_region", table_name="audit_records")
    with op.batch_alter_table("audit_records") as batch:
        batch.drop_column("region")
