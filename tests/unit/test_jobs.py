"""Exactly-once background jobs: leases in the shared database decide who runs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import pgcluster
from cargobay.jobs import leases
from cargobay.jobs.leases import Job
from cargobay.metadata import migrations
from cargobay.metadata.db import Database

pytestmark = pytest.mark.backend


async def _database(tmp_path: Path) -> str:
    if pgcluster.backend() == "postgres":
        cluster = pgcluster.shared_cluster()
        url = cluster.url(cluster.database_for(tmp_path))
    else:
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
    await migrations.upgrade(url)
    return url


def test_two_nodes_racing_for_a_job_run_it_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        url = await _database(tmp_path)
        runs: list[str] = []

        def make(node: str) -> Job:
            async def run() -> dict:
                runs.append(node)
                await asyncio.sleep(0.2)  # overlap with the other node's claim
                return {"node": node}

            return Job("exactly-once", interval=3600, run=run)

        nodes = [Database(url) for _ in range(4)]  # separate pools, as separate nodes have
        try:
            results = await asyncio.gather(
                *(leases.run_once(db, make(f"n{i}"), holder=f"n{i}") for i, db in enumerate(nodes))
            )
            assert len(runs) == 1
            assert sum(r is not None for r in results) == 1
            # Not due again within the interval, whoever asks.
            assert await leases.run_once(nodes[0], make("late"), holder="late") is None
            assert runs == [runs[0]]
            assert (await leases.last_result(nodes[1], "exactly-once")) == {"node": runs[0]}
        finally:
            for db in nodes:
                await db.dispose()

    asyncio.run(scenario())


def test_a_dead_holder_s_lease_expires_and_another_node_retries(tmp_path: Path) -> None:
    async def scenario() -> None:
        url = await _database(tmp_path)
        db = Database(url)
        try:
            job = Job("retry", interval=3600, run=None, lease=60)  # type: ignore[arg-type]
            now = time.time()
            # Node A claims the run and dies without finishing.
            assert await leases.try_claim(db, job, "A", now=now)
            # While the lease lives, nobody else may run it, even when forced.
            assert not await leases.try_claim(db, job, "B", now=now + 30, force=True)
            # Once it has expired, B runs it (forced: the interval has not passed).
            assert await leases.try_claim(db, job, "B", now=now + 61, force=True)
            await leases.finish(db, job, "B", {"ok": True})
            assert await leases.last_result(db, "retry") == {"ok": True}
            # A, back from the dead, cannot overwrite B's record.
            await leases.finish(db, job, "A", {"ok": False})
            assert await leases.last_result(db, "retry") == {"ok": True}
        finally:
            await db.dispose()

    asyncio.run(scenario())
