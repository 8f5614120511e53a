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

from cargobay.metadata.migrations.regional import add_region_to_keys, drop_region_from_keys

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
    add_region_to_keys(_KEYS)


def downgrade() -> None:
    drop_region_from_keys(_KEYS)
