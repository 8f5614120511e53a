"""Manifest and tag records on every backend: storing a manifest with its references, the
pull lookups (one and many), tag moves, listing in byte order, deletes and their parents."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.records import blobs, manifests, tags
from cargobay.registry.hooks import Hooks
from cargobay.scans.settings import push_reads
from metadata.conftest import Store
from metadata.helpers import digest, new_manifest, new_repo

pytestmark = pytest.mark.backend


def test_a_manifest_is_stored_once_with_its_references(store: Store) -> None:
    async def scenario(db: Database, registry_id: str) -> None:
        async with db.write() as conn:
            repo = await new_repo(conn, registry_id, "m/store")
            child = await new_manifest(conn, repo, "child", blob_seeds=("c", "l"), image_size=7)
            index = await new_manifest(conn, repo, "index", children=(child,))
            again = await manifests.insert(
                conn,
                repo,
                child,
                blobs=[],
                children=[],
                media_type="x",
                size=1,
                image_size=1,
                content=b"other",
            )
            assert again is False
        async with db.read() as conn:
            assert await manifests.present(conn, repo, [child, index, digest("no")]) == {
                child,
                index,
            }
            assert await manifests.largest_image(conn, repo, [child, digest("no")]) == 7
            assert await manifests.largest_image(conn, repo, [digest("no")]) == 0
            assert await manifests.count(conn, repo) == 2
            assert await manifests.parents(conn, repo, child) == [index]
            assert await manifests.parents(conn, repo, index) == []
            mr = schema.manifest_references
            kinds = await conn.execute(
                select(mr.c.target_digest, mr.c.kind).where(mr.c.repository_id == repo)
            )
            assert sorted(kinds) == sorted(
                [(digest("c"), "blob"), (digest("l"), "blob"), (child, "manifest")]
            )

    store.run(scenario)


def test_pull_lookups_by_tag_digest_and_batch(store: Store) -> None:
    async def scenario(db: Database, registry_id: str) -> None:
        async with db.write() as conn:
            repo = await new_repo(conn, registry_id, "m/pull")
            one = await new_manifest(conn, repo, "one")
            two = await new_manifest(conn, repo, "two")
            await tags.put(conn, repo, "v1", one)
            await conn.execute(
                schema.image_archives.insert().values(
                    repository_id=repo, digest=two, status="ARCHIVED", archived_at=1.0
                )
            )
        async with db.read_now() as conn:
            by_tag = await manifests.for_pull(conn, registry_id, "m/pull", "v1", by_digest=False)
            assert by_tag is not None and by_tag.digest == one and by_tag.content == b"one"
            assert by_tag.archive_status is None and by_tag.encryption_type == "AES256"
            by_digest = await manifests.for_pull(conn, registry_id, "m/pull", two, by_digest=True)
            assert by_digest is not None and by_digest.archive_status == "ARCHIVED"
            assert (
                await manifests.for_pull(conn, registry_id, "m/pull", "v2", by_digest=False) is None
            )
            assert (
                await manifests.for_pull(conn, registry_id, "m/other", one, by_digest=True) is None
            )
        async with db.read() as conn:
            rows = await manifests.many_for_pull(conn, repo, [two, one, one, digest("absent")])
            assert set(rows) == {one, two}
            assert rows[one].content == b"one" and rows[one].last_pulled_at is None
            assert rows[two].archive_status == "ARCHIVED"
            assert await manifests.many_for_pull(conn, repo, []) == {}
        async with db.write() as conn:
            await manifests.record_pull(conn, repo, [one, two], 123.0)
        async with db.read() as conn:
            rows = await manifests.many_for_pull(conn, repo, [one, two])
            assert {row.last_pulled_at for row in rows.values()} == {123.0}

    store.run(scenario)


def test_tags_move_resolve_in_one_query_and_list_in_byte_order(store: Store) -> None:
    async def scenario(db: Database, registry_id: str) -> None:
        names = ["1.0", "1.0-rc", "1.0.1", "1.0_b", "A", "a", "latest"]  # byte order
        async with db.write() as conn:
            repo = await new_repo(conn, registry_id, "m/tags")
            one = await new_manifest(conn, repo, "one")
            two = await new_manifest(conn, repo, "two")
            assert await tags.insert_if_absent(conn, repo, "pinned", one)
            assert not await tags.insert_if_absent(conn, repo, "pinned", two)
            for name in reversed(names):
                await tags.put(conn, repo, name, one)
            await tags.put(conn, repo, "latest", two)  # a move
        async with db.read_now() as conn:
            assert await tags.digest_of(conn, repo, "pinned") == one
            assert await tags.digest_of(conn, repo, "latest") == two
            assert await tags.digest_of(conn, repo, "nope") is None
            assert await tags.digests_of(conn, repo, ["latest", "A", "nope", "A"]) == {
                "latest": two,
                "A": one,
            }
            assert await tags.digests_of(conn, repo, []) == {}
            every = sorted([*names, "pinned"], key=str.encode)
            assert await tags.list_names(conn, repo, None, None) == every
            assert await tags.list_names(conn, repo, "1.0", 2) == every[1:3]
            assert await tags.list_names(conn, repo, "1.0.0", None) == every[2:]
            assert await tags.list_names(conn, repo, every[-1], None) == []
            assert await tags.list_names(conn, repo, None, 0) == []
            on = await tags.on_each(conn, repo, [one, two, digest("none")])
            assert on[two] == ["latest"] and on[digest("none")] == []
            assert on[one] == sorted(set(every) - {"latest"}, key=str.encode)
            assert sorted(await tags.on(conn, repo, two)) == ["latest"]

    store.run(scenario)


def test_deleting_a_manifest_its_tags_and_references(store: Store) -> None:
    async def scenario(db: Database, registry_id: str) -> None:
        async with db.write() as conn:
            repo = await new_repo(conn, registry_id, "m/delete")
            child = await new_manifest(conn, repo, "child", blob_seeds=("layer",))
            for name in ("b", "a", "c"):
                await tags.put(conn, repo, name, child)
            assert await tags.delete(conn, repo, "c")
            assert not await tags.delete(conn, repo, "c")
            assert await tags.delete_on(conn, repo, child) == ["a", "b"]
            assert await manifests.delete(conn, repo, child)
            assert not await manifests.delete(conn, repo, child)
            await manifests.delete_references(conn, repo, child)
        async with db.read() as conn:
            assert await manifests.count(conn, repo) == 0
            assert await tags.list_names(conn, repo, None, None) == []
            mr = schema.manifest_references
            left = select(func.count()).select_from(mr).where(mr.c.repository_id == repo)
            assert await conn.scalar(left) == 0

    store.run(scenario)


def test_a_push_finds_only_the_blobs_linked_to_its_repository(store: Store) -> None:
    async def scenario(db: Database, registry_id: str) -> None:
        layer, config, other = digest("lb/layer"), digest("lb/config"), digest("lb/other")
        async with db.write() as conn:
            source = await new_repo(conn, registry_id, "lb/source")
            target = await new_repo(conn, registry_id, "lb/target")
            await blobs.link(conn, source, layer, 42)
            await blobs.link(conn, source, config, 7)
            await blobs.link(conn, target, other, 1)
            # In the push's own transaction (locked for share on PostgreSQL), any number of
            # digests with one built statement.
            found = await manifests.linked_blobs(conn, source, [layer, config, other])
            assert found == {layer, config}
            assert await manifests.linked_blobs(conn, source, [other]) == set()
            assert await manifests.linked_blobs(conn, target, [layer, other]) == {other}

    store.run(scenario)


def test_the_blob_check_reads_the_push_hooks_settings_in_its_statement(store: Store) -> None:
    """`Hooks.widened`: the push's blob check carries the hooks' settings (one statement
    fewer per push), the same values `Hooks` reads on its own, on every backend."""
    hooks = Hooks()

    async def hook(conn, event) -> None:
        return None

    hooks.on_push(hook, reads=push_reads())

    async def scenario(db: Database, registry_id: str) -> None:
        layer = digest("wb/layer")
        async with db.write() as conn:
            repo = await new_repo(conn, registry_id, "wb/app")
            await blobs.link(conn, repo, layer, 42)
            params = hooks.settings_params(registry_id)
            rows = await manifests.linked_blob_rows(conn, repo, [layer], hooks.widened, params)
            assert [row.digest for row in rows] == [layer]
            assert hooks.settings_of(rows[0]) == {"scan_type": None, "scan_rules": None}
            await conn.execute(
                schema.registry_scanning_configurations.insert().values(
                    registry_id=registry_id, scan_type="BASIC", rules="[]", updated_at=0
                )
            )
            rows = await manifests.linked_blob_rows(conn, repo, [layer], hooks.widened, params)
            widened = hooks.settings_of(rows[0])
            assert widened == {"scan_type": "BASIC", "scan_rules": "[]"}
            pushed = SimpleNamespace(repo=SimpleNamespace(registry_id=registry_id, region_key=""))
            assert await hooks._settings(conn, pushed) == widened  # type: ignore[arg-type]
            # Registry settings are per region: another region's push reads none of these.
            elsewhere = hooks.settings_params(registry_id, "eu-west-1")
            rows = await manifests.linked_blob_rows(conn, repo, [layer], hooks.widened, elsewhere)
            assert hooks.settings_of(rows[0]) == {"scan_type": None, "scan_rules": None}
            # The statement is built once per registration.
            assert hooks.widened(manifests._LINKED_BLOBS) is hooks.widened(manifests._LINKED_BLOBS)

    store.run(scenario)
