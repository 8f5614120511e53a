"""Commit hooks: what follows a push or a delete is written in the change's own transaction,
through both doors, and a hook that fails takes the change down with it (nothing
half-committed)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cargobay.metadata import schema
from cargobay.registry.hooks import Deleted, Pushed
from service.harness import OCI_MANIFEST, running, sha256

pytestmark = pytest.mark.backend


def test_push_and_delete_hooks_see_every_door(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as registry:
            pushed: list[Pushed] = []
            deleted: list[Deleted] = []

            async def on_push(conn, event: Pushed) -> None:
                # Inside the push's transaction: the manifest row is already visible here.
                m = schema.manifests
                row = (
                    await conn.execute(select(m.c.digest).where(m.c.digest == event.digest))
                ).first()
                assert row is not None
                pushed.append(event)

            async def on_delete(conn, event: Deleted) -> None:
                deleted.append(event)

            registry.services.hooks.on_push(on_push)
            registry.services.hooks.on_delete(on_delete)
            manifest = await registry.image("hooked")
            digest = sha256(manifest)
            reply = await registry.v2(
                "PUT", "hooked/manifests/v1", manifest, {"Content-Type": OCI_MANIFEST}
            )
            assert reply.status == 201
            reply = await registry.ecr(
                "PutImage",
                {"repositoryName": "hooked", "imageManifest": manifest.decode(), "imageTag": "v2"},
            )
            assert reply.status == 200
            assert [(e.repo.name, e.digest, e.tag, e.created) for e in pushed] == [
                ("hooked", digest, "v1", True),
                ("hooked", digest, "v2", False),
            ]
            assert pushed[0].media_type == OCI_MANIFEST and pushed[0].origin == "client"

            await registry.v2("DELETE", "hooked/manifests/v1")
            reply = await registry.ecr(
                "BatchDeleteImage",
                {"repositoryName": "hooked", "imageIds": [{"imageDigest": digest}]},
            )
            assert reply.status == 200 and reply.json()["imageIds"]
            assert [(e.digest, e.tag, e.untagged_only) for e in deleted] == [
                (digest, "v1", True),
                (digest, None, False),
            ]

    asyncio.run(scenario())


def test_a_failing_hook_rolls_the_push_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as registry:

            async def broken(conn, event: Pushed) -> None:
                raise RuntimeError("outbox unavailable")

            manifest = await registry.image("rolled")
            registry.services.hooks.on_push(broken)
            reply = await registry.v2(
                "PUT", "rolled/manifests/v1", manifest, {"Content-Type": OCI_MANIFEST}
            )
            assert reply.status == 500
            registry.services.hooks.push.remove(broken)
            reply = await registry.v2(
                "GET", "rolled/manifests/v1", headers={"Accept": OCI_MANIFEST}
            )
            assert reply.status == 404

    asyncio.run(scenario())


def test_the_push_reads_see_a_configuration_change_at_the_very_next_push(tmp_path: Path) -> None:
    """The hooks' settings are one statement inside each push's transaction: a webhook added
    (or disabled) just before a push decides that push's deliveries, and a hook's own
    registered read sees what was committed before it."""

    async def deliveries(registry) -> int:
        d = schema.webhook_deliveries
        async with registry.services.db.read() as conn:
            return len((await conn.execute(select(d.c.id))).all())

    async def push(registry, manifest: bytes, tag: str) -> None:
        reply = await registry.v2(
            "PUT", f"configured/manifests/{tag}", manifest, {"Content-Type": OCI_MANIFEST}
        )
        assert reply.status == 201

    async def scenario() -> None:
        async with running(tmp_path) as registry:
            hooks = registry.services.hooks
            seen: list[int] = []

            async def probe(conn, event: Pushed) -> None:
                seen.append(event.settings["probe_webhooks"])

            w = schema.webhooks
            count = select(func.count()).select_from(w).where(w.c.enabled.is_(True))
            hooks.on_push(probe, reads={"probe_webhooks": count.scalar_subquery()})
            with pytest.raises(ValueError):  # one name, one read
                hooks.on_push(probe, reads={"probe_webhooks": count.scalar_subquery()})

            await push(registry, await registry.image("configured"), "v1")
            assert await deliveries(registry) == 0
            async with registry.services.db.write() as conn:
                await conn.execute(
                    w.insert().values(
                        account_id=None,
                        url="https://hooks.example/cargobay",
                        secret="sealed",
                        pattern=None,
                        enabled=True,
                        origin="admin",
                        created_at=time.time(),
                    )
                )
            await push(registry, await registry.image("configured"), "v2")
            assert await deliveries(registry) == 1
            async with registry.services.db.write() as conn:
                await conn.execute(w.update().values(enabled=False))
            await push(registry, await registry.image("configured"), "v3")
            assert await deliveries(registry) == 1
            assert seen == [0, 1, 0]

    asyncio.run(scenario())
