"""GC's queue of candidate blobs, and an index of each repository's images by push time
(issue 19).

GC used to scan the whole blob table on every run; it now reads `gc_queue`, which every path
that links a blob or removes a link or a reference writes in the same transaction. This
migration seeds the queue with everything the old scan would have looked at first: every link
no manifest of its repository references and every blob with neither link nor reference, with
their own times as the start of the grace period. `cargobay gc --full` still scans everything,
as a safety net.

Revision ID: 0023
Revises: 0018
Create Date: 2026-11-30 06:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0024"  # the lead relinks the chain when merging
branch_labels = None
depends_on = None

_SEED_LINKS = """
INSERT INTO gc_queue (repository_id, digest, since)
SELECT rb.repository_id, rb.digest, rb.created_at FROM repository_blobs rb
WHERE NOT EXISTS (SELECT 1 FROM manifest_references mr
                  WHERE mr.repository_id = rb.repository_id AND mr.target_digest = rb.digest)
"""
_SEED_BLOBS = """
INSERT INTO gc_queue (repository_id, digest, since)
SELECT 0, b.digest, b.created_at FROM blobs b
WHERE NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)
  AND NOT EXISTS (SELECT 1 FROM manifest_references mr WHERE mr.target_digest = b.digest)
"""
_SEED_COPIES = """
INSERT INTO gc_queue (repository_id, digest, since)
SELECT 0, c.digest, MIN(c.created_at) FROM blob_copies c
WHERE NOT EXISTS (SELECT 1 FROM gc_queue q WHERE q.repository_id = 0 AND q.digest = c.digest)
GROUP BY c.digest
"""


def upgrade() -> None:
    op.create_table(
        "gc_queue",
        sa.Column("repository_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column(
            "digest",
            sa.String(length=200).with_variant(sa.String(200, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("since", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("repository_id", "digest", name=op.f("pk_gc_queue")),
    )
    # No index on `since`: GC reads the queue in key order, once per run (an index on `since`
    # made SQLite sort the whole queue for every batch).
    op.create_index("ix_manifests_pushed", "manifests", ["repository_id", "pushed_at", "digest"])
    for statement in (_SEED_LINKS, _SEED_BLOBS, _SEED_COPIES):
        op.execute(statement)


def downgrade() -> None:
    op.drop_index("ix_manifests_pushed", table_name="manifests")
    op.drop_table("gc_queue")
