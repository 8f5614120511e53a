"""The schema cargobay shipped before migrations: registry, IAM and token keys.

Databases made by `metadata.create_all` before Alembic have exactly these tables (with the
`schema_info` version row); `cargobay db upgrade` stamps them at this revision and goes on.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _name(length: int) -> sa.types.TypeEngine:
    """Byte-order comparison and sorting on PostgreSQL too (lexically ordered listings)."""
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def _repository_id() -> sa.Column:
    return sa.Column("repository_id", sa.Integer(), nullable=False)


def _repository_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["repository_id"],
        ["repositories.id"],
        name=op.f(f"fk_{table}_repository_id_repositories"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "schema_info",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schema_info")),
    )
    op.bulk_insert(
        sa.table("schema_info", sa.column("id", sa.Integer), sa.column("version", sa.Integer)),
        [{"id": 1, "version": 1}],
    )
    op.create_table(
        "repositories",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("registry_id", sa.String(12), nullable=False),
        sa.Column("name", _name(256), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("tag_mutability", sa.String(16), nullable=False),
        sa.Column("scan_on_push", sa.Boolean(), nullable=False),
        sa.Column("encryption_type", sa.String(16), nullable=False),
        sa.Column("kms_key", sa.String(2048), nullable=True),
        sa.Column("policy_text", sa.Text(), nullable=True),
        sa.Column("lifecycle_policy", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_repositories")),
        sa.UniqueConstraint("registry_id", "name", name="uq_repositories_registry_name"),
    )
    op.create_table(
        "repository_tags",
        _repository_id(),
        sa.Column("key", _name(128), nullable=False),
        sa.Column("value", sa.String(256), nullable=False),
        _repository_fk("repository_tags"),
        sa.PrimaryKeyConstraint("repository_id", "key", name=op.f("pk_repository_tags")),
    )
    op.create_table(
        "registry_policies",
        sa.Column("registry_id", sa.String(12), nullable=False),
        sa.Column("policy_text", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("registry_id", name=op.f("pk_registry_policies")),
    )
    op.create_table(
        "blobs",
        sa.Column("digest", _name(200), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_blobs")),
    )
    op.create_table(
        "repository_blobs",
        _repository_id(),
        sa.Column("digest", _name(200), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["digest"], ["blobs.digest"], name=op.f("fk_repository_blobs_digest_blobs")
        ),
        _repository_fk("repository_blobs"),
        sa.PrimaryKeyConstraint("repository_id", "digest", name=op.f("pk_repository_blobs")),
    )
    op.create_index("ix_repository_blobs_digest", "repository_blobs", ["digest"])
    op.create_table(
        "manifests",
        _repository_id(),
        sa.Column("digest", _name(200), nullable=False),
        sa.Column("media_type", sa.String(256), nullable=False),
        sa.Column("artifact_type", sa.Text(), nullable=True),
        sa.Column("subject_digest", _name(200), nullable=True),
        sa.Column("annotations", sa.Text(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("image_size", sa.BigInteger(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("pushed_at", sa.Float(), nullable=False),
        sa.Column("last_pulled_at", sa.Float(), nullable=True),
        _repository_fk("manifests"),
        sa.PrimaryKeyConstraint("repository_id", "digest", name=op.f("pk_manifests")),
    )
    op.create_index("ix_manifests_subject", "manifests", ["repository_id", "subject_digest"])
    op.create_table(
        "manifest_references",
        _repository_id(),
        sa.Column("manifest_digest", _name(200), nullable=False),
        sa.Column("target_digest", _name(200), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        _repository_fk("manifest_references"),
        sa.PrimaryKeyConstraint(
            "repository_id",
            "manifest_digest",
            "target_digest",
            name=op.f("pk_manifest_references"),
        ),
    )
    op.create_index("ix_manifest_references_target", "manifest_references", ["target_digest"])
    op.create_table(
        "tags",
        _repository_id(),
        sa.Column("name", _name(128), nullable=False),
        sa.Column("digest", _name(200), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        _repository_fk("tags"),
        sa.PrimaryKeyConstraint("repository_id", "name", name=op.f("pk_tags")),
    )
    op.create_index("ix_tags_digest", "tags", ["repository_id", "digest"])
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(64), nullable=False),
        _repository_id(),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        _repository_fk("uploads"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uploads")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("name", _name(64), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("account_id", "name", name="uq_users_account_name"),
    )
    op.create_table(
        "user_policies",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", _name(128), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_policies_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "name", name=op.f("pk_user_policies")),
    )
    op.create_table(
        "access_keys",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_access_keys_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_keys")),
    )
    op.create_table(
        "server_keys",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_server_keys")),
    )


def downgrade() -> None:
    for table in (
        "server_keys",
        "access_keys",
        "user_policies",
        "users",
        "uploads",
        "tags",
        "manifest_references",
        "manifests",
        "repository_blobs",
        "blobs",
        "registry_policies",
        "repository_tags",
        "repositories",
        "schema_info",
    ):
        op.drop_table(table)
