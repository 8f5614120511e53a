"""`Database` hands out three kinds of connection (asyncio, synchronous on the loop, and
statements in a thread); each is a `Conn`, and each runs the record layer alike."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from cargobay.metadata.conn import Conn
from cargobay.metadata.db import Database
from cargobay.metadata.records import repositories
from metadata.conftest import Store

pytestmark = pytest.mark.backend


def test_every_connection_database_gives_is_a_conn(store: Store) -> None:
    async def scenario(db: Database, registry_id: str) -> None:
        kinds = set()
        async with db.write() as conn:
            assert isinstance(conn, Conn)
            kinds.add(type(conn).__name__)
            await repositories.insert(conn, registry_id, "conn/each")
        for opened in (db.read, db.read_now):
            async with opened() as conn:
                assert isinstance(conn, Conn)
                kinds.add(type(conn).__name__)
                assert await conn.scalar(text("SELECT 1")) == 1
                assert conn.dialect.name == (
                    "sqlite" if store.backend == "sqlite" else "postgresql"
                )
                row = await repositories.find(conn, registry_id, "conn/each")
                assert row is not None and row.name == "conn/each"
        expected = (
            {"_SyncReads", "_ThreadReads"} if store.backend == "sqlite" else {"AsyncConnection"}
        )
        assert kinds == expected

    store.run(scenario)
