"""The calls the registry services make to emit events (issue 10's rewrite wires them in).

Each runs inside the service's open write transaction, after the change it reports, so the
event commits or rolls back with it:

    async with db.write() as conn:
        ...  # store the manifest, move the tag
        await hooks.image_pushed(conn, account=..., region=settings.region, repository=name,
                                 digest=digest, tag=tag, media_type=media_type,
                                 artifact_type=artifact_type)

`ManifestService.put` (both doors' push: `PUT /v2/<name>/manifests/<ref>` and ECR `PutImage`)
calls `image_pushed` once per push (with the tag, or without one for a push by digest); the
shared delete path (`DELETE /v2/.../manifests/<digest>`, `BatchDeleteImage`, untagging) calls
`image_deleted` once per image or tag removed; lifecycle expiry calls `image_expired`.
"""

from __future__ import annotations

from typing import Any

from cargobay.events import model, outbox


async def image_pushed(
    conn: Any,
    *,
    account: str,
    region: str,
    repository: str,
    digest: str,
    tag: str | None,
    media_type: str | None,
    artifact_type: str | None = None,
) -> int:
    """`ECR Image Action` PUSH; returns how many webhooks will receive it."""
    return await outbox.emit(
        conn,
        model.image_action(
            account=account,
            region=region,
            repository=repository,
            digest=digest,
            action="PUSH",
            tag=tag,
            manifest_media_type=media_type,
            artifact_media_type=artifact_type,
        ),
    )


async def image_deleted(
    conn: Any,
    *,
    account: str,
    region: str,
    repository: str,
    digest: str,
    tag: str | None = None,
    media_type: str | None = None,
    artifact_type: str | None = None,
) -> int:
    """`ECR Image Action` DELETE (an image, or one tag of it)."""
    return await outbox.emit(
        conn,
        model.image_action(
            account=account,
            region=region,
            repository=repository,
            digest=digest,
            action="DELETE",
            tag=tag,
            manifest_media_type=media_type,
            artifact_media_type=artifact_type,
        ),
    )


async def image_expired(
    conn: Any,
    *,
    account: str,
    region: str,
    repository: str,
    digest: str,
    tags: list[str],
    rule_priority: int,
) -> int:
    """`ECR Lifecycle Policy Action` EXPIRE, in the lifecycle job's delete transaction."""
    return await outbox.emit(
        conn,
        model.lifecycle_policy_action(
            account=account,
            region=region,
            repository=repository,
            digest=digest,
            tags=tags,
            rule_priority=rule_priority,
        ),
    )
