"""Access keys: a keyed verifier of the secret beside the sealed secret.

Existing keys get NULL; `cargobay serve` fills them in at start-up (CredentialStore
.backfill_verifiers), and until then a Basic check falls back to opening the secret.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 20:48:17.254802
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("access_keys") as batch_op:
        batch_op.add_column(sa.Column("secret_verifier", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("access_keys") as batch_op:
        batch_op.drop_column("secret_verifier")
