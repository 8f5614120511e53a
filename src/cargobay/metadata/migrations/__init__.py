"""Schema migrations: Alembic, run from code (no alembic.ini).

Layout: `env.py` is Alembic's environment (it runs on the connection handed to it),
`versions/NNNN_<slug>.py` one revision each in a single line of history, `script.py.mako` the
template for new ones. These revisions are the only thing that creates or changes a database's
tables, on SQLite and PostgreSQL alike, with one shortcut: an empty database brought to head
gets head's tables from `schema.py` in one step and is stamped at head (Alembic's way to build
an up-to-date database from scratch), instead of replaying every revision, which cost about a
second of every first start. tests/e2e/test_migrations.py checks that both ways build the same
tables, columns, defaults, keys, indexes and collations.

An upgrade runs in one transaction that holds the database's write lock (`BEGIN IMMEDIATE` on
SQLite, a transaction-scoped advisory lock on PostgreSQL), so several processes or nodes starting
together upgrade once and the others see the result. On SQLite foreign keys are off while it runs
(batch mode copies tables, and a DROP of a referenced table would cascade) and checked before it
commits.

A new revision, after changing `schema.py`:

    python -m cargobay.metadata.migrations "add the frobnications table"

writes `versions/NNNN_add_the_frobnications_table.py` from the difference between head and
`schema.py`; read it, adjust it, and keep tests/e2e/test_migrations.py green.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import event, inspect, pool, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from cargobay.metadata.db import SchemaOutOfDate, async_url

log = logging.getLogger("cargobay")
# Alembic narrates every connection at INFO; cargobay logs what an upgrade did itself.
logging.getLogger("alembic").setLevel(logging.WARNING)

HERE = Path(__file__).parent
# What databases created by `metadata.create_all`, before migrations, hold (with `schema_info`).
LEGACY_REVISION = "0001"
# pg_advisory_xact_lock key: "cargobay" in ASCII, as a signed 64-bit integer.
_LOCK_KEY = int.from_bytes(b"cargobay", "big") & 0x7FFF_FFFF_FFFF_FFFF


class MigrationError(SchemaOutOfDate):
    """A database this cargobay cannot or will not migrate; the message is for the operator."""


@contextlib.asynccontextmanager
async def _opened(url: str) -> AsyncIterator[AsyncEngine]:
    """An engine for one migration step; database errors become one-line MigrationErrors."""
    engine = _engine(url)
    try:
        yield engine
    except (OSError, DBAPIError) as exc:
        reason = getattr(exc, "orig", None) or exc
        shown = make_url(async_url(url)).render_as_string(hide_password=True)
        raise MigrationError(f"database {shown}: {reason}") from None
    finally:
        await engine.dispose()


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE).replace("%", "%%"))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    return config


@functools.cache
def scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    """The revision this cargobay's code expects."""
    revision = scripts().get_current_head()
    assert revision is not None
    return revision


@dataclass(frozen=True)
class SchemaState:
    current: str | None  # None: no cargobay tables yet
    head: str
    known: bool  # False: a revision from a newer cargobay

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    @property
    def shown(self) -> str:
        return self.current or "none (empty database)"


def _engine(url: str) -> AsyncEngine:
    url = async_url(url)
    if not url.startswith("sqlite"):
        return create_async_engine(url, poolclass=pool.NullPool)
    engine = create_async_engine(url, poolclass=pool.NullPool)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=OFF")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _current(conn: Connection) -> str | None:
    """The database's revision; databases from before migrations count as LEGACY_REVISION."""
    revision = MigrationContext.configure(conn).get_current_revision()
    if revision is not None:
        return revision
    tables = set(inspect(conn).get_table_names())
    if "schema_info" in tables:
        return LEGACY_REVISION
    if "repositories" in tables:
        # Each read sees what had committed when it ran: another node may have built the schema
        # between the two (its tables and its revision commit together), so look again.
        revision = MigrationContext.configure(conn).get_current_revision()
        if revision is not None:
            return revision
        raise MigrationError(
            "the database holds cargobay tables but no schema revision; restore it from a backup"
        )
    return None


