"""The embedded database layer: read transactions in threads, lookups on the event loop, and
neither able to starve the other."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from cargobay.metadata import migrations, schema
from cargobay.metadata.db import THREAD_READS, Database
from cargobay.metadata.sql import upsert


async def _database(path: Path) -> Database:
    await migrations.upgrade("sqlite:///" + str(path))
    return Database("sqlite:///" + str(path))


def test_many_open_reads_never_starve_loop_lookups(tmp_path: Path) -> None:
    """More read transactions than the pool has connections, each holding its connection
    across an await while lookups run on the loop: all finish (a starved lookup would block
    the event loop until the pool's 30 s timeout, and raise)."""

    async def scenario() -> tuple[int, int]:
        db = await _database(tmp_path / "meta.db")
        async with db.write() as conn:
            await upsert(conn, schema.server_keys, ["name"], name="k", value="v", created_at=0.0)
        t = schema.server_keys
        gate = asyncio.Event()

        async def long_read() -> int:
            async with db.read() as conn:
                await gate.wait()  # hold the transaction open
                return len((await conn.execute(select(t.c.name))).all())

        async def lookup() -> int:
            async with db.read_now() as conn:
                return len((await conn.execute(select(t.c.value))).all())

        readers = [asyncio.create_task(long_read()) for _ in range(3 * THREAD_READS)]
        await asyncio.sleep(0.1)
        looked = [await asyncio.wait_for(lookup(), 20) for _ in range(10)]
        gate.set()
        read = await asyncio.wait_for(asyncio.gather(*readers), 20)
        await db.dispose()
        return sum(read), sum(looked)

    assert asyncio.run(scenario()) == (3 * THREAD_READS, 10)


def test_a_read_transaction_sees_one_snapshot(tmp_path: Path) -> None:
    """Statements of one `read` share a snapshot: a commit in between is not seen by it."""

    async def scenario() -> tuple[list[str], list[str], list[str]]:
        db = await _database(tmp_path / "meta.db")
        t = schema.server_keys

        async def put(value: str) -> None:
            async with db.write() as conn:
                await upsert(conn, t, ["name"], name="k", value=value, created_at=0.0)

        await put("before")
        async with db.read() as conn:
            first = [r.value for r in (await conn.execute(select(t.c.value))).all()]
            await put("after")
            second = [r.value for r in (await conn.execute(select(t.c.value))).all()]
        async with db.read() as conn:
            third = [r.value for r in (await conn.execute(select(t.c.value))).all()]
        await db.dispose()
        return first, second, third

    assert asyncio.run(scenario()) == (["before"], ["before"], ["after"])


def test_a_cancelled_read_returns_its_connection(tmp_path: Path) -> None:
    """Cancelling a task mid-read neither leaks the connection nor breaks the next reads."""

    async def scenario() -> int:
        db = await _database(tmp_path / "meta.db")
        t = schema.server_keys

        async def stuck() -> None:
            async with db.read() as conn:
                await conn.execute(select(t.c.name))
                await asyncio.sleep(60)

        tasks = [asyncio.create_task(stuck()) for _ in range(2 * THREAD_READS)]
        await asyncio.sleep(0.2)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        counts = []
        for _ in range(2 * THREAD_READS):
            async with db.read() as conn:
                counts.append(len((await conn.execute(select(t.c.name))).all()))
        await db.dispose()
        return len(counts)

    assert asyncio.run(scenario()) == 2 * THREAD_READS


def test_a_write_with_savepoints_keeps_its_sub_journal_in_memory_then_puts_it_back(
    tmp_path: Path,
) -> None:
    """A batch of pushes (`savepoints=True`) keeps SQLite's sub-journal in memory instead of
    spilling it to a temporary file; the writer's other transactions, and a batch that
    failed, leave the default in place."""

    def temp_store(conn: object) -> int:
        driver = conn.driver()  # type: ignore[attr-defined]
        return int(driver.execute("PRAGMA temp_store").fetchone()[0])

    async def scenario() -> list[int]:
        db = await _database(tmp_path / "meta.db")
        seen = []
        try:
            async with db.write(savepoints=True) as conn:
                seen.append(temp_store(conn))
                await upsert(conn, schema.server_keys, ["name"], name="a", value="v", created_at=0)
            async with db.write() as conn:
                seen.append(temp_store(conn))
            try:
                async with db.write(savepoints=True) as conn:
                    raise RuntimeError("a failed batch")
            except RuntimeError:
                pass
            async with db.write() as conn:
                seen.append(temp_store(conn))
                t = schema.server_keys
                seen.append(len((await conn.execute(select(t.c.name))).all()))
        finally:
            await db.dispose()
        return seen

    assert asyncio.run(scenario()) == [2, 0, 0, 1]  # MEMORY, then the default (0) again
