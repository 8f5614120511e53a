"""Image listings and referrers on every backend: (digest, tag) pages, the tag and archive
status filters, and referrers by subject and artifact type."""

from __future__ import annotations

import pytest

from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.records import images, tags
from metadata.conftest import Store
from metadata.helpers import new_manifest, new_repo

pytestmark = pytest.mark.backend


def test_image_ids_page_by_digest_then_tag(store: Store) -> None:
    async def scenario(db: Database, registry_id: str) -> None:
        async with db.write() as conn:
            repo = await new_repo(conn, registry_id, "i/list")
            digests = sorted([await new_manifest(conn, repo, f"m{i}") for i in range(3)])
            await tags.put(conn, repo, "b", digests[0])
            await tags.put(conn, repo, "a", digests[0])
            await tags.put(conn, repo, "c", digests[2])
            await conn.execute(
                schema.image_archives.insert().values(
                    repository_id=repo, digest=digests[2], status="ARCHIVED", archived_at=1.0
                )
            )
        every = [(digests[0], "a"), (digests[0], "b"), (digests[1], None), (digests[2], "c")]
        async with db.read() as conn:
            assert await images.list_ids(conn, repo, "ANY", None, 10) == every
            assert await images.list_ids(conn, repo, "ANY", None, 2) == every[:2]
            assert await images.list_ids(conn, repo, "ANY", (digests[0], "a"), 2) == every[1:3]
            assert await images.list_ids(conn, repo, "TAGGED", None, 10) == [
                every[0],
                every[1],
                every[3],
            ]
            assert await images.list_ids(conn, repo, "UNTAGGED", None, 10) == [every[2]]
            assert await images.list_ids(conn, repo, "ANY", None, 10, "ACTIVE") == every[:3]
            assert await images.list_ids(conn, repo, "ANY", None, 10, "ARCHIVED") == every[3:]

            rows = await images.describe(conn, repo)
            assert [row.digest for row in rows] == digests
            assert [row.status for row in rows] == ["ACTIVE", "ACTIVE", "ARCHIVED"]
            rows = await images.describe(conn, repo, after=digests[0], limit=1)
            assert [row.digest for row in rows] == digests[1:2]
            rows = await images.describe(conn, repo, tag_status="UNTAGGED")
            assert [row.digest for row in rows] == digests[1:2]
            rows = await images.describe(conn, repo, [digests[2], "sha256:" + "0" * 64])
            assert [(row.digest, row.archived_at) for row in rows] == [(digests[2], 1.0)]

    store.run(scenario)


def test_referrers_by_subject_type_and_page(store: Store) -> None:
    async def scenario(db: Database, registry_id: str) -> None:
        async with db.write() as conn:
            repo = await new_repo(conn, registry_id, "i/referrers")
            subject = await new_manifest(conn, repo, "subject")
            sboms = sorted(
                [
                    await new_manifest(
                        conn, repo, f"sbom{i}", subject=subject, artifact_type="x/sbom"
                    )
                    for i in range(3)
                ]
            )
            signature = await new_manifest(
                conn, repo, "sig", subject=subject, artifact_type="x/sig"
            )
            other = await new_repo(conn, registry_id, "i/elsewhere")
            await new_manifest(conn, other, "sbom-elsewhere", subject=subject)
        async with db.read() as conn:
            found = await images.referrers(conn, repo, subject)
            assert [row.digest for row in found] == sorted([*sboms, signature])
            found = await images.referrers(conn, repo, subject, ["x/sbom"], after=sboms[0])
            assert [row.digest for row in found] == sboms[1:]
            found = await images.referrers(conn, repo, subject, ["x/sig"], ["ACTIVE"], limit=5)
            assert [(row.digest, row.status) for row in found] == [(signature, "ACTIVE")]
            assert await images.referrers(conn, repo, subject, None, ["ARCHIVED"]) == []
            assert await images.referrers(conn, repo, sboms[0]) == []

    store.run(scenario)
