"""The audit trail's attribute indexes lead with the region, and the index by resource type
goes (issue 19: the audit's cost per call and flat LookupEvents).

LookupEvents is regional, so every lookup filters on account AND region. With indexes by
(account, event name | user | access key, time), SQLite's planner read the region index and
filtered it instead, a scan of the region's records for a rare attribute; by (account, region,
attribute, time) the attribute's index is the one both databases pick. No plan used the index
by resource type (a few types name every record), and every record paid its insert.

Revision ID: 0032
Revises: 0031
Create Date: 2026-11-30 18:40:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0032"
down_revision = "0031"  # the lead relinks the chain when merging
branch_labels = None
depends_on = None

_ATTRIBUTES = {"name": "event_name", "user": "user_name", "key": "access_key_id"}


def upgrade() -> None:
    op.drop_index("ix_audit_resources_type", table_name="audit_resources")
    for suffix, column in _ATTRIBUTES.items():
        op.drop_index(f"ix_audit_records_{suffix}", table_name="audit_records")
        op.create_index(
            f"ix_audit_records_{suffix}",
            "audit_records",
            ["account_id", "region", column, "event_time"],
        )


def downgrade() -> None:
    for suffix, column in _ATTRIBUTES.items():
        op.drop_index(f"ix_audit_records_{suffix}", table_name="audit_records")
        op.create_index(
            f"ix_audit_records_{suffix}", "audit_records", ["account_id", column, "event_time"]
        )
    op.create_index("ix_audit_resources_type", "audit_resources", ["resource_type"])
