"""The metadata schema, one definition for every SQL backend.

Blob bytes live in the blob store; everything that says what exists (repositories, which blobs a
repository may use, manifests, tags, upload sessions, credentials) lives here, so listing is an
indexed query and visibility is a committed row.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

SCHEMA_VERSION = 1

metadata = MetaData()

schema_info = Table(
    "schema_info",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
)

repositories = Table(
    "repositories",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registry_id", String(12), nullable=False),
    Column("name", String(256), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("tag_mutability", String(16), nullable=False, default="MUTABLE"),
    Column("scan_on_push", Boolean, nullable=False, default=False),
    Column("encryption_type", String(16), nullable=False, default="AES256"),
    Column("kms_key", String(2048)),
    Column("policy_text", Text),  # the ECR repository policy, verbatim
    Column("lifecycle_policy", Text),
    UniqueConstraint("registry_id", "name", name="uq_repositories_registry_name"),
)

# Resource tags (TagResource, CreateRepository --tags); `ecr:ResourceTag/*` conditions read them.
repository_tags = Table(
    "repository_tags",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("key", String(128), primary_key=True),
    Column("value", String(256), nullable=False),
)

# PutRegistryPolicy: one resource policy per registry (account).
registry_policies = Table(
    "registry_policies",
    metadata,
    Column("registry_id", String(12), primary_key=True),
    Column("policy_text", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Every blob whose bytes are committed to the blob store, once per registry deployment.
blobs = Table(
    "blobs",
    metadata,
    Column("digest", String(200), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
)

# Which blobs each repository may serve and reference (layers, configs).
repository_blobs = Table(
    "repository_blobs",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("digest", String(200), ForeignKey("blobs.digest"), primary_key=True),
    Column("created_at", Float, nullable=False),
)
Index("ix_repository_blobs_digest", repository_blobs.c.digest)

manifests = Table(
    "manifests",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("digest", String(200), primary_key=True),
    Column("media_type", String(256), nullable=False),
    Column("artifact_type", String(256)),
    Column("subject_digest", String(200)),
    Column("annotations", Text),  # JSON, kept for the referrers API
    Column("size", BigInteger, nullable=False),
    # Compressed size of config + layers, as ECR reports imageSizeInBytes.
    Column("image_size", BigInteger, nullable=False, default=0),
    Column("content", LargeBinary, nullable=False),
    Column("pushed_at", Float, nullable=False),
    Column("last_pulled_at", Float),
)
Index("ix_manifests_subject", manifests.c.repository_id, manifests.c.subject_digest)

# What each manifest references: blobs (config, layers) and child manifests (of an index).
manifest_references = Table(
    "manifest_references",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("manifest_digest", String(200), primary_key=True),
    Column("target_digest", String(200), primary_key=True),
    Column("kind", String(8), nullable=False),  # "blob" or "manifest"
)
Index("ix_manifest_references_target", manifest_references.c.target_digest)

tags = Table(
    "tags",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("name", String(128), primary_key=True),
    Column("digest", String(200), nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index("ix_tags_digest", tags.c.repository_id, tags.c.digest)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(64), primary_key=True),
    Column(
        "repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False
    ),
    Column("size", BigInteger, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(12), nullable=False),
    Column("name", String(64), nullable=False),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("tags", Text),  # JSON object; `aws:PrincipalTag/*` conditions read it
    Column("created_at", Float, nullable=False),
    UniqueConstraint("account_id", "name", name="uq_users_account_name"),
)

# Inline identity policies (put-user-policy).
user_policies = Table(
    "user_policies",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("document", Text, nullable=False),
)

access_keys = Table(
    "access_keys",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    # The secret sealed with the deployment's key (see iam.secrets); SigV4 needs it back.
    Column("secret", Text, nullable=False),
    Column("status", String(16), nullable=False, default="Active"),
    Column("created_at", Float, nullable=False),
)

# Deployment-wide secrets (the key that seals access-key secrets, token signing keys).
server_keys = Table(
    "server_keys",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)
