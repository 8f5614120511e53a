"""Leases on named resources (upload locks): one holder at a time across processes and nodes,
taken over once expired or by the holder's own replacement; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import select

import pgcluster
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.leases import (
    LeaseBusy,
    Leases,
    node_holder,
    node_id,
    process_holder,
    release_node,
)

pytestmark = pytest.mark.backend


async def _nodes(tmp_path: Path, count: int) -> list[Database]:
    """Separate pools on one database, as separate nodes have."""
    url = await pgcluster.migrated_database(tmp_path)
    return [Database(url) for _ in range(count)]


async def _holders(db: Database) -> list[str]:
    t = schema.resource_leases
    async with db.read() as conn:
        return [row.holder for row in await conn.execute(select(t.c.holder).order_by(t.c.name))]


def test_two_holders_exclude_each_other_until_release(tmp_path: Path) -> None:
    async def scenario() -> None:
        nodes = await _nodes(tmp_path, 2)
        a, b = Leases(nodes[0], "node-a/w0"), Leases(nodes[1], "node-b/w0")
        try:
            token = await a.acquire("upload:1")
            with pytest.raises(LeaseBusy):
                await b.acquire("upload:1")
            # Two requests of one process exclude each other too.
            with pytest.raises(LeaseBusy):
                await a.acquire("upload:1")
            # Other names are independent.
            other = await b.acquire("upload:2")
            await a.release("upload:1", token)
            again = await b.acquire("upload:1")
            with pytest.raises(LeaseBusy):
                await a.acquire("upload:1")
            await b.release("upload:1", again)
            await b.release("upload:2", other)
            assert await _holders(nodes[0]) == []
        finally:
            for db in nodes:
                await db.dispose()

    asyncio.run(scenario())


def test_racing_claims_have_exactly_one_winner(tmp_path: Path) -> None:
    async def scenario() -> None:
        nodes = await _nodes(tmp_path, 4)
        try:
            holders = [Leases(db, f"node-{i}/w0") for i, db in enumerate(nodes)]

            async def claim(leases: Leases) -> bool:
                try:
                    await leases.acquire("upload:race")
                except LeaseBusy:
                    return False
                return True

            won = await asyncio.gather(*(claim(h) for h in holders))
            assert sum(won) == 1
            assert await _holders(nodes[0]) == [holders[won.index(True)].holder]
        finally:
            for db in nodes:
                await db.dispose()

    asyncio.run(scenario())


def test_an_expired_lease_is_taken_over_and_the_old_holder_cannot_undo_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        nodes = await _nodes(tmp_path, 3)
        a = Leases(nodes[0], "node-a/w0", ttl=60)
        b = Leases(nodes[1], "node-b/w0", ttl=60)
        c = Leases(nodes[2], "node-c/w0", ttl=60)
        try:
            now = time.time()
            old = await a.acquire("upload:1", now=now)  # node A then stalls or dies
            with pytest.raises(LeaseBusy):
                await b.acquire("upload:1", now=now + 30)
            new = await b.acquire("upload:1", now=now + 61)
            # A, back from the dead, finds its lease gone and cannot release B's.
            assert not await a.renew("upload:1", old, now=now + 62)
            await a.release("upload:1", old)
            with pytest.raises(LeaseBusy):
                await c.acquire("upload:1", now=now + 63)
            assert await b.renew("upload:1", new, now=now + 100)
            with pytest.raises(LeaseBusy):
                await c.acquire("upload:1", now=now + 150)  # renewed: alive until now + 160
            assert await _holders(nodes[0]) == ["node-b/w0"]
        finally:
            for db in nodes:
                await db.dispose()

    asyncio.run(scenario())


def test_a_replaced_worker_takes_over_its_predecessor_s_leases_at_once(tmp_path: Path) -> None:
    """A worker killed mid-request leaves its lease; the process that replaces it (same node,
    same slot, so the same holder id) takes it without waiting for expiry. Nobody else can."""

    async def scenario() -> None:
        nodes = await _nodes(tmp_path, 2)
        holder = node_holder(tmp_path / "data", 0)
        assert holder == node_holder(tmp_path / "data" / ".." / "data", 0)
        assert holder != node_holder(tmp_path / "data", 1)
        assert holder != node_holder(tmp_path / "other", 0)
        dead = Leases(nodes[0], holder)
        try:
            await dead.acquire("upload:1")
            with pytest.raises(LeaseBusy):
                await Leases(nodes[1], node_holder(tmp_path / "data", 1)).acquire("upload:1")
            with pytest.raises(LeaseBusy):
                await Leases(nodes[1], process_holder()).acquire("upload:1")
            replacement = Leases(nodes[1], holder)
            token = await replacement.acquire("upload:1")
            assert await replacement.renew("upload:1", token)
        finally:
            for db in nodes:
                await db.dispose()

    asyncio.run(scenario())


def test_hold_renews_while_held_and_releases_after(tmp_path: Path) -> None:
    async def scenario() -> None:
        nodes = await _nodes(tmp_path, 2)
        a = Leases(nodes[0], "node-a/w0", ttl=0.6, renew=0.1)
        b = Leases(nodes[1], "node-b/w0", ttl=0.6)
        try:
            async with a.hold("upload:1"):
                for _ in range(4):  # several lifetimes: kept alive by renewal alone
                    await asyncio.sleep(0.4)
                    with pytest.raises(LeaseBusy):
                        await b.acquire("upload:1")
            token = await b.acquire("upload:1")  # released on exit, no expiry needed
            await b.release("upload:1", token)

            # Released when the block fails, too, and when the task is cancelled.
            with pytest.raises(RuntimeError):
                async with a.hold("upload:2"):
                    raise RuntimeError("boom")
            entered = asyncio.Event()

            async def held_forever() -> None:
                async with a.hold("upload:3"):
                    entered.set()
                    await asyncio.sleep(3600)

            task = asyncio.ensure_future(held_forever())
            await entered.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await _holders(nodes[0]) == []
        finally:
            for db in nodes:
                await db.dispose()

    asyncio.run(scenario())


def test_leases_expired_long_ago_are_swept(tmp_path: Path) -> None:
    async def scenario() -> None:
        nodes = await _nodes(tmp_path, 2)
        try:
            now = time.time()
            await Leases(nodes[0], "gone/w0", ttl=60).acquire("upload:dead", now=now - 3600)
            live = Leases(nodes[1], "node-b/w0", ttl=60)
            await live.acquire("upload:live", now=now)
            assert await _holders(nodes[0]) == ["node-b/w0"]
        finally:
            for db in nodes:
                await db.dispose()

    asyncio.run(scenario())


def test_a_starting_node_drops_only_its_own_leases(tmp_path: Path) -> None:
    """A restarted node's workers are all new: whatever its previous run held is orphaned,
    whichever worker held it. Other nodes' leases stay."""

    async def scenario() -> None:
        nodes = await _nodes(tmp_path, 1)
        db = nodes[0]
        data, other = tmp_path / "data", tmp_path / "data_other"
        try:
            for slot in (0, 1):
                await Leases(db, node_holder(data, slot)).acquire(f"upload:{slot}")
            await Leases(db, node_holder(other, 0)).acquire("upload:other")
            assert await release_node(db, node_id(data)) == 2
            assert await _holders(db) == [node_holder(other, 0)]
            await Leases(db, node_holder(data, 1)).acquire("upload:0")
        finally:
            await db.dispose()

    asyncio.run(scenario())
