"""Repository records on every backend: creation, lookup, listing in byte order with its page
edges, settings, resource tags, the registry policy and deletion with everything it owns."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.records import blobs, manifests, repositories, tags
from metadata.conftest import Store
from metadata.helpers import digest, new_manifest, new_repo

pytestmark = pytest.mark.backend

# Byte order: '-' < '.' < '/' < '0' < '_' < 'a' (PostgreSQL's default collation differs).
NAMES = ["app", "app-b", "app.b", "app/b", "app0", "app_b", "apps"]


def test_a_repository_is_created_once_and_found_by_name(store: Store) -> None:
    async def scenario(db: Database, registry_id: str) -> None:
        async with db.write() as conn:
            assert await repositories.insert(
                conn, registry_id, "svc/api", tag_mutability="IMMUTABLE", scan_on_push=True
            )
            assert not await repositories.insert(conn, registry_id, "svc/api")
        async with db.read_now() as conn:
            row = await repositories.find(conn, registry_id, "svc/api")
            assert row is not None
            assert (row.registry_id, row.name, row.tag_mutability) == (
                registry_id,
                "svc/api",
                "IMMUTABLE",
            )
            assert row.scan_on_push is True and row.encryption_type == "AES256"
            assert row.kms_key is None and row.created_at > 0
            assert await repositories.id_of(conn, registry_id, "svc/api") == row.id
            assert await repositories.find(conn, registry_id, "svc/other") is None
            assert await repositories.find(conn, "999999999999", "svc/api") is None

    store.run(scenario)


def test_names_list_in_byte_order_and_page_at_every_edge(store: Store) -> None:
    async def scenario(db: Database, registry_id: str) -> None:
        async with db.write() as conn:
            for name in reversed(NAMES):
                await repositories.insert(conn, registry_id, name)
            await repositories.insert(conn, "000000000001", "zz-other-registry")
        async with db.read() as conn:
            assert await repositories.list_names(conn, registry_id, None, None) == NAMES
            assert await repositories.list_names(conn, registry_id, None, 2) == NAMES[:2]
            assert await repositories.list_names(conn, registry_id, "app.b", 2) == NAMES[3:5]
            # `last` need not exist; past the end there is nothing; limit 0 is an empty page.
            assert await repositories.list_names(conn, registry_id, "app/a", None) == NAMES[3:]
            assert await repositories.list_names(conn, registry_id, "apps", None) == []
            assert await repositories.list_names(conn, registry_id, None, 0) == []
            rows = await repositories.list_rows(conn, registry_id, None, "app0", None)
            assert [row.name for row in rows] == ["app_b", "apps"]
            rows = await repositories.list_rows(conn, registry_id, ["apps", "app-b", "no"], None, 1)
            assert [row.name for row in rows] == ["app-b"]

    store.run(scenario)


def test_settings_and_resource_tags(store: Store) -> None:
    async def scenario(db: Database, registry_id: str) -> None:
        async with db.write() as conn:
            repo = await new_repo(conn, registry_id, "settings")
            await repositories.update(conn, repo, tag_mutability="IMMUTABLE", policy_text="{}")
            await repositories.add_resource_tags(conn, repo, {"team": "a"})
            assert await repositories.set_resource_tags(conn, repo, {"team": "b", "env": "x"}) == 2
            await repositories.remove_resource_tags(conn, repo, ["env", "absent"])
        async with db.read() as conn:
            assert await repositories.field(conn, repo, "policy_text") == "{}"
            assert await repositories.field(conn, repo, "lifecycle_policy") is None
            assert await repositories.resource_tags(conn, repo) == {"team": "b"}
            row = await repositories.find(conn, registry_id, "settings")
            assert row is not None and row.tag_mutability == "IMMUTABLE"

    store.run(scenario)


def test_registry_policy_and_create_on_push(store: Store) -> None:
    async def scenario(db: Database, registry_id: str) -> None:
        async with db.read() as conn:
            assert await repositories.registry_policy(conn, registry_id, "") is None
            assert await repositories.create_on_push(conn, registry_id) is None
        async with db.write() as conn:
            assert not await repositories.delete_registry_policy(conn, registry_id, "")
            await repositories.put_registry_policy(conn, registry_id, "", "one")
            await repositories.put_registry_policy(conn, registry_id, "", "two")
            await repositories.put_registry_policy(conn, registry_id, "eu-west-1", "three")
            await repositories.set_create_on_push(conn, registry_id, False)
        async with db.read_now() as conn:
            assert await repositories.registry_policy(conn, registry_id, "") == "two"
            assert await repositories.registry_policy(conn, registry_id, "eu-west-1") == "three"
            assert await repositories.create_on_push(conn, registry_id) is False
        async with db.write() as conn:
            assert await repositories.delete_registry_policy(conn, registry_id, "")
            await repositories.set_create_on_push(conn, registry_id, None)
        async with db.read() as conn:
            assert await repositories.registry_policy(conn, registry_id, "") is None
            assert await repositories.registry_policy(conn, registry_id, "eu-west-1") == "three"
            assert await repositories.create_on_push(conn, registry_id) is None

    store.run(scenario)


def test_deleting_a_repository_removes_everything_it_owns_and_nothing_else(store: Store) -> None:
    async def scenario(db: Database, registry_id: str) -> None:
        async with db.write() as conn:
            gone = await new_repo(conn, registry_id, "gone")
            kept = await new_repo(conn, registry_id, "kept")
            for repo in (gone, kept):
                child = await new_manifest(conn, repo, "child", blob_seeds=("layer",))
                await new_manifest(conn, repo, "index", children=(child,))
                await tags.put(conn, repo, "latest", child)
                await repositories.add_resource_tags(conn, repo, {"k": "v"})
            assert await repositories.has_images(conn, gone)
            await repositories.delete(conn, gone)
        async with db.read() as conn:
            assert await repositories.find(conn, registry_id, "gone") is None
            assert not await repositories.has_images(conn, gone)
            for table in (
                schema.manifests,
                schema.tags,
                schema.manifest_references,
                schema.repository_blobs,
                schema.repository_tags,
            ):
                counted = select(func.count()).select_from(table)
                assert await conn.scalar(counted.where(table.c.repository_id == gone)) == 0
                assert await conn.scalar(counted.where(table.c.repository_id == kept)) > 0
            # The blob itself stays for garbage collection (the other repository links it).
            assert await blobs.linked_size(conn, kept, digest("layer")) == 10
            assert await manifests.count(conn, kept) == 2

    store.run(scenario)


def test_repositories_are_regional(store: Store) -> None:
    """The same name in two regions is two repositories ("" is the default region's key), and
    every lookup, listing and manifest pull stays within its region."""

    async def scenario(db: Database, registry_id: str) -> None:
        async with db.write() as conn:
            assert await repositories.insert(conn, registry_id, "team/app")
            assert await repositories.insert(conn, registry_id, "team/app", "eu-west-1")
            assert not await repositories.insert(conn, registry_id, "team/app", "eu-west-1")
            assert await repositories.insert(conn, registry_id, "only/eu", "eu-west-1")
            here = await repositories.id_of(conn, registry_id, "team/app")
            there = await repositories.id_of(conn, registry_id, "team/app", "eu-west-1")
            assert here is not None and there is not None and here != there
            pushed = await new_manifest(conn, there, "eu-image")
        async with db.read_now() as conn:
            row = await repositories.find(conn, registry_id, "team/app", "eu-west-1")
            assert (row.id, row.region) == (there, "eu-west-1")
            assert (await repositories.find(conn, registry_id, "team/app")).region == ""
            assert await repositories.find(conn, registry_id, "only/eu") is None
            assert await repositories.list_names(conn, registry_id, None, None) == ["team/app"]
            assert await repositories.list_names(conn, registry_id, None, None, "eu-west-1") == [
                "only/eu",
                "team/app",
            ]
            rows = await repositories.list_rows(conn, registry_id, None, None, None, "eu-west-1")
            assert [r.name for r in rows] == ["only/eu", "team/app"]
            found = await manifests.for_pull(
                conn, registry_id, "team/app", pushed, by_digest=True, region="eu-west-1"
            )
            assert found is not None and found.repository_id == there
            assert (
                await manifests.for_pull(conn, registry_id, "team/app", pushed, by_digest=True)
                is None
            )

    store.run(scenario)
