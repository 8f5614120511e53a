"""Archive records on every backend: an image's storage-class status, its moves and the
blobs only archived images reference."""

from __future__ import annotations

import pytest

from cargobay.metadata import roundtrips
from cargobay.metadata.db import Database
from cargobay.metadata.records import archives, blobs
from metadata.conftest import Store
from metadata.helpers import digest, new_manifest, new_repo

pytestmark = pytest.mark.backend


def test_archiving_and_restoring_keep_when_each_happened(store: Store) -> None:
    async def scenario(db: Database, registry_id: str) -> None:
        async with db.write() as conn:
            repo = await new_repo(conn, registry_id, "a/moves")
            child = await new_manifest(conn, repo, "child", blob_seeds=("own", "shared"))
            index = await new_manifest(conn, repo, "index", children=(child,))
            other = await new_manifest(conn, repo, "other", blob_seeds=("shared",))
            assert await archives.status(conn, repo, child) == "ACTIVE"
            assert await archives.children(conn, repo, index) == [child]
            assert await archives.children(conn, repo, child) == []
            await archives.activate(conn, repo, child, 5.0)  # not archived: nothing
            await archives.archive(conn, repo, child, 10.0)
        async with db.read() as conn:
            [row] = await archives.rows(conn, repo, [child, index, other])
            assert (row.digest, row.status, row.archived_at, row.activated_at) == (
                child,
                "ARCHIVED",
                10.0,
                None,
            )
            blobs = [digest("own"), digest("shared"), digest("unknown")]
            assert await archives.archived_blobs(conn, repo, blobs) == {digest("own")}
            assert await archives.archived_blobs(conn, repo, []) == set()
            assert await archives.blob_archived(conn, repo, digest("own"))
            assert not await archives.blob_archived(conn, repo, digest("shared"))
            assert not await archives.blob_archived(conn, repo, digest("unknown"))
            assert await archives.rows(conn, repo, []) == []
        async with db.write() as conn:
            await archives.activate(conn, repo, child, 20.0)
            await archives.archive(conn, repo, child, 30.0)
            await archives.archive(conn, repo, other, 30.0)
        async with db.read() as conn:
            found = {row.digest: row for row in await archives.rows(conn, repo, [child, other])}
            assert (found[child].status, found[child].archived_at) == ("ARCHIVED", 30.0)
            assert found[child].activated_at == 20.0  # kept across the second archive
            assert await archives.archived_blobs(conn, repo, blobs) == {
                digest("own"),
                digest("shared"),
            }
            assert await archives.blob_archived(conn, repo, digest("shared"))

    store.run(scenario)


def test_a_blob_pull_reads_its_size_and_archive_state_in_one_statement(store: Store) -> None:
    """`blobs.pull_stat` answers what `linked_size` and `archives.blob_archived` answered in
    two statements, as one counted statement."""

    async def scenario(db: Database, registry_id: str) -> None:
        async with db.write() as conn:
            repo = await new_repo(conn, registry_id, "a/pullstat")
            other = await new_repo(conn, registry_id, "a/pullstat-other")
            kept = await new_manifest(conn, repo, "kept", blob_seeds=("own", "shared"))
            await new_manifest(conn, repo, "active", blob_seeds=("shared",))
            await new_manifest(conn, other, "elsewhere", blob_seeds=("own",))
            await blobs.link(conn, repo, digest("loose"), 7)  # linked, no manifest uses it
            await archives.archive(conn, repo, kept, 10.0)

        async def counted(repository_id: int, seed: str) -> tuple[int, bool] | None:
            with roundtrips.counting() as count:
                found = await blobs.pull_stat(db, repository_id, digest(seed))
            assert count.value == 1
            return found

        assert await counted(repo, "own") == (10, True)
        assert await counted(repo, "shared") == (10, False)
        assert await counted(repo, "loose") == (7, False)
        assert await counted(repo, "unknown") is None
        assert await counted(other, "own") == (10, False)  # archived in `repo` only
        async with db.write() as conn:
            await archives.activate(conn, repo, kept, 20.0)
        assert await counted(repo, "own") == (10, False)

    store.run(scenario)
