"""Rows for the metadata suite, written through the record layer itself."""

from __future__ import annotations

import hashlib

from cargobay.metadata.conn import Conn
from cargobay.metadata.records import blobs, manifests, repositories


def digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


async def new_repo(conn: Conn, registry_id: str, name: str) -> int:
    assert await repositories.insert(conn, registry_id, name)
    repository_id = await repositories.id_of(conn, registry_id, name)
    assert repository_id is not None
    return repository_id


async def new_manifest(
    conn: Conn,
    repository_id: int,
    seed: str,
    *,
    blob_seeds: tuple[str, ...] = (),
    children: tuple[str, ...] = (),
    subject: str | None = None,
    artifact_type: str | None = None,
    image_size: int = 0,
) -> str:
    """A manifest row (content: the seed's bytes) with its blobs linked first."""
    blob_digests = [digest(s) for s in blob_seeds]
    for blob in blob_digests:
        await blobs.link(conn, repository_id, blob, 10)
    found = digest(seed)
    inserted = await manifests.insert(
        conn,
        repository_id,
        found,
        blobs=blob_digests,
        children=list(children),
        media_type="application/vnd.oci.image.manifest.v1+json",
        artifact_type=artifact_type,
        subject_digest=subject,
        annotations=None,
        size=len(seed),
        image_size=image_size,
        content=seed.encode(),
    )
    assert inserted
    return found
