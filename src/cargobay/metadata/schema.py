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
    ForeignKeyConstraint,
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
SCHEMA_REVISION = "0032"

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
    Column("tag_mutability", String(32), nullable=False, default="MUTABLE"),
    Column("scan_on_push", Boolean, nullable=False, default=False),
    Column("encryption_type", String(16), nullable=False, default="AES256"),
    Column("kms_key", String(2048)),
    Column("policy_text", Text),  # the ECR repository policy, verbatim
    Column("lifecycle_policy", Text),
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

# Leases on named resources (an upload being written): one holder at a time across workers and
# nodes, taken over once expired or by the holder's own replacement (metadata/leases.py).
resource_leases = Table(
    "resource_leases",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("holder", String(255), nullable=False),
    Column("token", String(32), nullable=False),
    Column("acquired_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

# -- background tasks, replication, repository creation templates (migration 0011) ----------

# Work that must happen after a commit (jobs/queue.py): written in the same transaction as the
# change, claimed row by row with a lease by exactly one worker on one node.
tasks = Table(
    "tasks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    # With a key, a kind holds one task per key (idempotent enqueue).
    Column("dedupe_key", String(512)),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("run_after", Float, nullable=False),
    Column("give_up_at", Float, nullable=False),
    Column("holder", String(128)),
    Column("lease_expires_at", Float, nullable=False, default=0.0),
    Column("last_error", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("kind", "dedupe_key", name="uq_tasks_kind_key"),
)
Index("ix_tasks_due", tasks.c.status, tasks.c.run_after)

# A registry's replication configuration (PutReplicationConfiguration), as JSON.
replication_configurations = Table(
    "replication_configurations",
    metadata,
    Column("registry_id", String(12), primary_key=True),
    Column("configuration", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Where each pushed image stands at each destination (DescribeImageReplicationStatus).
replication_statuses = Table(
    "replication_statuses",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("digest", String(200), primary_key=True),
    Column("region", String(25), primary_key=True),
    Column("destination_registry_id", String(12), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("failure_code", String(64)),
    Column("failure_reason", Text),
    Column("bytes_sent", BigInteger, nullable=False, default=0),
    Column("updated_at", Float, nullable=False),
)

# Settings applied to repositories that replication, the pull-through cache or a push create.
repository_creation_templates = Table(
    "repository_creation_templates",
    metadata,
    Column("registry_id", String(12), primary_key=True),
    Column("prefix", Name(256), primary_key=True),
    Column("description", Text),
    Column("encryption_type", String(16), nullable=False, default="AES256"),
    Column("kms_key", String(2048)),
    Column("resource_tags", Text),  # JSON list of {Key, Value}
    Column("image_tag_mutability", String(32), nullable=False, default="MUTABLE"),
    Column("mutability_exclusions", Text),  # JSON list of {filterType, filter}
    Column("repository_policy", Text),
    Column("lifecycle_policy", Text),
    Column("applied_for", Text, nullable=False),  # JSON list
    Column("custom_role_arn", String(2048)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Copies of images pushed before a replication rule existed (StartReplicationBackfill).
replication_backfills = Table(
    "replication_backfills",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("registry_id", String(12), nullable=False),
    Column("region", String(25), nullable=False),
    Column("destination_registry_id", String(12), nullable=False),
    Column("status", String(16), nullable=False),
    Column("failure_code", String(64)),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    # The region the backfill was started in (migration 0031; "" for the default region):
    # backfills are listed per region, as in ECR. `region` is the destination's.
    Column("source_region", String(32), nullable=False, server_default=""),
)
Index(
    "ix_replication_backfills_registry",
    replication_backfills.c.registry_id,
    replication_backfills.c.source_region,
)

# One row per image a backfill copies; its status follows the image's replication task.
replication_backfill_results = Table(
    "replication_backfill_results",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("backfill_id", String(36), nullable=False),
    Column("repository_name", String(256), nullable=False),
    Column("digest", String(200), nullable=False),
    Column("tag", String(300)),
    Column("status", String(16), nullable=False),
    Column("failure_code", String(64)),
)
Index("ix_replication_backfill_results", replication_backfill_results.c.backfill_id)


# Secrets Manager (migration 0010): secrets per account and region, their versions (values
# sealed with the deployment key), the staging labels naming versions (one version per label
# per secret: the primary key says so), and tags. A secret scheduled for deletion keeps its row
# with `deletion_date` set until that date passes.
secrets_table = Table(
    "secrets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("name", String(512), nullable=False),
    Column("arn", String(700), nullable=False, unique=True),
    Column("description", Text),
    Column("kms_key_id", String(2048)),
    Column("resource_policy", Text),
    Column("created_at", Float, nullable=False),
    Column("last_changed_at", Float, nullable=False),
    Column("last_accessed_at", Float),
    Column("deleted_at", Float),
    Column("deletion_date", Float),
    UniqueConstraint("account_id", "region", "name", name="uq_secrets_account_region_name"),
)

secret_versions = Table(
    "secret_versions",
    metadata,
    Column("secret_id", Integer, ForeignKey("secrets.id", ondelete="CASCADE"), primary_key=True),
    Column("version_id", String(64), primary_key=True),
    Column("kind", String(8), nullable=False),  # "string" or "binary" (sealed as base64)
    Column("sealed_value", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_accessed_at", Float),
)

secret_version_stages = Table(
    "secret_version_stages",
    metadata,
    Column("secret_id", Integer, ForeignKey("secrets.id", ondelete="CASCADE"), primary_key=True),
    Column("stage", String(256), primary_key=True),
    Column("version_id", String(64), nullable=False),
)

secret_tags = Table(
    "secret_tags",
    metadata,
    Column("secret_id", Integer, ForeignKey("secrets.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("value", String(256), nullable=False),
)

# Pull-through cache (migration 0012): the rules per registry; when each cached tag was last
# checked against its upstream; and one lease row per (registry, digest) being fetched from an
# upstream, so concurrent first pulls on any worker or node cause one upstream fetch.
pull_through_cache_rules = Table(
    "pull_through_cache_rules",
    metadata,
    Column("registry_id", String(12), primary_key=True),
    Column("prefix", Name(30), primary_key=True),
    Column("upstream_url", String(512), nullable=False),
    Column("upstream_registry", String(64), nullable=False),
    Column("upstream_prefix", String(30)),
    Column("credential_arn", String(612)),
    Column("custom_role_arn", String(2048)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

pull_through_tags = Table(
    "pull_through_tags",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("tag", Name(300), primary_key=True),
    Column("checked_at", Float, nullable=False),
)

# (pull_through_fills, migration 0012, was dropped by 0018: blob fetches are resource leases)

# -- the offline vulnerability database (cargobay vulndb import; migration 0008) ---------------
# Each import fills a new version; one committed row (`vulndb_current`) says which version scans
# read, so an import becomes visible all at once and a running server needs no restart.
vulndb_versions = Table(
    "vulndb_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("state", String(16), nullable=False),  # importing | ready
    Column("sources", Text, nullable=False),
    Column("advisories", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("completed_at", Float),
)

vulndb_current = Table(
    "vulndb_current",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("version", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
)

vulndb_advisories = Table(
    "vulndb_advisories",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("id", String(128), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("description", Text, nullable=False),
    Column("uri", Text, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("cvss_version", String(4)),
    Column("cvss_vector", String(256)),
    Column("cvss_score", Float),
    Column("modified", String(40), nullable=False),
)

vulndb_affected = Table(
    "vulndb_affected",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version", Integer, nullable=False),
    Column("advisory_id", String(128), nullable=False),
    Column("ecosystem", Name(128), nullable=False),
    Column("package", Name(512), nullable=False),
    Column("ranges", Text, nullable=False),  # JSON: lists of OSV events
    Column("versions", Text, nullable=False),  # JSON: explicitly affected versions
)
Index(
    "ix_vulndb_affected_lookup",
    vulndb_affected.c.version,
    vulndb_affected.c.ecosystem,
    vulndb_affected.c.package,
)

# -- image scans, registry scanning configuration, ECR account settings (migration 0013) -------

# The latest scan of each image (StartImageScan, scan on push, continuous rescans).
image_scans = Table(
    "image_scans",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("digest", String(200), primary_key=True),
    Column("status", String(32), nullable=False),  # ECR's ScanStatus
    Column("description", Text),
    Column("severity_counts", Text),  # JSON {severity: count}
    Column("finding_count", Integer, nullable=False, default=0),
    Column("completed_at", Float),
    Column("source_updated_at", Float),  # the vulnerability database's import time
    Column("database_version", Integer),
    # When the last scan counted against ECR's quota (on push or StartImageScan) started.
    Column("quota_started_at", Float),
    Column("scans", Integer, nullable=False, default=0),  # completed scans, for /metrics
    Column("updated_at", Float, nullable=False),
)
Index("ix_image_scans_status", image_scans.c.status)

# The findings of an image's latest completed scan, in ECR's order (`position`), one ECR
# ImageScanFinding (JSON) per row so DescribeImageScanFindings pages with an index range.
image_scan_findings = Table(
    "image_scan_findings",
    metadata,
    Column("repository_id", Integer, primary_key=True),
    Column("digest", String(200), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("finding", Text, nullable=False),
)

# PutRegistryScanningConfiguration: scan type and rules (JSON, as the API shapes them).
registry_scanning_configurations = Table(
    "registry_scanning_configurations",
    metadata,
    Column("registry_id", String(12), primary_key=True),
    Column("scan_type", String(16), nullable=False),
    Column("rules", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# PutAccountSetting (BASIC_SCAN_TYPE_VERSION, REGISTRY_POLICY_SCOPE, BLOB_MOUNTING).
registry_account_settings = Table(
    "registry_account_settings",
    metadata,
    Column("registry_id", String(12), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("value", String(64), nullable=False),
    Column("updated_at", Float, nullable=False),
)


# -- events and audit (revision 0009) --------------------------------------------------------

# The outbox: each event is written in the transaction of the change that causes it; `body` is
# the JSON a webhook receives, byte for byte (its signature covers exactly these bytes).
events = Table(
    "events",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("detail_type", String(128), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)
Index("ix_events_created_at", events.c.created_at)

# Webhook endpoints; `account_id` NULL receives every account's events (the operator's own,
# from the config file). The secret is sealed like access-key secrets (iam.secrets).
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(12)),
    Column("url", Text, nullable=False),
    Column("secret", Text, nullable=False),
    Column("pattern", Text),  # an EventBridge event pattern (JSON); NULL: every event
    Column("enabled", Boolean, nullable=False, default=True),
    Column("origin", String(8), nullable=False),  # "config" (synced at start-up) or "admin"
    Column("created_at", Float, nullable=False),
)

# One row per (matching webhook, event): claimed by one deliverer at a time with a lease.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    Column("webhook_id", Integer, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("status", String(16), nullable=False),  # pending, delivered, failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_holder", String(128)),
    Column("lease_expires_at", Float, nullable=False, default=0.0),
    Column("last_error", Text),
    Column("last_status", Integer),
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float),
)
Index(
    "ix_webhook_deliveries_due", webhook_deliveries.c.status, webhook_deliveries.c.next_attempt_at
)
Index("ix_webhook_deliveries_webhook", webhook_deliveries.c.webhook_id, webhook_deliveries.c.id)
Index("ix_webhook_deliveries_event", webhook_deliveries.c.event_id)

# Monotonic counters for /metrics that outlive the rows they count (purged events, deliveries,
# delivery-latency histogram buckets), per account.
event_counters = Table(
    "event_counters",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("value", Float, nullable=False, default=0.0),
)

# The audit trail: one CloudTrail-shaped record per API call; `record` is the full JSON, the other
# columns are what LookupEvents filters on.
audit_records = Table(
    "audit_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("account_id", String(12), nullable=False),
    Column("event_time", Float, nullable=False),
    Column("event_source", String(64), nullable=False),
    Column("event_name", String(128), nullable=False),
    Column("read_only", Boolean, nullable=False),
    Column("user_name", String(128)),
    Column("access_key_id", String(128)),
    Column("record", Text, nullable=False),
    # The region the call was made in (the record's awsRegion): LookupEvents is regional.
    Column("region", String(32), nullable=False, server_default=""),
)
Index("ix_audit_records_time", audit_records.c.account_id, audit_records.c.event_time)
Index(
    "ix_audit_records_region",
    audit_records.c.account_id,
    audit_records.c.region,
    audit_records.c.event_time,
)
# LookupEvents is regional: its attribute filters are read from indexes that lead with the
# account AND region (migration 0032; by (account, attribute, time) SQLite's planner chose the
# region index and filtered it, a scan for a rare attribute).
Index(
    "ix_audit_records_name",
    audit_records.c.account_id,
    audit_records.c.region,
    audit_records.c.event_name,
    audit_records.c.event_time,
)
Index(
    "ix_audit_records_user",
    audit_records.c.account_id,
    audit_records.c.region,
    audit_records.c.user_name,
    audit_records.c.event_time,
)
Index(
    "ix_audit_records_key",
    audit_records.c.account_id,
    audit_records.c.region,
    audit_records.c.access_key_id,
    audit_records.c.event_time,
)

# The resources each audit record names (LookupEvents' ResourceName and ResourceType).
audit_resources = Table(
    "audit_resources",
    metadata,
    Column(
        "record_id",
        Integer,
        ForeignKey("audit_records.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("resource_type", String(64), primary_key=True),
    Column("resource_name", String(1024), primary_key=True),
)
Index("ix_audit_resources_name", audit_resources.c.resource_name)
# No index by resource type (dropped by 0032): no plan used it (a few types name every
# record; a ResourceType lookup reads the region index and the key's), and each record paid
# its insert.

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

# Archive storage class (issue 18): an image's storage-class history. A row exists once an image
# has been archived; `status` is ARCHIVED while archived, ACTIVE after a restore (so
# DescribeImages keeps `lastArchivedAt` and shows `lastActivatedAt`). The row goes with its
# manifest (composite foreign key), so a deleted and re-pushed digest starts ACTIVE.
image_archives = Table(
    "image_archives",
    metadata,
    Column("repository_id", Integer, primary_key=True),
    Column("digest", Name(200), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("archived_at", Float, nullable=False),
    Column("activated_at", Float),
    ForeignKeyConstraint(
        ["repository_id", "digest"],
        ["manifests.repository_id", "manifests.digest"],
        ondelete="CASCADE",
    ),
)

# -- tag mutability exclusions and pull-time update exclusions (revision 0017) ---------------
# IMMUTABLE_WITH_EXCLUSION / MUTABLE_WITH_EXCLUSION: the WILDCARD filters, a JSON list.
repositories.append_column(Column("mutability_exclusions", Text))

# RegisterPullTimeUpdateExclusion: pulls by these principals leave lastRecordedPullTime alone.
pull_time_update_exclusions = Table(
    "pull_time_update_exclusions",
    metadata,
    Column("registry_id", String(12), primary_key=True),
    Column("principal_arn", Name(200), primary_key=True),
    Column("created_at", Float, nullable=False),
)

# Managed signing (issue 18, migration 0015). Signing profiles (the signer API): a profile's
# signing key is a KMS key (`key_id`, ECC_NIST_P384) and its certificate chain (leaf, then
# root, PEM) is issued once at creation; the root's private key is never stored.
signing_profiles = Table(
    "signing_profiles",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("name", Name(64), primary_key=True),
    Column("version", String(10), nullable=False),
    Column("platform_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # Active, Canceled, Revoked
    Column("validity_value", Integer, nullable=False),
    Column("validity_type", String(8), nullable=False),  # DAYS, MONTHS, YEARS
    Column("signing_parameters", Text, nullable=False, default="{}"),  # JSON object
    Column("tags", Text, nullable=False, default="{}"),  # JSON object
    Column("key_id", String(36), nullable=False),
    Column("certificate_chain", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("canceled_at", Float),
)

# PutSigningConfiguration: the registry's signing rules (JSON list of SigningRule shapes).
registry_signing_configurations = Table(
    "registry_signing_configurations",
    metadata,
    Column("registry_id", String(12), primary_key=True),
    Column("rules", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# DescribeImageSigningStatus: one row per (image, signing profile) a push matched.
image_signing_statuses = Table(
    "image_signing_statuses",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("digest", String(200), primary_key=True),
    Column("profile_arn", String(200), primary_key=True),
    Column("status", String(16), nullable=False),  # IN_PROGRESS, COMPLETE, FAILED
    Column("failure_code", String(64)),
    Column("failure_reason", Text),
    Column("signature_digest", String(200)),  # the signature manifest, once attached
    Column("updated_at", Float, nullable=False),
)

# KMS grants (issue 13): permission for a grantee principal to use a key for some operations,
# beside its key policy; deleted by RetireGrant/RevokeGrant or with the key (migration 0019).
kms_grants = Table(
    "kms_grants",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("key_id", String(36), ForeignKey("kms_keys.id", ondelete="CASCADE"), nullable=False),
    Column("issuing_account", String(12), nullable=False),
    Column("name", String(256)),
    Column("grantee_principal", String(256), nullable=False),
    Column("retiring_principal", String(256)),
    Column("operations", Text, nullable=False),  # JSON list of GrantOperation
    Column("constraints", Text),  # JSON GrantConstraints
    Column("created_at", Float, nullable=False),
)
Index("ix_kms_grants_key", kms_grants.c.key_id, kms_grants.c.grantee_principal)
Index("ix_kms_grants_retiring", kms_grants.c.retiring_principal)

# Web console sign-ins (issue 17): one row per session, keyed by the SHA-256 of the cookie's
# random id (the id itself is never stored); sign-out deletes the row (migration 0022).
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("access_key_id", String(128), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)
Index("ix_console_sessions_expires", console_sessions.c.expires_at)

# Regional repositories (issue 18, `regions_served`): a name is unique per registry and region;
# "" is the deployment's default region (`cargobay.regions.key`), so existing rows need no
# setting to migrate (migration 0024).
repositories.append_column(Column("region", String(32), nullable=False, server_default=""))
repositories.append_constraint(
    UniqueConstraint("registry_id", "region", "name", name="uq_repositories_region_name")
)

# GC's queue of candidates (issue 19, migration 0023): a (repository, digest) whose link or
# last reference went, or that an upload or mount just linked, written in the transaction that
# changed it. GC re-checks each under lock and reads only this, never the whole blob table.
# `since` is when GC's grace period starts (0: at once); repository_id 0 names no repository.
gc_queue = Table(
    "gc_queue",
    metadata,
    Column("repository_id", Integer, primary_key=True, autoincrement=False),
    Column("digest", Name(200), primary_key=True),
    Column("since", Float, nullable=False),
)
# Lifecycle rules by push time (issue 19): `sinceImagePushed` and `imageCountMoreThan` read an
# index range of the repository's images instead of all of them.
Index("ix_manifests_pushed", manifests.c.repository_id, manifests.c.pushed_at, manifests.c.digest)

# Registry-level settings per account AND region, as in ECR (issue 18's `regions_served`):
# the registry policy, replication and scanning configurations, pull-through cache rules,
# creation templates and ECR account settings (migration 0029), the signing configuration and
# the pull-time update exclusions (0030) each gain a `region` key column, "" for the
# deployment's default region (`cargobay.regions.key`), like repositories.
REGIONAL_SETTINGS = (
    registry_policies,
    replication_configurations,
    registry_scanning_configurations,
    pull_through_cache_rules,
    repository_creation_templates,
    registry_account_settings,
    registry_signing_configurations,
    pull_time_update_exclusions,
)
for _regional in REGIONAL_SETTINGS:
    _regional.append_column(
        Column("region", String(32), primary_key=True, nullable=False, server_default="")
    )
