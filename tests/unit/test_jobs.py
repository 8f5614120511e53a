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


def test_may_be_due_follows_the_claim_s_condition() -> None:
    job = Job("j", interval=60, run=None)  # type: ignore[arg-type]
    row = leases._LEASES.row_type
    now = 1000.0
    assert leases.may_be_due(job, None, now)  # no row yet: the claim inserts it
    assert leases.may_be_due(job, row("j", 0.0, 0.0), now)  # never run
    assert not leases.may_be_due(job, row("j", now + 1, now - 120), now)  # a live lease
    assert not leases.may_be_due(job, row("j", 0.0, now - 30), now)  # ran 30 s ago
    assert leases.may_be_due(job, row("j", 0.0, now - 60), now)  # the interval has passed


def test_the_scheduler_claims_only_what_looks_due(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each tick reads the lease rows and writes nothing when no job is due: a job with an
    hour's interval is claimed once, however many ticks pass, and a job due every tick is
    claimed again."""

    async def scenario() -> None:
        url = await _database(tmp_path)
        db = Database(url)
        claims: list[str] = []
        reads = 0
        real_claim, real_leases = leases.try_claim, leases._LEASES

        async def counting_claim(db: Database, job: Job, holder: str, **kw: object) -> bool:
            claims.append(job.name)
            return await real_claim(db, job, holder, **kw)  # type: ignore[arg-type]

        class CountingRead:
            async def all(self, db: Database, params: dict) -> list:
                nonlocal reads
                reads += 1
                return await real_leases.all(db, params)

        monkeypatch.setattr(leases, "try_claim", counting_claim)
        monkeypatch.setattr(leases, "_LEASES", CountingRead())

        async def run() -> dict:
            return {}

        hourly = Job("hourly", interval=3600, run=run)
        always = Job("always", interval=0, run=run)
        scheduler = leases.Scheduler(db, [hourly, always], tick=0.01)
        scheduler.start()
        try:
            deadline = time.monotonic() + 60
            while reads < 5 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        finally:
            await scheduler.stop()
            await db.dispose()
        assert reads >= 5
        assert claims.count("hourly") == 1
        assert claims.count("always") >= reads - 1

    asyncio.run(scenario())
