"""Alembic's environment for cargobay.

Migrations run only on the connection `cargobay.metadata.migrations` hands over, inside the
transaction (and lock) it holds; there is no alembic.ini and no offline (`--sql`) mode.
"""

from alembic import context

from cargobay.metadata import schema

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("run migrations with `cargobay db upgrade`")

context.configure(
    connection=connection,
    target_metadata=schema.metadata,
    # SQLite alters most things by copying the table: batch mode does that.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
