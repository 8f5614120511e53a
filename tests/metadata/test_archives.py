"""Archive records on every backend: an image's storage-class status, its moves and the
blobs only archived images reference."""

from __future__ import annotations

import pytest

from cargobay.metadata.db import Database
from cargobay.metadata.records import archives
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
