"""The referrers index: manifests whose `subject` is another manifest, as both doors list them
(`/v2/<name>/referrers/<digest>` and ECR's ListImageReferrers), with each one's image status."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cargobay.metadata.db import Database
from cargobay.metadata.records import images as records
from cargobay.oci.digest import parse_digest
from cargobay.registry.encryption import Encryption, opened_text
from cargobay.registry.repositories import Repository


@dataclass(frozen=True, slots=True)
class Referrer:
    """A manifest whose subject is another."""

    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    annotations: dict[str, Any] | None
    status: str


async def list_referrers(
    db: Database,
    encryption: Encryption | None,
    repo: Repository,
    digest: str,
    artifact_types: Sequence[str] = (),
    statuses: Sequence[str] | None = None,
    after: str | None = None,
    limit: int | None = None,
) -> list[Referrer]:
    """Referrers of `digest` in digest order after `after`: those of the given artifact types
    (any when empty) and image statuses (any when None); at most `limit`."""
    parse_digest(digest)
    async with db.read() as conn:
        rows = await records.referrers(
            conn,
            repo.id,
            digest,
            list(artifact_types),
            None if statuses is None else list(statuses),
            after,
            limit,
        )
    found = []
    for row in rows:
        annotations = None
        if row.annotations:
            text = await opened_text(encryption, repo, row.digest, row.annotations)
            annotations = json.loads(text)
        found.append(
            Referrer(
                row.digest,
                row.media_type,
                int(row.size),
                row.artifact_type,
                annotations,
                row.status,
            )
        )
    return found
