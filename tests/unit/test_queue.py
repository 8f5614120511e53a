"""The durable task queue: enqueued in a transaction, claimed exactly once across nodes,
retried with backoff (its base and cap are settings), failed past its deadline, taken over
when a claimant dies."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import pgcluster
from cargobay.config import ConfigError, load_settings
from cargobay.jobs import queue
from cargobay.metadata import migrations, schema
from cargobay.metadata.db import Database

pytestmark = pytest.mark.backend


async def _database(tmp_path: Path) -> str:
    if pgcluster.backend() == "postgres":
        cluster = pgcluster.shared_cluster()
        url = cluster.url(cluster.database_for(tmp_path))
    else:
        url = f"sqlite:///{tmp_path / 'queue.db'}"
    await migrations.upgrade(url)
    return url


async def _statuses(db: Database) -> list[tuple[str, int, str | None]]:
    t = schema.tasks
    async with db.read() as conn:
        rows = await conn.execute(
            t.select().with_only_columns(t.c.status, t.c.attempts, t.c.last_error).order_by(t.c.id)
        )
        return [tuple(row) for row in rows]


def test_a_rolled_back_transaction_leaves_no_task(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = Database(await _database(tmp_path))
        try:
            with pytest.raises(RuntimeError):
                async with db.write() as conn:
                    await queue.enqueue(conn, "demo", {"n": 1})
                    raise RuntimeError("the change failed")
            async with db.write() as conn:
                await queue.enqueue(conn, "demo", {"n": 2})
            assert [s for s, _, _ in await _statuses(db)] == ["pending"]
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_a_key_makes_enqueue_idempotent(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = Database(await _database(tmp_path))
        try:
            for _ in range(3):
                async with db.write() as conn:
                    await queue.enqueue(conn, "demo", {"n": 1}, key="image-1")
            async with db.write() as conn:
                await queue.enqueue(conn, "other", {"n": 1}, key="image-1")
            assert len(await _statuses(db)) == 2
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_four_nodes_claim_each_task_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        url = await _database(tmp_path)
        nodes = [Database(url) for _ in range(4)]
        try:
            async with nodes[0].write() as conn:
                for n in range(20):
                    await queue.enqueue(conn, "demo", {"n": n})
            claimed = await asyncio.gather(
                *(queue.claim(db, ["demo"], f"node{i}", limit=20) for i, db in enumerate(nodes))
            )
            numbers = [task.payload["n"] for tasks in claimed for task in tasks]
            assert sorted(numbers) == list(range(20))
            # Nothing is due while the leases live.
            assert await queue.claim(nodes[1], ["demo"], "late", limit=20) == []
        finally:
            for db in nodes:
                await db.dispose()

    asyncio.run(scenario())


def test_retry_backs_off_then_fails_past_the_deadline(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = Database(await _database(tmp_path))
        try:
            async with db.write() as conn:
                await queue.enqueue(conn, "flaky", {}, deadline=30.0)

            async def down(task: queue.Task) -> None:
                raise queue.Retry("destination down")

            [task] = await queue.claim(db, ["flaky"], "me")
            assert await queue.run_task(db, task, "me", down) == "pending"
            assert await _statuses(db) == [("pending", 1, "destination down")]
            # Not due again before its backoff.
            assert await queue.claim(db, ["flaky"], "me") == []

            async def far(task: queue.Task) -> None:
                raise queue.Retry("still down", delay=60.0)

            t = schema.tasks
            async with db.write() as conn:
                await conn.execute(t.update().values(run_after=0.0))
            [task] = await queue.claim(db, ["flaky"], "me")
            assert await queue.run_task(db, task, "me", far) == "failed"
            assert await _statuses(db) == [("failed", 2, "still down")]
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_a_dead_claimants_task_is_taken_over_after_its_lease(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = Database(await _database(tmp_path))
        try:
            async with db.write() as conn:
                await queue.enqueue(conn, "demo", {"n": 1})
            # A lease long enough that a loaded machine cannot let it lapse before the check.
            [task] = await queue.claim(db, ["demo"], "dead", lease=2.0)
            assert await queue.claim(db, ["demo"], "alive") == []
            deadline = time.monotonic() + 30
            while not (taken := await queue.claim(db, ["demo"], "alive")):
                assert time.monotonic() < deadline, "the lapsed lease was never taken over"
                await asyncio.sleep(0.1)
            [again] = taken
            assert again.id == task.id and again.attempts == 2
            # The dead claimant's late outcome no longer counts.
            await queue.complete(db, task, "dead")
            assert (await _statuses(db))[0][0] == "running"
            await queue.complete(db, again, "alive")
            assert (await _statuses(db))[0][0] == "done"
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_the_runner_drains_what_is_due(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = Database(await _database(tmp_path))
        seen: list[int] = []

        async def handle(task: queue.Task) -> None:
            seen.append(task.payload["n"])

        runner = queue.TaskRunner(db, {"demo": handle}, tick=0.05, concurrency=2)
        try:
            runner.start()
            async with db.write() as conn:
                for n in range(5):
                    await queue.enqueue(conn, "demo", {"n": n})
            runner.wake()
            deadline = time.monotonic() + 20
            while len(seen) < 5 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert sorted(seen) == list(range(5))
        finally:
            await runner.stop()
            await db.dispose()

    asyncio.run(scenario())


def test_backoff_doubles_from_its_base_up_to_its_cap() -> None:
    assert [queue.backoff(n) for n in (1, 2, 3, 8, 9, 20)] == [2, 4, 8, 256, 300, 300]
    assert [queue.backoff(n, 1, 4) for n in (1, 2, 3, 4, 10)] == [1, 2, 4, 4, 4]


def test_the_runners_backoff_settings_set_when_a_retried_task_is_due(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = Database(await _database(tmp_path))
        try:
            async with db.write() as conn:
                await queue.enqueue(conn, "flaky", {})
            for attempt in range(1, 5):
                t = schema.tasks
                async with db.write() as conn:
                    await conn.execute(t.update().values(run_after=0.0))
                [task] = await queue.claim(db, ["flaky"], "me")
                before = time.time()

                async def down(task: queue.Task) -> None:
                    raise queue.Retry("destination down")

                status = await queue.run_task(
                    db, task, "me", down, backoff_base=1.0, backoff_cap=3.0
                )
                assert status == "pending"
                async with db.read() as conn:
                    [run_after] = (
                        await conn.execute(t.select().with_only_columns(t.c.run_after))
                    ).scalars()
                wanted = min(3.0, 2 ** (attempt - 1))
                assert before + wanted <= run_after <= time.time() + wanted
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_task_backoff_settings_are_read_and_checked() -> None:
    settings = load_settings(environ={})
    assert (settings.task_backoff_seconds, settings.task_max_backoff_seconds) == (2, 300)
    env = {"CARGOBAY_TASK_BACKOFF_SECONDS": "1", "CARGOBAY_TASK_MAX_BACKOFF_SECONDS": "4"}
    settings = load_settings(environ=env)
    assert (settings.task_backoff_seconds, settings.task_max_backoff_seconds) == (1, 4)
    for bad in (
        {"CARGOBAY_TASK_BACKOFF_SECONDS": "0"},
        {**env, "CARGOBAY_TASK_BACKOFF_SECONDS": "5"},
    ):
        with pytest.raises(ConfigError, match="task_backoff_seconds"):
            load_settings(environ=bad)