def _known(revision: str | None) -> bool:
    if revision is None:
        return True
    try:
        return scripts().get_revision(revision) is not None
    except (RevisionError, CommandError):  # an id from a newer cargobay
        return False


def _state(conn: Connection) -> SchemaState:
    current = _current(conn)
    return SchemaState(current, head(), _known(current))


async def state(url: str) -> SchemaState:
    """Where the database's schema is, next to where this cargobay needs it."""
    async with _opened(url) as engine, engine.connect() as conn:
        return await conn.run_sync(_state)


def _too_new(state: SchemaState) -> MigrationError:
    return MigrationError(
        f"database schema is at revision {state.current}, which this cargobay does not know "
        f"(it needs {state.head}): run a newer cargobay"
    )


def _upgrade(conn: Connection, revision: str) -> tuple[SchemaState, str | None]:
    before = _state(conn)
    if not before.known:
        raise _too_new(before)
    config = alembic_config(conn)
    unversioned = "alembic_version" not in inspect(conn).get_table_names()
    if before.current == LEGACY_REVISION and unversioned:
        command.stamp(config, LEGACY_REVISION)
    if before.current is None and revision in ("head", before.head):
        from cargobay.metadata import schema  # head's tables, in one step

        schema.metadata.create_all(conn)
        command.stamp(config, "head")
        return before, MigrationContext.configure(conn).get_current_revision()
    try:
        command.upgrade(config, revision)
    except CommandError as exc:
        raise MigrationError(f"cannot upgrade to {revision}: {exc}") from None
    if conn.dialect.name == "sqlite":
        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
        if broken:
            raise MigrationError(f"migration left rows with dangling foreign keys: {broken[:5]}")
    return before, MigrationContext.configure(conn).get_current_revision()


async def upgrade(url: str, revision: str = "head") -> tuple[SchemaState, str | None]:
    """Upgrade the database in place to `revision`; returns the state before and the revision
    after. Idempotent, and safe to run from several processes at once."""
    async with _opened(url) as engine, engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        return await conn.run_sync(_upgrade, revision)


async def ensure(url: str, *, upgrade_schema: bool) -> SchemaState:
    """Make sure the schema is at head before serving: upgrade it when allowed, otherwise
    raise SchemaOutOfDate with the one line to show the operator."""
    current = await state(url)
    if not current.known:
        raise SchemaOutOfDate(str(_too_new(current)))
    if current.up_to_date:
        return current
    if not upgrade_schema:
        raise SchemaOutOfDate(
            f"database schema is at revision {current.shown}, this cargobay needs "
            f"{current.head}: run `cargobay db upgrade` with the same --data-dir, --database "
            "or --config, or start with --upgrade-db"
        )
    before, after = await upgrade(url)
    if before.current != after:
        log.info("database schema upgraded from revision %s to %s", before.shown, after)
    return await state(url)


def _with_ruff(config: Config) -> Config:
    """Format generated revisions with ruff, when it is installed."""
    if shutil.which("ruff"):
        config.set_section_option("post_write_hooks", "hooks", "ruff_format")
        config.set_section_option("post_write_hooks", "ruff_format.type", "exec")
        config.set_section_option("post_write_hooks", "ruff_format.executable", "ruff")
        config.set_section_option(
            "post_write_hooks", "ruff_format.options", "format REVISION_SCRIPT_FILENAME"
        )
    return config


def new_revision(message: str) -> str:
    """Write the next revision from the difference between head and `schema.py` (for
    developers, in a source checkout); returns the new file's path."""
    import asyncio

    rev_id = f"{int(head()) + 1:04d}"

    async def generate(url: str) -> Any:
        await upgrade(url)
        engine = _engine(url)
        try:
            async with engine.begin() as conn:
                return await conn.run_sync(
                    lambda sync: command.revision(
                        _with_ruff(alembic_config(sync)), message, autogenerate=True, rev_id=rev_id
                    )
                )
        finally:
            await engine.dispose()

    with tempfile.TemporaryDirectory() as tmp:
        script = asyncio.run(generate(f"sqlite+aiosqlite:///{tmp}/head.db"))
    scripts.cache_clear()
    return str(script.path)
