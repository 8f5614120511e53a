"""What the migrations that make registry-level settings regional (0029, 0030) share: a
`region` column ("" for the deployment's default region, so existing rows are its) added to
each table's primary key, and the way back, refused while another region has rows (they
would collide with the default region's)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def add_region_to_keys(keys: dict[str, list[str]]) -> None:
    """Each table in `keys` (mapped to its primary key before) gains `region` in its key."""
    for table, key in keys.items():
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("region", sa.String(32), nullable=False, server_default=sa.text("''"))
            )
            batch.drop_constraint(f"pk_{table}", type_="primary")
            batch.create_primary_key(f"pk_{table}", [*key, "region"])


def drop_region_from_keys(keys: dict[str, list[str]]) -> None:
    """The inverse of `add_region_to_keys`, refused while another region has rows."""
    bind = op.get_bind()
    for table in keys:
        others = bind.execute(sa.text(f"SELECT count(*) FROM {table} WHERE region <> ''"))
        if others.scalar():
            raise RuntimeError(f"{table} has rows of other regions; delete them to downgrade")
    for table, key in keys.items():
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"pk_{table}", type_="primary")
            batch.create_primary_key(f"pk_{table}", key)
            batch.drop_column("region")
