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

# Every change here needs a migration in metadata/migrations/versions/ (the schema's only
# creator); tests/e2e/test_migrations.py fails while the two disagree.

# The migration revision this schema is; serving processes compare the database against it
# without loading Alembic (tests/e2e/test_migrations.py checks it is the migrations' head).
SCHEMA_REVISION = "0013"

# Deterministic constraint names, so later migrations can name what they alter on every backend.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def Name(length: int) -> String:
    """A name or digest that sorts and compares in byte order on every backend (`tags/list` and
    `_catalog` are lexically ordered): SQLite's default, `COLLATE "C"` on PostgreSQL."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


repositories = Table(
    "repositories",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registry_id", String(12), nullable=False),
    Column("name", Name(256), nullable=False),
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
    Column("key", Name(128), primary_key=True),
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
    Column("digest", Name(200), primary_key=True),
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
    Column("digest", Name(200), ForeignKey("blobs.digest"), primary_key=True),
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
    Column("digest", Name(200), primary_key=True),
    Column("media_type", String(256), nullable=False),
    Column("artifact_type", Text),  # any media type a client names
    Column("subject_digest", Name(200)),
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
    Column("manifest_digest", Name(200), primary_key=True),
    Column("target_digest", Name(200), primary_key=True),
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
    Column("name", Name(128), primary_key=True),
    Column("digest", Name(200), nullable=False),
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
    Column("name", Name(64), nullable=False),
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
    Column("name", Name(128), primary_key=True),
    Column("document", Text, nullable=False),
)

access_keys = Table(
    "access_keys",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    # The secret sealed with the deployment's key (see iam.secrets); SigV4 needs it back.
    Column("secret", Text, nullable=False),
    # Hex HMAC-SHA256 of the secret under a key derived from the deployment's (SecretBox.verifier):
    # HTTP Basic checks compare it instead of opening `secret`, so serving processes need not
    # load `cryptography`. NULL for keys made before revision 0005 until start-up fills it in.
    Column("secret_verifier", String(64)),
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

# Periodic background work (GC, lifecycle, upload expiry): one row per job; a node claims a run
# with a conditional UPDATE, so exactly one node runs it, and a lease that expires lets another
# node retry a run whose node died.
job_leases = Table(
    "job_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128)),
    Column("lease_expires_at", Float, nullable=False, default=0.0),
    Column("last_started_at", Float, nullable=False, default=0.0),
    Column("last_finished_at", Float, nullable=False, default=0.0),
    Column("last_result", Text),
)

# Bytes served per repository, principal and UTC day (what ECR bills as data transfer out).
transfer_usage = Table(
    "transfer_usage",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("principal_arn", String(256), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("bytes", BigInteger, nullable=False, default=0),
    Column("requests", BigInteger, nullable=False, default=0),
)

# What lifecycle policies expired: who (the rule), when, which image.
lifecycle_events = Table(
    "lifecycle_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("repository_id", Integer, nullable=False),
    Column("repository_name", String(256), nullable=False),
    Column("registry_id", String(12), nullable=False),
    Column("image_digest", String(200), nullable=False),
    Column("image_tags", Text),
    Column("rule_priority", Integer, nullable=False),
    Column("action", String(16), nullable=False),
    Column("occurred_at", Float, nullable=False),
)
Index(
    "ix_lifecycle_events_repository",
    lifecycle_events.c.repository_id,
    lifecycle_events.c.occurred_at,
)

# A lifecycle policy preview per repository (StartLifecyclePolicyPreview / Get...Preview).
lifecycle_previews = Table(
    "lifecycle_previews",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("policy_text", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("results", Text),  # JSON list of previewResults
    Column("created_at", Float, nullable=False),
)

# Per-account settings that override the deployment's defaults (None: use the default).
account_settings = Table(
    "account_settings",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("create_on_push", Boolean),
    Column("updated_at", Float, nullable=False),
)

# KMS (issue 13): keys per account and region, their material versions (sealed under the
# deployment key; rows deleted when a key's deletion date passes), and aliases.
kms_keys = Table(
    "kms_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("key_usage", String(32), nullable=False),
    Column("key_spec", String(32), nullable=False),
    Column("key_manager", String(8), nullable=False),
    Column("state", String(24), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("deletion_date", Float),
    Column("pending_window_days", Integer),
    Column("rotation_enabled", Boolean, nullable=False, default=False),
    Column("rotation_period_days", Integer),
    Column("next_rotation_at", Float),
    Column("on_demand_rotations", Integer, nullable=False, default=0),
    Column("on_demand_rotation_at", Float),
    Column("policy_text", Text, nullable=False),
    Column("tags", Text, nullable=False, default="{}"),  # JSON object
    Column("current_version", Integer, nullable=False, default=1),
)
Index("ix_kms_keys_account", kms_keys.c.account_id, kms_keys.c.region, kms_keys.c.id)

kms_key_materials = Table(
    "kms_key_materials",
    metadata,
    Column("key_id", String(36), ForeignKey("kms_keys.id", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("material_id", String(64), nullable=False),
    Column("sealed", Text, nullable=False),
    Column("public_key", LargeBinary),  # DER SubjectPublicKeyInfo of asymmetric keys
    Column("rotation_type", String(16)),  # None for the original material
    Column("created_at", Float, nullable=False),
)

kms_aliases = Table(
    "kms_aliases",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("name", Name(256), primary_key=True),
    Column("key_id", String(36), ForeignKey("kms_keys.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index("ix_kms_aliases_key", kms_aliases.c.key_id)

# Encrypted copies of blobs (issue 13): the copy of `digest` under KMS key `key_id` exists in
# the blob store (at `storage.encrypted.stored_address`). GC deletes a copy once no repository
# under that key links the blob, or its key is destroyed (migration 0013).
blob_copies = Table(
    "blob_copies",
    metadata,
    Column("digest", Name(200), primary_key=True),
    Column("key_id", String(36), primary_key=True),
    Column("created_at", Float, nullable=False),
)
Index("ix_blob_copies_key", blob_copies.c.key_id)
