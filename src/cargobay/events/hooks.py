"""The events the registry services emit, as commit hooks (`registry.hooks`).

`register(hooks, region)` (called when the services are built) adds a push hook and a delete
hook. The manifest service calls the push hook inside the write transaction of every push
(`PUT /v2/<name>/manifests/<ref>`, ECR PutImage, and the registry's own pushes: replication,
the pull-through cache, attached artifacts), and the delete service calls the delete hook inside
the transaction of every deletion (`/v2/` DELETE, BatchDeleteImage, the lifecycle job), so the
event row commits or rolls back with the change:

- a replica from another deployment, on the PUT that completes it: `ECR Replication Action`
  (the source's account and region as the replicating request gave them);
- a push: `ECR Image Action` PUSH (with the tag, or without one for a push by digest), with
  `manifest-media-type` and `artifact-media-type` (the config's media type unless the
  manifest names an `artifactType`), as ECR fills them; whatever the push's origin, as ECR
  emits PUSH for a replicated image in the destination registry;
- a delete through a door: `ECR Image Action` DELETE (an image, or one tag of it);
- a lifecycle expiry: `ECR Lifecycle Policy Action` EXPIRE (ECR sends no DELETE for those).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from cargobay import regions
from cargobay.events import model, outbox
from cargobay.metadata import schema
from cargobay.registry.hooks import PULL_THROUGH_CACHE, PUSHED_REGISTRY, Deleted, Hooks, Pushed

LIFECYCLE = "lifecycle"


def register(hooks: Hooks, default_region: str) -> None:
    """Emit the events of every push and delete the services commit (see the module's note)."""

    async def pushed(conn: Any, event: Pushed) -> None:
        region = regions.from_key(event.repo.region_key, default_region)  # the repository's
        # Read with the push's other settings: without any webhook for the account, the
        # events are written and no webhook is read again.
        webhooks = bool(event.settings.get("webhooks", True))
        if event.origin == PULL_THROUGH_CACHE:
            await _cache_filled(conn, event, region, webhooks)
        if event.replica_of is not None:
            # A replica from another deployment completed here: the same event a copy within
            # a deployment emits (replication/job.py), in the push's own transaction.
            await outbox.emit(
                conn,
                model.replication_action(
                    account=event.repo.registry_id,
                    region=region,
                    repository=event.repo.name,
                    digest=event.digest,
                    tag=event.tag,
                    source_account=event.replica_of.account,
                    source_region=event.replica_of.region,
                ),
                webhooks=webhooks,
            )
        await image_pushed(
            conn,
            account=event.repo.registry_id,
            region=region,
            repository=event.repo.name,
            digest=event.digest,
            tag=event.tag,
            media_type=event.media_type,
            artifact_type=event.artifact_type,
            webhooks=webhooks,
        )

    async def deleted(conn: Any, event: Deleted) -> None:
        if event.origin == LIFECYCLE:
            tags = list(event.tags) or ([event.tag] if event.tag else [])
            priority = event.rule_priority or 0
            await emit(
                conn,
                model.lifecycle_policy_action,
                **_image(event, default_region),
                tags=tags,
                rule_priority=priority,
            )
        else:
            await emit(
                conn,
                model.image_action,
                **_image(event, default_region),
                action="DELETE",
                tag=event.tag,
            )

    hooks.on_push(pushed, reads={"webhooks": outbox.any_webhook(PUSHED_REGISTRY)})
    hooks.on_delete(deleted)


def _image(event: Pushed | Deleted, default_region: str) -> dict[str, str]:
    """The fields every image event has, from a push or delete hook's event (the region is the
    repository's)."""
    return {
        "account": event.repo.registry_id,
        "region": regions.from_key(event.repo.region_key, default_region),
        "repository": event.repo.name,
        "digest": event.digest,
    }


async def _cache_filled(conn: Any, event: Pushed, region: str, webhooks: bool) -> None:
    """`ECR Pull Through Cache Action` SUCCESS: the cache stored an image from its upstream."""
    from cargobay.pullthrough.rules import rule_for

    rule = await rule_for(conn, event.repo.registry_id, event.repo.name, event.repo.region_key)
    if rule is None:
        return
    filled = model.pull_through_cache_action(
        account=event.repo.registry_id,
        region=region,
        repository=event.repo.name,
        repository_prefix=rule.prefix,
        upstream_registry_url=rule.upstream_url,
        sync_status="SUCCESS",
        tag=event.tag,
        digest=event.digest,
    )
    await outbox.emit(conn, filled, webhooks=webhooks)


def register_scans(scans: Any, region: str) -> None:
    """Emit `ECR Image Scan` in the transaction that stores each finished scan."""

    async def completed(
        conn: Any, repository_id: int, digest: str, status: str, counts: dict[str, int]
    ) -> None:
        r, t = schema.repositories, schema.tags
        repo = (
            await conn.execute(select(r.c.registry_id, r.c.name).where(r.c.id == repository_id))
        ).first()
        if repo is None:
            return
        tags = [
            row.name
            for row in await conn.execute(
                select(t.c.name)
                .where(t.c.repository_id == repository_id, t.c.digest == digest)
                .order_by(t.c.name)
            )
        ]
        await emit(
            conn,
            model.image_scan,
            account=repo.registry_id,
            region=region,
            repository=repo.name,
            digest=digest,
            tags=tags,
            severity_counts={k: v for k, v in counts.items() if k in model.SEVERITIES},
            status=status,
        )

    scans.completed.append(completed)


async def emit(conn: Any, build: Callable[..., dict[str, Any]], /, **fields: Any) -> int:
    """Emit `build(**fields)` (a `model` builder) in `conn`'s transaction, the outbox; returns
    how many webhooks will receive it."""
    return await outbox.emit(conn, build(**fields))


async def image_replicated(db: Any, **fields: Any) -> None:
    """`ECR Replication Action` (the fields of `model.replication_action`) in the destination
    account, in a transaction of its own (replication/job.py, once the copy is complete)."""
    async with db.write() as conn:
        await emit(conn, model.replication_action, **fields)


async def image_pushed(
    conn: Any,
    *,
    media_type: str | None,
    artifact_type: str | None = None,
    webhooks: bool = True,
    **fields: Any,
) -> int:
    """`ECR Image Action` PUSH (account, region, repository, digest, tag as
    `model.image_action` names them); returns how many webhooks will receive it (`webhooks`
    as `outbox.emit` takes it)."""
    event = model.image_action(
        action="PUSH",
        manifest_media_type=media_type,
        artifact_media_type=artifact_type,
        **fields,
    )
    return await outbox.emit(conn, event, webhooks=webhooks)
