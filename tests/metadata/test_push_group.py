"""Group commit of a process's pushes (`registry.pushgroup`): on a SQLite file, concurrent
pushes share write transactions, each push between its own SAVEPOINT and RELEASE; each is
answered only once its transaction committed, a failed one leaves nothing of its own and
takes none of the others with it, and a failed COMMIT fails every push it held. On
PostgreSQL each push keeps its own transaction; what the pushes store is the same."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import select

from cargobay.errors import ImageTagAlreadyExists
from cargobay.metadata import roundtrips, schema
from cargobay.metadata.db import Database
from cargobay.registry.manifests import ManifestService
from metadata.conftest import Store
from metadata.test_push_writes import _digest, _image, _repo, _service, _stored

pytestmark = pytest.mark.backend

PUSHES = 24  # more than one batch (`registry.pushgroup.MAX_BATCH`)


class _CountedWrites:
    """`db` counting its write transactions; with `fail_commit`, each fails as it ends (the
    transaction rolls back, as when its COMMIT fails)."""

    def __init__(self, db: Database, fail_commit: bool = False) -> None:
        self._db = db
        self.fail_commit = fail_commit
        self.transactions = 0
        self.options: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    @asynccontextmanager
    async def write(self, **options: Any) -> AsyncIterator[Any]:
        self.transactions += 1
        self.options.append(options)
        async with self._db.write(**options) as conn:
            yield conn
            if self.fail_commit:
                raise OSError("disk I/O error")


async def _tag_committed(db: Database, repo_id: int, tag: str) -> str | None:
    """The tag's digest as another connection sees it: only what has committed."""
    t = schema.tags
    async with db.read() as conn:
        query = select(t.c.digest).where(t.c.repository_id == repo_id, t.c.name == tag)
        return (await conn.execute(query)).scalar_one_or_none()


def test_concurrent_pushes_share_transactions_and_answer_after_their_commit(store: Store) -> None:
    async def scenario(db: Database, registry_id: str) -> None:
        repo = await _repo(db, registry_id, "group/many", "MUTABLE")
        lone = _service(db)
        with roundtrips.counting() as count:
            await lone.put_image(repo, _image(0), None, tag="t0")
        lone_statements = count.value
        counted = _CountedWrites(db)
        service = _service(counted)

        async def push(n: int) -> int:
            with roundtrips.counting() as count:
                put = await service.put_image(repo, _image(n), None, tag=f"t{n}")
            # Answered: committed, so another connection sees it.
            assert await _tag_committed(db, repo.id, f"t{n}") == put.digest == _digest(_image(n))
            return count.value

        counts = await asyncio.gather(*(push(n) for n in range(1, PUSHES + 1)))
        # Each push counts what a lone push counts, batched or not.
        assert counts == [lone_statements] * PUSHES
        if db.writes_in_turn:
            assert counted.transactions <= PUSHES // 2
            # A batch of savepoints keeps SQLite's sub-journal in memory (`Database.write`).
            assert counted.options == [{"savepoints": True}] * counted.transactions
        else:
            assert counted.transactions == PUSHES
        stored = await _stored(db, repo)
        assert len(stored["manifests"]) == PUSHES + 1
        assert len(stored["events"]) == PUSHES + 1
        assert {name for name, _ in stored["tags"]} == {f"t{n}" for n in range(PUSHES + 1)}

    store.run(scenario)


def test_a_failed_push_undoes_only_itself(store: Store) -> None:
    async def scenario(db: Database, registry_id: str) -> None:
        repo = await _repo(db, registry_id, "group/one-fails", "IMMUTABLE")
        service = _service(db)
        await service.put_image(repo, _image(0), None, tag="taken")
        # Pushes 1..7 of new images, push 4 under the immutable tag already taken.
        outcomes = await asyncio.gather(
            *(
                service.put_image(repo, _image(n), None, tag="taken" if n == 4 else f"t{n}")
                for n in range(1, 8)
            ),
            return_exceptions=True,
        )
        assert isinstance(outcomes[3], ImageTagAlreadyExists)
        assert [o.digest for i, o in enumerate(outcomes) if i != 3] == [
            _digest(_image(n)) for n in (1, 2, 3, 5, 6, 7)
        ]
        stored = await _stored(db, repo)
        digests = {row[0] for row in stored["manifests"]}
        assert _digest(_image(4)) not in digests  # its manifest row went with its savepoint
        assert len(digests) == 7
        assert len(stored["events"]) == 7
        assert ("taken", _digest(_image(0))) in stored["tags"]

    store.run(scenario)


def test_a_failed_commit_fails_every_push_it_held(store: Store) -> None:
    async def scenario(db: Database, registry_id: str) -> None:
        repo = await _repo(db, registry_id, "group/commit-fails", "MUTABLE")
        service = _service(_CountedWrites(db, fail_commit=True))
        outcomes = await asyncio.gather(
            *(service.put_image(repo, _image(n), None, tag=f"t{n}") for n in range(6)),
            return_exceptions=True,
        )
        assert all(isinstance(o, OSError) for o in outcomes)
        stored = await _stored(db, repo)
        assert stored["manifests"] == [] and stored["tags"] == [] and stored["events"] == []
        # The group goes on with the next pushes.
        put = await _service(db).put_image(repo, _image(9), None, tag="after")
        assert await _tag_committed(db, repo.id, "after") == put.digest

    store.run(scenario)


def test_a_cancelled_push_neither_blocks_nor_joins_the_others(store: Store) -> None:
    async def scenario(db: Database, registry_id: str) -> None:
        repo = await _repo(db, registry_id, "group/cancelled", "MUTABLE")
        service: ManifestService = _service(db)
        tasks = [
            asyncio.ensure_future(service.put_image(repo, _image(n), None, tag=f"t{n}"))
            for n in range(6)
        ]
        await asyncio.sleep(0)  # each has queued (or begun) its push
        tasks[2].cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(outcomes[2], asyncio.CancelledError)
        for n, outcome in enumerate(outcomes):
            if n != 2:
                assert outcome.digest == _digest(_image(n))
                assert await _tag_committed(db, repo.id, f"t{n}") == outcome.digest
        assert await _tag_committed(db, repo.id, "t2") is None

    store.run(scenario)


def test_a_push_inside_a_write_transaction_is_refused_not_left_waiting(store: Store) -> None:
    async def scenario(db: Database, registry_id: str) -> None:
        repo = await _repo(db, registry_id, "group/nested", "MUTABLE")
        service = _service(db)
        if not db.writes_in_turn:  # PostgreSQL: a push's transaction of its own, no lock
            return
        async with db.write():
            # In this task (asyncio.timeout, not wait_for's task of its own): a hang would fail.
            with pytest.raises(RuntimeError, match="nested write transaction"):
                async with asyncio.timeout(30):
                    await service.put_image(repo, _image(1), None, tag="t1")
        # The group is unharmed: the next push goes through.
        put = await service.put_image(repo, _image(2), None, tag="t2")
        assert await _tag_committed(db, repo.id, "t2") == put.digest

    store.run(scenario)
