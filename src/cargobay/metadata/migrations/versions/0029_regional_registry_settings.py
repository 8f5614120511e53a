"""Registry-level settings per account and region (issue 18's `regions_served`): the registry
policy, replication and scanning configurations, pull-through cache rules, creation templates
and ECR account settings gain a `region` column in their primary keys, "" for the deployment's
default region, so every existing row is the default region's and no setting is needed here.

Revision ID: 0029
Revises: 0028
Create Date: 2026-11-30 13:15:00.000000
"""

from __future__ import annotations

from cargobay.metadata.migrations.regional import add_region_to_keys, drop_region_from_keys

revision = "0029"
down_revision = "0028"  # the lead relinks the chain when merging
branch_labels = None
depends_on = None

# Each table and the primary key it had before this revision.
_KEYS = {
    "registry_policies": ["registry_id"],
    "replication_configurations": ["registry_id"],
    "registry_scanning_configurations": ["registry_id"],
    "pull_through_cache_rules": ["registry_id", "prefix"],
    "repository_creation_templates": ["registry_id", "prefix"],
    "registry_account_settings": ["registry_id", "name"],
}


def upgrade() -> None:
    add_region_to_keys(_KEYS)


def downgrade() -> None:
    drop_region_from_keys(_KEYS)
